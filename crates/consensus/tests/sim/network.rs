//! The simulated peer network: an in-memory router between the members' `Raft` handles
//! that loses, delays, duplicates and cuts messages as its current [`Faults`] say.
//!
//! It plays the part of `musubi_consensus::network` (HTTP): a request is handed to the
//! target's `Raft` exactly as the HTTP server would, and failures come back as the same
//! error kinds (`Unreachable` when nothing can be delivered, `Network` when the request or
//! its reply may have been lost). Every message waits a random time each way, so messages
//! overtake each other, and a duplicate arrives late, after newer ones: the reordering a
//! real network produces.

use musubi_consensus::network::Failure;
use musubi_consensus::{Raft, Snapshot, TypeConfig, Vote};
use openraft::OptionalSend;
use openraft::errors::{RPCError, RaftError, ReplicationClosed, StreamingError};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How the network misbehaves right now. The default is a perfect network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Chance, per mille, that a request is lost; a reply is lost with the same chance.
    pub loss_permille: u32,
    /// Chance, per mille, that a request is delivered a second time, later.
    pub duplicate_permille: u32,
    /// Every message waits a random time up to this long on each way.
    pub max_delay: Duration,
    /// Links that deliver nothing, as pairs `(low id, high id)`.
    pub cut: BTreeSet<(u64, u64)>,
}

impl Faults {
    pub fn is_cut(&self, a: u64, b: u64) -> bool {
        self.cut.contains(&(a.min(b), a.max(b)))
    }
}

/// Routes messages between the running members. Members that are down are simply absent.
pub struct Router {
    running: Mutex<BTreeMap<u64, Raft>>,
    faults: Mutex<Faults>,
    /// Draws every per-message fault. Seeded, though the order in which concurrent messages
    /// draw from it depends on timing, so runs of one seed differ in detail.
    rng: Mutex<StdRng>,
}

/// A message in flight, as the target's `Raft` takes it.
#[derive(Clone)]
enum Message {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    Snapshot(Vote, Snapshot),
}

enum Reply {
    Append(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
}

impl Router {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(Faults::default()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        })
    }

    /// The network member `id` sends through.
    pub fn endpoint(self: &Arc<Self>, id: u64) -> Endpoint {
        Endpoint {
            router: self.clone(),
            from: id,
        }
    }

    /// Starts delivering to `raft` as member `id`.
    pub fn attach(&self, id: u64, raft: Raft) {
        self.running.lock().insert(id, raft);
    }

    /// Stops delivering to member `id`; messages already in flight to it are lost.
    pub fn detach(&self, id: u64) -> Option<Raft> {
        self.running.lock().remove(&id)
    }

    pub fn running(&self) -> BTreeMap<u64, Raft> {
        self.running.lock().clone()
    }

    pub fn node(&self, id: u64) -> Option<Raft> {
        self.running.lock().get(&id).cloned()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock() = faults;
    }

    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock());
    }

    fn chance(&self, permille: u32) -> bool {
        permille > 0 && self.rng.lock().random_ratio(permille.min(1000), 1000)
    }

    fn delay(&self) -> Duration {
        let max = self.faults.lock().max_delay;
        if max.is_zero() {
            return Duration::ZERO;
        }
        self.rng.lock().random_range(Duration::ZERO..=max)
    }

    /// The target's `Raft`, if it runs and the link from `from` is up.
    fn reachable(&self, from: u64, to: u64) -> Result<Raft, Failure> {
        if self.faults.lock().is_cut(from, to) {
            return Err(Failure::Unreachable(format!("link {from}-{to} is cut")));
        }
        self.node(to)
            .ok_or_else(|| Failure::Unreachable(format!("member {to} is down")))
    }

    /// Carries `message` from `from` to `to` and its reply back, through the faults.
    ///
    /// A member that is down sends nothing (its disk may have lost power while its Raft
    /// still ran, see `cluster`) and answers nothing it had not answered before it went down.
    async fn exchange(
        self: Arc<Self>,
        from: u64,
        to: u64,
        message: Message,
    ) -> Result<Reply, Failure> {
        if self.node(from).is_none() {
            return Err(Failure::Unreachable(format!("member {from} is down")));
        }
        self.reachable(from, to)?;
        let (loss, duplicate) = {
            let f = self.faults.lock();
            (f.loss_permille, f.duplicate_permille)
        };
        if self.chance(duplicate) {
            // The copy travels on its own and its reply goes nowhere: a stale retransmission.
            let copy = message.clone();
            let router = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(router.delay() * 3).await;
                if let Ok(raft) = router.reachable(from, to) {
                    let _ = deliver(&raft, copy).await;
                }
            });
        }
        let request_lost = self.chance(loss);
        tokio::time::sleep(self.delay()).await;
        if request_lost {
            return Err(Failure::Network(format!("request {from}->{to} lost")));
        }
        // Look again: the target may have crashed or been cut off while this was in flight.
        let raft = self.reachable(from, to)?;
        let reply = deliver(&raft, message).await?;
        if self.node(to).is_none() {
            return Err(Failure::Network(format!(
                "member {to} went down before replying"
            )));
        }
        let reply_lost = self.chance(loss);
        tokio::time::sleep(self.delay()).await;
        if reply_lost || self.faults.lock().is_cut(from, to) {
            return Err(Failure::Network(format!("reply {to}->{from} lost")));
        }
        Ok(reply)
    }
}

/// Hands `message` to `raft`, as the HTTP server (`network/server.rs`) does.
async fn deliver(raft: &Raft, message: Message) -> Result<Reply, Failure> {
    // The target's Raft has stopped (it is shutting down): as good as down.
    let stopped = |e: RaftError<TypeConfig>| Failure::Unreachable(e.to_string());
    Ok(match message {
        Message::Append(rpc) => Reply::Append(raft.append_entries(rpc).await.map_err(stopped)?),
        Message::Vote(rpc) => Reply::Vote(raft.vote(rpc).await.map_err(stopped)?),
        Message::PreVote(rpc) => Reply::Vote(raft.pre_vote(rpc).await.map_err(stopped)?),
        Message::Snapshot(vote, snapshot) => Reply::Snapshot(
            raft.install_full_snapshot(vote, snapshot)
                .await
                .map_err(|e| Failure::Unreachable(e.to_string()))?,
        ),
    })
}

/// One member's side of the network: openraft's network factory and its clients.
#[derive(Clone)]
pub struct Endpoint {
    router: Arc<Router>,
    from: u64,
}

impl Endpoint {
    /// Sends within openraft's time limit for this RPC; past it, the reply counts as lost.
    async fn send(&self, to: u64, message: Message, option: &RPCOption) -> Result<Reply, Failure> {
        let exchange = self.router.clone().exchange(self.from, to, message);
        tokio::time::timeout(option.hard_ttl(), exchange)
            .await
            .unwrap_or_else(|_| Err(Failure::Network(format!("no reply from {to} in time"))))
    }
}

impl RaftNetworkFactory<TypeConfig> for Endpoint {
    type Network = PeerLink;

    async fn new_client(&mut self, target: u64, _node: &musubi_consensus::Member) -> PeerLink {
        PeerLink {
            endpoint: self.clone(),
            target,
        }
    }
}

/// Sends Raft RPCs from one member to one peer.
pub struct PeerLink {
    endpoint: Endpoint,
    target: u64,
}

/// `deliver` answers each message with a reply of its own kind.
const MISMATCH: &str = "the simulated network paired a request with a reply of another kind";

impl PeerLink {
    async fn exchange(&self, message: Message, option: &RPCOption) -> Result<Reply, Failure> {
        self.endpoint.send(self.target, message, option).await
    }

    async fn exchange_vote(
        &self,
        message: Message,
        option: &RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.exchange(message, option).await? {
            Reply::Vote(reply) => Ok(reply),
            _ => unreachable!("{MISMATCH}"),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerLink {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let reply = self.exchange(Message::Append(rpc), &option).await?;
        match reply {
            Reply::Append(reply) => Ok(reply),
            _ => unreachable!("{MISMATCH}"),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.exchange_vote(Message::Vote(rpc), &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.exchange_vote(Message::PreVote(rpc), &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let send = self
            .endpoint
            .send(self.target, Message::Snapshot(vote, snapshot), &option);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            reply = send => match reply? {
                Reply::Snapshot(reply) => Ok(reply),
                _ => unreachable!("{MISMATCH}"),
            },
        }
    }
}
