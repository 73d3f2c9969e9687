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
    Cleanup, Client, contender_key, created_at, delete_op, get_op, oldest, prefix, put_op,
    range_kvs, unknown,
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
    async fn campaign(
        &self,
        client: &Client,
        req: CampaignRequest,
    ) -> Result<CampaignResponse, Status> {
        let lease = client.session_lease(req.lease).await?;
        let prefix = prefix(&req.name);
        let key = contender_key(&prefix, lease);
        let resp = client
            .txn(TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(&key, &req.value, lease)],
                failure: vec![get_op(&key)],
            })
            .await?;
        let mut rev = resp.header.as_ref().map_or(0, |h| h.revision);
        if !resp.succeeded {
            // This session campaigns already: keep its place, with the value asked for now.
            let (created, value) = range_kvs(&resp, 0)
                .first()
                .map_or((0, &[][..]), |kv| (kv.create_revision, kv.value.as_slice()));
            rev = created;
            if value != req.value.as_slice()
                && let Err(e) = proclaim(client, &key, rev, lease, &req.value).await
            {
                let _ = resign(client, &key, rev).await;
                return Err(e);
            }
        }
        let cleanup = Cleanup::new({
            let (client, key) = (client.clone(), key.clone());
            async move {
                let _ = resign(&client, &key, rev).await;
            }
        });
        // etcd keeps the key when the wait fails for another reason than the caller.
        let waited = client.wait_deletes(&prefix, rev - 1).await;
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

    async fn proclaim(
        &self,
        client: &Client,
        req: ProclaimRequest,
    ) -> Result<ProclaimResponse, Status> {
        let leader = req.leader.ok_or_else(|| Status::unknown(MISSING_LEADER))?;
        let lease = client.session_lease(leader.lease).await?;
        let header = proclaim(client, &leader.key, leader.rev, lease, &req.value).await?;
        Ok(ProclaimResponse { header })
    }

    async fn resign(&self, client: &Client, req: ResignRequest) -> Result<ResignResponse, Status> {
        let leader = req.leader.ok_or_else(|| Status::unknown(MISSING_LEADER))?;
        client.session_lease(leader.lease).await?;
        let header = resign(client, &leader.key, leader.rev).await?;
        Ok(ResignResponse { header })
    }

    async fn leader(&self, client: &Client, req: LeaderRequest) -> Result<LeaderResponse, Status> {
        let resp = client.range(oldest(&prefix(&req.name))).await?;
        match resp.kvs.into_iter().next() {
            Some(kv) => Ok(LeaderResponse {
                header: resp.header,
                kv: Some(kv),
            }),
            None => Err(Status::unknown(NO_LEADER)),
        }
    }

    /// The leaders of `req.name`, as they change, until the caller drops the stream.
    fn observe(&self, client: Client, req: LeaderRequest) -> LeaderStream {
        let (tx, mut rx) = mpsc::channel(1);
        let prefix = prefix(&req.name);
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                _ = observe(&client, &prefix, &tx) => {}
            }
        });
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}

/// Puts `value` at the leader's `key` if it still has create revision `rev`.
async fn proclaim(
    client: &Client,
    key: &[u8],
    rev: i64,
    lease: i64,
    value: &[u8],
) -> Result<Option<ResponseHeader>, Status> {
    let resp = client
        .txn(TxnRequest {
            compare: vec![created_at(key, rev)],
            success: vec![put_op(key, value, lease)],
            failure: Vec::new(),
        })
        .await?;
    if !resp.succeeded {
        return Err(Status::unknown(NOT_LEADER));
    }
    Ok(resp.header)
}

/// Deletes the leader's `key` if it still has create revision `rev`.
async fn resign(client: &Client, key: &[u8], rev: i64) -> Result<Option<ResponseHeader>, Status> {
    let resp = client
        .txn(TxnRequest {
            compare: vec![created_at(key, rev)],
            success: vec![delete_op(key)],
            failure: Vec::new(),
        })
        .await?;
    Ok(resp.header)
}

/// Sends each leader under `prefix` and each change of its value, until a send or a read
/// fails (etcd's Election.observe).
async fn observe(
    client: &Client,
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
        let resp = client.range(oldest(prefix)).await?;
        let read_at = revision(&resp.header);
        let (header, leader) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header, kv),
            None => first_put(client, prefix, read_at).await?,
        };
        let leader_at = revision(&header);
        send(header, leader.clone()).await?;
        let mut changes = std::pin::pin!(client.watch_from(leader.key, Vec::new(), leader_at + 1));
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
    client: &Client,
    prefix: &[u8],
    from: i64,
) -> Result<(Option<ResponseHeader>, KeyValue), Status> {
    let mut changes = std::pin::pin!(client.watch_from(prefix.to_vec(), prefix_end(prefix), from));
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

/// The gRPC face: each call a client of the member with the caller's metadata, each error
/// code `Unknown`.
#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let client = Client::new(&self.0, request.metadata());
        ElectionService::campaign(self, &client, request.into_inner())
            .await
            .map(Response::new)
            .map_err(unknown)
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let client = Client::new(&self.0, request.metadata());
        ElectionService::proclaim(self, &client, request.into_inner())
            .await
            .map(Response::new)
            .map_err(unknown)
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let client = Client::new(&self.0, request.metadata());
        ElectionService::leader(self, &client, request.into_inner())
            .await
            .map(Response::new)
            .map_err(unknown)
    }

    type ObserveStream = LeaderStream;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderStream>, Status> {
        let client = Client::new(&self.0, request.metadata());
        Ok(Response::new(ElectionService::observe(
            self,
            client,
            request.into_inner(),
        )))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let client = Client::new(&self.0, request.metadata());
        ElectionService::resign(self, &client, request.into_inner())
            .await
            .map(Response::new)
            .map_err(unknown)
    }
}
