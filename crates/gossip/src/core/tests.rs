use super::*;
use crate::query::QueryRecord;
use crate::query::{QueryEvent, QueryParams};
use std::net::SocketAddr;

/// Members on a lossless network with no delay, driven by a virtual clock: each step
/// delivers every datagram sent, then moves the clock to the earliest deadline.
struct Cluster {
    members: Vec<Core>,
    now: Instant,
    events: Vec<Vec<Event>>,
}

impl Cluster {
    fn new(size: u16) -> Cluster {
        let now = Instant::now();
        let members = (0..size)
            .map(|i| {
                let settings = Settings::new(identity(i));
                Core::new(settings, StdRng::seed_from_u64(u64::from(i)), now)
            })
            .collect();
        let events = vec![Vec::new(); usize::from(size)];
        Cluster {
            members,
            now,
            events,
        }
    }

    /// Deliver what is in flight, then advance to the next deadline, for `duration`.
    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.deliver();
            let next = self.members.iter().map(Core::next_deadline).min().unwrap();
            self.now = next.max(self.now).min(end);
            for member in &mut self.members {
                if member.next_deadline() <= self.now {
                    member.tick(self.now);
                }
            }
        }
        self.deliver();
    }

    fn deliver(&mut self) {
        loop {
            let mut sent = Vec::new();
            for (i, member) in self.members.iter_mut().enumerate() {
                for output in member.take_outputs() {
                    match output {
                        Output::Send { to, datagram, .. } => sent.push((addr(i), to, datagram)),
                        Output::Event(event) => self.events[i].push(event),
                    }
                }
            }
            if sent.is_empty() {
                return;
            }
            for (from, to, datagram) in sent {
                let to = usize::from(to.port() - 1);
                self.members[to].handle_datagram(&datagram, from, self.now);
            }
        }
    }
}

fn addr(index: usize) -> SocketAddr {
    ([127, 0, 0, 1], index as u16 + 1).into()
}

fn identity(index: u16) -> NodeId {
    NodeId {
        name: format!("m{index}"),
        addr: addr(usize::from(index)),
        tags: Default::default(),
        started_ms: 1,
    }
}

fn user_events(events: &[Event]) -> Vec<&str> {
    let names = events.iter().filter_map(|event| match event {
        Event::User(event) => Some(event.name.as_str()),
        _ => None,
    });
    names.collect()
}

/// `size` members that joined through the first one and know each other alive.
fn joined(size: u16) -> Cluster {
    let mut cluster = Cluster::new(size);
    let now = cluster.now;
    for member in &mut cluster.members[1..] {
        member.announce(&[addr(0)], now);
    }
    cluster.run(Duration::from_secs(3));
    let size = usize::from(size);
    assert!(cluster.members.iter().all(|m| m.alive_count() == size));
    cluster
}

fn is_join(event: &Event) -> bool {
    matches!(
        event,
        Event::Member {
            kind: MemberEventKind::Join,
            ..
        }
    )
}

#[test]
fn members_join_and_each_sees_a_user_event_once() {
    let mut cluster = joined(3);
    let now = cluster.now;
    cluster.members[2]
        .send_user_event("deploy".into(), b"v2".to_vec(), false, now)
        .unwrap();
    cluster.run(Duration::from_secs(3));
    for events in &cluster.events {
        assert_eq!(user_events(events), ["deploy"]);
    }
    // each reported its own join first, then the two others'
    for events in &cluster.events {
        assert_eq!(events.iter().filter(|event| is_join(event)).count(), 3);
        assert!(is_join(&events[0]));
    }
}

#[test]
fn a_query_is_answered_by_every_member_then_done() {
    let mut cluster = joined(3);
    let params = QueryParams {
        name: "uptime".into(),
        request_ack: true,
        timeout: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let now = cluster.now;
    let ltime = cluster.members[0].send_query(params, now).unwrap();
    // every member that got it answers
    cluster.deliver();
    for i in 0..3 {
        let delivered: Vec<QueryEvent> = cluster.events[i]
            .iter()
            .filter_map(|event| match event {
                Event::Query(query) => Some(query.clone()),
                _ => None,
            })
            .collect();
        for query in delivered {
            let now = cluster.now;
            cluster.members[i]
                .respond(&query, b"up".to_vec(), now)
                .unwrap();
            let again = cluster.members[i].respond(&query, b"up".to_vec(), now);
            assert!(matches!(again, Err(CommandError::Answer(_))));
        }
    }
    cluster.run(Duration::from_secs(3));
    let records: Vec<QueryRecord> = cluster.events[0]
        .iter()
        .filter_map(|event| match event {
            Event::QueryRecord { ltime: l, record } if *l == ltime => Some(record.clone()),
            _ => None,
        })
        .collect();
    let acks = records
        .iter()
        .filter(|r| matches!(r, QueryRecord::Ack { .. }));
    let responses = records
        .iter()
        .filter(|r| matches!(r, QueryRecord::Response { .. }));
    assert_eq!((acks.count(), responses.count()), (3, 3));
    assert_eq!(records.last(), Some(&QueryRecord::Done));
}

#[test]
fn a_member_that_left_refuses_new_tags() {
    let mut cluster = joined(2);
    let now = cluster.now;
    cluster.members[1].leave(now);
    cluster.run(Duration::from_secs(2));
    let left = cluster.members[0].member("m1").map(|m| m.status);
    assert_eq!(left, Some(MemberStatus::Left));
    let refused = cluster.members[1].set_tags(Default::default(), cluster.now);
    assert_eq!(
        refused.unwrap_err().to_string(),
        "Failed to update tags: the agent has left the cluster"
    );
}
