//! SIGHUP: read the flags and config files again and apply what Serf applies while running:
//! the log level, the event handlers and the tags (gossiped as `serf tags` would). Every
//! other setting needs a restart. A config that no longer loads changes nothing.

use crate::config::layer::ConfigLayer;
use crate::config::{AgentConfig, ConfigError};
use crate::config_store;
use crate::handlers::EventHandler;
use crate::logs::LogLevelControl;
use crate::node::{NodeHandle, NodeStopped, TagUpdate};
use tokio::sync::watch;
use tracing::{error, info};

pub struct Reloader {
    /// The agent's own arguments, read again on each reload.
    pub args: Vec<String>,
    pub current: AgentConfig,
    pub log_level: LogLevelControl,
    pub handlers: watch::Sender<Vec<EventHandler>>,
    pub node: NodeHandle,
    /// `-config-store`'s snapshots: the layer between the files and the flags.
    pub store: config_store::Updates,
    /// With a store: where `info` shows the pending restarts, and the settings the agent
    /// started with, which they are counted from.
    pub store_status: Option<(config_store::Handle, AgentConfig)>,
}

impl Reloader {
    pub async fn reload(&mut self) -> Result<(), NodeStopped> {
        info!("Reloading configuration...");
        let (new, handlers) = match self.store.layer().and_then(|layer| load(&self.args, layer)) {
            Ok(loaded) => loaded,
            Err(e) => {
                error!("Failed to reload configs: {e}");
                return Ok(());
            }
        };
        if new.log_level != self.current.log_level {
            match self.log_level.set(&new.log_level) {
                Ok(()) => info!(
                    "reload: log level {} -> {}",
                    self.current.log_level, new.log_level
                ),
                Err(e) => error!("reload: log level not changed: {e}"),
            }
        }
        if new.event_handlers != self.current.event_handlers {
            info!(
                "reload: event handlers {:?} -> {:?}",
                self.current.event_handlers, new.event_handlers
            );
            self.handlers.send_replace(handlers);
        }
        self.reload_tags(&new).await?;
        if let Some((status, started)) = &self.store_status {
            status.set_pending_restart(config_store::pending_restart(started, &new));
        }
        self.current = new;
        info!("reload: done");
        Ok(())
    }

    /// The node's tags become the config's, as Serf's reload sets them (tags set since by
    /// `serf tags` are replaced too). With a tags file the config has no tags (they are
    /// refused at start), and Serf would empty the file; musubi leaves those tags alone.
    async fn reload_tags(&self, new: &AgentConfig) -> Result<(), NodeStopped> {
        if new.tags_file.is_some() {
            return Ok(());
        }
        let current = self.node.local_identity().borrow().tags.clone();
        if current == new.tags {
            return Ok(());
        }
        let update = TagUpdate {
            set: new.tags.clone(),
            delete: current
                .keys()
                .filter(|key| !new.tags.contains_key(*key))
                .cloned()
                .collect(),
        };
        match self.node.update_tags(update).await? {
            Ok(()) => info!("reload: tags {current:?} -> {:?}", new.tags),
            Err(e) => error!("Failed to update tags: {e}"),
        }
        Ok(())
    }
}

/// The new config (the store's layer in place) and its handlers, or why it cannot be used.
pub fn load(
    args: &[String],
    store: ConfigLayer,
) -> Result<(AgentConfig, Vec<EventHandler>), String> {
    let config = AgentConfig::load_with(args, store).map_err(|e| match e {
        ConfigError::Flag(e) => e.to_string(),
        ConfigError::Invalid(message) => message,
    })?;
    let handlers = parse_handlers(&config.event_handlers)?;
    Ok((config, handlers))
}

pub fn parse_handlers(specs: &[String]) -> Result<Vec<EventHandler>, String> {
    specs.iter().map(|spec| EventHandler::parse(spec)).collect()
}
