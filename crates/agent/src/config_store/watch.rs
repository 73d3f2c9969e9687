//! Keeping the store's snapshot current. Each watched key (every prefix, the node's tags)
//! is long-polled from the index it was last read at, so no change between a read and the
//! next poll is missed; the first change (or etcd's 401 "event index cleared", which only
//! says a change may have been missed, or [`POLL_LIMIT`] without any) leads to a fresh read
//! of all of them. A burst of writes is read once: the read waits [`SETTLE`] after the
//! first event. A snapshot that differs is checked by the agent's own resolution, then
//! published (and cached); one it would refuse is logged and changes nothing. While the
//! store cannot be reached the agent keeps what it has and tries again every [`RETRY`].

use super::read::{self, Node, ReadError};
use super::{Check, Handle, Settings, Snapshot, cache};
use musubi_client::{Client, Error, WatchOptions};
use std::time::Duration;
use tokio::sync::watch as channel;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// How long after a first change the keys are read, so a burst is applied once.
const SETTLE: Duration = Duration::from_millis(100);
/// Between attempts while the store is unreachable.
const RETRY: Duration = Duration::from_secs(1);
/// The longest a round of polls waits before the keys are read again anyway: a member cut
/// off from its cluster keeps a watch open and silent, while a quorum read fails over to an
/// endpoint that has a leader (and the next polls go there).
const POLL_LIMIT: Duration = Duration::from_secs(60);
/// v2's "The event in requested index is outdated and cleared".
const EVENT_INDEX_CLEARED: u32 = 401;

pub(super) struct Watch {
    pub client: Client,
    pub settings: Settings,
    /// The snapshot the agent runs with.
    pub published: Snapshot,
    /// Whether `published` was just read from the store (else: from the cache, and its
    /// indexes are not worth watching from).
    pub fresh: bool,
    pub check: Check,
    pub sender: channel::Sender<Snapshot>,
    pub handle: Handle,
    pub last_refusal: Option<String>,
}

pub(super) fn spawn(watch: Watch) {
    tokio::spawn(watch.run());
}

impl Watch {
    async fn run(mut self) {
        // The keys to watch and the index each was last read at; none: read first.
        let mut seen = self.fresh.then(|| self.published.positions());
        let mut store_down = false;
        loop {
            if let Some(positions) = &seen {
                if let Err(e) = self.wait_for_change(positions).await {
                    store_down = self.unreachable(store_down, &e);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                tokio::time::sleep(SETTLE).await;
            }
            let node = Node::Known(&self.published.node);
            match read::snapshot(&self.client, &self.settings.prefixes, node).await {
                Ok(next) => {
                    if store_down {
                        info!("config store: reachable again");
                        store_down = false;
                    }
                    seen = Some(next.positions());
                    self.consider(&next);
                }
                Err(ReadError::Store(e)) => {
                    store_down = self.unreachable(store_down, &e);
                    tokio::time::sleep(RETRY).await;
                }
                Err(ReadError::Invalid(e, positions)) => {
                    self.refuse(&e);
                    seen = Some(positions);
                }
            }
        }
    }

    /// Resolves at the first change of any watched key after the index it was read at.
    async fn wait_for_change(&self, positions: &[(String, u64)]) -> Result<(), String> {
        let mut polls = JoinSet::new();
        for (key, index) in positions.iter().cloned() {
            let options = WatchOptions {
                after_index: index,
                recursive: true,
            };
            let mut watcher = self.client.watcher(&key, options);
            polls.spawn(async move { watcher.next().await.map(|_| ()) });
        }
        // Dropping the set cancels the other polls.
        let Ok(first) = tokio::time::timeout(POLL_LIMIT, polls.join_next()).await else {
            return Ok(());
        };
        match first {
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(Error::Etcd(e)))) if e.code == EVENT_INDEX_CLEARED => Ok(()),
            Some(Ok(Err(e))) => Err(e.to_string().trim_end().to_string()),
            Some(Err(e)) => Err(format!("watch task: {e}")),
            None => Ok(()),
        }
    }

    /// Publish `next` if it says something new and the agent takes it.
    fn consider(&mut self, next: &Snapshot) {
        if next.same_settings(&self.published) {
            self.last_refusal = None;
            self.handle.applied(next, "store");
            self.published = next.clone();
            return;
        }
        let checked = next.layer().and_then(|layer| (self.check)(layer));
        if let Err(e) = checked {
            self.refuse(&e);
            return;
        }
        self.last_refusal = None;
        info!(
            "config store: a new configuration at index {}",
            next.positions().iter().map(|(_, i)| *i).max().unwrap_or(0)
        );
        cache::save(self.settings.cache.as_deref(), next);
        self.handle.applied(next, "store");
        self.published = next.clone();
        self.sender.send_replace(next.clone());
    }

    /// Log a refusal once, however often the same tree is read again.
    fn refuse(&mut self, why: &str) {
        if self.last_refusal.as_deref() != Some(why) {
            error!("config store: configuration refused, nothing changed: {why}");
            self.last_refusal = Some(why.to_string());
        }
        self.handle.failed(why);
    }

    /// Log an outage once; returns that the store is down.
    fn unreachable(&self, already_down: bool, why: &str) -> bool {
        if !already_down {
            warn!("config store: unreachable, keeping the configuration in use: {why}");
        }
        self.handle
            .failed(&format!("the store cannot be read: {why}"));
        true
    }
}
