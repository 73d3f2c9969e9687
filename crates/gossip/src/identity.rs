//! Who a member is on the wire: its Serf node name, the address it gossips on, its tags.
//!
//! foca keys members by [`Identity::addr`], the gossip address, so two identities for the
//! same address are the same member seen at different times. `started_ms` (when the agent
//! started, bumped on renewal) decides which one is current.

use foca::Identity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeId {
    pub name: String,
    pub addr: SocketAddr,
    /// Carried in the identity so that every member learns them with the member itself;
    /// Serf caps encoded tags at 512 bytes, which keeps them inside one datagram.
    pub tags: BTreeMap<String, String>,
    pub started_ms: u64,
}

impl NodeId {
    /// What we know of a member we were only told the address of (`-join`, `serf join`):
    /// announcing to it needs an identity, and this one loses to the member's real one.
    pub fn unknown_at(addr: SocketAddr) -> Self {
        NodeId {
            name: String::new(),
            addr,
            tags: BTreeMap::new(),
            started_ms: 0,
        }
    }
}

impl Identity for NodeId {
    type Addr = SocketAddr;

    /// Declared down while still running (a false suspicion, a partition that healed):
    /// come back at once as a newer identity instead of staying out of the cluster.
    fn renew(&self) -> Option<Self> {
        Some(NodeId {
            started_ms: self.started_ms + 1,
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.started_ms > adversary.started_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_member_wins_over_its_previous_identity() {
        let addr: SocketAddr = "127.0.0.1:7946".parse().unwrap();
        let old = NodeId {
            name: "a".into(),
            addr,
            tags: BTreeMap::new(),
            started_ms: 10,
        };
        let renewed = old.renew().unwrap();
        assert!(renewed.win_addr_conflict(&old));
        assert!(!NodeId::unknown_at(addr).win_addr_conflict(&old));
    }
}
