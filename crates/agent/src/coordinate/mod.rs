//! Network coordinates: this node's Vivaldi position ([`vivaldi`]) and the positions the
//! other members last told us, for `get-coordinate` and `serf rtt`.
//!
//! Serf measures round trips on memberlist's probes; foca does not expose its probe
//! timings, so the agent measures with datagrams of its own: every probe interval the node
//! pings one random alive member (wire kind 3, carrying our coordinate) and that member
//! answers at once (kind 4, echoing the sequence number and carrying its coordinate).
//! Each answer is one RTT sample. Pure state: the node task does the IO and the timing.

pub mod vivaldi;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use tracing::debug;
pub use vivaldi::Coordinate;
use vivaldi::VivaldiClient;

/// A ping unanswered after this long is a miss (memberlist's LAN probe timeout is 500 ms;
/// a lost datagram must not be taken for a long RTT).
const PONG_PATIENCE: Duration = Duration::from_secs(2);
/// Lifeguard's awareness scale: 0 is healthy, up to 8 probes' worth of doubt.
const MAX_HEALTH_SCORE: u32 = 8;

/// The body of a coordinate ping (kind 3) or pong (kind 4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CoordinateMessage {
    pub seq: u32,
    /// The sender's node name.
    pub from: String,
    /// None from a node with `disable_coordinates`: it answers, but shares no position.
    pub coord: Option<Coordinate>,
}

impl CoordinateMessage {
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("a coordinate message always encodes")
    }

    pub fn decode(body: &[u8]) -> Result<Self, rmp_serde::decode::Error> {
        rmp_serde::from_slice(body)
    }
}

struct PendingPing {
    to: String,
    sent: Instant,
}

pub struct Coordinates {
    local_name: String,
    /// None with `disable_coordinates`: no pings, no position, `get-coordinate` finds none.
    client: Option<VivaldiClient>,
    /// Every member's last known position, ours included (as Serf's coordinate cache).
    cache: BTreeMap<String, Coordinate>,
    pending: BTreeMap<u32, PendingPing>,
    next_seq: u32,
    health_score: u32,
}

impl Coordinates {
    pub fn new(local_name: String, enabled: bool) -> Self {
        let client = enabled.then(VivaldiClient::default);
        let mut cache = BTreeMap::new();
        if let Some(client) = &client {
            cache.insert(local_name.clone(), client.coordinate().clone());
        }
        Coordinates {
            local_name,
            client,
            cache,
            pending: BTreeMap::new(),
            next_seq: 0,
            health_score: 0,
        }
    }

    /// The ping to send to `to` now, or None when coordinates are disabled.
    pub fn ping(&mut self, to: &str, now: Instant) -> Option<CoordinateMessage> {
        let coord = self.client.as_ref()?.coordinate().clone();
        self.expire(now);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.pending.insert(
            self.next_seq,
            PendingPing {
                to: to.to_string(),
                sent: now,
            },
        );
        Some(CoordinateMessage {
            seq: self.next_seq,
            from: self.local_name.clone(),
            coord: Some(coord),
        })
    }

    /// Learn the pinger's position and answer it.
    pub fn answer(&mut self, ping: CoordinateMessage) -> CoordinateMessage {
        self.remember(&ping.from, ping.coord);
        CoordinateMessage {
            seq: ping.seq,
            from: self.local_name.clone(),
            coord: self
                .client
                .as_ref()
                .map(|client| client.coordinate().clone()),
        }
    }

    /// A pong for one of our pings: one RTT sample.
    pub fn on_pong(&mut self, pong: CoordinateMessage, now: Instant) {
        let Some(ping) = self.pending.remove(&pong.seq) else {
            debug!(
                "coordinate pong {} from {} answers no ping",
                pong.seq, pong.from
            );
            return;
        };
        if ping.to != pong.from {
            debug!(
                "coordinate pong {} came from {}, not {}",
                pong.seq, pong.from, ping.to
            );
            return;
        }
        self.health_score = self.health_score.saturating_sub(1);
        let (Some(client), Some(coord)) = (self.client.as_mut(), pong.coord) else {
            return;
        };
        match client.update(&pong.from, &coord, now - ping.sent) {
            Ok(ours) => {
                self.cache.insert(self.local_name.clone(), ours.clone());
                self.cache.insert(pong.from, coord);
            }
            Err(e) => debug!("coordinate sample from {} rejected: {e}", pong.from),
        }
    }

    /// Pings that were never answered count against our health, as Lifeguard counts
    /// failed probes: when many go unanswered, the problem is more likely here.
    fn expire(&mut self, now: Instant) {
        let before = self.pending.len();
        self.pending
            .retain(|_, ping| now.duration_since(ping.sent) < PONG_PATIENCE);
        let missed = u32::try_from(before - self.pending.len()).unwrap_or(u32::MAX);
        self.health_score = (self.health_score.saturating_add(missed)).min(MAX_HEALTH_SCORE);
    }

    fn remember(&mut self, node: &str, coord: Option<Coordinate>) {
        if self.client.is_some()
            && let Some(coord) = coord.filter(Coordinate::is_valid)
        {
            self.cache.insert(node.to_string(), coord);
        }
    }

    pub fn get(&self, node: &str) -> Option<&Coordinate> {
        self.cache.get(node)
    }

    pub fn resets(&self) -> u64 {
        self.client.as_ref().map_or(0, VivaldiClient::resets)
    }

    pub fn health_score(&self) -> u32 {
        self.health_score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_and_its_pong_move_our_coordinate_and_fill_the_cache() {
        let start = Instant::now();
        let mut a = Coordinates::new("a".into(), true);
        let mut b = Coordinates::new("b".into(), true);
        let ping = a.ping("b", start).unwrap();
        let ping = CoordinateMessage::decode(&ping.encode()).unwrap();
        let pong = b.answer(ping);
        assert!(b.get("a").is_some(), "the pinger's position is learnt");
        a.on_pong(pong, start + Duration::from_millis(5));
        assert!(a.get("b").is_some());
        assert_ne!(a.get("a"), Some(&Coordinate::default()), "a has moved");
        assert_eq!(a.health_score(), 0);
    }

    #[test]
    fn unanswered_pings_raise_the_health_score_and_answers_lower_it() {
        let start = Instant::now();
        let mut a = Coordinates::new("a".into(), true);
        let mut b = Coordinates::new("b".into(), true);
        a.ping("b", start);
        a.ping("b", start);
        let later = start + PONG_PATIENCE;
        let ping = a.ping("b", later).unwrap();
        assert_eq!(a.health_score(), 2);
        a.on_pong(b.answer(ping), later + Duration::from_millis(1));
        assert_eq!(a.health_score(), 1);
    }

    #[test]
    fn a_pong_from_someone_else_or_for_no_ping_is_ignored() {
        let start = Instant::now();
        let mut a = Coordinates::new("a".into(), true);
        let mut c = Coordinates::new("c".into(), true);
        let ping = a.ping("b", start).unwrap();
        a.on_pong(c.answer(ping.clone()), start + Duration::from_millis(1));
        a.on_pong(c.answer(ping), start + Duration::from_millis(1));
        assert!(a.get("c").is_none());
        assert_eq!(a.get("a"), Some(&Coordinate::default()));
    }

    #[test]
    fn disabled_coordinates_answer_without_a_position_and_know_none() {
        let start = Instant::now();
        let mut a = Coordinates::new("a".into(), true);
        let mut off = Coordinates::new("off".into(), false);
        assert!(off.ping("a", start).is_none());
        assert!(off.get("off").is_none());
        let ping = a.ping("off", start).unwrap();
        let pong = off.answer(ping);
        assert!(pong.coord.is_none());
        assert!(off.get("a").is_none());
        a.on_pong(pong, start + Duration::from_millis(1));
        assert!(a.get("off").is_none());
        assert_eq!(a.health_score(), 0);
    }
}
