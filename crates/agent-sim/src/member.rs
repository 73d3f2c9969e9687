//! One simulated agent: the agent's own protocol ([`Core`]) with Serf's defaults, one core
//! per life, built as the agent builds it (its key ring answering the `_serf_*-key`
//! queries). A crash drops the core; the key ring outlives it, as the keyring file does.

use musubi_gossip::core::{Core, Settings};
use musubi_gossip::identity::NodeId;
use musubi_gossip::key_queries;
use musubi_gossip::keys::GossipKeys;
use musubi_gossip::query::InternalQueries;
use rand_foca::rngs::StdRng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Member {
    pub name: String,
    pub addr: SocketAddr,
    /// Which life of this member is running; a wake-up asked for in an earlier life never
    /// comes.
    pub life: u32,
    pub core: Option<Core>,
    /// The keyring file: `None` in it means gossip in the clear.
    keys: Arc<GossipKeys>,
    /// Datagrams are compressed (Serf's default; off as with `-disable-compression`).
    pub compress: bool,
    /// When this life's core next asked to be woken (simulation time), if it did since
    /// its last wake-up.
    pub wake_at: Option<Duration>,
}

impl Member {
    pub fn new(name: String, addr: SocketAddr, keys: GossipKeys) -> Self {
        Member {
            name,
            addr,
            life: 0,
            core: None,
            keys: Arc::new(keys),
            compress: true,
            wake_at: None,
        }
    }

    /// Start (or restart) the agent with a fresh identity: `started_ms` later than any
    /// earlier life's, as a restarted agent's start time is.
    pub fn start(&mut self, started_ms: u64, rng: StdRng, now: Instant) {
        let identity = NodeId {
            name: self.name.clone(),
            addr: self.addr,
            tags: Default::default(),
            started_ms,
        };
        let mut settings = Settings::new(identity);
        settings.keys = self.keys.clone();
        settings.enable_compression = self.compress;
        let mut internal = InternalQueries::default();
        key_queries::register(&mut internal, self.keys.clone());
        settings.internal_queries = internal;
        self.life += 1;
        self.wake_at = None;
        self.core = Some(Core::new(settings, rng, now));
    }

    pub fn crash(&mut self) {
        self.core = None;
    }

    pub fn is_up(&self) -> bool {
        self.core.is_some()
    }

    /// This member's keys, primary first (base64); empty without encryption.
    pub fn keys(&self) -> Vec<String> {
        self.keys.list().unwrap_or_default()
    }
}
