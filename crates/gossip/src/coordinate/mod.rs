//! Network coordinates: this node's Vivaldi position ([`vivaldi`]) and the positions the
//! other members last told us, for `get-coordinate` and `serf rtt`.
//!
//! As Serf measures them, on the probes membership sends anyway: every probe ack we send
//! carries our position ([`compact`], wire kind 10), and every ack to one of our pings is
//! one RTT sample (Lifeguard, which watches foca's probes, times it). Pure state: the node
//! task does the IO.

pub(crate) mod compact;
mod vivaldi;

use rand_foca::rngs::StdRng;
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::debug;
pub use vivaldi::Coordinate;
use vivaldi::VivaldiClient;

pub struct Coordinates {
    local_name: String,
    /// None with `disable_coordinates`: acks carry no position, `get-coordinate` finds none.
    client: Option<VivaldiClient>,
    /// Every member's last known position, ours included (as Serf's coordinate cache).
    cache: BTreeMap<String, Coordinate>,
    /// The position that came with the packet foca is reading, until foca says whose
    /// probe that packet answers.
    carried: Option<Coordinate>,
}

impl Coordinates {
    /// `rng` breaks ties between coincident positions (seeded by the caller).
    pub fn new(local_name: String, enabled: bool, rng: StdRng) -> Self {
        let client = enabled.then(|| VivaldiClient::with_rng(rng));
        let mut cache = BTreeMap::new();
        if let Some(client) = &client {
            cache.insert(local_name.clone(), client.coordinate().clone());
        }
        Coordinates {
            local_name,
            client,
            cache,
            carried: None,
        }
    }

    /// What our probe acks carry: our position, encoded; None when coordinates are off.
    pub fn ack_position(&self) -> Option<Vec<u8>> {
        Some(compact::encode(self.client.as_ref()?.coordinate()))
    }

    /// A position came with the packet foca reads next; false if it does not decode.
    pub fn carried(&mut self, encoded: &[u8]) -> bool {
        self.carried = compact::decode(encoded);
        self.carried.is_some()
    }

    /// foca took that packet for `member`'s answer to our ping `rtt` ago: one sample.
    pub fn round_trip(&mut self, member: &str, rtt: Duration) {
        let (Some(client), Some(coord)) = (self.client.as_mut(), self.carried.take()) else {
            return;
        };
        let before = client.coordinate().clone();
        match client.update(member, &coord, rtt) {
            Ok(ours) => {
                let moved = before.distance_to(ours).as_secs_f64() * 1e3;
                metrics::histogram!("serf.coordinate.adjustment-ms").record(moved);
                self.cache.insert(self.local_name.clone(), ours.clone());
                self.cache.insert(member.to_string(), coord);
            }
            Err(e) => {
                metrics::counter!("serf.coordinate.rejected").increment(1);
                debug!("coordinate sample from {member} rejected: {e}");
            }
        }
    }

    /// foca is done with the packet: a position no probe claimed is not kept for the next.
    pub fn packet_done(&mut self) {
        self.carried = None;
    }

    pub fn get(&self, node: &str) -> Option<&Coordinate> {
        self.cache.get(node)
    }

    pub fn resets(&self) -> u64 {
        self.client.as_ref().map_or(0, VivaldiClient::resets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_foca::SeedableRng;

    const RTT: Duration = Duration::from_millis(5);

    fn seeded() -> StdRng {
        StdRng::seed_from_u64(1)
    }

    #[test]
    fn an_ack_with_a_position_moves_our_coordinate_and_fills_the_cache() {
        let mut a = Coordinates::new("a".into(), true, seeded());
        let b = Coordinates::new("b".into(), true, seeded());
        assert!(a.carried(&b.ack_position().unwrap()));
        a.round_trip("b", RTT);
        assert!(a.get("b").is_some());
        assert_ne!(a.get("a"), Some(&Coordinate::default()), "a has moved");
    }

    #[test]
    fn a_position_is_used_once_and_only_with_the_packet_it_came_with() {
        let mut a = Coordinates::new("a".into(), true, seeded());
        let b = Coordinates::new("b".into(), true, seeded());
        a.carried(&b.ack_position().unwrap());
        a.packet_done();
        a.round_trip("b", RTT);
        assert!(
            a.get("b").is_none(),
            "an ack without a position is no sample"
        );
        assert!(!a.carried(b"garbage"));
        a.round_trip("b", RTT);
        assert!(a.get("b").is_none());
    }

    #[test]
    fn disabled_coordinates_send_no_position_and_know_none() {
        let a = Coordinates::new("a".into(), true, seeded());
        let mut off = Coordinates::new("off".into(), false, seeded());
        assert!(off.ack_position().is_none());
        off.carried(&a.ack_position().unwrap());
        off.round_trip("a", RTT);
        assert!(off.get("a").is_none());
        assert!(off.get("off").is_none());
    }
}
