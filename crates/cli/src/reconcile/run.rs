//! `reconcile run`: campaign; while leading, pass after pass, read the desired tree, the
//! actual state and the action records, let `core::plan` decide, and carry the plan out
//! one step at a time: each record written under the fence before its handler runs, and
//! the outcome written under the fence after. A refused write (stale token) ends this
//! leadership at once; the instance then campaigns again. Every instance, leading or not,
//! publishes its view of an agent's members, for the leader's view-quorum gate.

use super::RunArgs;
use super::core::{self, Gates, Matching, Policy, Record, Sightings, Step, Summary};
use super::handler::Handler;
use super::records::{self, Fence, Layout, Written};
use super::source::{Actual, Reader};
use crate::lock::election::{self, Campaign, Leadership};
use crate::toolkit::{Store, StoreArgs, ToolError, ToolExit};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// What the leader writes to `status` after each pass, and `status` prints.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub name: String,
    pub leader: String,
    pub token: i64,
    /// The desired tree's revision (v3) or index (v2) the pass read.
    pub rev: i64,
    pub api: String,
    pub desired: String,
    pub actual: String,
    pub matching: Option<Matching>,
    pub idempotent: bool,
    pub max_attempts: u32,
    pub converged: bool,
    pub differences: usize,
    #[serde(flatten)]
    pub summary: Summary,
    /// Fresh views that took part / instances that published one (agent mode).
    pub views: String,
    pub fresh: bool,
    /// What the record writes are conditioned on, in words: the v2 path's is weaker.
    pub guarantee: String,
    pub time_ms: u64,
}

/// Each instance's view of the agent's members, with when it was read.
#[derive(Serialize, Deserialize)]
struct View {
    time_ms: u64,
    actual: Actual,
}

pub const V3_GUARANTEE: &str = "v3: each action record is created in one Txn with \
If create_revision(leader key) == token and create_revision(action) == 0";
pub const V2_GUARANTEE: &str = "v2 (weaker): the leader key is read (quorum) before each \
record write; the record is created with prevExist=false; the two are not one transaction";

pub async fn run(store_args: &StoreArgs, args: &RunArgs) -> Result<ToolExit, ToolError> {
    let store = Arc::new(Store::connect(store_args).await?);
    let instance = args
        .instance
        .clone()
        .unwrap_or_else(|| format!("{}:{}", host_name(), std::process::id()));
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| ToolError::usage(e.to_string()))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| ToolError::usage(e.to_string()))?;
    // A signal stops us in order: a running handler is terminated and its outcome recorded,
    // then the leadership is resigned, so the next instance need not wait for the lease.
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        let _ = stop_tx.send(true);
    });
    let mut runner = Runner::new(store, args, instance, stop)?;
    // Reading the store once up front makes "store down at start" exit 4, as documented.
    records::read_tree(&runner.store, &runner.desired).await?;
    runner.serve().await
}

/// Resolves once a stop was asked for (at once if it already was).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

struct Runner<'a> {
    store: Arc<Store>,
    args: &'a RunArgs,
    instance: String,
    layout: Layout,
    desired: String,
    reader: Reader,
    handler: Handler,
    policy: Policy,
    last_status: Option<Status>,
    last_status_write: Option<Instant>,
    stop: watch::Receiver<bool>,
}

impl<'a> Runner<'a> {
    fn new(
        store: Arc<Store>,
        args: &'a RunArgs,
        instance: String,
        stop: watch::Receiver<bool>,
    ) -> Result<Runner<'a>, ToolError> {
        let argv: Vec<String> = if args.shell {
            vec![args.handler.clone()]
        } else {
            args.handler
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        if argv.is_empty() {
            return Err(ToolError::usage("--handler is empty"));
        }
        Ok(Runner {
            layout: Layout::new(&args.name),
            desired: args.desired_prefix(),
            reader: Reader::new(&args.actual_source(), &args.rpc_addr, &args.rpc_auth),
            handler: Handler {
                argv,
                shell: args.shell,
                timeout: args.action_timeout,
                // SIGTERM to SIGKILL; a fifth of the TTL at most, so that the TERM deadline
                // stays ahead of the next renewal (every third of the TTL).
                grace: (args.ttl / 5).min(Duration::from_secs(2)),
                name: args.name.clone(),
            },
            policy: Policy {
                idempotent: args.idempotent,
                max_attempts: args.max_attempts.max(1),
                grace_ms: args.grace.as_millis() as u64,
                retry_backoff_ms: args.retry_backoff.as_millis() as u64,
            },
            store,
            args,
            instance,
            last_status: None,
            last_status_write: None,
            stop,
        })
    }

    /// Campaign, lead until the leadership is lost, campaign again; forever.
    async fn serve(&mut self) -> Result<ToolExit, ToolError> {
        loop {
            let settings = Campaign {
                ttl: self.args.ttl,
                grace: self.handler.grace,
                lock_delay: self.args.lock_delay,
            };
            let won = {
                let leader_name = self.layout.leader();
                let instance = self.instance.clone();
                let campaign =
                    election::campaign(self.store.clone(), &leader_name, &instance, &settings);
                let mut campaign = std::pin::pin!(campaign);
                // While waiting to lead, keep publishing our view of the agent.
                loop {
                    tokio::select! {
                        won = &mut campaign => break won,
                        _ = stopped(self.stop.clone()) => return Ok(ToolExit::Ok),
                        _ = tokio::time::sleep(self.args.interval) => self.publish_view().await,
                    }
                }
            };
            let leadership = match won {
                Ok(leadership) => leadership,
                Err(e) => {
                    eprintln!("reconcile: campaign: {e}");
                    tokio::time::sleep(self.args.interval).await;
                    continue;
                }
            };
            eprintln!(
                "reconcile: {} leads {} with token {}",
                self.instance, self.args.name, leadership.token
            );
            let ending = self.lead(&leadership).await;
            eprintln!(
                "reconcile: {} stops leading {}: {ending}",
                self.instance, self.args.name
            );
            if let Err(e) = leadership.resign().await {
                eprintln!("reconcile: resigning: {e}");
            }
            if *self.stop.borrow() {
                return Ok(ToolExit::Ok);
            }
        }
    }

    /// Passes until the leadership is lost or a write is refused.
    async fn lead(&mut self, leadership: &Leadership) -> String {
        let fence = Fence {
            key: leadership.key.clone(),
            token: leadership.token,
        };
        let started = Instant::now();
        let mut sightings = Sightings::default();
        let mut ran: HashSet<String> = HashSet::new();
        loop {
            if leadership.is_lost() {
                return "leadership lost".to_string();
            }
            if *self.stop.borrow() {
                return "stopped by a signal".to_string();
            }
            match self
                .pass(leadership, &fence, started, &mut sightings, &mut ran)
                .await
            {
                Ok(None) => {}
                Ok(Some(ending)) => return ending,
                Err(e) => eprintln!("reconcile: pass failed: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.args.interval) => {}
                _ = leadership.lost() => return "leadership lost".to_string(),
                _ = stopped(self.stop.clone()) => return "stopped by a signal".to_string(),
            }
        }
    }

    /// One pass. `Ok(Some(why))` ends the leadership.
    async fn pass(
        &mut self,
        leadership: &Leadership,
        fence: &Fence,
        lead_started: Instant,
        sightings: &mut Sightings,
        ran: &mut HashSet<String>,
    ) -> Result<Option<String>, ToolError> {
        let desired = records::read_tree(&self.store, &self.desired).await?;
        let actual = tokio::time::timeout(self.store.timeout, self.reader.read(&self.store))
            .await
            .unwrap_or_else(|_| Err(ToolError::unreachable("reading the actual state timed out")));
        let actual = match actual {
            Ok(actual) => actual,
            Err(e) => {
                self.reader.readable_since = None;
                return Err(e);
            }
        };
        if self.reader.is_agent() {
            publish(&self.store, &self.layout, &self.instance, &actual).await;
        }
        let stored = records::read_records(&self.store, &self.layout).await?;
        let (views, views_label) = self.fresh_views().await?;
        let matching = if self.reader.is_agent() {
            Matching::Tags
        } else {
            Matching::Exact
        };
        let diffs = core::differences(&desired.entries, &actual, matching);
        let now = now_ms();
        let lasted = sightings.observe(&diffs, now);
        let fresh_for = self
            .reader
            .readable_since
            .map(|since| since.max(lead_started).elapsed())
            .unwrap_or_default();
        let gates = Gates {
            fresh: fresh_for >= self.args.fresh_after,
            views,
        };
        let steps = core::plan(
            &diffs,
            &stored,
            ran,
            &lasted,
            &gates,
            &self.policy,
            (&self.instance, fence.token),
            now,
        );
        self.write_status(&desired, &diffs, &stored, &gates, views_label, fence.token)
            .await;
        for step in steps {
            if *self.stop.borrow() {
                break;
            }
            if self.args.dry_run {
                eprintln!("reconcile: dry run: {step:?}");
                continue;
            }
            if let Some(ending) = self.carry_out(step, leadership, fence, ran).await? {
                return Ok(Some(ending));
            }
        }
        Ok(None)
    }

    /// One step: write the record under the fence, run the handler, write the outcome.
    async fn carry_out(
        &mut self,
        step: Step,
        leadership: &Leadership,
        fence: &Fence,
        ran: &mut HashSet<String>,
    ) -> Result<Option<String>, ToolError> {
        let (record, mod_rev, run) = match step {
            Step::Start(record) => (record, None, true),
            Step::Rerun { record, mod_rev } => (record, Some(mod_rev), true),
            Step::Mark { record, mod_rev } => (record, Some(mod_rev), false),
        };
        let written =
            records::write_record(&self.store, &self.layout, &record, mod_rev, fence).await?;
        let mod_rev = match written {
            Written::Ok(rev) => rev,
            Written::Lost => {
                eprintln!(
                    "reconcile: action {} changed under us; re-reading",
                    record.id
                );
                return Ok(None);
            }
            Written::Stale => return Ok(Some(refused(&record, fence))),
        };
        if !run {
            eprintln!("reconcile: action {} is now {:?}", record.id, record.state);
            return Ok(None);
        }
        ran.insert(record.id.clone());
        eprintln!(
            "reconcile: running action {} (token {})",
            record.id, fence.token
        );
        let exit = self
            .handler
            .run(&record, leadership, self.stop.clone())
            .await;
        let finished = core::finish(record, exit, &self.policy, now_ms());
        eprintln!(
            "reconcile: action {} exited {exit}: {:?}",
            finished.id, finished.state
        );
        // Written whatever we believe of our leadership: the fence decides, and a refusal
        // is how a leader that was paused learns it no longer leads. A write that gets no
        // answer is tried again: until it lands, the record says `started`.
        let mut tries = 0;
        loop {
            let written =
                records::write_record(&self.store, &self.layout, &finished, Some(mod_rev), fence)
                    .await;
            match written {
                Ok(Written::Ok(_)) | Ok(Written::Lost) => return Ok(None),
                Ok(Written::Stale) => return Ok(Some(refused(&finished, fence))),
                Err(e) if tries < 5 && !leadership.is_lost() => {
                    eprintln!("reconcile: recording the outcome of {}: {e}", finished.id);
                    tries += 1;
                    tokio::time::sleep(self.args.interval).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The views published recently (within three intervals and the grace), and `n/m`.
    async fn fresh_views(&self) -> Result<(Vec<Actual>, String), ToolError> {
        if !self.reader.is_agent() {
            return Ok((Vec::new(), String::new()));
        }
        let tree = records::read_tree(&self.store, &self.layout.views()).await?;
        let horizon = (self.args.interval * 3)
            .max(Duration::from_secs(3))
            .as_millis() as u64;
        let now = now_ms();
        let all = tree.entries.len();
        let fresh: Vec<Actual> = tree
            .entries
            .into_values()
            .filter_map(|entry| serde_json::from_str::<View>(&entry.value).ok())
            .filter(|view| now.saturating_sub(view.time_ms) <= horizon)
            .map(|view| view.actual)
            .collect();
        let label = format!("{}/{}", fresh.len(), all);
        Ok((fresh, label))
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_status(
        &mut self,
        desired: &records::Snapshot,
        diffs: &[core::Difference],
        stored: &[core::Stored],
        gates: &Gates,
        views: String,
        token: i64,
    ) {
        let summary = core::summarize(diffs, stored, &self.policy);
        let v3 = self.store.v3().is_some();
        let status = Status {
            name: self.args.name.clone(),
            leader: self.instance.clone(),
            token,
            rev: desired.revision,
            api: if v3 { "3" } else { "2" }.to_string(),
            desired: self.desired.clone(),
            actual: self.args.actual_source(),
            matching: Some(if self.reader.is_agent() {
                Matching::Tags
            } else {
                Matching::Exact
            }),
            idempotent: self.policy.idempotent,
            max_attempts: self.policy.max_attempts,
            converged: diffs.is_empty(),
            differences: diffs.len(),
            summary,
            views,
            fresh: gates.fresh,
            guarantee: if v3 { V3_GUARANTEE } else { V2_GUARANTEE }.to_string(),
            time_ms: 0,
        };
        // Written when something changed, and every ten seconds so readers see it is alive.
        let due = self
            .last_status_write
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(10));
        if self.last_status.as_ref() == Some(&status) && !due {
            return;
        }
        let mut stamped = status.clone();
        stamped.time_ms = now_ms();
        let value = serde_json::to_string(&stamped).expect("a status serialises");
        if records::put(&self.store, &self.layout.status(), &value)
            .await
            .is_ok()
        {
            self.last_status = Some(status);
            self.last_status_write = Some(Instant::now());
        }
    }
}

impl Runner<'_> {
    /// Read our agent and publish the view (agent mode only), while not leading.
    async fn publish_view(&mut self) {
        if !self.reader.is_agent() {
            return;
        }
        let read = tokio::time::timeout(self.store.timeout, self.reader.read(&self.store)).await;
        if let Ok(Ok(actual)) = read {
            publish(&self.store, &self.layout, &self.instance, &actual).await;
        }
    }
}

/// Publish this instance's view of the agent's members, for the leader's view-quorum gate.
async fn publish(store: &Store, layout: &Layout, instance: &str, actual: &Actual) {
    let view = View {
        time_ms: now_ms(),
        actual: actual.clone(),
    };
    let value = serde_json::to_string(&view).expect("a view serialises");
    if let Err(e) = records::put(store, &layout.view(instance), &value).await {
        eprintln!("reconcile: publishing our view: {e}");
    }
}

fn refused(record: &Record, fence: &Fence) -> String {
    let message = format!(
        "action record {} refused: stale token {} (another instance leads)",
        record.id, fence.token
    );
    eprintln!("reconcile: {message}");
    message
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}
