//! Txn: compares evaluated at one point of the log, then one branch applied at one
//! revision, each op seeing the ones before it.

use super::V3Error;
use super::kv::Write;
use super::range::keys_in;
use crate::StateMachine;
use crate::keyspace::Entry;
use musubi_proto::etcdserverpb::{
    self as pb, Compare, RequestOp, ResponseOp, compare, request_op, response_op,
};
use std::cmp::Ordering;

impl StateMachine {
    pub(crate) fn txn(
        &mut self,
        w: &mut Write,
        req: &pb::TxnRequest,
    ) -> Result<pb::TxnResponse, V3Error> {
        let succeeded = req.compare.iter().all(|c| self.holds(c));
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        self.check_ops(ops)?;
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(self.apply_op(w, op)?);
        }
        Ok(pb::TxnResponse {
            header: super::header(w.header_revision()),
            succeeded,
            responses,
        })
    }

    /// Refuses a branch before any of it is applied, for what only the state can tell:
    /// unknown leases, `ignore_*` on missing keys, reads at unreadable revisions. Nested
    /// Txns are checked on the branch their compares choose now.
    fn check_ops(&self, ops: &[RequestOp]) -> Result<(), V3Error> {
        for op in ops {
            match &op.request {
                Some(request_op::Request::RequestPut(put)) => self.check_put(put)?,
                Some(request_op::Request::RequestRange(range)) => {
                    self.keyspace.check_readable(range.revision)?;
                }
                Some(request_op::Request::RequestTxn(txn)) => {
                    let succeeded = txn.compare.iter().all(|c| self.holds(c));
                    self.check_ops(if succeeded {
                        &txn.success
                    } else {
                        &txn.failure
                    })?;
                }
                Some(request_op::Request::RequestDeleteRange(_)) => {}
                None => return Err(V3Error::KeyNotFound),
            }
        }
        Ok(())
    }

    fn apply_op(&mut self, w: &mut Write, op: &RequestOp) -> Result<ResponseOp, V3Error> {
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
                let mut resp = self.txn(w, req)?;
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
        found.iter().all(|(_, e)| compares(c, Some(e)))
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
            let have: &[u8] = kv.and_then(|e| e.value.as_deref()).unwrap_or(&[]);
            have.cmp(want)
        }
        Ok(CompareTarget::Version) => field(|e| e.version).cmp(&int_target(c)),
        Ok(CompareTarget::Create) => field(|e| e.create_revision).cmp(&int_target(c)),
        Ok(CompareTarget::Mod) => field(|e| e.mod_revision).cmp(&int_target(c)),
        Ok(CompareTarget::Lease) => field(|e| e.lease).cmp(&int_target(c)),
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
