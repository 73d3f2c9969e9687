//! The watch hub, fed by the apply path: v2's event history and live watchers, and the
//! signal that wakes v3 watchers (which read the keyspace's own history: see `v3::watch`).
//!
//! `on_apply` runs while the state machine's write lock is held, and `watch` is called
//! under its read lock, so between reading the history and registering, no event can slip
//! through unseen.

use musubi_store::{Event, EventHistory, Response, V2Error, is_hidden_from, watch_matches};
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::mpsc;

/// etcd buffers 100 events per watcher; a watcher that falls further behind is dropped.
const WATCHER_BUFFER: usize = 100;

pub struct WatchHub {
    inner: Mutex<HubInner>,
    /// Bumped after every applied request: v3 watchers wait on it, then read the history.
    applied: tokio::sync::watch::Sender<u64>,
}

struct HubInner {
    history: EventHistory,
    watchers: Vec<Watcher>,
}

struct Watcher {
    key: String,
    recursive: bool,
    stream: bool,
    since_index: u64,
    tx: mpsc::Sender<Arc<Event>>,
}

/// What a new watch gets: events to send, in order, until the channel closes.
pub struct Watch {
    pub events: mpsc::Receiver<Arc<Event>>,
}

impl WatchHub {
    pub fn new(history_len: usize) -> WatchHub {
        WatchHub {
            inner: Mutex::new(HubInner {
                history: EventHistory::new(history_len),
                watchers: Vec::new(),
            }),
            applied: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Starts a watch at `since_index` (0: the next event). Call under the state
    /// machine's read lock with its `current_index`.
    pub fn watch(
        &self,
        key: &str,
        recursive: bool,
        stream: bool,
        since_index: u64,
        current_index: u64,
    ) -> Result<Watch, V2Error> {
        let since_index = if since_index == 0 {
            current_index + 1
        } else {
            since_index
        };
        let (tx, events) = mpsc::channel(WATCHER_BUFFER);
        let mut inner = self.inner.lock();
        let mut since = since_index;
        if let Some(past) = inner
            .history
            .scan(key, recursive, since_index, current_index)?
        {
            let mut past = past.clone();
            past.etcd_index = current_index;
            since = past.index() + 1;
            let _ = tx.try_send(Arc::new(past));
            if !stream {
                return Ok(Watch { events });
            }
        }
        inner.watchers.push(Watcher {
            key: key.to_string(),
            recursive,
            stream,
            since_index: since,
            tx,
        });
        Ok(Watch { events })
    }

    /// A receiver that changes after every applied request.
    pub fn applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Records every successful event and hands it to the watchers that want it.
    pub fn on_apply(&self, response: &Response) {
        self.applied.send_modify(|n| *n = n.wrapping_add(1));
        let mut inner = self.inner.lock();
        match response {
            Response::V2(Ok(event)) => inner.publish(event),
            Response::V2(Err(_)) | Response::Auth(_) | Response::Refused => {}
            Response::Expired(events)
            | Response::V3 {
                v2_events: events, ..
            } => events.iter().for_each(|e| inner.publish(e)),
        }
    }

    /// Live watchers, for `/v2/stats/store`.
    pub fn watcher_count(&self) -> usize {
        let mut inner = self.inner.lock();
        inner.watchers.retain(|w| !w.tx.is_closed());
        inner.watchers.len()
    }
}

impl HubInner {
    fn publish(&mut self, event: &Event) {
        self.history.push(event.clone());
        if event.refresh || self.watchers.is_empty() {
            return;
        }
        let shared = Arc::new(event.clone());
        self.watchers.retain(|w| {
            let wanted = event.index() >= w.since_index
                && watch_matches(&w.key, w.recursive, event)
                && !is_hidden_from(&w.key, &event.node.key);
            if !wanted {
                return !w.tx.is_closed();
            }
            // A full buffer means the client cannot keep up: drop it, as etcd does.
            w.tx.try_send(shared.clone()).is_ok() && w.stream
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use musubi_store::{Request, StateMachine, V2Op};

    fn set(sm: &mut StateMachine, hub: &WatchHub, key: &str) {
        let op = V2Op::Set {
            key: key.into(),
            value: Some("v".into()),
            expiry: musubi_store::Expiry::Permanent,
            refresh: false,
        };
        hub.on_apply(&sm.apply(&Request::V2 { op, now_ms: 0 }));
    }

    #[test]
    fn a_one_shot_watch_gets_one_event_and_is_gone() {
        let (mut sm, hub) = (StateMachine::new(), WatchHub::new(1000));
        let mut w = hub.watch("/a", false, false, 0, sm.index()).unwrap();
        set(&mut sm, &hub, "/a");
        set(&mut sm, &hub, "/a");
        // A fresh store is at revision 1: the first write is 2.
        assert_eq!(w.events.try_recv().unwrap().index(), 2);
        assert!(w.events.try_recv().is_err());
        assert_eq!(hub.watcher_count(), 0);
    }

    #[test]
    fn a_stream_watch_from_history_continues_live() {
        let (mut sm, hub) = (StateMachine::new(), WatchHub::new(1000));
        set(&mut sm, &hub, "/a");
        let mut w = hub.watch("/a", false, true, 2, sm.index()).unwrap();
        set(&mut sm, &hub, "/a");
        assert_eq!(w.events.try_recv().unwrap().index(), 2);
        assert_eq!(w.events.try_recv().unwrap().index(), 3);
    }

    #[test]
    fn recursive_watchers_do_not_hear_hidden_keys() {
        let (mut sm, hub) = (StateMachine::new(), WatchHub::new(1000));
        let mut w = hub.watch("/", true, false, 0, sm.index()).unwrap();
        set(&mut sm, &hub, "/d/_hidden");
        set(&mut sm, &hub, "/d/seen");
        assert_eq!(w.events.try_recv().unwrap().node.key, "/d/seen");
    }
}
