//! The store's side of the running agent, shared by the watch, the reload and the RPC
//! commands: what `info` shows under `config_store`, and the writes `serf tags` makes.

use super::{Settings, Snapshot, tags};
use musubi_client::Client;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Cheap to clone; every clone shares one state.
#[derive(Clone)]
pub struct Handle {
    client: Client,
    state: Arc<Mutex<State>>,
}

struct State {
    endpoints: String,
    prefixes: String,
    node: String,
    /// "store" or "cache": where the configuration in use was read.
    source: &'static str,
    /// The index of each key of the snapshot in use.
    positions: Vec<(String, u64)>,
    /// The last refusal or store failure, cleared by the next snapshot applied.
    error: String,
    /// Settings changed since the start that only a restart applies (Serf's keys).
    pending_restart: Vec<&'static str>,
}

impl Handle {
    pub(super) fn new(settings: &Settings, client: Client) -> Handle {
        Handle {
            client,
            state: Arc::new(Mutex::new(State {
                endpoints: settings.endpoints.join(","),
                prefixes: settings.prefixes.join(","),
                node: String::new(),
                source: "store",
                positions: Vec::new(),
                error: String::new(),
                pending_restart: Vec::new(),
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("config store state lock")
    }

    pub(super) fn applied(&self, snapshot: &Snapshot, source: &'static str) {
        let mut state = self.state();
        state.node = snapshot.node.clone();
        state.source = source;
        state.positions = snapshot.positions();
        state.error.clear();
    }

    pub(super) fn failed(&self, error: &str) {
        self.state().error = error.to_string();
    }

    /// Set by each reload: what differs from the settings the agent started with.
    pub fn set_pending_restart(&self, keys: Vec<&'static str>) {
        self.state().pending_restart = keys;
    }

    /// `info`'s `config_store` section (string values, as every section of Serf's).
    pub fn info_section(&self) -> BTreeMap<String, String> {
        let state = self.state();
        let index = state.positions.iter().map(|(_, index)| *index).max();
        [
            ("endpoints", state.endpoints.clone()),
            ("prefixes", state.prefixes.clone()),
            ("node_tags", tags::dir(&state.node)),
            ("source", state.source.to_string()),
            ("index", index.unwrap_or(0).to_string()),
            ("error", state.error.clone()),
            ("pending_restart", state.pending_restart.join(",")),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }

    /// `serf tags -set K=V -delete K` on this agent: the node's keys in the store first, so
    /// the tags outlive the node; the caller then changes the gossiped tags. The error is
    /// the reply `serf tags` prints; nothing is gossiped then.
    pub async fn write_tags(
        &self,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), String> {
        let node = self.state().node.clone();
        tags::write(&self.client, &node, set, delete).await
    }
}
