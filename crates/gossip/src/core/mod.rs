//! One member's whole Serf protocol as a pure state machine: foca's SWIM with Lifeguard,
//! the member table, Lamport clocks, user events and their history, queries and their
//! answers, push-pull, reaping, name-conflict votes, Vivaldi coordinates, compression and
//! the key ring. The driver owns the sockets and the clock; [`Core`] owns everything else.
//!
//! Every input carries `now`: a datagram ([`Core::handle_datagram`]), the clock reaching
//! [`Core::next_deadline`] ([`Core::tick`], which fires foca's timers, held suspicions,
//! push-pull, the reap and reconnect ticks, a name-conflict vote's end and query
//! timeouts), or a command ([`Core::announce`], [`Core::send_user_event`], ...). The
//! driver then takes the [`Output`]s, in order: datagrams to send and events to report.
//!
//! The parts: `foca_io` (packets into foca, its output drained), `receive` (a datagram
//! opened and dispatched by kind), `commands`, `outbound` (how datagrams leave),
//! `queries`, `lifecycle` (reaping, pruning, name conflicts, event catch-up),
//! `push_pull`, `output` (what the driver gets) and `telemetry` (Serf's counters).

mod commands;
mod foca_io;
mod lifecycle;
mod outbound;
mod output;
mod push_pull;
mod queries;
mod receive;
mod telemetry;

pub use output::{CommandError, DisseminateError, Event, MemberEventKind, Output, Transport};

use crate::broadcasts::{ClusterGossip, SharedGossip, UrgentNews};
use crate::conflict::ConflictVote;
use crate::coordinate::{Coordinate, Coordinates};
use crate::deliver::{Deliver, Inbox};
use crate::event_history::EventHistory;
use crate::identity::NodeId;
use crate::keys::GossipKeys;
use crate::lamport::{Clocks, LamportClock};
use crate::lifeguard::Lifeguard;
use crate::lifeguard::gossip::{ConfirmationGossip, SuspicionConfirmation};
use crate::membership::{MemberRecord, MemberStatus, MemberTable};
use crate::profile::Profile;
use crate::query::answers::Answerable;
use crate::query::gossip::QueryGossip;
use crate::query::message::QueryMessage;
use crate::query::origin::OpenQueries;
use crate::query::{InternalQueries, QueryLimits};
use crate::reaper::{ReapTimeouts, Reaper};
use crate::swim::Swim;
use crate::user_events::{UserEvent, UserEventGossip};
use foca::{AccumulatingRuntime, Foca, PostcardCodec, Timer};
use rand_foca::rngs::StdRng;
use rand_foca::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Datagrams up to this size go over UDP (memberlist's UDP buffer, foca's packet size);
/// larger ones over the stream transport.
pub const UDP_DATAGRAM_MAX: usize = 1400;

/// A member's settings (Serf config keys of the same names) and what it starts from.
pub struct Settings {
    pub identity: NodeId,
    /// The SWIM timings (`-profile`); the suspicion timeout and retransmissions grow with
    /// the cluster, so foca's config is rebuilt from it as members come and go.
    pub profile: Profile,
    pub user_event_size_limit: usize,
    pub disable_coordinates: bool,
    /// A name conflict is only logged: no vote, and neither claimant shuts down.
    pub disable_name_resolution: bool,
    /// Datagrams are compressed when that shrinks them (not with `-disable-compression`).
    pub enable_compression: bool,
    /// The key ring from `encrypt_key` or `keyring_file` (none: gossip in the clear),
    /// shared with the `_serf_*-key` queries that change it.
    pub keys: Arc<GossipKeys>,
    /// Clocks restored from the snapshot (shared with it, which records them).
    pub clocks: Clocks,
    /// User events below this Lamport time were handled before a restart.
    pub event_min_time: u64,
    pub reap: ReapTimeouts,
    pub query_limits: QueryLimits,
    /// The `_serf_*` queries this member answers itself.
    pub internal_queries: InternalQueries,
}

impl Settings {
    /// Serf's defaults around `identity`: LAN timings, no encryption, fresh clocks.
    pub fn new(identity: NodeId) -> Self {
        Settings {
            identity,
            profile: Profile::Lan,
            user_event_size_limit: crate::user_events::DEFAULT_USER_EVENT_SIZE_LIMIT,
            disable_coordinates: false,
            disable_name_resolution: false,
            enable_compression: true,
            keys: Arc::new(GossipKeys::new(None, None)),
            clocks: Clocks::default(),
            event_min_time: 0,
            reap: ReapTimeouts::default(),
            query_limits: QueryLimits::default(),
            internal_queries: InternalQueries::default(),
        }
    }
}

/// The member's side of `serf info`: counts and clocks as they are now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub members: usize,
    pub failed: usize,
    pub left: usize,
    pub health_score: u32,
    pub member_time: u64,
    pub event_time: u64,
    pub query_time: u64,
    /// Membership updates foca still has to gossip (Serf's join/leave intent queue).
    pub intent_queue: usize,
    /// User events (and queries) foca still has to gossip.
    pub event_queue: usize,
    pub query_queue: usize,
    pub encrypted: bool,
    pub coordinate_resets: u64,
}

/// What foca's broadcast handler saw for the first time, acted on once foca returns.
#[derive(Default)]
struct FirstSightings {
    queries: Inbox<QueryMessage>,
    /// Lifeguard's suspicion confirmations.
    confirmations: Inbox<SuspicionConfirmation>,
}

/// When the periodic work is due next.
struct Schedule {
    push_pull: Instant,
    reap: Instant,
    reconnect: Instant,
    /// foca's timers by deadline, then by arrival, so equal deadlines keep their order
    /// (foca tolerates timers out of order poorly).
    foca_timers: BTreeMap<(Instant, u64), Timer<NodeId>>,
    timer_arrivals: u64,
    /// Our own open queries by timeout, then Lamport time.
    query_timeouts: BTreeMap<(Instant, u64), ()>,
}

pub struct Core {
    foca: Swim<SharedGossip>,
    runtime: AccumulatingRuntime<NodeId>,
    table: MemberTable,
    coordinates: Coordinates,
    lifeguard: Lifeguard,
    /// Lifeguard's clock starts here.
    epoch: Instant,
    /// The time of the input being handled.
    now: Instant,
    /// Counted by foca's broadcast handler: user events and queries new here.
    urgent: UrgentNews,
    /// foca's broadcast handler, for broadcasts sent or received directly.
    gossip: SharedGossip,
    settings: Settings,
    /// Shared with foca's broadcast handler, which witnesses the times it receives.
    event_clock: Arc<LamportClock>,
    query_clock: Arc<LamportClock>,
    /// Ticks on our own join and leave and on every member event this member reports
    /// (`serf info`'s member_time). foca orders membership by incarnation, not by a
    /// cluster-wide clock, so it is local.
    member_clock: Arc<LamportClock>,
    /// Queries sent from here, collecting answers.
    open_queries: OpenQueries,
    first_sightings: FirstSightings,
    /// Queries delivered here, not answered yet.
    answerable: Answerable,
    /// Picks query IDs, relays, push-pull partners, reconnect candidates, vote IDs.
    rng: StdRng,
    /// The user events seen lately, shared with foca's broadcast handler.
    history: EventHistory,
    reaper: Reaper,
    schedule: Schedule,
    /// foca just became active (we joined): one extra sync, once the notifications are in.
    joined: bool,
    /// We left the cluster: foca is undead and the process is about to exit. Gossip that
    /// says we are down must not reach foca any more, or it would rejoin us under a
    /// renewed identity (as it does for a member wrongly declared down), and the cluster
    /// would see us alive and then failed instead of left.
    left: bool,
    /// The round of asking who holds our name, while one runs.
    conflict: Option<ConflictVote>,
    /// Shared with the sinks of foca's broadcast handler and of open queries, so that
    /// everything comes out in the order it happened.
    outputs: Inbox<Output>,
}

impl Core {
    /// A member that has just started: it reports its own join, and is alone until
    /// [`Core::announce`]. Every random draw comes from `rng`.
    pub fn new(settings: Settings, mut rng: StdRng, now: Instant) -> Core {
        let outputs = Inbox::default();
        let first_sightings = FirstSightings::default();
        let urgent = UrgentNews::default();
        let clocks = settings.clocks.clone();
        let history = EventHistory::new(settings.event_min_time);
        // Our own join, as Serf stamps its join intent.
        clocks.member.increment();
        let gossip = SharedGossip::new(ClusterGossip {
            user_events: UserEventGossip::new(clocks.event.clone(), user_event_sink(&outputs))
                .with_history(history.clone()),
            queries: QueryGossip::new(clocks.query.clone(), first_sightings.queries.sink()),
            confirmations: ConfirmationGossip::new(first_sightings.confirmations.sink()),
            urgent: urgent.clone(),
        });
        let identity = settings.identity.clone();
        outputs.push(Output::Event(Event::Member {
            kind: MemberEventKind::Join,
            member: identity.clone(),
        }));
        // Serf counts its own member as joining as it starts.
        telemetry::member_event(MemberEventKind::Join, None, now);
        let reap = settings.reap;
        let mut core = Core {
            foca: Foca::with_custom_broadcast(
                identity.clone(),
                settings.profile.swim_config(1),
                StdRng::from_rng(&mut rng),
                PostcardCodec,
                gossip.clone(),
            ),
            runtime: AccumulatingRuntime::new(),
            table: MemberTable::new(identity.clone()),
            coordinates: Coordinates::new(
                identity.name,
                !settings.disable_coordinates,
                StdRng::from_rng(&mut rng),
            ),
            lifeguard: Lifeguard::default(),
            epoch: now,
            now,
            urgent,
            gossip,
            event_clock: clocks.event,
            query_clock: clocks.query,
            member_clock: clocks.member,
            settings,
            open_queries: OpenQueries::default(),
            first_sightings,
            answerable: Answerable::default(),
            rng,
            history,
            reaper: Reaper::new(reap),
            schedule: Schedule {
                // set to a random point of the first interval just below
                push_pull: now,
                reap: now + reap.reap_interval,
                reconnect: now + reap.reconnect_interval,
                foca_timers: BTreeMap::new(),
                timer_arrivals: 0,
                query_timeouts: BTreeMap::new(),
            },
            joined: false,
            left: false,
            conflict: None,
            outputs,
        };
        core.first_push_pull();
        core
    }

    /// The datagrams to send and events to report since the last call, oldest first.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        self.outputs.take()
    }

    /// When the driver must call [`Core::tick`] next at the latest.
    pub fn next_deadline(&self) -> Instant {
        let schedule = &self.schedule;
        let mut next = schedule
            .push_pull
            .min(schedule.reap)
            .min(schedule.reconnect);
        let timer = schedule.foca_timers.keys().next().map(|&(due, _)| due);
        let query = schedule.query_timeouts.keys().next().map(|&(due, _)| due);
        let vote = self.conflict.as_ref().map(|vote| vote.deadline);
        let suspicion = self.lifeguard.next_deadline().map(|due| self.epoch + due);
        for due in [timer, query, vote, suspicion].into_iter().flatten() {
            next = next.min(due);
        }
        next
    }

    /// The clock moved on: everything due by `now` runs, in deadline order per kind.
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
        while let Some(entry) = self.schedule.foca_timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            if let Err(e) = self.foca.handle_timer(timer, &mut self.runtime) {
                tracing::warn!("swim timer: {e}");
            }
            self.settle();
        }
        if self
            .lifeguard
            .next_deadline()
            .is_some_and(|due| self.epoch + due <= now)
        {
            self.declare_due_suspects();
            self.settle();
        }
        while let Some(entry) = self.schedule.query_timeouts.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (_, ltime) = *entry.key();
            entry.remove();
            self.open_queries.close(ltime);
        }
        if self
            .conflict
            .as_ref()
            .is_some_and(|vote| vote.deadline <= now)
        {
            self.count_conflict_votes();
        }
        if self.schedule.reap <= now {
            self.schedule.reap = now + self.reaper.timeouts().reap_interval;
            self.reap();
            self.settle();
        }
        if self.schedule.reconnect <= now {
            self.schedule.reconnect = now + self.reaper.timeouts().reconnect_interval;
            self.reconnect();
            self.settle();
        }
        if self.schedule.push_pull <= now {
            self.push_pull();
            self.settle();
        }
    }

    /// This member's identity, renewed as its tags change.
    pub fn identity(&self) -> &NodeId {
        self.foca.identity()
    }

    /// Whether this member has left the cluster (Serf then refuses to join again).
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Every member this one knows, itself included, as Serf lists them.
    pub fn members(&self) -> impl Iterator<Item = &MemberRecord> {
        self.table.records()
    }

    pub fn member(&self, name: &str) -> Option<&MemberRecord> {
        self.table.get(name)
    }

    /// Alive members, this one included.
    pub fn alive_count(&self) -> usize {
        self.table.alive_count()
    }

    /// The last known network coordinate of `node` (this one included); None if there is
    /// none (an unknown node, one never measured, or coordinates disabled).
    pub fn coordinate(&self, node: &str) -> Option<&Coordinate> {
        self.coordinates.get(node)
    }

    pub fn stats(&self) -> Stats {
        let count = |status| self.table.records().filter(|m| m.status == status).count();
        Stats {
            members: self.table.records().count(),
            failed: count(MemberStatus::Failed),
            left: count(MemberStatus::Left),
            health_score: self.lifeguard.health_score(),
            member_time: self.member_clock.time(),
            event_time: self.event_clock.time(),
            query_time: self.query_clock.time(),
            intent_queue: self.foca.updates_backlog(),
            // User events and queries share foca's one custom broadcast queue, which does
            // not say what it holds: its length is reported as the event queue.
            event_queue: self.foca.custom_broadcast_backlog(),
            query_queue: 0,
            encrypted: self.settings.keys.is_enabled(),
            coordinate_resets: self.coordinates.resets(),
        }
    }

    /// Lifeguard's clock.
    fn elapsed(&self) -> Duration {
        self.now.saturating_duration_since(self.epoch)
    }

    /// After each input: foca's output drained, first sightings acted on, a sync for a
    /// member that just joined.
    fn settle(&mut self) {
        self.drain();
        self.act_on_first_sightings();
        self.sync_if_just_joined();
    }

    /// Confirmations go to Lifeguard; queries are filtered, acked and delivered. What that
    /// hands foca (an ack, a relay) is drained, and may bring more.
    fn act_on_first_sightings(&mut self) {
        loop {
            let confirmations = self.first_sightings.confirmations.take();
            let queries = self.first_sightings.queries.take();
            if confirmations.is_empty() && queries.is_empty() {
                return;
            }
            let now = self.elapsed();
            for confirmation in confirmations {
                self.lifeguard
                    .confirm(confirmation.suspect, &confirmation.by, now);
            }
            for query in queries {
                self.on_query(query);
            }
            self.drain();
        }
    }

    fn report(&self, event: Event) {
        self.outputs.push(Output::Event(event));
    }

    fn random<T>(&mut self) -> T
    where
        rand_foca::distr::StandardUniform: rand_foca::distr::Distribution<T>,
    {
        self.rng.random()
    }
}

/// User events foca's broadcast handler sees first are reported as they come.
fn user_event_sink(outputs: &Inbox<Output>) -> Deliver<UserEvent> {
    let mut sink = outputs.sink();
    Box::new(move |event: UserEvent| {
        telemetry::user_event_received(&event.name);
        sink(Output::Event(Event::User(event)));
    })
}

#[cfg(test)]
mod tests;
