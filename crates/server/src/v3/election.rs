//! The Election service (`v3electionpb.Election`): etcd's election, run by the member for
//! its caller, in the key layout of `etcdctl elect` (see [`super::concurrency`]).
//!
//! - Campaign puts the candidate's value at `<name>/<lease hex>` (a new 60 s lease if it
//!   gives none) unless the key exists (then its value is proclaimed if it differs), and
//!   waits until every key created before it is gone. The answer's header is the Txn's;
//!   its `LeaderKey` is the key, its create revision and the lease. A candidate whose
//!   caller goes away resigns.
//! - Proclaim and Resign act only while the key still has the create revision the
//!   `LeaderKey` names: otherwise Proclaim is `election: not leader` and Resign does
//!   nothing. Like etcd they start a session too, so a `LeaderKey` without a lease gets a
//!   new 60 s one.
//! - Leader reads the oldest key under `<name>/` (`election: no leader` if none).
//! - Observe streams the leader, then each proclaim of it, then the next leader once its
//!   key is deleted, and so on; when no one leads it waits for the first put. A failure
//!   ends the stream quietly, as in etcd.

use super::V3;
use super::concurrency::{
    Cleanup, contender_key, created_at, delete_op, get_op, oldest, prefix, put_op, range,
    range_kvs, session_lease, txn, unknown, wait_deletes, watch_from,
};
use futures::{Stream, StreamExt};
use musubi_proto::etcdserverpb::{ResponseHeader, TxnRequest};
use musubi_proto::mvccpb::{KeyValue, event::EventType};
use musubi_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse, election_server::Election,
};
use musubi_store::v3::prefix_end;
use std::pin::Pin;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

const NOT_LEADER: &str = "election: not leader";
const NO_LEADER: &str = "election: no leader";
const MISSING_LEADER: &str = "\"leader\" field must be provided";

pub struct ElectionService(pub V3);

type LeaderStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

impl ElectionService {
    pub async fn campaign(&self, req: CampaignRequest) -> Result<CampaignResponse, Status> {
        self.run_campaign(req).await.map_err(unknown)
    }

    pub async fn proclaim(&self, req: ProclaimRequest) -> Result<ProclaimResponse, Status> {
        let leader = req.leader.ok_or_else(|| Status::unknown(MISSING_LEADER))?;
        let header = async {
            let lease = session_lease(&self.0, leader.lease).await?;
            proclaim(&self.0, &leader.key, leader.rev, lease, &req.value).await
        }
        .await
        .map_err(unknown)?;
        Ok(ProclaimResponse { header })
    }

    pub async fn resign(&self, req: ResignRequest) -> Result<ResignResponse, Status> {
        let leader = req.leader.ok_or_else(|| Status::unknown(MISSING_LEADER))?;
        let header = async {
            session_lease(&self.0, leader.lease).await?;
            resign(&self.0, &leader.key, leader.rev).await
        }
        .await
        .map_err(unknown)?;
        Ok(ResignResponse { header })
    }

    pub async fn leader(&self, req: LeaderRequest) -> Result<LeaderResponse, Status> {
        let resp = range(&self.0, oldest(&prefix(&req.name)))
            .await
            .map_err(unknown)?;
        match resp.kvs.into_iter().next() {
            Some(kv) => Ok(LeaderResponse {
                header: resp.header,
                kv: Some(kv),
            }),
            None => Err(Status::unknown(NO_LEADER)),
        }
    }

    /// The leaders of `req.name`, as they change, until the caller drops the stream.
    pub fn observe(&self, req: LeaderRequest) -> LeaderStream {
        let (tx, mut rx) = mpsc::channel(1);
        let v3 = self.0.clone();
        let prefix = prefix(&req.name);
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                _ = observe(&v3, &prefix, &tx) => {}
            }
        });
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    async fn run_campaign(&self, req: CampaignRequest) -> Result<CampaignResponse, Status> {
        let v3 = &self.0;
        let lease = session_lease(v3, req.lease).await?;
        let prefix = prefix(&req.name);
        let key = contender_key(&prefix, lease);
        let resp = txn(
            v3,
            TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(&key, &req.value, lease)],
                failure: vec![get_op(&key)],
            },
        )
        .await?;
        let mut rev = resp.header.as_ref().map_or(0, |h| h.revision);
        if !resp.succeeded {
            // This session campaigns already: keep its place, with the value asked for now.
            let (created, value) = range_kvs(&resp, 0)
                .first()
                .map_or((0, &[][..]), |kv| (kv.create_revision, kv.value.as_slice()));
            rev = created;
            if value != req.value.as_slice()
                && let Err(e) = proclaim(v3, &key, rev, lease, &req.value).await
            {
                let _ = resign(v3, &key, rev).await;
                return Err(e);
            }
        }
        let cleanup = Cleanup::new({
            let (v3, key) = (v3.clone(), key.clone());
            async move {
                let _ = resign(&v3, &key, rev).await;
            }
        });
        // etcd keeps the key when the wait fails for another reason than the caller.
        let waited = wait_deletes(v3, &prefix, rev - 1).await;
        cleanup.disarm();
        waited?;
        Ok(CampaignResponse {
            header: resp.header,
            leader: Some(LeaderKey {
                name: req.name,
                key,
                rev,
                lease,
            }),
        })
    }
}

/// Puts `value` at the leader's `key` if it still has create revision `rev`.
async fn proclaim(
    v3: &V3,
    key: &[u8],
    rev: i64,
    lease: i64,
    value: &[u8],
) -> Result<Option<ResponseHeader>, Status> {
    let resp = txn(
        v3,
        TxnRequest {
            compare: vec![created_at(key, rev)],
            success: vec![put_op(key, value, lease)],
            failure: Vec::new(),
        },
    )
    .await?;
    if !resp.succeeded {
        return Err(Status::unknown(NOT_LEADER));
    }
    Ok(resp.header)
}

/// Deletes the leader's `key` if it still has create revision `rev`.
async fn resign(v3: &V3, key: &[u8], rev: i64) -> Result<Option<ResponseHeader>, Status> {
    let resp = txn(
        v3,
        TxnRequest {
            compare: vec![created_at(key, rev)],
            success: vec![delete_op(key)],
            failure: Vec::new(),
        },
    )
    .await?;
    Ok(resp.header)
}

/// Sends each leader under `prefix` and each change of its value, until a send or a read
/// fails (etcd's Election.observe).
async fn observe(
    v3: &V3,
    prefix: &[u8],
    tx: &mpsc::Sender<Result<LeaderResponse, Status>>,
) -> Result<(), Status> {
    let send = |header, kv| async move {
        let resp = LeaderResponse {
            header,
            kv: Some(kv),
        };
        tx.send(Ok(resp))
            .await
            .map_err(|_| Status::cancelled("observer gone"))
    };
    loop {
        let resp = range(v3, oldest(prefix)).await?;
        let read_at = revision(&resp.header);
        let (header, leader) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header, kv),
            None => first_put(v3, prefix, read_at).await?,
        };
        let leader_at = revision(&header);
        send(header, leader.clone()).await?;
        let mut changes = std::pin::pin!(watch_from(v3, leader.key, Vec::new(), leader_at + 1));
        'leading: loop {
            let Some(resp) = changes.next().await else {
                return Ok(());
            };
            let resp = resp?;
            for event in resp.events {
                if event.r#type == EventType::Delete as i32 {
                    break 'leading;
                }
                if let Some(kv) = event.kv {
                    send(resp.header, kv).await?;
                }
            }
        }
    }
}

/// The first key put under `prefix` from revision `from` on, with the header of the
/// watch response that brought it at the put's revision.
async fn first_put(
    v3: &V3,
    prefix: &[u8],
    from: i64,
) -> Result<(Option<ResponseHeader>, KeyValue), Status> {
    let mut changes = std::pin::pin!(watch_from(v3, prefix.to_vec(), prefix_end(prefix), from));
    while let Some(resp) = changes.next().await {
        let resp = resp?;
        let put = resp
            .events
            .into_iter()
            .find(|e| e.r#type == EventType::Put as i32)
            .and_then(|e| e.kv);
        if let Some(kv) = put {
            let header = resp.header.map(|h| ResponseHeader {
                revision: kv.mod_revision,
                ..h
            });
            return Ok((header, kv));
        }
    }
    Err(Status::unknown("lost watcher waiting for a leader"))
}

fn revision(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().map_or(0, |h| h.revision)
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        ElectionService::campaign(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        ElectionService::proclaim(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        ElectionService::leader(self, request.into_inner())
            .await
            .map(Response::new)
    }

    type ObserveStream = LeaderStream;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderStream>, Status> {
        Ok(Response::new(ElectionService::observe(
            self,
            request.into_inner(),
        )))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        ElectionService::resign(self, request.into_inner())
            .await
            .map(Response::new)
    }
}
