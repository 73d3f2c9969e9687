//! The v2 event history: a ring of the most recent events that `waitIndex` watches read.
//!
//! etcd keeps the last 1000; musubi makes the window a setting (`--v2-watch-history`) so
//! operators can end the "401 event index cleared" loops etcd users keep reporting.

use crate::{ErrorCode, Event, V2Error};
use std::collections::VecDeque;

pub struct EventHistory {
    events: VecDeque<Event>,
    capacity: usize,
    /// Index of the oldest event still held (0 until the first event).
    start_index: u64,
    last_index: u64,
}

impl EventHistory {
    pub fn new(capacity: usize) -> Self {
        EventHistory {
            events: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            start_index: 0,
            last_index: 0,
        }
    }

    pub fn push(&mut self, event: Event) {
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.last_index = event.index();
        self.events.push_back(event);
        self.start_index = self.events.front().map_or(0, Event::index);
    }

    /// The first event at or after `index` that a watch on `key` sees.
    ///
    /// `Ok(None)` means the watch must wait for a future event. `current_index` is the
    /// store index reported in the 401 error when `index` fell out of the window.
    pub fn scan(
        &self,
        key: &str,
        recursive: bool,
        index: u64,
        current_index: u64,
    ) -> Result<Option<&Event>, V2Error> {
        if index < self.start_index {
            let cause = format!(
                "the requested history has been cleared [{}/{}]",
                self.start_index, index
            );
            return Err(V2Error::new(
                ErrorCode::EventIndexCleared,
                cause,
                current_index,
            ));
        }
        if index > self.last_index {
            return Ok(None);
        }
        let skip = self.events.partition_point(|e| e.index() < index);
        Ok(self
            .events
            .iter()
            .skip(skip)
            .find(|e| !e.refresh && watch_matches(key, recursive, e)))
    }
}

/// Whether a watch on `key` (recursive or not) is interested in `event`: the key itself,
/// a descendant when recursive, or the removal of a directory that contains the key.
pub fn watch_matches(key: &str, recursive: bool, event: &Event) -> bool {
    let event_key = event.node.key.as_str();
    if event_key == key || (recursive && is_descendant(event_key, key)) {
        return true;
    }
    event.action.removes_node()
        && event
            .prev_node
            .as_ref()
            .is_some_and(|prev| prev.dir && (key == prev.key || is_descendant(key, &prev.key)))
}

/// Live watchers do not hear about hidden keys below the watched path: a watch on `/a`
/// misses `/a/_b` and `/a/_b/c`, while a watch on `/a/_b` itself hears them.
pub fn is_hidden_from(watch_key: &str, event_key: &str) -> bool {
    let rest = event_key.get(watch_key.len()..).unwrap_or("");
    rest.split('/').any(|part| part.starts_with('_'))
}

/// `child` lies strictly below directory `dir` ("/" contains everything).
pub fn is_descendant(child: &str, dir: &str) -> bool {
    if dir == "/" {
        return child.len() > 1;
    }
    child.len() > dir.len() && child.starts_with(dir) && child.as_bytes()[dir.len()] == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, NodeView};

    fn event(key: &str, index: u64, action: Action) -> Event {
        let node = NodeView {
            key: key.into(),
            value: None,
            dir: false,
            expiration_ms: None,
            ttl: 0,
            nodes: None,
            modified_index: index,
            created_index: index,
        };
        Event {
            action,
            node,
            prev_node: None,
            etcd_index: index,
            refresh: false,
        }
    }

    #[test]
    fn a_full_history_forgets_its_oldest_event_and_says_so() {
        let mut h = EventHistory::new(2);
        for i in 1..=3 {
            h.push(event("/a", i, Action::Set));
        }
        let err = h.scan("/a", false, 1, 3).unwrap_err();
        assert_eq!(err.code, ErrorCode::EventIndexCleared);
        assert_eq!(err.cause, "the requested history has been cleared [2/1]");
        assert_eq!(err.index, 3);
        assert_eq!(h.scan("/a", false, 2, 3).unwrap().unwrap().index(), 2);
    }

    #[test]
    fn a_future_index_waits() {
        let mut h = EventHistory::new(10);
        h.push(event("/a", 5, Action::Set));
        assert!(h.scan("/a", false, 6, 5).unwrap().is_none());
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_siblings_with_a_common_prefix() {
        let mut h = EventHistory::new(10);
        h.push(event("/ab", 1, Action::Set));
        h.push(event("/a/b", 2, Action::Set));
        assert_eq!(h.scan("/a", true, 1, 2).unwrap().unwrap().index(), 2);
        assert!(h.scan("/a", false, 1, 2).unwrap().is_none());
    }

    #[test]
    fn deleting_a_directory_reaches_watchers_of_keys_inside_it() {
        let mut e = event("/d", 3, Action::Delete);
        e.prev_node = Some(NodeView {
            dir: true,
            ..e.node.clone()
        });
        assert!(watch_matches("/d/x/y", false, &e));
        assert!(!watch_matches("/dx", false, &e));
    }

    #[test]
    fn refreshes_are_kept_but_never_delivered() {
        let mut h = EventHistory::new(10);
        let mut e = event("/a", 1, Action::Set);
        e.refresh = true;
        h.push(e);
        assert!(h.scan("/a", false, 1, 1).unwrap().is_none());
    }
}
