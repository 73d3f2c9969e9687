//! `-event-handler [filter=]script`: which events a handler script wants, parsed as Serf
//! parses it (agent/event_handler.go). The filter is a comma-separated list of event
//! types: `member-join`, `member-leave`, `member-failed`, `member-update`, `member-reap`,
//! `user`, `user:NAME`, `query`, `query:NAME` or `*`; no filter means every event. Serf
//! splits at the first `=`, so a script containing `=` needs a filter in front of it.

pub mod invoke;

use crate::events::AgentEvent;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHandler {
    filters: EventFilters,
    pub script: String,
}

/// A comma-separated list of event types, as handlers and RPC `stream` take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFilters(Vec<EventFilter>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct EventFilter {
    event: String,
    /// For `user:NAME` (and `query:NAME`): only events of that name.
    name: Option<String>,
}

/// The event types Serf's handler filters name.
const EVENT_TYPES: [&str; 8] = [
    "member-join",
    "member-leave",
    "member-failed",
    "member-update",
    "member-reap",
    "user",
    "query",
    "*",
];

impl EventHandler {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (filter, script) = spec.split_once('=').unwrap_or(("*", spec));
        let filters = EventFilters::parse(filter)
            .map_err(|text| format!("Invalid event script: Event '{text}' invoking '{script}'"))?;
        Ok(EventHandler {
            filters,
            script: script.to_string(),
        })
    }

    /// `serf info`'s `event_handlers` entries: one `event:name` key per filter (`user:` for
    /// all user events, `*:` for a handler without a filter), the script as the value.
    pub fn info_entries(&self) -> impl Iterator<Item = (String, &str)> {
        self.filters.0.iter().map(|filter| {
            let name = filter.name.as_deref().unwrap_or_default();
            (format!("{}:{name}", filter.event), self.script.as_str())
        })
    }

    pub fn wants(&self, event: &AgentEvent) -> bool {
        self.filters.wants(event)
    }
}

impl EventFilters {
    /// The filters, or the first event type that is not one.
    pub fn parse(text: &str) -> Result<Self, &str> {
        text.split(',')
            .map(|part| EventFilter::parse(part).ok_or(part))
            .collect::<Result<_, _>>()
            .map(EventFilters)
    }

    pub fn wants(&self, event: &AgentEvent) -> bool {
        self.0.iter().any(|filter| filter.matches(event))
    }
}

impl EventFilter {
    fn parse(text: &str) -> Option<Self> {
        let (event, name) = match text.split_once(':') {
            Some((kind @ ("user" | "query"), name)) => (kind, Some(name.to_string())),
            _ => (text, None),
        };
        EVENT_TYPES.contains(&event).then(|| EventFilter {
            event: event.to_string(),
            name,
        })
    }

    fn matches(&self, event: &AgentEvent) -> bool {
        if self.event == "*" {
            return true;
        }
        if self.event != event.type_name() {
            return false;
        }
        match (event, &self.name) {
            (AgentEvent::User(user), Some(name)) => user.name == *name,
            (AgentEvent::Query(query), Some(name)) => query.name == *name,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::MemberEventKind;
    use musubi_gossip::user_events::UserEvent;

    fn user(name: &str) -> AgentEvent {
        AgentEvent::User(UserEvent {
            ltime: 1,
            name: name.into(),
            payload: vec![],
            coalesce: false,
        })
    }

    fn query(name: &str) -> AgentEvent {
        AgentEvent::Query(musubi_gossip::query::testing::event(name))
    }

    fn member(kind: MemberEventKind) -> AgentEvent {
        AgentEvent::Member {
            kind,
            members: vec![],
        }
    }

    #[test]
    fn no_filter_means_every_event() {
        let handler = EventHandler::parse("./handle.sh").unwrap();
        assert_eq!(handler.script, "./handle.sh");
        assert!(handler.wants(&user("x")) && handler.wants(&member(MemberEventKind::Failed)));
    }

    #[test]
    fn filters_pick_types_and_user_event_names() {
        let handler = EventHandler::parse("member-join,member-leave,user:deploy=echo a=b").unwrap();
        assert_eq!(handler.script, "echo a=b");
        assert!(handler.wants(&member(MemberEventKind::Join)));
        assert!(handler.wants(&member(MemberEventKind::Leave)));
        assert!(!handler.wants(&member(MemberEventKind::Update)));
        assert!(handler.wants(&user("deploy")));
        assert!(!handler.wants(&user("deploy2")));
        assert!(EventHandler::parse("user=x").unwrap().wants(&user("any")));
    }

    #[test]
    fn query_filters_pick_queries_and_their_names() {
        let named = EventHandler::parse("query:uptime=x").unwrap();
        assert!(named.wants(&query("uptime")));
        assert!(!named.wants(&query("load")));
        assert!(!named.wants(&user("uptime")));
        let any = EventHandler::parse("query=x").unwrap();
        assert!(any.wants(&query("load")) && !any.wants(&user("load")));
        assert!(!EventHandler::parse("user=x").unwrap().wants(&query("q")));
    }

    #[test]
    fn unknown_types_are_refused_in_serfs_words() {
        for (spec, error) in [
            ("FOO=bar ./x", "Event 'FOO' invoking 'bar ./x'"),
            ("member-join,bogus=x", "Event 'bogus' invoking 'x'"),
            ("user,=x", "Event '' invoking 'x'"),
        ] {
            assert_eq!(
                EventHandler::parse(spec),
                Err(format!("Invalid event script: {error}"))
            );
        }
    }

    #[test]
    fn info_entries_are_keyed_as_serf_info_shows_them() {
        let entries = |spec: &str| -> Vec<(String, String)> {
            EventHandler::parse(spec)
                .unwrap()
                .info_entries()
                .map(|(key, script)| (key, script.to_string()))
                .collect()
        };
        assert_eq!(entries("true"), vec![("*:".into(), "true".into())]);
        assert_eq!(
            entries("member-join,user:deploy=x"),
            vec![
                ("member-join:".into(), "x".into()),
                ("user:deploy".into(), "x".into())
            ]
        );
    }
}
