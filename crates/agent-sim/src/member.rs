//! One simulated agent: foca with the agent's own identity ([`NodeId`]), config
//! (the LAN profile, resized with the alive count as node.rs does) and member table
//! ([`MemberTable`]), fed foca's notifications the way the node task feeds them.

use foca::{
    AccumulatingRuntime, Config, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec,
};
use musubi_agent::identity::NodeId;
use musubi_agent::membership::{MemberStatus, MemberTable};
use musubi_agent::profile::Profile;
use rand_foca::rngs::StdRng;
use std::net::SocketAddr;

type Swim = Foca<NodeId, PostcardCodec, StdRng, NoCustomBroadcast>;

/// A running agent process; dropped when it crashes.
pub struct Running {
    pub foca: Swim,
    pub runtime: AccumulatingRuntime<NodeId>,
    pub table: MemberTable,
    /// Alive records in `table` (itself included), kept as notifications arrive: counting
    /// them in the table on every notification would cost the simulation O(n²) per round.
    pub alive: usize,
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
        self.running = Some(Running {
            foca: Foca::new(id.clone(), lan_config(1), rng, PostcardCodec),
            runtime: AccumulatingRuntime::new(),
            table: MemberTable::new(id),
            alive: 1,
        });
    }

    pub fn crash(&mut self) {
        self.running = None;
    }

    pub fn is_up(&self) -> bool {
        self.running.is_some()
    }
}

/// The agent's own default: memberlist's LAN profile, as node.rs resizes it.
fn lan_config(alive_members: usize) -> Config {
    Profile::Lan.swim_config(alive_members)
}

impl Running {
    /// What the node task does with a notification: the table follows foca.
    pub fn apply(&mut self, notification: OwnedNotification<NodeId>) {
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
            // The node's Lifeguard reads these; the simulation runs foca's plain SWIM
            // timing (every suspicion as if fully confirmed, see the crate's docs).
            OwnedNotification::DataSent(_)
            | OwnedNotification::DataReceived(_)
            | OwnedNotification::ProbeFailed(..) => {}
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
