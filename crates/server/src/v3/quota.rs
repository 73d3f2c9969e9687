//! The space quota (`--quota-backend-bytes`): etcd's quota check before a write is
//! proposed, and the NOSPACE alarm it raises.
//!
//! etcd measures its database file. musubi's keyspace lives in memory, so its size is
//! what the keyspace holds (`Keyspace::held_bytes`, which `Status.dbSizeInUse` reports
//! too): the current keys and values and the older ones the history keeps, counted as
//! writes and compactions are applied. Deleting keys and compacting the history lowers
//! it; defragmenting is not needed for that.
//!
//! 1. Before a Put, a Txn or a LeaseGrant is proposed, `admit` checks etcd's rule:
//!    size + cost < quota, with etcd's costs (256 bytes plus key and value per put, 64
//!    per lease).
//! 2. A write refused for space raises NOSPACE for this member through the log, as etcd
//!    does, and fails with `etcdserver: mvcc: database space exceeded`. From the moment
//!    the alarm is applied, every member's state machine refuses what adds data
//!    (`musubi_store::Alarms::refuses`), until `etcdctl alarm disarm`.

use super::{V3, status};
use musubi_proto::etcdserverpb::{
    AlarmRequest, AlarmType, PutRequest, RequestOp, TxnRequest, alarm_request::AlarmAction,
    request_op,
};
use musubi_store::v3::{V3Error, V3Write};
use tonic::Status;

/// etcd's default quota: 2 GiB (`--quota-backend-bytes` 0).
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;
/// etcd's estimate of what a key's metadata costs beside its key and value.
const KV_OVERHEAD: u64 = 256;
/// etcd's estimate of what a lease costs.
const LEASE_OVERHEAD: u64 = 64;

pub struct Quota {
    /// None: no quota (a negative `--quota-backend-bytes`, as etcd).
    limit: Option<u64>,
}

impl Quota {
    /// The quota `--quota-backend-bytes` asks for: 0 is etcd's default, negative none.
    pub fn new(flag: i64) -> Quota {
        let limit = match flag {
            0 => Some(DEFAULT_QUOTA_BYTES),
            n if n < 0 => None,
            n => Some(n as u64),
        };
        Quota { limit }
    }

    /// etcd's quota check for a write costing `cost`: admitted while it fits, otherwise
    /// NOSPACE is raised for this member and the write refused.
    pub async fn admit(&self, v3: &V3, cost: u64) -> Result<(), Status> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let held = v3.app.sm.read().keyspace().held_bytes();
        if held.saturating_add(cost) < limit {
            return Ok(());
        }
        // Only a refused write looks at the alarms (listing them allocates).
        let me = v3.app.identity.member_id;
        let raised = v3
            .app
            .sm
            .read()
            .alarms()
            .get(AlarmType::Nospace as i32)
            .iter()
            .any(|m| m.member_id == me);
        if !raised {
            tracing::warn!(
                size = held,
                quota = limit,
                "the keyspace is over the space quota: raising NOSPACE"
            );
            let raise = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: me,
                alarm: AlarmType::Nospace as i32,
            };
            v3.propose(V3Write::Alarm(raise)).await?;
        }
        Err(status::from_store(V3Error::NoSpace))
    }
}

/// What a Put costs against the quota (etcd's `costPut`).
pub fn put_cost(req: &PutRequest) -> u64 {
    KV_OVERHEAD + (req.key.len() + req.value.len()) as u64
}

/// What a Txn costs: the puts of its costlier branch (etcd's `costTxn`, which counts
/// only the Txn's own ops).
pub fn txn_cost(req: &TxnRequest) -> u64 {
    let branch = |ops: &[RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(put)) => put_cost(put),
                _ => 0,
            })
            .sum()
    };
    branch(&req.success).max(branch(&req.failure))
}

/// What a LeaseGrant costs.
pub const fn lease_cost() -> u64 {
    LEASE_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_reads_as_etcds() {
        assert_eq!(Quota::new(0).limit, Some(DEFAULT_QUOTA_BYTES));
        assert_eq!(Quota::new(-1).limit, None);
        assert_eq!(Quota::new(4096).limit, Some(4096));
    }

    #[test]
    fn a_txn_costs_its_costlier_branch() {
        let put = |v: &str| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"k".to_vec(),
                value: v.as_bytes().to_vec(),
                ..Default::default()
            })),
        };
        let txn = TxnRequest {
            success: vec![put("a"), put("b")],
            failure: vec![put("0123456789")],
            ..Default::default()
        };
        assert_eq!(txn_cost(&txn), 2 * (KV_OVERHEAD + 2));
        assert_eq!(txn_cost(&TxnRequest::default()), 0);
    }
}
