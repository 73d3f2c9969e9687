//! Counting what each member got, for the checks that something reached every member
//! exactly once: a user event (Serf de-duplicates by Lamport time and name, so a member
//! that ran its handler twice, or never, is a bug) and a query's answers (one per
//! responder, however many relays carried it).

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

/// How often each member got each item.
#[derive(Debug)]
pub struct Ledger<Item> {
    counts: HashMap<Item, HashMap<usize, u32>>,
}

impl<Item> Default for Ledger<Item> {
    fn default() -> Self {
        Ledger {
            counts: HashMap::new(),
        }
    }
}

/// Why a ledger check failed: the first member that got the item other than once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Miscount<Item: Debug> {
    #[error("member {member} got {item:?} {times} times")]
    Repeated {
        item: Item,
        member: usize,
        times: u32,
    },
    #[error("member {member} never got {item:?}")]
    Missing { item: Item, member: usize },
}

impl<Item: Hash + Eq + Clone + Debug> Ledger<Item> {
    pub fn record(&mut self, item: Item, member: usize) {
        *self
            .counts
            .entry(item)
            .or_default()
            .entry(member)
            .or_default() += 1;
    }

    /// How many members got `item`, each counted once.
    pub fn reached(&self, item: &Item) -> usize {
        self.counts.get(item).map_or(0, HashMap::len)
    }

    /// No member got `item` twice, whoever it was (members down for a while may miss an
    /// item, never repeat one).
    pub fn never_repeated(&self, item: &Item) -> Result<(), Miscount<Item>> {
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
        members: impl IntoIterator<Item = usize>,
    ) -> Result<(), Miscount<Item>> {
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
