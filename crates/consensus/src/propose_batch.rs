//! Writes a follower forwards to the leader together travel together.
//!
//! Each forwarded write used to be one HTTP/1 exchange with the leader. With clients spread
//! over three members that is two thirds of all writes, each paying a request, a response,
//! the leader's routing and a pooled connection of its own while it waits: the largest
//! cost of a three-member put (docs/benchmarks.md, sixth session).
//!
//! Here writes bound for one leader queue while up to [`IN_FLIGHT`] batches are on their
//! way. A sender takes everything queued, POSTs it as one JSON array to
//! `/raft/propose-batch`, and the leader proposes all of it at once, so it commits in one
//! log flush, and answers with one result per write, in order. Each write keeps its own
//! request ID and its own outcome: a write the state machine refuses fails alone, and a
//! batch whose reply is lost is a lost reply for every write in it, which each caller
//! retries exactly as it did alone (the IDs make that safe, `musubi_store::Deduplicator`).
//!
//! A leader from before this route answers 404, having run nothing: the batch then goes
//! write by write to `/raft/propose`, as before.

use crate::Member;
use crate::forward::{PROPOSE, PROPOSE_BATCH, SendError};
use crate::network::post::{HttpClient, PostFailure, peer_base, post_json};
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Batches on their way to one leader at most. One would leave the writes that arrive
/// during its round trip waiting a whole round trip more; two let the next batch leave
/// while the first is being applied.
const IN_FLIGHT: usize = 2;

/// A batch holds writes up to about this many bytes of JSON (and always one at least, as
/// large as it is), so it stays far inside the peer port's body limit and one large write
/// does not hold up the many small ones behind it.
const BATCH_BYTES: usize = 4 << 20;

/// The leader's answer to one write, still as JSON (`Result<Applied, WireError>`): the
/// caller decodes it as it decodes a reply to a lone write.
pub(crate) type Reply = Result<Box<RawValue>, SendError>;

struct Waiting {
    /// The write's `Proposal`, as JSON.
    body: Vec<u8>,
    ttl: Duration,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Lane {
    queue: Vec<Waiting>,
    in_flight: usize,
}

/// Per leader (by peer URL), the writes waiting for a batch.
#[derive(Clone, Default)]
pub(crate) struct ProposeBatcher {
    lanes: Arc<Mutex<HashMap<String, Lane>>>,
}

impl ProposeBatcher {
    /// Sends `body`, a write's `Proposal` as JSON, to `leader` in the next batch and
    /// returns the leader's answer to it.
    pub(crate) async fn propose(
        &self,
        http: &HttpClient,
        cluster: Option<u64>,
        leader: &Member,
        body: Vec<u8>,
        ttl: Duration,
    ) -> Reply {
        let base = peer_base(leader).to_string();
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut lanes = self.lanes.lock();
            let lane = lanes.entry(base.clone()).or_default();
            lane.queue.push(Waiting { body, ttl, reply });
            let start = lane.in_flight < IN_FLIGHT;
            lane.in_flight += usize::from(start);
            start
        };
        if start {
            let sender = Sender {
                lanes: self.lanes.clone(),
                base,
                http: http.clone(),
                cluster,
                done: false,
            };
            tokio::spawn(sender.send_while_queued());
        }
        answer.await.unwrap_or_else(|_| {
            Err(SendError::Lost(
                "the batch carrying the write to the leader failed".into(),
            ))
        })
    }
}

/// One of a lane's in-flight slots: sends batches until the queue is empty. Dropped
/// without finishing (a panic), it frees its slot and fails what is queued, whose callers
/// retry and start a new sender: no write waits on a sender that is gone.
struct Sender {
    lanes: Arc<Mutex<HashMap<String, Lane>>>,
    base: String,
    http: HttpClient,
    cluster: Option<u64>,
    done: bool,
}

impl Sender {
    async fn send_while_queued(mut self) {
        while let Some(batch) = self.next_batch() {
            self.send(batch).await;
        }
    }

    /// The oldest queued writes, up to [`BATCH_BYTES`], or `None` (and the slot freed, under
    /// the same lock, so that a write queued just after is sure to find a free slot) when
    /// nothing is queued.
    fn next_batch(&mut self) -> Option<Vec<Waiting>> {
        let mut lanes = self.lanes.lock();
        let lane = lanes.get_mut(&self.base)?;
        if lane.queue.is_empty() {
            free_slot(&mut lanes, &self.base);
            self.done = true;
            return None;
        }
        let mut bytes = 0;
        let taken = lane
            .queue
            .iter()
            .take_while(|w| {
                bytes += w.body.len();
                bytes <= BATCH_BYTES
            })
            .count()
            .max(1);
        Some(lane.queue.drain(..taken).collect())
    }

    async fn send(&self, batch: Vec<Waiting>) {
        let ttl = batch.iter().map(|w| w.ttl).min().unwrap_or_default();
        let mut body =
            Vec::with_capacity(batch.iter().map(|w| w.body.len() + 1).sum::<usize>() + 1);
        body.push(b'[');
        for (i, w) in batch.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&w.body);
        }
        body.push(b']');
        let url = format!("{}{PROPOSE_BATCH}", self.base);
        let sent = post_json::<Result<Vec<Box<RawValue>>, Box<RawValue>>>(
            &self.http,
            self.cluster,
            &url,
            Bytes::from(body),
            ttl,
        )
        .await;
        match sent {
            Ok(Ok(answers)) if answers.len() == batch.len() => {
                for (w, answer) in batch.into_iter().zip(answers) {
                    let _ = w.reply.send(Ok(answer));
                }
            }
            Ok(Ok(answers)) => {
                let lost = format!("{url}: {} answers to {} writes", answers.len(), batch.len());
                answer_all(batch, Err(SendError::Lost(lost)))
            }
            // The whole batch refused: the same refusal answers each write.
            Ok(Err(refusal)) => {
                let answer = RawValue::from_string(format!("{{\"Err\":{}}}", refusal.get()))
                    .expect("an error object wrapped in an object is JSON");
                answer_all(batch, Ok(answer))
            }
            Err(PostFailure::NoRoute(_)) => {
                futures::future::join_all(batch.into_iter().map(|w| self.send_alone(w))).await;
            }
            Err(failure) => answer_all(batch, Err(SendError::from(failure))),
        }
    }

    /// One write to a leader that does not take batches.
    async fn send_alone(&self, w: Waiting) {
        let url = format!("{}{PROPOSE}", self.base);
        let sent =
            post_json::<Box<RawValue>>(&self.http, self.cluster, &url, Bytes::from(w.body), w.ttl)
                .await;
        let _ = w.reply.send(sent.map_err(SendError::from));
    }
}

/// Gives every write in `batch` the same answer.
fn answer_all(batch: impl IntoIterator<Item = Waiting>, answer: Reply) {
    for w in batch {
        let _ = w.reply.send(answer.clone());
    }
}

/// Frees one of the lane's in-flight slots, and forgets the lane once none is taken.
fn free_slot(lanes: &mut HashMap<String, Lane>, base: &str) {
    if let Some(lane) = lanes.get_mut(base) {
        lane.in_flight -= 1;
        if lane.in_flight == 0 {
            lanes.remove(base);
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut lanes = self.lanes.lock();
        if let Some(lane) = lanes.get_mut(&self.base) {
            let stopped = SendError::Lost("the sender of the batch to the leader stopped".into());
            answer_all(lane.queue.drain(..), Err(stopped));
        }
        free_slot(&mut lanes, &self.base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::post::http_client;
    use axum::Router;
    use axum::body::Bytes;
    use axum::http::StatusCode;
    use axum::routing::post;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Requests a stand-in leader has taken on each route.
    #[derive(Default)]
    struct Seen {
        batches: AtomicUsize,
        alone: AtomicUsize,
        /// The largest batch body, in bytes.
        largest: AtomicUsize,
    }

    /// Serves `router` on a loopback port, with the peer port's body limit; the member
    /// whose peer URL it is.
    async fn serve(router: Router) -> Member {
        let router = router.layer(crate::network::peer_body_limit());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Member {
            name: "leader".into(),
            peer_urls: vec![url],
            client_urls: vec![],
            is_learner: false,
        }
    }

    /// A leader that answers each write with `{"Ok": <the write>}`, a batch after a pause
    /// long enough for writes to pile up behind the batches in flight. `batches: false` is a leader from
    /// before the batch route.
    async fn echoing_leader(seen: Arc<Seen>, batches: bool) -> Member {
        let on_batch = seen.clone();
        let mut router = Router::new().route(
            PROPOSE,
            post(move |body: Bytes| async move {
                seen.alone.fetch_add(1, Ordering::SeqCst);
                format!("{{\"Ok\":{}}}", String::from_utf8_lossy(&body))
            }),
        );
        if batches {
            router = router.route(
                PROPOSE_BATCH,
                post(move |body: Bytes| async move {
                    on_batch.batches.fetch_add(1, Ordering::SeqCst);
                    on_batch.largest.fetch_max(body.len(), Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let writes: Vec<Box<RawValue>> = serde_json::from_slice(&body).unwrap();
                    let answers: Vec<String> = writes
                        .iter()
                        .map(|w| format!("{{\"Ok\":{}}}", w.get()))
                        .collect();
                    format!("{{\"Ok\":[{}]}}", answers.join(","))
                }),
            );
        }
        serve(router).await
    }

    /// `n` writes, each `{"n": i}`, arriving a millisecond apart; their answers in order.
    async fn propose_all(leader: &Member, n: usize) -> Vec<Reply> {
        propose_padded(leader, n, 0).await
    }

    /// As [`propose_all`], each write `{"n": i, "pad": "xx…"}` with `pad` bytes of padding
    /// (none: `{"n": i}`).
    async fn propose_padded(leader: &Member, n: usize, pad: usize) -> Vec<Reply> {
        let batcher = ProposeBatcher::default();
        let http = http_client(None, None);
        let writes = (0..n).map(|i| {
            let (batcher, http) = (&batcher, &http);
            let body = match pad {
                0 => format!("{{\"n\":{i}}}"),
                _ => format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(pad)),
            }
            .into_bytes();
            async move {
                tokio::time::sleep(Duration::from_millis(i as u64)).await;
                (batcher)
                    .propose(http, None, leader, body, Duration::from_secs(5))
                    .await
            }
        });
        let replies = futures::future::join_all(writes).await;
        // A sender answers its batch, then finds the queue empty and frees its slot.
        for _ in 0..100 {
            if batcher.lanes.lock().is_empty() {
                return replies;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("a sender kept its slot with nothing queued");
    }

    fn answered_in_order(replies: &[Reply]) {
        for (i, reply) in replies.iter().enumerate() {
            let answer = reply.as_ref().expect("answered");
            assert_eq!(answer.get(), format!("{{\"Ok\":{{\"n\":{i}}}}}"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_arriving_during_batches_share_requests_and_get_their_own_answers() {
        let seen = Arc::new(Seen::default());
        let leader = echoing_leader(seen.clone(), true).await;
        let replies = propose_all(&leader, 50).await;
        answered_in_order(&replies);
        let batches = seen.batches.load(Ordering::SeqCst);
        assert!(
            (1..=10).contains(&batches),
            "50 writes in {batches} batches"
        );
        assert_eq!(seen.alone.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_stops_at_its_byte_budget_and_takes_one_write_past_it_alone() {
        let seen = Arc::new(Seen::default());
        let leader = echoing_leader(seen.clone(), true).await;
        let replies = propose_padded(&leader, 12, 1 << 20).await;
        assert!(replies.iter().all(Result::is_ok));
        let largest = seen.largest.load(Ordering::SeqCst);
        assert!(largest <= BATCH_BYTES + 64, "a batch of {largest} bytes");
        let huge = propose_padded(&leader, 1, BATCH_BYTES + 1).await;
        assert!(huge[0].is_ok(), "a write past the budget still goes, alone");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_without_the_batch_route_gets_the_writes_one_by_one() {
        let seen = Arc::new(Seen::default());
        let leader = echoing_leader(seen.clone(), false).await;
        let replies = propose_all(&leader, 20).await;
        answered_in_order(&replies);
        assert_eq!(seen.alone.load(Ordering::SeqCst), 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_batch_is_a_refusal_of_each_write() {
        let router = Router::new().route(
            PROPOSE_BATCH,
            post(|| async { r#"{"Err":{"NotLeader":null}}"# }),
        );
        let replies = propose_all(&serve(router).await, 5).await;
        for reply in replies {
            assert_eq!(reply.unwrap().get(), r#"{"Err":{"NotLeader":null}}"#);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_whose_reply_fails_is_a_lost_reply_for_each_write() {
        let router = Router::new().route(
            PROPOSE_BATCH,
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        );
        let replies = propose_all(&serve(router).await, 5).await;
        for reply in replies {
            assert!(matches!(reply, Err(SendError::Lost(m)) if m.contains("boom")));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_that_is_not_listening_is_unreachable_for_each_write() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let leader = Member {
            name: "gone".into(),
            peer_urls: vec![url],
            client_urls: vec![],
            is_learner: false,
        };
        for reply in propose_all(&leader, 3).await {
            assert!(matches!(reply, Err(SendError::Unreachable(_))));
        }
    }
}
