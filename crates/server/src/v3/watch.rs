//! The Watch service: many watches on one bidirectional stream, fed from the keyspace's
//! history.
//!
//! Promises:
//! - A watch's `created` reply comes before any of its events; its events come in revision
//!   order, then in the order the changes were made, and none is missed or sent twice.
//! - A slow reader never slows a write. Nothing is pushed to a watcher: each stream reads
//!   the history itself (under the state machine's read lock, released before sending),
//!   so a client that stops reading only stops being advanced, and catches up from the
//!   history later. If the history it needs was compacted meanwhile, the watch is
//!   canceled with `compact_revision`, as etcd cancels a watcher that fell behind.
//!
//! Each stream is one task:
//! 1. while nothing waits to be sent, advance every watch from the history
//!    ([`Watches::advance`]), queueing its events;
//! 2. send what is queued, as fast as the client reads (a bounded channel);
//! 3. handle create, cancel and progress requests, which queue their replies;
//! 4. wake when a change to a watched key is applied ([`wakeups`]), on a periodic look (a
//!    snapshot installed from the leader applies no request), for progress notices, or
//!    when the leader is lost ([`leader`]).
//!
//! [`serve`] is the stream for gRPC and the JSON gateway alike.

mod leader;
pub mod wakeups;

use super::{V3, auth};
use futures::{FutureExt, Stream, StreamExt};
use musubi_proto::etcdserverpb::{
    ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse,
    watch_create_request::FilterType, watch_request::RequestUnion, watch_server::Watch,
};
use musubi_proto::mvccpb::{Event, KeyValue, event::EventType};
use musubi_store::v3::{in_bounds, key_bounds, key_value};
use musubi_store::{Change, Keyspace, Revision};
use prost::Message;
use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tonic::{Request, Response, Status, Streaming};

/// How long a `progress_notify` watch may go without events before it gets an empty
/// response (etcd's progressReportInterval).
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(600);
/// The most revisions one response of a catching-up watch covers (etcd's
/// watchBatchMaxRevs).
pub const MAX_BATCH_REVISIONS: i64 = 1000;
/// How often a stream looks again without being woken: a snapshot installed from the
/// leader replaces the keyspace without an applied request.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Responses handed to the transport ahead of the client's reading.
const SEND_BUFFER: usize = 64;
/// Replies queued here past which requests are not read until the client reads.
const MAX_QUEUED: usize = 64;
/// The gRPC metadata with which a client asks that the stream end when there is no leader.
pub const REQUIRE_LEADER_KEY: &str = "hasleader";

const EMPTY_RANGE: &str = "mvcc: watcher range is empty";
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

pub struct WatchService(pub V3);

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let require_leader = request
            .metadata()
            .get(REQUIRE_LEADER_KEY)
            .is_some_and(|v| v.as_bytes() == b"true");
        if require_leader {
            // The member's monitor knows if it has checked already; else check now.
            let known = *leader::subscribe(&self.0.app).borrow();
            let has_leader = match known {
                Some(failures) => failures == 0 && self.0.app.raft.status().has_leader,
                None => leader::has_leader(&self.0.app).await,
            };
            if !has_leader {
                return Err(no_leader());
            }
        }
        let token = auth::token(request.metadata());
        let responses = serve_as(self.0.clone(), request.into_inner(), require_leader, token);
        Ok(Response::new(Box::pin(responses)))
    }
}

fn no_leader() -> Status {
    Status::unavailable("etcdserver: no leader")
}

/// One watch stream: the responses to `requests`. It ends when the client stops reading
/// it (drops it), when `requests` fails (with that error), or, with `require_leader`,
/// when the member has had no leader for a few seconds (`Unavailable`, as etcd). The end
/// of `requests` alone does not end it: the watches go on.
pub fn serve(
    v3: V3,
    requests: impl Stream<Item = Result<WatchRequest, Status>> + Send + 'static,
    require_leader: bool,
) -> impl Stream<Item = Result<WatchResponse, Status>> + Send + 'static {
    serve_as(v3, requests, require_leader, None)
}

/// [`serve`] for the caller of `token`: each watch created must be readable by it.
pub fn serve_as(
    v3: V3,
    requests: impl Stream<Item = Result<WatchRequest, Status>> + Send + 'static,
    require_leader: bool,
    token: auth::Token,
) -> impl Stream<Item = Result<WatchResponse, Status>> + Send + 'static {
    let (tx, mut rx) = mpsc::channel(SEND_BUFFER);
    let session = Session {
        subscription: v3.watch_wakeups.subscribe(),
        v3,
        token,
        watches: Watches::default(),
        queued: VecDeque::new(),
    };
    tokio::spawn(session.run(requests, tx, require_leader));
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

struct Session {
    v3: V3,
    /// This stream's watched ranges, for the changes that should wake it.
    subscription: wakeups::Subscription,
    /// The stream's auth token: each create is checked with it, as etcd does.
    token: auth::Token,
    watches: Watches,
    /// Replies and events waiting for room in the channel, in order.
    queued: VecDeque<WatchResponse>,
}

type Sender = mpsc::Sender<Result<WatchResponse, Status>>;

impl Session {
    async fn run(
        mut self,
        requests: impl Stream<Item = Result<WatchRequest, Status>> + Send,
        tx: Sender,
        require_leader: bool,
    ) {
        let mut requests = std::pin::pin!(requests);
        let mut reading = true;
        let wake = self.subscription.wake();
        let mut recheck = tokio::time::interval(RECHECK_INTERVAL);
        recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut progress =
            tokio::time::interval_at(Instant::now() + PROGRESS_INTERVAL, PROGRESS_INTERVAL);
        progress.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut leader = require_leader.then(|| leader::subscribe(&self.v3.app));
        // Woken, and the history not read since (it is read only once the queue is empty).
        let mut unread_wake = false;
        loop {
            // Events are read only once everything queued before them has gone, so a
            // `created` reply always precedes its watch's events.
            let mut behind = false;
            if self.queued.is_empty() {
                unread_wake = false;
                behind = self.advance();
            }
            tokio::select! {
                biased;
                _ = tx.closed() => return,
                permit = tx.reserve(), if !self.queued.is_empty() => match permit {
                    Ok(permit) => permit.send(Ok(self.queued.pop_front().expect("queued"))),
                    Err(_) => return,
                },
                request = requests.next(), if reading && self.queued.len() < MAX_QUEUED => {
                    match request {
                        Some(Ok(request)) => self.handle(request),
                        Some(Err(status)) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                        // A half-close: the watches go on.
                        None => reading = false,
                    }
                }
                _ = wake.notified() => unread_wake = true,
                _ = recheck.tick() => {
                    // Not woken since the last read: the changes the dispatcher has read
                    // concern no watch here, and are skipped unread.
                    unread_wake |= wake.notified().now_or_never().is_some();
                    if !unread_wake {
                        let through = self.v3.watch_wakeups.dispatched_through();
                        self.watches.skip_quiet(through);
                    }
                }
                changed = async { leader.as_mut().expect("guarded").changed().await },
                    if leader.is_some() =>
                {
                    if changed.is_err() {
                        // The monitor stopped (it does not while watched): start another.
                        leader = Some(leader::subscribe(&self.v3.app));
                        continue;
                    }
                    let failures = *leader.as_ref().expect("guarded").borrow();
                    if failures.is_some_and(|f| f >= leader::MAX_FAILED_CHECKS) {
                        let _ = tx.send(Err(no_leader())).await;
                        return;
                    }
                }
                _ = progress.tick() => {
                    let current = self.v3.app.sm.read().revision();
                    for resp in self.watches.progress(current) {
                        self.queue(resp);
                    }
                }
                // A watch still catching up: go round again at once.
                _ = std::future::ready(()), if behind => {}
            }
        }
    }

    /// Advances every watch from the history; true if one is still behind.
    fn advance(&mut self) -> bool {
        let (responses, behind) = {
            let sm = self.v3.app.sm.read();
            self.watches.advance(sm.keyspace())
        };
        for resp in responses {
            self.queue(resp);
        }
        behind
    }

    fn handle(&mut self, request: WatchRequest) {
        let current = self.v3.app.sm.read().revision();
        let reply = match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                if let Some(reason) = auth::watch_refusal(&self.v3, &self.token, &create) {
                    self.queue(WatchResponse {
                        header: revision_header(current),
                        watch_id: -1,
                        created: true,
                        canceled: true,
                        cancel_reason: reason,
                        ..Default::default()
                    });
                    return;
                }
                match self.watches.create(create, current) {
                    Ok(id) => {
                        let (from, to) = self.watches.range(id).expect("just created");
                        self.subscription.watch(id, from, to);
                        // Every change after this one finds the watch registered.
                        let registered_at = self.v3.app.sm.read().revision();
                        self.watches.woken_from(id, registered_at + 1);
                        WatchResponse {
                            header: revision_header(current),
                            watch_id: id,
                            created: true,
                            ..Default::default()
                        }
                    }
                    Err(reason) => WatchResponse {
                        header: revision_header(current),
                        watch_id: -1,
                        created: true,
                        canceled: true,
                        cancel_reason: reason.into(),
                        ..Default::default()
                    },
                }
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                // etcd does not answer the cancel of a watch it does not have.
                if !self.watches.cancel(cancel.watch_id) {
                    return;
                }
                self.subscription.unwatch(cancel.watch_id);
                WatchResponse {
                    header: revision_header(current),
                    watch_id: cancel.watch_id,
                    canceled: true,
                    ..Default::default()
                }
            }
            // etcd 3.4 answers at once, with the current revision, for the whole stream.
            Some(RequestUnion::ProgressRequest(_)) => WatchResponse {
                header: revision_header(current),
                watch_id: -1,
                ..Default::default()
            },
            // etcd ignores a request it does not know rather than end the stream.
            None => return,
        };
        self.queue(reply);
    }

    /// Queues `resp` with the full header, in fragments if its watch asked for them: etcd
    /// splits at `--max-request-bytes` plus its gRPC allowance (`max_value_bytes`).
    fn queue(&mut self, mut resp: WatchResponse) {
        self.v3.fill(&mut resp.header);
        if self.watches.fragments(resp.watch_id) && !resp.events.is_empty() {
            self.queued
                .extend(fragments(resp, self.v3.app.limits.max_value_bytes));
        } else {
            self.queued.push_back(resp);
        }
    }
}

fn revision_header(revision: Revision) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// The watches of one stream, and how far each has been sent. Pure: the session feeds it
/// the keyspace and the current revision.
#[derive(Debug, Default)]
pub struct Watches {
    by_id: BTreeMap<i64, WatchState>,
    /// Where the search for an automatic ID starts (etcd's nextID: it only moves up).
    next_id: i64,
}

#[derive(Debug)]
struct WatchState {
    /// `[from, to)`; `to == None`: every key from `from` on.
    from: Vec<u8>,
    to: Option<Vec<u8>>,
    /// The first revision whose changes have not been read.
    next: Revision,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    fragment: bool,
    /// Events were sent since the last progress tick.
    active: bool,
    /// From this revision on, every change the watch wants wakes its stream; `MAX` until
    /// the watch is registered for wake-ups.
    woken_from: Revision,
    /// Canceled because the history it needed was compacted: it reads nothing more, but
    /// keeps its ID until the client cancels it, as in etcd.
    compacted: bool,
}

impl WatchState {
    fn wants(&self, change: &Change) -> bool {
        let key = change.key();
        let in_range = in_bounds(key, &self.from, self.to.as_deref());
        let filtered = match change.kv {
            Some(_) => self.no_put,
            None => self.no_delete,
        };
        in_range && !filtered
    }

    fn event(&self, change: &Change) -> Event {
        let (kind, kv) = match &change.kv {
            Some(entry) => (EventType::Put, key_value(entry)),
            // A deletion's kv is a tombstone: the key and the revision it went at.
            None => (
                EventType::Delete,
                KeyValue {
                    key: change.key().to_vec(),
                    mod_revision: change.revision,
                    ..Default::default()
                },
            ),
        };
        Event {
            r#type: kind as i32,
            kv: Some(kv),
            prev_kv: self
                .prev_kv
                .then(|| change.prev.as_ref().map(key_value))
                .flatten(),
        }
    }
}

impl Watches {
    /// Adds a watch as etcd does, at `current` (the keyspace's revision): its ID, or why
    /// it was refused (the cancel reason).
    pub fn create(
        &mut self,
        req: WatchCreateRequest,
        current: Revision,
    ) -> Result<i64, &'static str> {
        let key = if req.key.is_empty() { vec![0] } else { req.key };
        let (from, to) = key_bounds(&key, &req.range_end).ok_or(EMPTY_RANGE)?;
        let id = if req.watch_id == 0 {
            while self.by_id.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        } else if self.by_id.contains_key(&req.watch_id) {
            return Err(DUPLICATE_ID);
        } else {
            req.watch_id
        };
        let next = match req.start_revision {
            0 => current + 1,
            // etcd has no meaning for it: replay all the history there is.
            start if start < 0 => 1,
            start => start,
        };
        let filter = |f: FilterType| req.filters.contains(&(f as i32));
        self.by_id.insert(
            id,
            WatchState {
                from,
                to,
                next,
                prev_kv: req.prev_kv,
                no_put: filter(FilterType::Noput),
                no_delete: filter(FilterType::Nodelete),
                progress_notify: req.progress_notify,
                fragment: req.fragment,
                woken_from: Revision::MAX,
                active: false,
                compacted: false,
            },
        );
        Ok(id)
    }

    /// Removes a watch; false if there was none with that ID.
    pub fn cancel(&mut self, id: i64) -> bool {
        self.by_id.remove(&id).is_some()
    }

    /// The keys watch `id` watches: `[from, to)`, `to == None` for every key from `from`.
    pub fn range(&self, id: i64) -> Option<(&[u8], Option<&[u8]>)> {
        let w = self.by_id.get(&id)?;
        Some((&w.from, w.to.as_deref()))
    }

    /// Every change from `revision` on that watch `id` wants will wake its stream.
    pub fn woken_from(&mut self, id: i64, revision: Revision) {
        if let Some(w) = self.by_id.get_mut(&id) {
            w.woken_from = revision;
        }
    }

    /// Moves every watch that has read up to where wake-ups cover it past `through`,
    /// unread: its stream was not woken for any change up to there.
    pub fn skip_quiet(&mut self, through: Revision) {
        for w in self.by_id.values_mut() {
            if !w.compacted && w.next >= w.woken_from && w.next <= through {
                w.next = through + 1;
            }
        }
    }

    /// Whether the watch asked for large responses to be split.
    pub fn fragments(&self, id: i64) -> bool {
        self.by_id.get(&id).is_some_and(|w| w.fragment)
    }

    /// Reads every watch's next changes from `ks`: up to [`MAX_BATCH_REVISIONS`] revisions
    /// each, one response per watch with events, its header at the revision the watch has
    /// been read to (the current one once caught up, as etcd's). A watch whose next
    /// revision was compacted gets etcd's cancel: `compact_revision` and a header at
    /// revision 0. Also returns whether some watch is still behind.
    pub fn advance(&mut self, ks: &Keyspace) -> (Vec<WatchResponse>, bool) {
        let current = ks.revision();
        let mut responses = Vec::new();
        let mut behind = false;
        for (&id, w) in &mut self.by_id {
            if w.compacted || w.next > current {
                continue;
            }
            if w.next < ks.compacted() {
                w.compacted = true;
                responses.push(WatchResponse {
                    header: revision_header(0),
                    watch_id: id,
                    canceled: true,
                    compact_revision: ks.compacted(),
                    ..Default::default()
                });
                continue;
            }
            let through = current.min(w.next.saturating_add(MAX_BATCH_REVISIONS - 1));
            let events: Vec<Event> = ks
                .changes_from(w.next)
                .take_while(|c| c.revision <= through)
                .filter(|c| w.wants(c))
                .map(|c| w.event(c))
                .collect();
            w.next = through + 1;
            behind |= w.next <= current;
            if !events.is_empty() {
                w.active = true;
                responses.push(WatchResponse {
                    header: revision_header(through),
                    watch_id: id,
                    events,
                    ..Default::default()
                });
            }
        }
        (responses, behind)
    }

    /// The progress notices due at a tick: an empty response at `current` for every
    /// `progress_notify` watch that is caught up and sent nothing since the last tick.
    pub fn progress(&mut self, current: Revision) -> Vec<WatchResponse> {
        let mut notices = Vec::new();
        for (&id, w) in &mut self.by_id {
            let idle = !std::mem::take(&mut w.active);
            if w.progress_notify && !w.compacted && idle && w.next > current {
                notices.push(WatchResponse {
                    header: revision_header(current),
                    watch_id: id,
                    ..Default::default()
                });
            }
        }
        notices
    }
}

/// Splits `resp` as etcd's sendFragments does: whole if it is under `max_bytes` or holds
/// one event; otherwise parts of as many events as fit under `max_bytes` (at least one
/// each), every part but the last marked `fragment`.
pub fn fragments(resp: WatchResponse, max_bytes: usize) -> Vec<WatchResponse> {
    if resp.encoded_len() < max_bytes || resp.events.len() < 2 {
        return vec![resp];
    }
    let mut shell = WatchResponse {
        fragment: true,
        ..resp
    };
    let events = std::mem::take(&mut shell.events);
    let base = shell.encoded_len();
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let mut size = base;
    for event in events {
        let len = prost::encoding::message::encoded_len(11, &event);
        if !part.is_empty() && size + len >= max_bytes {
            parts.push(std::mem::take(&mut part));
            size = base;
        }
        size += len;
        part.push(event);
    }
    parts.push(part);
    let last = parts.len() - 1;
    parts
        .into_iter()
        .enumerate()
        .map(|(i, events)| WatchResponse {
            events,
            fragment: i != last,
            ..shell.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use musubi_store::v3::prefix_end;
    use musubi_store::{Entry, Meta};

    fn entry(k: &str, v: &str, create: Revision, rev: Revision, version: i64) -> Entry {
        let meta = Meta {
            create_revision: create,
            mod_revision: rev,
            version,
            ..Meta::default()
        };
        Entry::new(k.as_bytes(), Some(v.as_bytes()), meta)
    }

    /// a=1 (2), b=1 (3), a=2 (4), delete b (5), c=1 and d=1 together (6).
    fn keyspace() -> Keyspace {
        let mut ks = Keyspace::default();
        ks.put(entry("a", "1", 2, 2, 1), 2);
        ks.advance_to(2);
        ks.put(entry("b", "1", 3, 3, 1), 3);
        ks.advance_to(3);
        ks.put(entry("a", "2", 2, 4, 2), 4);
        ks.advance_to(4);
        ks.remove(b"b", 5);
        ks.advance_to(5);
        ks.put(entry("c", "1", 6, 6, 1), 6);
        ks.put(entry("d", "1", 6, 6, 1), 6);
        ks.advance_to(6);
        ks
    }

    fn create(key: &str, end: &[u8], start: Revision) -> WatchCreateRequest {
        WatchCreateRequest {
            key: key.into(),
            range_end: end.to_vec(),
            start_revision: start,
            ..Default::default()
        }
    }

    fn summary(resp: &WatchResponse) -> Vec<(i32, String, Revision)> {
        resp.events
            .iter()
            .map(|e| {
                let kv = e.kv.as_ref().unwrap();
                (
                    e.r#type,
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    kv.mod_revision,
                )
            })
            .collect()
    }

    #[test]
    fn automatic_ids_start_at_zero_and_skip_the_ones_taken() {
        let mut w = Watches::default();
        let with_id = |id| WatchCreateRequest {
            watch_id: id,
            ..create("a", b"", 0)
        };
        assert_eq!(w.create(with_id(1), 1), Ok(1));
        assert_eq!(w.create(with_id(0), 1), Ok(0));
        assert_eq!(w.create(with_id(0), 1), Ok(2));
        assert_eq!(w.create(with_id(2), 1), Err(DUPLICATE_ID));
        // etcd's counter only moves up: a canceled ID is not handed out again.
        assert!(w.cancel(0));
        assert!(!w.cancel(0));
        assert_eq!(w.create(with_id(0), 1), Ok(3));
        assert_eq!(w.create(with_id(0), 1), Ok(4));
    }

    #[test]
    fn an_empty_range_is_refused_and_an_empty_key_is_the_smallest() {
        let mut w = Watches::default();
        assert_eq!(w.create(create("b", b"a", 0), 1), Err(EMPTY_RANGE));
        assert_eq!(w.create(create("b", b"b", 0), 1), Err(EMPTY_RANGE));
        // "" to "\0": every key.
        assert_eq!(w.create(create("", b"\0", 1), 6), Ok(0));
        let (resps, behind) = w.advance(&keyspace());
        assert!(!behind);
        assert_eq!(resps[0].events.len(), 6);
    }

    #[test]
    fn history_replays_in_revision_then_change_order_with_tombstones() {
        let ks = keyspace();
        let mut w = Watches::default();
        w.create(create("a", &prefix_end(b"a\xff\xff"), 3), 6)
            .unwrap(); // [a, b): a only
        w.create(create("", b"\0", 3), 6).unwrap();
        let (resps, _) = w.advance(&ks);
        assert_eq!(resps.len(), 2);
        assert_eq!(summary(&resps[0]), [(0, "a".into(), 4)]);
        assert_eq!(
            summary(&resps[1]),
            [
                (0, "b".into(), 3),
                (0, "a".into(), 4),
                (1, "b".into(), 5),
                (0, "c".into(), 6),
                (0, "d".into(), 6)
            ]
        );
        // A deletion's kv holds only the key and the revision.
        assert_eq!(
            resps[1].events[2].kv,
            Some(KeyValue {
                key: b"b".to_vec(),
                mod_revision: 5,
                ..Default::default()
            })
        );
        assert_eq!(resps[1].events[2].prev_kv, None);
        assert_eq!(resps[1].header.as_ref().unwrap().revision, 6);
        // Caught up: nothing more until the keyspace moves.
        assert_eq!(w.advance(&ks), (vec![], false));
    }

    #[test]
    fn prev_kv_and_filters() {
        let ks = keyspace();
        let mut w = Watches::default();
        let no_put = WatchCreateRequest {
            filters: vec![FilterType::Noput as i32],
            prev_kv: true,
            ..create("a", b"c", 2)
        };
        let no_delete = WatchCreateRequest {
            filters: vec![FilterType::Nodelete as i32],
            prev_kv: true,
            ..create("a", b"c", 2)
        };
        w.create(no_put, 6).unwrap();
        w.create(no_delete, 6).unwrap();
        let (resps, _) = w.advance(&ks);
        assert_eq!(summary(&resps[0]), [(1, "b".into(), 5)]);
        assert_eq!(
            resps[0].events[0].prev_kv,
            Some(key_value(&entry("b", "1", 3, 3, 1)))
        );
        assert_eq!(
            summary(&resps[1]),
            [(0, "a".into(), 2), (0, "b".into(), 3), (0, "a".into(), 4)]
        );
        assert_eq!(resps[1].events[0].prev_kv, None);
        assert_eq!(
            resps[1].events[2].prev_kv,
            Some(key_value(&entry("a", "1", 2, 2, 1)))
        );
    }

    #[test]
    fn a_new_watch_sees_only_what_comes_after_it() {
        let mut ks = keyspace();
        let mut w = Watches::default();
        w.create(create("a", b"", 0), ks.revision()).unwrap();
        assert_eq!(w.advance(&ks), (vec![], false));
        ks.put(entry("a", "3", 2, 7, 3), 7);
        ks.advance_to(7);
        let (resps, _) = w.advance(&ks);
        assert_eq!(summary(&resps[0]), [(0, "a".into(), 7)]);
        assert_eq!(resps[0].header.as_ref().unwrap().revision, 7);
    }

    #[test]
    fn only_changes_covered_by_wake_ups_are_skipped_unread() {
        let ks = keyspace();
        let mut w = Watches::default();
        // Not registered for wake-ups yet: nothing is skipped.
        let a = w.create(create("a", b"", 2), 1).unwrap();
        w.skip_quiet(6);
        assert_eq!(
            summary(&w.advance(&ks).0[0]),
            [(0, "a".into(), 2), (0, "a".into(), 4)]
        );
        // Catching up from revision 2, wake-ups from 5: revisions 2-4 are read, not skipped.
        let b = w.create(create("a", b"", 2), 1).unwrap();
        w.woken_from(b, 5);
        w.skip_quiet(6);
        let (resps, _) = w.advance(&ks);
        assert_eq!((resps[0].watch_id, summary(&resps[0]).len()), (b, 2));
        // Read up to where wake-ups cover it: quiet revisions are passed over.
        w.woken_from(a, 5);
        let mut later = ks.clone();
        later.put(entry("a", "3", 2, 7, 3), 7);
        later.advance_to(7);
        w.skip_quiet(7);
        assert_eq!(w.advance(&later), (vec![], false));
    }

    #[test]
    fn a_watch_behind_the_compaction_is_canceled_but_keeps_its_id() {
        let mut ks = keyspace();
        ks.compact(4).unwrap();
        let mut w = Watches::default();
        assert_eq!(w.create(create("a", b"", 3), 6), Ok(0));
        assert_eq!(w.create(create("a", b"", 4), 6), Ok(1)); // at the compaction: fine
        let (resps, _) = w.advance(&ks);
        assert_eq!(
            resps[0],
            WatchResponse {
                header: revision_header(0),
                watch_id: 0,
                canceled: true,
                compact_revision: 4,
                ..Default::default()
            }
        );
        assert_eq!(summary(&resps[1]), [(0, "a".into(), 4)]);
        assert_eq!(
            w.create(
                WatchCreateRequest {
                    watch_id: 0,
                    ..create("a", b"", 0)
                },
                6
            ),
            Ok(2)
        );
        assert!(w.cancel(0));
    }

    #[test]
    fn a_watch_far_behind_catches_up_in_batches_of_revisions() {
        let mut ks = Keyspace::default();
        for rev in 2..=2500 {
            ks.put(entry("k", "v", 2, rev, rev - 1), rev);
            ks.advance_to(rev);
        }
        let mut w = Watches::default();
        w.create(create("k", b"", 1), ks.revision()).unwrap();
        let mut seen = Vec::new();
        loop {
            let (resps, behind) = w.advance(&ks);
            for r in &resps {
                seen.push((r.events.len(), r.header.as_ref().unwrap().revision));
            }
            if !behind {
                break;
            }
        }
        assert_eq!(seen, [(999, 1000), (1000, 2000), (500, 2500)]);
    }

    #[test]
    fn progress_goes_to_idle_caught_up_watches_only() {
        let ks = keyspace();
        let mut w = Watches::default();
        let notify = |start| WatchCreateRequest {
            progress_notify: true,
            ..create("a", b"", start)
        };
        w.create(notify(0), 6).unwrap(); // 0: idle
        w.create(notify(2), 6).unwrap(); // 1: gets events
        w.create(create("a", b"", 0), 6).unwrap(); // 2: did not ask
        let (resps, _) = w.advance(&ks);
        assert_eq!(resps.len(), 1);
        let ids = |n: Vec<WatchResponse>| n.iter().map(|r| r.watch_id).collect::<Vec<_>>();
        assert_eq!(ids(w.progress(6)), [0]);
        assert_eq!(ids(w.progress(6)), [0, 1]);
    }

    #[test]
    fn large_responses_are_split_into_fragments() {
        let event = |i: u8| Event {
            kv: Some(KeyValue {
                key: vec![i],
                value: vec![b'x'; 100],
                ..Default::default()
            }),
            ..Default::default()
        };
        let resp = WatchResponse {
            header: revision_header(9),
            watch_id: 3,
            events: (0..10).map(event).collect(),
            ..Default::default()
        };
        assert_eq!(fragments(resp.clone(), 1 << 20), vec![resp.clone()]);
        let parts = fragments(resp.clone(), 350);
        assert!(parts.len() > 1);
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(part.fragment, i + 1 != parts.len());
            assert_eq!(part.watch_id, 3);
            assert!(part.encoded_len() < 350 || part.events.len() == 1);
        }
        let events: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(events, resp.events);
        // One event is never split, however large.
        let one = WatchResponse {
            events: vec![event(1)],
            ..resp
        };
        assert_eq!(fragments(one.clone(), 10), [one]);
    }
}
