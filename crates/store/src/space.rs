//! How much the keyspace holds: what the space quota (`--quota-backend-bytes`) and
//! `Status.dbSizeInUse` measure, since musubi's keyspace lives in memory, not in a file.
//!
//! The bytes of every current key and value, plus every older value the history keeps
//! (a change whose value is the key's current entry shares it, and is not counted twice).
//! A value that a change replaced from before the history's window is not counted:
//! there is at most one per key, and compaction drops it.

use crate::keyspace::Keyspace;

/// The bytes the keyspace holds. Walks everything: call it on a copy, off the lock.
pub fn held_bytes(ks: &Keyspace) -> u64 {
    let bytes = |e: &crate::Entry| e.data_len() as u64;
    let current: u64 = ks.iter().map(bytes).sum();
    let history: u64 = ks
        .changes_from(ks.compacted())
        .filter_map(|c| {
            let kv = c.kv.as_ref()?;
            let shared = ks.get(kv.key()).is_some_and(|now| now.is_same(kv));
            (!shared).then(|| bytes(kv))
        })
        .sum();
    current + history
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::V3Write;
    use crate::{Request, StateMachine};
    use musubi_proto::etcdserverpb::{CompactionRequest, PutRequest};

    fn apply(sm: &mut StateMachine, write: V3Write) {
        sm.apply(&Request::V3 { write, now_ms: 0 });
    }

    fn put(sm: &mut StateMachine, value: &str) {
        let req = PutRequest {
            key: b"k".to_vec(),
            value: value.into(),
            ..Default::default()
        };
        apply(sm, V3Write::Put(req));
    }

    #[test]
    fn old_values_count_until_compacted_and_the_current_one_once() {
        let mut sm = StateMachine::new();
        put(&mut sm, "0123456789"); // 2
        assert_eq!(held_bytes(sm.keyspace()), 11);
        put(&mut sm, "abc"); // 3
        assert_eq!(held_bytes(sm.keyspace()), 11 + 4);
        let compact = CompactionRequest {
            revision: 3,
            physical: false,
        };
        apply(&mut sm, V3Write::Compact(compact));
        assert_eq!(held_bytes(sm.keyspace()), 4);
    }
}
