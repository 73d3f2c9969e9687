//! The Lock service (`v3lockpb.Lock`): etcd's mutex, taken by the member for its caller,
//! in the key layout of `etcdctl lock` (see [`super::concurrency`]).
//!
//! Lock:
//! 1. the session: the caller's lease, or a new one of 60 s that nobody keeps alive;
//! 2. one Txn puts `<name>/<lease hex>` (empty value, with the lease) unless it exists,
//!    and reads the oldest key under `<name>/`: if that is ours, the lock is held, and
//!    the Txn's header is the answer's;
//! 3. else wait until every key created before ours is deleted; the header of the read
//!    that found none is the answer's. A caller that goes away while waiting (the call is
//!    dropped) or a wait that fails takes its key back.
//!
//! Each step is a call of the member's own services with the caller's metadata (its auth
//! token), as etcd's embedded client makes them.
//!
//! As in etcd 3.4, a waiter whose lease expires meanwhile still gets its key once the
//! keys before it are gone (3.5 checks the key is still there and answers `mutex: session
//! is expired`). Unlock deletes the key it is given.

use super::V3;
use super::concurrency::{
    Cleanup, Client, contender_key, created_at, get_op, oldest, prefix, put_op, range_kvs,
    range_op, unknown,
};
use musubi_proto::etcdserverpb::TxnRequest;
use musubi_proto::v3lockpb::{
    LockRequest, LockResponse, UnlockRequest, UnlockResponse, lock_server::Lock,
};
use tonic::{Request, Response, Status};

pub struct LockService(pub V3);

impl LockService {
    async fn lock(&self, client: &Client, req: LockRequest) -> Result<LockResponse, Status> {
        let lease = client.session_lease(req.lease).await?;
        let prefix = prefix(&req.name);
        let key = contender_key(&prefix, lease);
        // A session that holds the lock already (or waits for it) keeps its key and place.
        let resp = client
            .txn(TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(&key, b"", lease), range_op(oldest(&prefix))],
                failure: vec![get_op(&key), range_op(oldest(&prefix))],
            })
            .await?;
        let revision = if resp.succeeded {
            resp.header.as_ref().map_or(0, |h| h.revision)
        } else {
            range_kvs(&resp, 0)
                .first()
                .map_or(0, |kv| kv.create_revision)
        };
        let holder = range_kvs(&resp, 1).first();
        if holder.is_none_or(|kv| kv.create_revision == revision) {
            return Ok(LockResponse {
                header: resp.header,
                key,
            });
        }
        let cleanup = Cleanup::new({
            let (client, key) = (client.clone(), key.clone());
            async move {
                let _ = client.delete(key).await;
            }
        });
        let waited = client.wait_deletes(&prefix, revision - 1).await;
        cleanup.disarm();
        match waited {
            Ok(header) => Ok(LockResponse { header, key }),
            Err(e) => {
                let _ = client.delete(key).await;
                Err(e)
            }
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let client = Client::new(&self.0, request.metadata());
        LockService::lock(self, &client, request.into_inner())
            .await
            .map(Response::new)
            .map_err(unknown)
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let client = Client::new(&self.0, request.metadata());
        let resp = client
            .delete(request.into_inner().key)
            .await
            .map_err(unknown)?;
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}
