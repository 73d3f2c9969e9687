//! One simulated agent: foca with the agent's own identity ([`NodeId`]), config
//! (the LAN profile, resized with the alive count as node.rs does), broadcast handler
//! ([`ClusterGossip`]), failure detector ([`Lifeguard`]) and member table
//! ([`MemberTable`]), fed foca's notifications the way the node task feeds them.

use foca::{AccumulatingRuntime, Config, Foca, OwnedNotification, PostcardCodec};
use musubi_gossip::broadcasts::{ClusterGossip, UrgentNews};
use musubi_gossip::deliver::Inbox;
use musubi_gossip::identity::NodeId;
use musubi_gossip::lamport::LamportClock;
use musubi_gossip::lifeguard::Lifeguard;
use musubi_gossip::lifeguard::gossip::{ConfirmationGossip, SuspicionConfirmation};
use musubi_gossip::membership::{MemberStatus, MemberTable};
use musubi_gossip::profile::Profile;
use musubi_gossip::query::gossip::QueryGossip;
use musubi_gossip::swim;
use musubi_gossip::user_events::UserEventGossip;
use rand_foca::rngs::StdRng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

type Swim = swim::Swim<ClusterGossip>;

/// A running agent process; dropped when it crashes.
pub struct Running {
    pub foca: Swim,
    pub runtime: AccumulatingRuntime<NodeId>,
    pub table: MemberTable,
    /// Alive records in `table` (itself included), kept as notifications arrive: counting
    /// them in the table on every notification would cost the simulation O(n²) per round.
    pub alive: usize,
    pub lifeguard: Lifeguard,
    /// The suspicion confirmations foca's broadcast handler saw for the first time.
    pub confirmations: Inbox<SuspicionConfirmation>,
    /// The user events and queries it saw first (none here: the node's counter, so the
    /// members receive packets through the node's own `swim::receive`).
    pub urgent: UrgentNews,
    /// When this life's next look at its held suspicions is scheduled, if one is.
    pub suspicion_check: Option<Duration>,
}

pub struct Member {
    pub name: String,
    pub addr: SocketAddr,
    /// Which life of this member is running; a timer set in an earlier life never fires.
    pub life: u32,
    pub running: Option<Running>,
}

impl Member {
    pub fn new(name: String, addr: SocketAddr) -> Self {
        Member {
            name,
            addr,
            life: 0,
            running: None,
        }
    }

    /// Start (or restart) the agent with a fresh identity: `started_ms` later than any
    /// earlier life's, as a restarted agent's start time is.
    pub fn start(&mut self, started_ms: u64, rng: StdRng) {
        let id = NodeId {
            name: self.name.clone(),
            addr: self.addr,
            tags: Default::default(),
            started_ms,
        };
        self.life += 1;
        let confirmations = Inbox::default();
        let urgent = UrgentNews::default();
        self.running = Some(Running {
            foca: Foca::with_custom_broadcast(
                id.clone(),
                lan_config(1),
                rng,
                PostcardCodec,
                gossip(&confirmations, urgent.clone()),
            ),
            runtime: AccumulatingRuntime::new(),
            table: MemberTable::new(id),
            alive: 1,
            lifeguard: Lifeguard::default(),
            confirmations,
            urgent,
            suspicion_check: None,
        });
    }

    pub fn crash(&mut self) {
        self.running = None;
    }

    pub fn is_up(&self) -> bool {
        self.running.is_some()
    }
}

/// The node's broadcast handler. The simulation's members send no user events or
/// queries: nothing would read them, so they are dropped.
fn gossip(confirmations: &Inbox<SuspicionConfirmation>, urgent: UrgentNews) -> ClusterGossip {
    ClusterGossip {
        user_events: UserEventGossip::new(Arc::new(LamportClock::default()), Box::new(drop)),
        queries: QueryGossip::new(Arc::new(LamportClock::default()), Box::new(drop)),
        confirmations: ConfirmationGossip::new(confirmations.sink()),
        urgent,
    }
}

/// The agent's own default: memberlist's LAN profile, as node.rs resizes it.
fn lan_config(alive_members: usize) -> Config {
    Profile::Lan.swim_config(alive_members)
}

impl Running {
    /// What the node task does with a notification at `now`: Lifeguard reads foca's
    /// packets and failed probes, the table follows foca.
    pub fn apply(&mut self, notification: OwnedNotification<NodeId>, now: Duration) {
        let before = self.alive;
        match notification {
            OwnedNotification::MemberUp(id) => {
                let name = id.name.clone();
                self.track(&[&name], |table| table.member_up(id));
            }
            OwnedNotification::MemberDown(id) => {
                self.track(&[&id.name], |table| table.member_down(&id));
            }
            OwnedNotification::Rename(old, new) => {
                let names = [old.name.clone(), new.name.clone()];
                self.track(&[&names[0], &names[1]], |table| {
                    table.member_renamed(&old, new)
                });
            }
            OwnedNotification::Rejoin(renewed) => {
                let name = renewed.name.clone();
                self.track(&[&name], |table| table.member_up(renewed));
            }
            OwnedNotification::Active | OwnedNotification::Idle | OwnedNotification::Defunct => {}
            // Read from the packets themselves as they leave, as the node does.
            OwnedNotification::DataSent(_) => {}
            OwnedNotification::DataReceived(header) => {
                // the round trip feeds the node's coordinates, which the simulation has not
                let _ = self.lifeguard.received(&header, now);
            }
            OwnedNotification::ProbeFailed(probe, id) => self
                .lifeguard
                .probe_failed_in(&mut self.foca, probe, &id, now)
                .expect("a confirmation always fits foca's packets"),
        }
        if self.alive != before {
            self.foca
                .set_config(lan_config(self.alive))
                .expect("a LAN config for another size replaces the current one");
        }
    }

    fn track(&mut self, names: &[&str], change: impl FnOnce(&mut MemberTable)) {
        let alive_among = |table: &MemberTable, names: &[&str]| {
            let mut distinct: Vec<&str> = names.to_vec();
            distinct.dedup();
            distinct
                .iter()
                .filter(|name| {
                    table
                        .get(name)
                        .is_some_and(|r| r.status == MemberStatus::Alive)
                })
                .count()
        };
        let before = alive_among(&self.table, names);
        change(&mut self.table);
        self.alive = self.alive + alive_among(&self.table, names) - before;
    }

    pub fn status_of(&self, name: &str) -> Option<MemberStatus> {
        self.table.get(name).map(|record| record.status)
    }
}
