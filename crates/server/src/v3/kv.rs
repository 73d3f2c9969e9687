//! The KV service: Range served from this member (after a ReadIndex unless serializable),
//! writes checked here as etcd checks them, then proposed through the log.

use super::auth::{self, Seen};
use super::{V3, quota, status};
use musubi_proto::etcdserverpb::{self as pb, RequestOp, kv_server::Kv, request_op};
use musubi_store::v3::{V3Error, V3Response, V3Write, check_put_request};
use prost::Message;
use std::collections::BTreeSet;
use tonic::{Request, Response, Status};

pub struct KvService(pub V3);

/// etcd's `--max-txn-ops` default: the most compares, or ops in one branch, of a Txn.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

impl KvService {
    pub async fn range(&self, req: pb::RangeRequest) -> Result<pb::RangeResponse, Status> {
        if !req.serializable {
            self.0.linearize().await?;
        }
        let mut resp = self
            .0
            .app
            .sm
            .read()
            .range(&req)
            .map_err(status::from_store)?;
        self.0.fill(&mut resp.header);
        Ok(resp)
    }

    /// `seen`: the auth revision the caller's rights were checked at.
    pub async fn put(&self, req: pb::PutRequest, seen: Seen) -> Result<pb::PutResponse, Status> {
        // etcd checks the space quota first, before the request itself.
        self.0.quota.admit(&self.0, quota::put_cost(&req)).await?;
        check_put_request(&req).map_err(status::from_store)?;
        match self.write(V3Write::Put(req), Some(seen)).await? {
            V3Response::Put(mut resp) => {
                self.0.fill(&mut resp.header);
                Ok(resp)
            }
            _ => Err(unexpected()),
        }
    }

    pub async fn delete_range(
        &self,
        req: pb::DeleteRangeRequest,
        seen: Seen,
    ) -> Result<pb::DeleteRangeResponse, Status> {
        if req.key.is_empty() {
            return Err(status::from_store(V3Error::EmptyKey));
        }
        match self.write(V3Write::DeleteRange(req), Some(seen)).await? {
            V3Response::DeleteRange(mut resp) => {
                self.0.fill(&mut resp.header);
                Ok(resp)
            }
            _ => Err(unexpected()),
        }
    }

    pub async fn txn(&self, req: pb::TxnRequest, seen: Seen) -> Result<pb::TxnResponse, Status> {
        self.0.quota.admit(&self.0, quota::txn_cost(&req)).await?;
        check_txn(&req, self.0.app.limits.max_txn_ops).map_err(status::from_store)?;
        match self.write(V3Write::Txn(req), Some(seen)).await? {
            V3Response::Txn(mut resp) => {
                self.0.fill(&mut resp.header);
                Ok(resp)
            }
            _ => Err(unexpected()),
        }
    }

    pub async fn compact(
        &self,
        req: pb::CompactionRequest,
    ) -> Result<pb::CompactionResponse, Status> {
        match self.write(V3Write::Compact(req), None).await? {
            V3Response::Compact(mut resp) => {
                self.0.fill(&mut resp.header);
                Ok(resp)
            }
            _ => Err(unexpected()),
        }
    }

    /// Refuses a request larger than `--max-request-bytes`, as etcd does before proposing.
    async fn write(&self, write: V3Write, seen: Option<Seen>) -> Result<V3Response, Status> {
        let size = match &write {
            V3Write::Put(r) => r.encoded_len(),
            V3Write::DeleteRange(r) => r.encoded_len(),
            V3Write::Txn(r) => r.encoded_len(),
            _ => 0,
        };
        if size > self.0.app.limits.max_request_bytes {
            return Err(status::too_large());
        }
        self.0.propose_as(write, seen).await
    }
}

fn unexpected() -> Status {
    Status::internal("unexpected response to a KV request")
}

/// etcd's checkTxnRequest: op counts, every op well formed, and no key written twice in a
/// branch (two puts, or a put inside a deleted range; two deletes are fine).
fn check_txn(req: &pb::TxnRequest, max_ops: usize) -> Result<(), V3Error> {
    check_txn_ops(req, max_ops)?;
    branch_writes(&req.success)?;
    branch_writes(&req.failure)?;
    Ok(())
}

/// The ops of a Txn, as etcd counts them: a nested Txn may hold only what its parent
/// leaves of the limit.
fn check_txn_ops(req: &pb::TxnRequest, max_ops: usize) -> Result<(), V3Error> {
    let ops = req
        .compare
        .len()
        .max(req.success.len())
        .max(req.failure.len());
    if ops > max_ops {
        return Err(V3Error::TooManyOps);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(V3Error::EmptyKey);
    }
    for op in req.success.iter().chain(&req.failure) {
        check_op(op, max_ops - ops)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_ops: usize) -> Result<(), V3Error> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) if r.key.is_empty() => Err(V3Error::EmptyKey),
        Some(request_op::Request::RequestDeleteRange(d)) if d.key.is_empty() => {
            Err(V3Error::EmptyKey)
        }
        Some(request_op::Request::RequestPut(p)) => check_put_request(p),
        Some(request_op::Request::RequestTxn(t)) => check_txn_ops(t, max_ops),
        Some(_) => Ok(()),
        None => Err(V3Error::KeyNotFound),
    }
}

/// A deleted range as etcd's interval check sees it: one key, or `[from, to)`, which is
/// empty when `to` is not above `from` (so a delete from a key on, end `"\0"`, counts
/// for nothing there).
struct Deleted {
    from: Vec<u8>,
    to: Option<Vec<u8>>,
}

impl Deleted {
    fn covers(&self, key: &[u8]) -> bool {
        match &self.to {
            None => key == self.from.as_slice(),
            Some(to) => key >= self.from.as_slice() && key < to.as_slice(),
        }
    }
}

/// etcd's checkIntervals: the keys one branch puts and the ranges it deletes; a key put
/// twice, or put inside a deleted range, is `duplicate key`. A nested Txn contributes both
/// of its branches: a key both of them put is fine (only one runs), and one put by two
/// nested Txns, or by one and by this branch, is not.
fn branch_writes(ops: &[RequestOp]) -> Result<(BTreeSet<Vec<u8>>, Vec<Deleted>), V3Error> {
    let mut deleted: Vec<Deleted> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestDeleteRange(d)) => Some(Deleted {
                from: d.key.clone(),
                to: (!d.range_end.is_empty()).then(|| d.range_end.clone()),
            }),
            _ => None,
        })
        .collect();
    let mut puts = BTreeSet::new();
    let duplicate = |puts: &BTreeSet<Vec<u8>>, deleted: &[Deleted], key: &[u8]| {
        puts.contains(key) || deleted.iter().any(|d| d.covers(key))
    };
    for op in ops {
        if let Some(request_op::Request::RequestTxn(t)) = &op.request {
            let (then_puts, then_deleted) = branch_writes(&t.success)?;
            let (else_puts, else_deleted) = branch_writes(&t.failure)?;
            for key in &then_puts {
                if duplicate(&puts, &deleted, key) {
                    return Err(V3Error::DuplicateKey);
                }
                puts.insert(key.clone());
            }
            for key in else_puts {
                let both_branches = then_puts.contains(&key);
                if (puts.contains(&key) && !both_branches) || deleted.iter().any(|d| d.covers(&key))
                {
                    return Err(V3Error::DuplicateKey);
                }
                puts.insert(key);
            }
            deleted.extend(then_deleted);
            deleted.extend(else_deleted);
        }
    }
    for op in ops {
        if let Some(request_op::Request::RequestPut(p)) = &op.request {
            if duplicate(&puts, &deleted, &p.key) {
                return Err(V3Error::DuplicateKey);
            }
            puts.insert(p.key.clone());
        }
    }
    Ok((puts, deleted))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        auth::range(&self.0, request.metadata(), request.get_ref())?;
        KvService::range(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let seen = auth::put(&self.0, request.metadata(), request.get_ref())?;
        KvService::put(self, request.into_inner(), seen)
            .await
            .map(Response::new)
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let seen = auth::delete_range(&self.0, request.metadata(), request.get_ref())?;
        KvService::delete_range(self, request.into_inner(), seen)
            .await
            .map(Response::new)
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let seen = auth::txn(&self.0, request.metadata(), request.get_ref())?;
        KvService::txn(self, request.into_inner(), seen)
            .await
            .map(Response::new)
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        auth::token_valid(&self.0, request.metadata())?;
        KvService::compact(self, request.into_inner())
            .await
            .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(pb::PutRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    fn delete(key: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                pb::DeleteRangeRequest {
                    key: key.into(),
                    range_end: end.into(),
                    ..Default::default()
                },
            )),
        }
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> pb::TxnRequest {
        pb::TxnRequest {
            compare: Vec::new(),
            success,
            failure,
        }
    }

    #[test]
    fn a_key_written_twice_in_a_branch_is_refused() {
        let check = |t: &pb::TxnRequest| check_txn(t, DEFAULT_MAX_TXN_OPS);
        assert_eq!(
            check(&txn(vec![put("a"), put("a")], vec![])),
            Err(V3Error::DuplicateKey)
        );
        assert_eq!(
            check(&txn(vec![delete("a", "c"), put("b")], vec![])),
            Err(V3Error::DuplicateKey)
        );
        assert_eq!(
            check(&txn(vec![delete("a", ""), delete("a", "")], vec![])),
            Ok(())
        );
        // etcd's interval check lets a delete from a key on ("\0") pass.
        assert_eq!(
            check(&txn(vec![delete("a", "\0"), put("b")], vec![])),
            Ok(())
        );
        assert_eq!(check(&txn(vec![put("a")], vec![put("a")])), Ok(()));
        let nested = RequestOp {
            request: Some(request_op::Request::RequestTxn(txn(
                vec![put("a")],
                vec![put("a")],
            ))),
        };
        assert_eq!(check(&txn(vec![nested.clone()], vec![])), Ok(()));
        assert_eq!(
            check(&txn(vec![nested, put("a")], vec![])),
            Err(V3Error::DuplicateKey)
        );
    }

    #[test]
    fn too_many_ops_are_refused() {
        let ops = vec![delete("a", ""); 3];
        assert_eq!(check_txn(&txn(ops, vec![]), 2), Err(V3Error::TooManyOps));
    }
}
