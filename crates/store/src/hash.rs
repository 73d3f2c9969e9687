//! Hashes of the replicated state, for operators to check that members agree (etcd's
//! Hash and HashKV). Both are functions of the state alone, never of when a member took
//! its snapshots or how its log is laid out, so members at the same revision answer the
//! same. They walk everything: call them on a frozen copy, off the state machine's lock.
//!
//! HashKV is etcd 3.4's, byte for byte: a CRC-32C (Castagnoli) over the name of etcd's key
//! bucket, then every key revision in revision order, each as etcd stores it: the
//! revision (8 bytes big-endian, `_`, the sub-revision, the position of the change within
//! its revision, 8 bytes; a `t` after a deletion) followed by the `mvccpb.KeyValue`
//! (the key alone for a deletion). The revisions are those in (compaction, revision],
//! and of those at or below the compaction, the ones etcd 3.4 keeps for `revision`: each
//! key's value at `revision` if it was written at or before the compaction. musubi keeps
//! no sub-revision for changes older than its history, so those hash with sub-revision 0
//! (etcd's hash differs only for a key last written by a later op of a multi-op Txn).

use crate::Bytes;
use crate::entry::{Entry, Revision};
use crate::keyspace::Keyspace;
use crate::state_machine::Frozen;
use crate::v3::{V3Error, key_value};
use crc::{CRC_32_ISCSI, Crc, Digest};
use prost::Message;

const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// What HashKV answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    /// The current revision (the response header's).
    pub revision: Revision,
    /// The compaction revision, -1 before any.
    pub compact_revision: Revision,
}

impl Frozen {
    /// etcd's HashKV at `revision` (0: the current one). A revision at or below the
    /// compaction is refused (as etcd does, even the compaction revision itself).
    pub fn hash_kv(&self, revision: Revision) -> Result<KvHash, V3Error> {
        let ks = self.keyspace();
        let (current, compacted) = (ks.revision(), ks.compacted());
        if revision > 0 && revision <= compacted {
            return Err(V3Error::Compacted);
        }
        if revision > current {
            return Err(V3Error::FutureRevision);
        }
        let at = if revision == 0 { current } else { revision };
        let mut digest = CASTAGNOLI.digest();
        key_revisions(ks, at, &mut digest);
        Ok(KvHash {
            hash: digest.finalize(),
            revision: current,
            compact_revision: compacted,
        })
    }

    /// etcd's Hash: the whole replicated state. The key revisions as HashKV sees them
    /// now, then the revision and compaction, every v2 directory and TTL, every lease
    /// with its keys, and every alarm. Not etcd's number (which hashes its database
    /// file's buckets), but the same promise: equal on members that agree.
    pub fn hash(&self) -> u32 {
        let ks = self.keyspace();
        let mut d = CASTAGNOLI.digest();
        key_revisions(ks, ks.revision(), &mut d);
        d.update(b"meta");
        d.update(&ks.revision().to_be_bytes());
        d.update(&ks.compacted().to_be_bytes());
        d.update(b"v2");
        for e in ks.iter().filter(|e| e.dir() || e.expire_at().is_some()) {
            field(&mut d, e.key());
            d.update(&[e.dir() as u8]);
            d.update(&e.expire_at().unwrap_or(0).to_be_bytes());
        }
        d.update(b"lease");
        for (id, ttl) in self.leases().all() {
            d.update(&id.to_be_bytes());
            d.update(&ttl.to_be_bytes());
            for key in self
                .leases()
                .get(id)
                .map(|l| l.keys.iter())
                .into_iter()
                .flatten()
            {
                field(&mut d, key);
            }
        }
        d.update(b"alarm");
        for (alarm, member) in self.alarms().iter() {
            d.update(&alarm.to_be_bytes());
            d.update(&member.to_be_bytes());
        }
        d.finalize()
    }
}

/// The key bucket as etcd 3.4's HashKV reads it at `at` (checked readable).
fn key_revisions(ks: &Keyspace, at: Revision, d: &mut Digest<'_, u32>) {
    d.update(b"key");
    if at < 0 {
        return;
    }
    let compacted = ks.compacted();
    // The values at `at` written at or before the compaction: what compaction kept and
    // `at` still sees.
    let mut kept: Vec<Entry> = ks
        .keys_at(b"", None, at)
        .into_iter()
        .filter(|e| e.mod_revision() <= compacted)
        .collect();
    kept.sort_by_cached_key(|e| (e.mod_revision(), Bytes::from(e.key())));
    for entry in &kept {
        revision_key(d, entry.mod_revision(), 0, false);
        d.update(&key_value(entry).encode_to_vec());
    }
    let (mut last, mut sub) = (Revision::MIN, 0i64);
    for change in ks
        .changes_from(compacted + 1)
        .take_while(|c| c.revision <= at)
    {
        sub = if change.revision == last { sub + 1 } else { 0 };
        last = change.revision;
        match &change.kv {
            Some(entry) => {
                revision_key(d, change.revision, sub, false);
                d.update(&key_value(entry).encode_to_vec());
            }
            None => {
                revision_key(d, change.revision, sub, true);
                let tombstone = musubi_proto::mvccpb::KeyValue {
                    key: change.key().to_vec(),
                    ..Default::default()
                };
                d.update(&tombstone.encode_to_vec());
            }
        }
    }
}

/// etcd's key in its key bucket: main and sub revision, `t` marking a deletion.
fn revision_key(d: &mut Digest<'_, u32>, main: Revision, sub: i64, tombstone: bool) {
    d.update(&main.to_be_bytes());
    d.update(b"_");
    d.update(&sub.to_be_bytes());
    if tombstone {
        d.update(b"t");
    }
}

/// A variable-length field, length first, so that neighbours cannot run together.
fn field(d: &mut Digest<'_, u32>, bytes: &[u8]) {
    d.update(&(bytes.len() as u64).to_be_bytes());
    d.update(bytes);
}

#[cfg(test)]
mod tests {
    use crate::v3::{V3Error, V3Write};
    use crate::{Request, StateMachine};
    use musubi_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest};

    fn write(sm: &mut StateMachine, write: V3Write) {
        sm.apply(&Request::V3 { write, now_ms: 0 });
    }

    fn put(sm: &mut StateMachine, key: &str, value: &str) {
        let req = PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        write(sm, V3Write::Put(req));
    }

    fn delete(sm: &mut StateMachine, key: &str) {
        let req = DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        };
        write(sm, V3Write::DeleteRange(req));
    }

    /// The writes of the etcd 3.4.23 session whose HashKV answers the tests expect.
    fn history() -> StateMachine {
        let mut sm = StateMachine::new();
        put(&mut sm, "a", "1"); // 2
        put(&mut sm, "a", "2"); // 3
        put(&mut sm, "b", "1"); // 4
        delete(&mut sm, "a"); // 5
        put(&mut sm, "c", "1"); // 6
        sm
    }

    #[test]
    fn hash_kv_is_etcds_number_for_the_same_writes() {
        let sm = history();
        let f = sm.freeze();
        assert_eq!(f.hash_kv(1).unwrap().hash, 1084519789);
        assert_eq!(f.hash_kv(2).unwrap().hash, 2587454935);
        assert_eq!(f.hash_kv(0).unwrap().hash, 1306755273);
        assert_eq!(f.hash_kv(6).unwrap().compact_revision, -1);
        assert_eq!(f.hash_kv(7), Err(V3Error::FutureRevision));
    }

    #[test]
    fn hash_kv_after_a_compaction_is_etcds_too() {
        let mut sm = history();
        write(
            &mut sm,
            V3Write::Compact(CompactionRequest {
                revision: 4,
                physical: false,
            }),
        );
        let f = sm.freeze();
        assert_eq!(f.hash_kv(4), Err(V3Error::Compacted));
        assert_eq!(f.hash_kv(5).unwrap().hash, 1010904130);
        let now = f.hash_kv(0).unwrap();
        assert_eq!((now.hash, now.compact_revision), (3684001879, 4));
    }

    #[test]
    fn the_whole_state_hash_follows_every_change() {
        let mut sm = history();
        let before = sm.freeze().hash();
        assert_eq!(before, history().freeze().hash());
        write(&mut sm, V3Write::LeaseGrant { id: 9, ttl: 5 });
        assert_ne!(sm.freeze().hash(), before);
    }
}
