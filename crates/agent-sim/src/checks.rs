//! What the members' cores reported ([`Reports`]), and counting what each member got
//! ([`Ledger`]), for the checks that something reached every member exactly once: a user
//! event (Serf de-duplicates by Lamport time and name, so a member that ran its handler
//! twice, or never, is a bug) and a query's answers (one per responder, however many
//! relays carried it).

use musubi_gossip::core::Event;
use musubi_gossip::key_queries::KeyTally;
use musubi_gossip::query::{QueryEvent, QueryRecord};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;

/// How often each member (each life of one, for a user event: a restarted agent without
/// a snapshot may be handed an old event again) got each item.
#[derive(Debug)]
pub struct Ledger<Item, Who = usize> {
    counts: HashMap<Item, HashMap<Who, u32>>,
}

impl<Item, Who> Default for Ledger<Item, Who> {
    fn default() -> Self {
        Ledger {
            counts: HashMap::new(),
        }
    }
}

/// Why a ledger check failed: the first member that got the item other than once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Miscount<Item: Debug, Who: Debug = usize> {
    #[error("member {member:?} got {item:?} {times} times")]
    Repeated { item: Item, member: Who, times: u32 },
    #[error("member {member:?} never got {item:?}")]
    Missing { item: Item, member: Who },
}

impl<Item: Hash + Eq + Clone + Debug, Who: Hash + Ord + Copy + Debug> Ledger<Item, Who> {
    pub fn record(&mut self, item: Item, member: Who) {
        *self
            .counts
            .entry(item)
            .or_default()
            .entry(member)
            .or_default() += 1;
    }

    /// How often `member` got `item`.
    pub fn times(&self, item: &Item, member: &Who) -> u32 {
        self.counts
            .get(item)
            .and_then(|got| got.get(member))
            .copied()
            .unwrap_or(0)
    }

    /// How many members got `item`, each counted once.
    pub fn reached(&self, item: &Item) -> usize {
        self.counts.get(item).map_or(0, HashMap::len)
    }

    /// No member got `item` twice, whoever it was (members down for a while may miss an
    /// item, never repeat one).
    pub fn never_repeated(&self, item: &Item) -> Result<(), Miscount<Item, Who>> {
        let counts = self.counts.get(item).into_iter().flatten();
        match counts.filter(|&(_, &times)| times > 1).min() {
            Some((&member, &times)) => Err(Miscount::Repeated {
                item: item.clone(),
                member,
                times,
            }),
            None => Ok(()),
        }
    }

    /// Every one of `members` got `item` exactly once, and no one got it twice.
    pub fn exactly_once(
        &self,
        item: &Item,
        members: impl IntoIterator<Item = Who>,
    ) -> Result<(), Miscount<Item, Who>> {
        self.never_repeated(item)?;
        let got = self.counts.get(item);
        match members
            .into_iter()
            .find(|member| got.is_none_or(|got| !got.contains_key(member)))
        {
            Some(member) => Err(Miscount::Missing {
                item: item.clone(),
                member,
            }),
            None => Ok(()),
        }
    }
}

/// A query: the member that sent it and its Lamport time there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId {
    pub asker: usize,
    pub ltime: u64,
}

/// What the members' cores reported, as the agent's handlers and RPC clients see it.
#[derive(Default)]
pub struct Reports {
    /// User events by name, per member life.
    pub user_events: Ledger<String, (usize, u32)>,
    /// The answers to each query, by responder.
    pub answers: Ledger<QueryId>,
    /// The queries that ran out (their `Done` came).
    pub done: HashSet<QueryId>,
    /// The key operations' answers, added up as `serf keys` adds them.
    pub key_tallies: HashMap<QueryId, KeyTally>,
}

impl Reports {
    /// One event member `who` reported in its life `life`; `index_of` names a member's
    /// index. A query delivered to the member comes back, for its handler to answer.
    pub fn take(
        &mut self,
        who: usize,
        life: u32,
        event: Event,
        index_of: impl Fn(&str) -> usize,
    ) -> Option<QueryEvent> {
        match event {
            Event::User(event) => self.user_events.record(event.name, (who, life)),
            Event::Query(query) => return Some(query),
            Event::QueryRecord { ltime, record } => {
                let id = QueryId { asker: who, ltime };
                match record {
                    QueryRecord::Response { from, payload } => {
                        self.answers.record(id, index_of(&from));
                        if let Some(tally) = self.key_tallies.get_mut(&id) {
                            tally.add(from, &payload);
                        }
                    }
                    QueryRecord::Ack { .. } => {}
                    QueryRecord::Done => {
                        self.done.insert(id);
                    }
                }
            }
            Event::NameLost => panic!("member {who} lost its name: every name is unique"),
            Event::Member { .. } | Event::EventsCaughtUp => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_every_member_got_once_passes() {
        let mut ledger = Ledger::default();
        for member in 0..3 {
            ledger.record("e", member);
        }
        assert_eq!(ledger.exactly_once(&"e", 0..3), Ok(()));
        assert_eq!(ledger.reached(&"e"), 3);
    }

    #[test]
    fn a_repeat_or_a_miss_is_named() {
        let mut ledger = Ledger::default();
        ledger.record("e", 0);
        ledger.record("e", 2);
        assert_eq!(
            ledger.exactly_once(&"e", 0..3),
            Err(Miscount::Missing {
                item: "e",
                member: 1
            })
        );
        ledger.record("e", 2);
        let repeated = Miscount::Repeated {
            item: "e",
            member: 2,
            times: 2,
        };
        assert_eq!(ledger.never_repeated(&"e"), Err(repeated.clone()));
        assert_eq!(ledger.exactly_once(&"e", [0, 2]), Err(repeated));
    }
}
