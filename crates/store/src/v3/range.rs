//! Range: reading keys, at the current revision or an old one, with etcd's options.

use super::{V3Error, header};
use crate::StateMachine;
use crate::entry::{Entry, Revision};
use crate::keyspace::Keyspace;
use musubi_proto::etcdserverpb::{self as pb, range_request::SortOrder, range_request::SortTarget};
use musubi_proto::mvccpb::KeyValue;

/// The keys `[key, range_end)` name, as etcd reads them: no `range_end` is the one key,
/// `"\0"` is every key from `key` on (`None` as the end), and an end at or before `key`
/// names nothing (`None` overall).
pub fn key_bounds(key: &[u8], range_end: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    match range_end {
        [] => {
            let mut end = key.to_vec();
            end.push(0);
            Some((key.to_vec(), Some(end)))
        }
        [0] => Some((key.to_vec(), None)),
        end if end <= key => None,
        end => Some((key.to_vec(), Some(end.to_vec()))),
    }
}

/// Whether `key` is in `[from, to)` as [`key_bounds`] makes them (`to == None`: every key
/// from `from` on).
pub fn in_bounds(key: &[u8], from: &[u8], to: Option<&[u8]>) -> bool {
    key >= from && to.is_none_or(|to| key < to)
}

// Clients build prefix ranges with the same function, so both ends agree.
pub use musubi_proto::prefix_end;

/// A key's entry as v3 shows it.
pub fn key_value(e: &Entry) -> KeyValue {
    let meta = e.meta();
    KeyValue {
        key: e.key().to_vec(),
        create_revision: meta.create_revision,
        mod_revision: meta.mod_revision,
        version: meta.version,
        value: e.value().map(<[u8]>::to_vec).unwrap_or_default(),
        lease: meta.lease,
    }
}

/// The v3 keys in a request's range at `revision`, in key order.
pub(crate) fn keys_in(ks: &Keyspace, key: &[u8], range_end: &[u8], revision: i64) -> Vec<Entry> {
    match key_bounds(key, range_end) {
        None => Vec::new(),
        Some((from, _)) if range_end.is_empty() => {
            // One key: a lookup, not a scan, whenever the current revision is read.
            if ks.is_current(revision) {
                ks.get(&from)
                    .filter(|e| e.is_key())
                    .map(|e| vec![e.clone()])
                    .unwrap_or_default()
            } else {
                let mut end = from.clone();
                end.push(0);
                ks.keys_at(&from, Some(&end), revision)
            }
        }
        Some((from, to)) => ks.keys_at(&from, to.as_deref(), revision),
    }
}

impl StateMachine {
    /// A v3 Range, served from this member's state (the caller makes it linearizable).
    pub fn range(&self, req: &pb::RangeRequest) -> Result<pb::RangeResponse, V3Error> {
        if req.key.is_empty() {
            return Err(V3Error::EmptyKey);
        }
        self.range_within(req, self.keyspace.revision())
    }

    /// Range with `header_revision` in its header (inside a Txn: the Txn's revision so far).
    pub(crate) fn range_within(
        &self,
        req: &pb::RangeRequest,
        header_revision: i64,
    ) -> Result<pb::RangeResponse, V3Error> {
        let ks = &self.keyspace;
        // No revision is the latest, which inside a Txn includes the Txn's own writes.
        let revision = match req.revision {
            asked if asked <= 0 => Revision::MAX,
            asked => ks.check_readable(asked)?,
        };
        let found = keys_in(ks, &req.key, &req.range_end, revision);
        let count = found.len() as i64;
        let mut resp = pb::RangeResponse {
            header: header(header_revision),
            count,
            ..Default::default()
        };
        if req.count_only {
            return Ok(resp);
        }
        // As etcd: without an explicit order or filters, only limit + 1 keys are read (in
        // key order) before sorting, so a sort by another target sorts just those.
        let filtered = req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        let read = if req.sort_order == SortOrder::None as i32 && !filtered && req.limit > 0 {
            req.limit as usize + 1
        } else {
            usize::MAX
        };
        let mut kvs: Vec<Entry> = found
            .into_iter()
            .take(read)
            .filter(|e| {
                let meta = e.meta();
                within(
                    meta.mod_revision,
                    req.min_mod_revision,
                    req.max_mod_revision,
                ) && within(
                    meta.create_revision,
                    req.min_create_revision,
                    req.max_create_revision,
                )
            })
            .collect();
        sort(&mut kvs, req);
        if req.limit > 0 && kvs.len() > req.limit as usize {
            kvs.truncate(req.limit as usize);
            resp.more = true;
        }
        resp.kvs = kvs
            .iter()
            .map(|e| {
                let mut kv = key_value(e);
                if req.keys_only {
                    kv.value.clear();
                }
                kv
            })
            .collect();
        Ok(resp)
    }
}

/// etcd's min/max filters: 0 means no bound.
fn within(value: i64, min: i64, max: i64) -> bool {
    (min == 0 || value >= min) && (max == 0 || value <= max)
}

/// Sorts as etcd does: by key unless asked otherwise; a target other than the key with no
/// order sorts ascending. The sort is stable, so ties keep key order.
fn sort(kvs: &mut [Entry], req: &pb::RangeRequest) {
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    if target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    if order == SortOrder::None {
        return;
    }
    let by_target = |a: &Entry, b: &Entry| match target {
        SortTarget::Key => std::cmp::Ordering::Equal,
        SortTarget::Version => a.version().cmp(&b.version()),
        SortTarget::Create => a.create_revision().cmp(&b.create_revision()),
        SortTarget::Mod => a.mod_revision().cmp(&b.mod_revision()),
        SortTarget::Value => a.value().cmp(&b.value()),
    };
    match (target, order) {
        (SortTarget::Key, SortOrder::Descend) => kvs.reverse(),
        (SortTarget::Key, _) => {}
        // Go sorts a reversed comparator, so ties stay in key order either way.
        (_, SortOrder::Descend) => kvs.sort_by(|a, b| by_target(b, a)),
        _ => kvs.sort_by(by_target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_follow_etcds_range_end_conventions() {
        assert_eq!(
            key_bounds(b"a", b""),
            Some((b"a".to_vec(), Some(b"a\0".to_vec())))
        );
        assert_eq!(key_bounds(b"a", b"\0"), Some((b"a".to_vec(), None)));
        assert_eq!(key_bounds(b"b", b"a"), None);
        assert_eq!(key_bounds(b"a", b"a"), None);
    }
}
