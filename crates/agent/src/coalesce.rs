//! Event coalescing, as Serf's agent sets it up (3 s period, 1 s quiescence): a burst of
//! member changes becomes one event per kind listing each member once, with the latest
//! thing that happened to it; a burst of `Coalesce` user events keeps only the latest
//! Lamport time per event name. Everything else passes straight through.
//!
//! A window opens with the first event a coalescer takes and closes (flushing what it
//! holds) at the end of the period or after the quiescence with no new event, whichever
//! comes first. Two coalescers run one after the other, member changes then user events,
//! so each has its own window, as in Serf.

use crate::events::{AgentEvent, MemberEventKind};
use musubi_gossip::identity::NodeId;
use musubi_gossip::user_events::UserEvent;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// How long a window may stay open, and how long it stays open with nothing new.
#[derive(Clone, Copy, Debug)]
pub struct Periods {
    pub period: Duration,
    pub quiescence: Duration,
}

impl Periods {
    /// The periods Serf's agent uses for member and user events alike.
    pub const SERF: Periods = Periods {
        period: Duration::from_secs(3),
        quiescence: Duration::from_secs(1),
    };
}

/// Put both coalescers between `input` and the returned receiver.
pub fn spawn(
    input: mpsc::UnboundedReceiver<AgentEvent>,
    periods: Periods,
) -> mpsc::UnboundedReceiver<AgentEvent> {
    let members = spawn_stage(input, periods, MemberCoalescer::default());
    spawn_stage(members, periods, UserCoalescer::default())
}

trait Coalescer: Send + 'static {
    /// Whether this coalescer holds `event` back; the others pass at once.
    fn takes(&self, event: &AgentEvent) -> bool;
    fn add(&mut self, event: AgentEvent);
    /// The coalesced events of the window that just closed.
    fn flush(&mut self) -> Vec<AgentEvent>;
}

fn spawn_stage(
    mut input: mpsc::UnboundedReceiver<AgentEvent>,
    periods: Periods,
    mut coalescer: impl Coalescer,
) -> mpsc::UnboundedReceiver<AgentEvent> {
    let (output, coalesced) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // (end of the period, end of the quiescence) while a window is open
        let mut window: Option<(Instant, Instant)> = None;
        loop {
            let closes = window.map(|(period_end, quiet_end)| period_end.min(quiet_end));
            tokio::select! {
                event = input.recv() => {
                    let Some(event) = event else { break };
                    if !coalescer.takes(&event) {
                        if output.send(event).is_err() {
                            return;
                        }
                        continue;
                    }
                    let now = Instant::now();
                    let period_end = window.map_or(now + periods.period, |(end, _)| end);
                    window = Some((period_end, now + periods.quiescence));
                    coalescer.add(event);
                }
                _ = sleep_until(closes.unwrap_or_else(Instant::now)), if closes.is_some() => {
                    window = None;
                    for event in coalescer.flush() {
                        if output.send(event).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        // The node stopped: what is held is still reported.
        for event in coalescer.flush() {
            let _ = output.send(event);
        }
    });
    coalesced
}

/// Member events: per member, the latest kind and identity in the window. A member whose
/// latest kind is the one last reported for it is left out (a join after a join says
/// nothing new), except updates, which always carry new tags.
#[derive(Default)]
struct MemberCoalescer {
    latest: BTreeMap<String, (MemberEventKind, NodeId)>,
    last_reported: BTreeMap<String, MemberEventKind>,
}

impl Coalescer for MemberCoalescer {
    fn takes(&self, event: &AgentEvent) -> bool {
        matches!(event, AgentEvent::Member { .. })
    }

    fn add(&mut self, event: AgentEvent) {
        if let AgentEvent::Member { kind, members } = event {
            for member in members {
                self.latest.insert(member.name.clone(), (kind, member));
            }
        }
    }

    fn flush(&mut self) -> Vec<AgentEvent> {
        let mut by_kind: Vec<(MemberEventKind, Vec<NodeId>)> = Vec::new();
        for (name, (kind, member)) in std::mem::take(&mut self.latest) {
            let repeat = self.last_reported.get(&name) == Some(&kind);
            if repeat && kind != MemberEventKind::Update {
                continue;
            }
            self.last_reported.insert(name, kind);
            match by_kind.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, members)) => members.push(member),
                None => by_kind.push((kind, vec![member])),
            }
        }
        by_kind
            .into_iter()
            .map(|(kind, members)| AgentEvent::Member { kind, members })
            .collect()
    }
}

/// User events sent with `Coalesce`: per name, the events of the highest Lamport time
/// seen in the window (several when they share that time).
#[derive(Default)]
struct UserCoalescer {
    latest: BTreeMap<String, (u64, Vec<UserEvent>)>,
}

impl Coalescer for UserCoalescer {
    fn takes(&self, event: &AgentEvent) -> bool {
        matches!(event, AgentEvent::User(user) if user.coalesce)
    }

    fn add(&mut self, event: AgentEvent) {
        let AgentEvent::User(user) = event else {
            return;
        };
        match self.latest.get_mut(&user.name) {
            Some((ltime, events)) if *ltime == user.ltime => events.push(user),
            Some((ltime, _)) if *ltime > user.ltime => {}
            _ => {
                self.latest
                    .insert(user.name.clone(), (user.ltime, vec![user]));
            }
        }
    }

    fn flush(&mut self) -> Vec<AgentEvent> {
        std::mem::take(&mut self.latest)
            .into_values()
            .flat_map(|(_, events)| events)
            .map(AgentEvent::User)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MemberEventKind::*;

    fn node(name: &str, role: &str) -> NodeId {
        NodeId {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            tags: [("role".to_string(), role.to_string())].into(),
            started_ms: 1,
        }
    }

    fn member(kind: MemberEventKind, names: &[&str]) -> AgentEvent {
        AgentEvent::Member {
            kind,
            members: names.iter().map(|name| node(name, "web")).collect(),
        }
    }

    fn user(ltime: u64, name: &str, payload: &str, coalesce: bool) -> AgentEvent {
        AgentEvent::User(UserEvent {
            ltime,
            name: name.into(),
            payload: payload.into(),
            coalesce,
        })
    }

    #[test]
    fn member_changes_merge_per_member_keeping_the_latest() {
        let mut c = MemberCoalescer::default();
        c.add(member(Join, &["a"]));
        c.add(member(Join, &["b", "c"]));
        c.add(member(Failed, &["c"]));
        assert_eq!(
            c.flush(),
            vec![member(Join, &["a", "b"]), member(Failed, &["c"])]
        );
        // nothing new for a: not reported again; b's update is
        c.add(member(Join, &["a"]));
        c.add(member(Update, &["b"]));
        assert_eq!(c.flush(), vec![member(Update, &["b"])]);
        c.add(member(Update, &["b"]));
        assert_eq!(c.flush(), vec![member(Update, &["b"])]);
    }

    #[test]
    fn coalesced_user_events_keep_the_latest_time_per_name() {
        let mut c = UserCoalescer::default();
        assert!(!c.takes(&user(1, "x", "", false)));
        for (ltime, name, payload) in [
            (1, "deploy", "v1"),
            (3, "deploy", "v3"),
            (2, "deploy", "v2"),
            (3, "deploy", "v3b"),
            (5, "other", "o"),
        ] {
            c.add(user(ltime, name, payload, true));
        }
        assert_eq!(
            c.flush(),
            vec![
                user(3, "deploy", "v3", true),
                user(3, "deploy", "v3b", true),
                user(5, "other", "o", true)
            ]
        );
        assert!(c.flush().is_empty());
    }

    #[tokio::test]
    async fn a_burst_is_held_until_quiet_and_others_pass_at_once() {
        let (input, events) = mpsc::unbounded_channel();
        let periods = Periods {
            period: Duration::from_millis(600),
            quiescence: Duration::from_millis(200),
        };
        let mut out = spawn(events, periods);
        input.send(member(Join, &["a"])).unwrap();
        input.send(user(1, "x", "1", false)).unwrap();
        input.send(member(Join, &["b"])).unwrap();
        // the uncoalesced user event overtakes the held joins
        assert_eq!(out.recv().await, Some(user(1, "x", "1", false)));
        assert_eq!(out.recv().await, Some(member(Join, &["a", "b"])));
        drop(input);
        assert_eq!(out.recv().await, None);
    }
}
