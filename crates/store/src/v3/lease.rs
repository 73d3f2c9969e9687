//! Leases as the state machine holds them: each lease's granted TTL and its keys.
//!
//! Deadlines are not state: as in etcd, the leader alone keeps them (in the server) and
//! proposes a revoke when one passes, so every member deletes a lease's keys at the same
//! revision. A new leader starts every lease's clock afresh.

use crate::Bytes;
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The TTL granted, in seconds.
    pub ttl: i64,
    /// The keys attached, in key order (the order a revoke deletes them in).
    pub keys: OrdSet<Bytes>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leases {
    by_id: OrdMap<i64, Lease>,
}

impl Leases {
    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.by_id.get(&id)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Every lease ID with its granted TTL, in ID order.
    pub fn all(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.by_id.iter().map(|(id, l)| (*id, l.ttl))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub(crate) fn grant(&mut self, id: i64, ttl: i64) {
        self.by_id.insert(
            id,
            Lease {
                ttl,
                keys: OrdSet::new(),
            },
        );
    }

    pub(crate) fn remove(&mut self, id: i64) -> Option<Lease> {
        self.by_id.remove(&id)
    }

    /// Moves `key` from lease `from` to lease `to` (0 is no lease).
    pub(crate) fn reattach(&mut self, key: &[u8], from: i64, to: i64) {
        if from == to {
            return;
        }
        if let Some(lease) = self.by_id.get_mut(&from) {
            lease.keys.remove(key);
        }
        if let Some(lease) = self.by_id.get_mut(&to) {
            lease.keys.insert(Bytes::from(key));
        }
    }
}
