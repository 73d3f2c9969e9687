//! The Lease service, and the deadlines the leader keeps for leases.
//!
//! As in etcd, the leases themselves (ID, granted TTL, keys) are replicated state, but
//! their deadlines are not: the leader alone keeps them, renews them on KeepAlive, and
//! proposes a revoke when one passes. A member that becomes leader starts every lease's
//! clock afresh. Followers forward KeepAlive and TimeToLive to the leader over the peer
//! channel (`Consensus::on_leader_call`), with the peers' TLS.

use super::{V3, auth, quota, status};
use futures::{Stream, StreamExt};
use musubi_consensus::leader_route;
use musubi_proto::etcdserverpb::{self as pb, lease_server::Lease};
use musubi_store::v3::{V3Error, V3Response, V3Write};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status, Streaming};

/// etcd's MaxLeaseTTL: about 285 years.
const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// How often the leader looks for expired leases (etcd's lessor checks every 500 ms).
const EXPIRY_CHECK: Duration = Duration::from_millis(500);

/// Lease deadlines, kept only while this member leads.
#[derive(Default)]
pub struct Deadlines {
    inner: Mutex<Clock>,
}

#[derive(Default)]
struct Clock {
    /// The term these deadlines were set in; another term starts them all again.
    term: Option<u64>,
    by_id: HashMap<i64, Instant>,
}

impl Deadlines {
    /// Brings the table in line with the leases held and the leadership: `leading` is the
    /// term this member leads in, if it does.
    fn sync(&self, leading: Option<u64>, leases: &[(i64, i64)], now: Instant) {
        let mut clock = self.inner.lock();
        if clock.term != leading {
            clock.term = leading;
            clock.by_id.clear();
        }
        if leading.is_none() {
            return;
        }
        let live: HashMap<i64, i64> = leases.iter().copied().collect();
        clock.by_id.retain(|id, _| live.contains_key(id));
        for (id, ttl) in leases {
            clock.by_id.entry(*id).or_insert_with(|| now + secs(*ttl));
        }
    }

    fn renew(&self, id: i64, ttl: i64, now: Instant) {
        self.inner.lock().by_id.insert(id, now + secs(ttl));
    }

    fn remaining(&self, id: i64, now: Instant) -> Option<Duration> {
        self.inner
            .lock()
            .by_id
            .get(&id)
            .map(|at| at.saturating_duration_since(now))
    }

    fn expired(&self, now: Instant) -> Vec<i64> {
        let clock = self.inner.lock();
        let mut ids: Vec<i64> = clock
            .by_id
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

/// The leader's expiry loop: revokes, through the log, every lease whose deadline passed.
pub async fn run_expiry(v3: V3) {
    let mut ticker = tokio::time::interval(EXPIRY_CHECK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let status = v3.app.raft.status();
        let leading = status.is_leader.then_some(status.term);
        let leases: Vec<(i64, i64)> = v3.app.sm.read().leases().all().collect();
        let now = Instant::now();
        v3.leases.sync(leading, &leases, now);
        for id in v3.leases.expired(now) {
            match v3.propose(V3Write::LeaseRevoke { id, expired: true }).await {
                Ok(_) => tracing::info!(lease = format!("{id:x}"), "lease expired"),
                Err(e) => {
                    tracing::warn!(lease = format!("{id:x}"), error = %e, "could not revoke an expired lease; will retry")
                }
            }
        }
    }
}

pub struct LeaseService(pub V3);

type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

impl LeaseService {
    pub async fn grant(
        &self,
        req: pb::LeaseGrantRequest,
    ) -> Result<pb::LeaseGrantResponse, Status> {
        self.0.quota.admit(&self.0, quota::lease_cost()).await?;
        if req.ttl > MAX_LEASE_TTL {
            return Err(status::from_store(V3Error::LeaseTtlTooLarge));
        }
        let ttl = req.ttl.max(self.0.app.limits.min_lease_ttl);
        // The ID is chosen here, not at apply, so every member applies the same one: a
        // positive int63, as etcd's.
        let id = if req.id == 0 {
            (rand::random::<u64>() >> 1).max(1) as i64
        } else {
            req.id
        };
        match self.0.propose(V3Write::LeaseGrant { id, ttl }).await? {
            V3Response::LeaseGrant(mut resp) => {
                if self.0.app.raft.is_leader() {
                    self.0.leases.renew(id, ttl, Instant::now());
                }
                self.0.fill(&mut resp.header);
                Ok(resp)
            }
            _ => Err(unexpected()),
        }
    }

    /// `seen`: the auth revision the caller's rights were checked at.
    pub async fn revoke(
        &self,
        req: pb::LeaseRevokeRequest,
        seen: auth::Seen,
    ) -> Result<pb::LeaseRevokeResponse, Status> {
        let revoke = V3Write::LeaseRevoke {
            id: req.id,
            expired: false,
        };
        match self.0.propose_as(revoke, Some(seen)).await? {
            V3Response::LeaseRevoke(mut resp) => {
                self.0.fill(&mut resp.header);
                Ok(resp)
            }
            _ => Err(unexpected()),
        }
    }

    /// One KeepAlive, run on the leader wherever it is asked: renews the lease (TTL 0
    /// when it is unknown, as etcd answers).
    pub async fn keep_alive_once(&self, id: i64) -> Result<pb::LeaseKeepAliveResponse, Status> {
        let ttl = self
            .0
            .app
            .raft
            .on_leader_call(KEEP_ALIVE, &id, || async { Ok(self.renew_here(id)) })
            .await
            .map_err(status::from_consensus)?;
        Ok(pb::LeaseKeepAliveResponse {
            header: Some(self.0.header(self.0.app.sm.read().revision())),
            id,
            ttl,
        })
    }

    /// The leader's part of a KeepAlive: the granted TTL, 0 for an unknown lease.
    fn renew_here(&self, id: i64) -> i64 {
        let granted = self.0.app.sm.read().leases().get(id).map(|l| l.ttl);
        if let Some(ttl) = granted {
            self.0.leases.renew(id, ttl, Instant::now());
        }
        granted.unwrap_or(0)
    }

    /// KeepAlive as a stream: one reply per request, ending when the requests end.
    pub fn keep_alive(
        self: std::sync::Arc<Self>,
        requests: impl Stream<Item = Result<pb::LeaseKeepAliveRequest, Status>> + Send + 'static,
    ) -> KeepAliveStream {
        Box::pin(requests.then(move |req| {
            let service = self.clone();
            async move { service.keep_alive_once(req?.id).await }
        }))
    }

    /// TimeToLive, answered by the leader (which alone knows the deadlines).
    pub async fn time_to_live(
        &self,
        req: pb::LeaseTimeToLiveRequest,
    ) -> Result<pb::LeaseTimeToLiveResponse, Status> {
        let mut resp = self
            .0
            .app
            .raft
            .on_leader_call(TIME_TO_LIVE, &req, || async {
                Ok(self.time_to_live_here(&req))
            })
            .await
            .map_err(status::from_consensus)?;
        self.0.fill(&mut resp.header);
        Ok(resp)
    }

    fn time_to_live_here(&self, req: &pb::LeaseTimeToLiveRequest) -> pb::LeaseTimeToLiveResponse {
        let sm = self.0.app.sm.read();
        let header = Some(self.0.header(sm.revision()));
        let Some(lease) = sm.leases().get(req.id) else {
            return pb::LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                ..Default::default()
            };
        };
        let remaining = self
            .0
            .leases
            .remaining(req.id, Instant::now())
            .map_or(lease.ttl, |d| d.as_secs() as i64);
        pb::LeaseTimeToLiveResponse {
            header,
            id: req.id,
            ttl: remaining,
            granted_ttl: lease.ttl,
            keys: if req.keys {
                lease.keys.iter().map(|k| k.to_vec()).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Every lease, soonest to expire first, as etcd lists them (a member that does not
    /// lead holds no deadlines, and orders them by TTL).
    pub fn leases(&self) -> pb::LeaseLeasesResponse {
        let sm = self.0.app.sm.read();
        let now = Instant::now();
        let mut leases: Vec<(Duration, i64)> = sm
            .leases()
            .all()
            .map(|(id, ttl)| (self.0.leases.remaining(id, now).unwrap_or(secs(ttl)), id))
            .collect();
        leases.sort_unstable();
        pb::LeaseLeasesResponse {
            header: Some(self.0.header(sm.revision())),
            leases: leases
                .into_iter()
                .map(|(_, id)| pb::LeaseStatus { id })
                .collect(),
        }
    }
}

fn unexpected() -> Status {
    Status::internal("unexpected response to a Lease request")
}

/// The peer paths followers forward KeepAlive and TimeToLive on.
const KEEP_ALIVE: &str = "/musubi/lease/keep-alive";
const TIME_TO_LIVE: &str = "/musubi/lease/time-to-live";

/// The leader's side of the forwarded lease calls, for the peer router.
pub fn peer_routes(v3: V3) -> axum::Router {
    let raft = v3.app.raft.clone();
    let service = std::sync::Arc::new(LeaseService(v3));
    let renew = service.clone();
    leader_route(raft.clone(), KEEP_ALIVE, move |id: i64| {
        let service = renew.clone();
        async move { Ok(service.renew_here(id)) }
    })
    .merge(leader_route(
        raft,
        TIME_TO_LIVE,
        move |req: pb::LeaseTimeToLiveRequest| {
            let service = service.clone();
            async move { Ok(service.time_to_live_here(&req)) }
        },
    ))
}

/// The gRPC face of [`LeaseService`].
pub struct LeaseGrpc(pub std::sync::Arc<LeaseService>);

#[tonic::async_trait]
impl Lease for LeaseGrpc {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        auth::token_valid(&self.0.0, request.metadata())?;
        self.0.grant(request.into_inner()).await.map(Response::new)
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let seen = auth::lease_revoke(&self.0.0, request.metadata(), request.get_ref().id)?;
        self.0
            .revoke(request.into_inner(), seen)
            .await
            .map(Response::new)
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        Ok(Response::new(
            self.0.clone().keep_alive(request.into_inner()),
        ))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        auth::lease_time_to_live(&self.0.0, request.metadata(), request.get_ref())?;
        self.0
            .time_to_live(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        Ok(Response::new(self.0.leases()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_term_starts_every_lease_afresh_and_followers_keep_no_deadlines() {
        let d = Deadlines::default();
        let t0 = Instant::now();
        d.sync(Some(2), &[(7, 10)], t0);
        assert_eq!(d.remaining(7, t0 + secs(4)), Some(secs(6)));
        assert_eq!(d.expired(t0 + secs(10)), [7]);
        d.sync(Some(3), &[(7, 10)], t0 + secs(9));
        assert!(d.expired(t0 + secs(10)).is_empty());
        d.sync(None, &[(7, 10)], t0);
        assert_eq!(d.remaining(7, t0), None);
    }
}
