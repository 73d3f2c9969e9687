//! `-config-store PREFIX`: the agent's settings and tags kept in the store (an etcd v2 API:
//! musubi, or etcd with `--enable-v2`), as seed 000's author kept them under `/serf/<role>/`.
//!
//! Promises:
//! - **One precedence.** Defaults < config files < the store's prefixes (in flag order) <
//!   flags; tags: the rendered `tags` < this node's own `/serf/nodes/<node>/tags/` keys <
//!   `-tag`. A prefix's tree is rendered by `musubi conf`'s rules with Serf's schema, then
//!   read by the very decoder config files go through.
//! - **Live through SIGHUP's path.** A change reaches the agent as a reload: log level,
//!   handlers and tags apply at once; what needs a restart is listed under `info`'s
//!   `config_store.pending_restart`.
//! - **Nothing half applied.** A tree the agent would refuse (a bad type, an unknown key,
//!   a bad value) changes nothing; it is logged and shown in `info`'s `config_store.error`.
//! - **No store, no outage.** The last configuration applied is kept in
//!   `-config-store-cache FILE`; with the store down at start the agent starts from it.
//! - **Tags outlive the node.** `serf tags -set/-delete` writes the node's keys in the store
//!   before the node gossips them, so a restarted (or replaced) node gets them back.
//!
//! How it runs:
//! 1. [`open`] reads every prefix and the node's tags ([`read`]), checks the result with the
//!    agent's own config resolution, and keeps a copy in the cache ([`cache`]); with the
//!    store unreachable (or its tree refused) it falls back to the cache.
//! 2. [`watch::spawn`] long-polls every prefix and the node's tags from the index each was
//!    read at (gap-free; etcd's 401 "event index cleared" means read again), reads them all
//!    again after a change, and publishes a checked [`Snapshot`].
//! 3. The agent's main loop waits on [`Updates::next`] beside SIGHUP and runs the same
//!    reload ([`crate::reload`]), which takes the newest snapshot as the store's layer.

mod cache;
mod read;
mod render;
mod restart;
mod status;
mod tags;
mod watch;

pub use render::serf_shapes;
pub use restart::pending_restart;
pub use status::Handle;

use crate::config::AgentConfig;
use crate::config::layer::ConfigLayer;
use musubi_client::Client;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch as channel;

/// Where a node's own tags live: `/serf/nodes/<node>/tags/<key>` (seed 000's hostid).
pub const NODES_ROOT: &str = "/serf/nodes";
/// The store used when `-config-store` is given without `-store-endpoints`.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";
/// Connecting and waiting for a reply's headers, per endpoint.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The flags, resolved: `-store-endpoints URLS`, `-config-store PREFIX`...,
/// `-config-store-cache FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub endpoints: Vec<String>,
    pub prefixes: Vec<String>,
    pub cache: Option<PathBuf>,
}

impl Settings {
    /// None without a `-config-store` prefix: the store then plays no part.
    pub fn from_flags(
        endpoints: Vec<String>,
        prefixes: Vec<String>,
        cache: Option<PathBuf>,
    ) -> Option<Settings> {
        if prefixes.is_empty() {
            return None;
        }
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        Some(Settings {
            endpoints: match endpoints.is_empty() {
                true => vec![DEFAULT_ENDPOINT.to_string()],
                false => endpoints,
            },
            prefixes: prefixes.iter().map(|p| read::key_path(p)).collect(),
            cache,
        })
    }

    fn client(&self) -> Result<Client, String> {
        Client::new(self.endpoints.clone())
            .map(|client| client.with_timeout(REQUEST_TIMEOUT))
            .map_err(|e| format!("config store: {e}"))
    }
}

/// One prefix rendered: the document and the store index it was read at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    pub prefix: String,
    pub index: u64,
    pub document: Value,
}

/// What the store said at one moment: each prefix's document (flag order) and the node's
/// own tags. This is also the cache file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub documents: Vec<Rendered>,
    pub node: String,
    pub node_tags: BTreeMap<String, String>,
    pub node_tags_index: u64,
}

impl Snapshot {
    /// The store's layer, laid between the config files and the flags: each document
    /// decoded as a config file would be (its errors named by prefix), later prefixes over
    /// earlier ones, then the node's own tags over the rendered ones.
    pub fn layer(&self) -> Result<ConfigLayer, String> {
        let mut layer = ConfigLayer::default();
        for rendered in &self.documents {
            layer = layer.merge(render::decode(rendered)?);
        }
        Ok(layer.merge(ConfigLayer {
            tags: self.node_tags.clone().into_iter().collect(),
            ..ConfigLayer::default()
        }))
    }

    /// Whether the two say the same, whatever indexes they were read at.
    fn same_settings(&self, other: &Snapshot) -> bool {
        let documents = |s: &Snapshot| -> Vec<(String, Value)> {
            s.documents
                .iter()
                .map(|r| (r.prefix.clone(), r.document.clone()))
                .collect()
        };
        documents(self) == documents(other)
            && self.node == other.node
            && self.node_tags == other.node_tags
    }

    /// The keys watched and the index each was read at.
    fn positions(&self) -> Vec<(String, u64)> {
        let mut positions: Vec<(String, u64)> = self
            .documents
            .iter()
            .map(|r| (r.prefix.clone(), r.index))
            .collect();
        positions.push((tags::dir(&self.node), self.node_tags_index));
        positions
    }
}

/// The agent's check of a store layer: its config resolved with the layer in place, giving
/// the node's name, or the agent's refusal.
pub type Check = Arc<dyn Fn(ConfigLayer) -> Result<String, String> + Send + Sync>;

/// The store at start: the snapshot the agent starts with and what keeps it current.
pub struct Opened {
    pub snapshot: Snapshot,
    pub handle: Handle,
    client: Client,
    settings: Settings,
    /// Read from the store now (false: from the cache).
    fresh: bool,
}

/// Read the store (or, failing that, the cache) before the agent starts. The error says
/// why neither could be used.
pub async fn open(settings: &Settings, check: &Check) -> Result<Opened, String> {
    let client = settings.client()?;
    let handle = Handle::new(settings, client.clone());
    let problem =
        match read::snapshot(&client, &settings.prefixes, read::Node::Resolve(check)).await {
            Ok(snapshot) => match snapshot.layer().and_then(|layer| check(layer)) {
                Ok(_) => {
                    cache::save(settings.cache.as_deref(), &snapshot);
                    handle.applied(&snapshot, "store");
                    return Ok(Opened {
                        snapshot,
                        handle,
                        client,
                        settings: settings.clone(),
                        fresh: true,
                    });
                }
                Err(e) => format!("the store's configuration is refused: {e}"),
            },
            Err(e) => e.to_string(),
        };
    let Some(path) = &settings.cache else {
        return Err(format!(
            "config store: {problem} (no -config-store-cache to start from)"
        ));
    };
    let snapshot = cache::load(path).map_err(|e| format!("config store: {problem}; {e}"))?;
    snapshot
        .layer()
        .and_then(|layer| check(layer))
        .map_err(|e| {
            format!("config store: {problem}; the cached configuration is refused: {e}")
        })?;
    println!(
        "==> config store: {problem}; starting from the cache {}",
        path.display()
    );
    handle.applied(&snapshot, "cache");
    handle.failed(&problem);
    Ok(Opened {
        snapshot,
        handle,
        client,
        settings: settings.clone(),
        fresh: false,
    })
}

impl Opened {
    /// Keep the snapshot current for as long as the agent runs; the agent's main loop
    /// reloads on each [`Updates::next`].
    pub fn watch(self, check: Check) -> Updates {
        let (sender, receiver) = channel::channel(self.snapshot.clone());
        watch::spawn(watch::Watch {
            client: self.client,
            settings: self.settings,
            published: self.snapshot,
            fresh: self.fresh,
            check,
            sender,
            handle: self.handle,
            last_refusal: None,
        });
        Updates(Some(receiver))
    }
}

/// The checked snapshots the watch publishes; none without `-config-store`.
#[derive(Clone)]
pub struct Updates(Option<channel::Receiver<Snapshot>>);

impl Updates {
    pub fn none() -> Updates {
        Updates(None)
    }

    /// The store's layer now (empty without a store).
    pub fn layer(&self) -> Result<ConfigLayer, String> {
        match &self.0 {
            Some(receiver) => receiver.borrow().layer(),
            None => Ok(ConfigLayer::default()),
        }
    }

    /// Resolves when a new snapshot is published; never without a store.
    pub async fn next(&mut self) {
        if let Some(receiver) = &mut self.0 {
            if receiver.changed().await.is_ok() {
                return;
            }
            // The watch is gone (only with the runtime): nothing will change any more.
            self.0 = None;
        }
        std::future::pending::<()>().await
    }
}

/// The agent's start with `-config-store`: the store (or the cache) read before anything
/// runs, and the configuration resolved again with its layer in place; without a prefix,
/// `config` as it is.
pub(crate) fn at_start(
    args: &[String],
    config: AgentConfig,
    runtime: &tokio::runtime::Runtime,
) -> Result<(AgentConfig, Option<Started>), String> {
    let Some(settings) = config.config_store.clone() else {
        return Ok((config, None));
    };
    let check = check_for(args);
    let opened = runtime.block_on(open(&settings, &check))?;
    let (config, _) = crate::reload::load(args, opened.snapshot.layer()?)?;
    Ok((config, Some(Started { opened, check })))
}

/// The store read at start, and the check its changes will pass.
pub struct Started {
    opened: Opened,
    check: Check,
}

impl Started {
    pub fn handle(&self) -> Handle {
        self.opened.handle.clone()
    }

    /// Start watching (in the running runtime).
    pub fn watch(self) -> Updates {
        self.opened.watch(self.check)
    }
}

/// The agent's own test of a store layer: what a reload would load (flags and files read
/// again, handlers parsed), giving the node's name.
fn check_for(args: &[String]) -> Check {
    let args = args.to_vec();
    Arc::new(move |layer| crate::reload::load(&args, layer).map(|(config, _)| config.node))
}
