//! Txn: compares evaluated at one point of the log, then one branch applied at one
//! revision, each op seeing the ones before it, all or nothing.

use super::V3Error;
use super::kv::Write;
use super::range::keys_in;
use crate::StateMachine;
use crate::entry::Entry;
use musubi_proto::etcdserverpb::{
    self as pb, Compare, RequestOp, ResponseOp, compare, request_op, response_op,
};
use std::cmp::Ordering;

impl StateMachine {
    /// A Txn, all or nothing: should an op fail once others have been applied (a put with
    /// `ignore_value` on a key an earlier op deleted, which etcd 3.4 crashes on), the
    /// keyspace is put back as it was (O(1): persistent maps) and the Txn fails.
    pub(crate) fn txn(
        &mut self,
        w: &mut Write,
        req: &pb::TxnRequest,
    ) -> Result<pb::TxnResponse, V3Error> {
        // Every compare, nested ones included, is evaluated against the keyspace before
        // the Txn, as etcd does: a nested Txn does not see the writes of the ops before it.
        let mut path = Vec::new();
        self.choose_branches(req, &mut path);
        self.check_path(req, &path)?;
        let saved = (self.keyspace.clone(), self.leases.clone(), w.snapshot());
        let result = self.apply_txn(w, req, &mut path.into_iter());
        if result.is_err() {
            (self.keyspace, self.leases) = (saved.0, saved.1);
            w.restore(saved.2);
        }
        result
    }

    /// Which branch each Txn takes, this one and the nested ones it runs, depth first.
    fn choose_branches(&self, req: &pb::TxnRequest, path: &mut Vec<bool>) {
        let succeeded = req.compare.iter().all(|c| self.holds(c));
        path.push(succeeded);
        for op in branch(req, succeeded) {
            if let Some(request_op::Request::RequestTxn(nested)) = &op.request {
                self.choose_branches(nested, path);
            }
        }
    }

    fn apply_txn(
        &mut self,
        w: &mut Write,
        req: &pb::TxnRequest,
        path: &mut impl Iterator<Item = bool>,
    ) -> Result<pb::TxnResponse, V3Error> {
        let succeeded = path.next().unwrap_or(false);
        let ops = branch(req, succeeded);
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(self.apply_op(w, op, path)?);
        }
        Ok(pb::TxnResponse {
            header: super::header(w.header_revision()),
            succeeded,
            responses,
        })
    }

    /// Refuses a Txn before any of it is applied, for what only the state can tell, in
    /// etcd's order: first the puts of every branch the Txn will take (`ignore_*` on a
    /// missing key, then unknown leases), only if the Txn writes at all; then the reads
    /// at unreadable revisions.
    fn check_path(&self, req: &pb::TxnRequest, path: &[bool]) -> Result<(), V3Error> {
        let mut ops = Vec::new();
        taken_ops(req, &mut path.iter().copied(), &mut ops);
        if writes(req) {
            for op in &ops {
                if let Some(request_op::Request::RequestPut(put)) = &op.request {
                    let exists = self.keyspace.get(&put.key).is_some_and(Entry::is_key);
                    if (put.ignore_value || put.ignore_lease) && !exists {
                        return Err(V3Error::KeyNotFound);
                    }
                    if put.lease != 0 && !self.leases.contains(put.lease) {
                        return Err(V3Error::LeaseNotFound);
                    }
                }
            }
        }
        for op in &ops {
            match &op.request {
                Some(request_op::Request::RequestRange(range)) => {
                    self.keyspace.check_readable(range.revision)?;
                }
                None => return Err(V3Error::KeyNotFound),
                _ => {}
            }
        }
        Ok(())
    }

    fn apply_op(
        &mut self,
        w: &mut Write,
        op: &RequestOp,
        path: &mut impl Iterator<Item = bool>,
    ) -> Result<ResponseOp, V3Error> {
        let response = match &op.request {
            Some(request_op::Request::RequestRange(req)) => {
                let mut resp = self.range_within(req, w.header_revision())?;
                resp.header = super::header(w.header_revision());
                response_op::Response::ResponseRange(resp)
            }
            Some(request_op::Request::RequestPut(req)) => {
                response_op::Response::ResponsePut(self.put(w, req)?)
            }
            Some(request_op::Request::RequestDeleteRange(req)) => {
                response_op::Response::ResponseDeleteRange(self.delete_range(w, req))
            }
            Some(request_op::Request::RequestTxn(req)) => {
                let mut resp = self.apply_txn(w, req, path)?;
                // etcd leaves a nested Txn's header empty.
                resp.header = Some(pb::ResponseHeader::default());
                response_op::Response::ResponseTxn(resp)
            }
            None => return Err(V3Error::KeyNotFound),
        };
        Ok(ResponseOp {
            response: Some(response),
        })
    }

    /// Whether `c` holds for every key in its range; a range with no key compares a key
    /// of zeros, except that a VALUE compare on a missing key never holds.
    fn holds(&self, c: &Compare) -> bool {
        let current = self.keyspace.revision();
        let found = keys_in(&self.keyspace, &c.key, &c.range_end, current);
        if found.is_empty() {
            return c.target != compare::CompareTarget::Value as i32 && compares(c, None);
        }
        found.iter().all(|e| compares(c, Some(e)))
    }
}

/// The non-Txn ops of the branches `path` takes, depth first.
fn taken_ops<'a>(
    req: &'a pb::TxnRequest,
    path: &mut impl Iterator<Item = bool>,
    out: &mut Vec<&'a RequestOp>,
) {
    let succeeded = path.next().unwrap_or(false);
    for op in branch(req, succeeded) {
        match &op.request {
            Some(request_op::Request::RequestTxn(nested)) => taken_ops(nested, path, out),
            _ => out.push(op),
        }
    }
}

/// Whether any op of either branch, nested ones included, writes.
fn writes(req: &pb::TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .any(|op| match &op.request {
            Some(
                request_op::Request::RequestPut(_) | request_op::Request::RequestDeleteRange(_),
            ) => true,
            Some(request_op::Request::RequestTxn(nested)) => writes(nested),
            _ => false,
        })
}

fn branch(req: &pb::TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &req.success
    } else {
        &req.failure
    }
}

fn compares(c: &Compare, kv: Option<&Entry>) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let field = |f: fn(&Entry) -> i64| kv.map_or(0, f);
    let ordering = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let want: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            let have: &[u8] = kv.and_then(Entry::value).unwrap_or(&[]);
            have.cmp(want)
        }
        Ok(CompareTarget::Version) => field(Entry::version).cmp(&int_target(c)),
        Ok(CompareTarget::Create) => field(Entry::create_revision).cmp(&int_target(c)),
        Ok(CompareTarget::Mod) => field(Entry::mod_revision).cmp(&int_target(c)),
        Ok(CompareTarget::Lease) => field(Entry::lease).cmp(&int_target(c)),
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ordering == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ordering != Ordering::Equal,
        Ok(CompareResult::Greater) => ordering == Ordering::Greater,
        Ok(CompareResult::Less) => ordering == Ordering::Less,
        Err(_) => true,
    }
}

/// The number a compare names for its target; 0 when it names another kind (as Go's
/// getters read a oneof holding something else).
fn int_target(c: &Compare) -> i64 {
    use compare::{CompareTarget, TargetUnion};
    match (CompareTarget::try_from(c.target), &c.target_union) {
        (Ok(CompareTarget::Version), Some(TargetUnion::Version(v)))
        | (Ok(CompareTarget::Create), Some(TargetUnion::CreateRevision(v)))
        | (Ok(CompareTarget::Mod), Some(TargetUnion::ModRevision(v)))
        | (Ok(CompareTarget::Lease), Some(TargetUnion::Lease(v))) => *v,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use crate::v3::{V3Error, V3Response, V3Write};
    use crate::{Request, Response, StateMachine};
    use musubi_proto::etcdserverpb::{
        Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, compare,
        request_op::Request as Op, response_op::Response as OpResponse,
    };

    fn put(key: &str, value: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            })),
        }
    }

    fn apply(sm: &mut StateMachine, txn: TxnRequest) -> Result<V3Response, V3Error> {
        let write = V3Write::Txn(txn);
        match sm.apply(&Request::V3 { write, now_ms: 0 }) {
            Response::V3 { result, .. } => result,
            other => panic!("{other:?}"),
        }
    }

    fn value(sm: &StateMachine, key: &str) -> Option<Vec<u8>> {
        let req = RangeRequest {
            key: key.into(),
            ..Default::default()
        };
        sm.range(&req).unwrap().kvs.pop().map(|kv| kv.value)
    }

    #[test]
    fn a_nested_txn_compares_against_the_keyspace_before_the_txn() {
        let mut sm = StateMachine::new();
        let b_is_y = Compare {
            key: "b".into(),
            target: compare::CompareTarget::Value as i32,
            target_union: Some(compare::TargetUnion::Value("y".into())),
            ..Default::default()
        };
        let nested = TxnRequest {
            compare: vec![b_is_y],
            success: vec![put("seen", "after")],
            failure: vec![put("seen", "before")],
        };
        let outer = TxnRequest {
            success: vec![
                put("b", "y"),
                RequestOp {
                    request: Some(Op::RequestTxn(nested)),
                },
            ],
            ..Default::default()
        };
        let Ok(V3Response::Txn(resp)) = apply(&mut sm, outer) else {
            panic!("the txn failed")
        };
        let Some(OpResponse::ResponseTxn(inner)) = &resp.responses[1].response else {
            panic!("no nested response")
        };
        assert!(!inner.succeeded);
        assert_eq!(value(&sm, "seen"), Some(b"before".to_vec()));
        assert_eq!(sm.revision(), 2);
    }

    #[test]
    fn a_txn_that_fails_half_way_changes_nothing() {
        let mut sm = StateMachine::new();
        apply(
            &mut sm,
            TxnRequest {
                success: vec![put("k", "1")],
                ..Default::default()
            },
        )
        .unwrap();
        let delete = RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: "k".into(),
                ..Default::default()
            })),
        };
        let keep_value = RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: "k".into(),
                ignore_value: true,
                ..Default::default()
            })),
        };
        let txn = TxnRequest {
            success: vec![put("other", "x"), delete, keep_value],
            ..Default::default()
        };
        assert_eq!(apply(&mut sm, txn), Err(V3Error::KeyNotFound));
        assert_eq!(sm.revision(), 2);
        assert_eq!(value(&sm, "k"), Some(b"1".to_vec()));
        assert_eq!(value(&sm, "other"), None);
    }
}
