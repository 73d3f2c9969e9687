//! What the cluster records about each member.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The node data openraft keeps in the membership config for each member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    /// Asked to stay a non-voting learner until promoted. A learner without this flag is
    /// on its way to voting: the leader promotes it once it has caught up (see
    /// `membership::promote_caught_up`), so a new member never weakens the quorum while
    /// it is still copying the log.
    #[serde(default)]
    pub is_learner: bool,
}

impl Member {
    /// A founding member as `--initial-cluster` names it: no client URLs yet (each member
    /// publishes its own once a leader exists), a voter.
    pub fn founding(name: &str, peer_urls: &[String]) -> Member {
        Member {
            name: name.to_string(),
            peer_urls: peer_urls.to_vec(),
            client_urls: Vec::new(),
            is_learner: false,
        }
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.peer_urls.join(","))
    }
}

/// One member as the server reports it (`/v2/members`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    /// Not (yet) a voter.
    pub is_learner: bool,
}

impl MemberInfo {
    pub(crate) fn new(id: u64, m: &Member, is_voter: bool) -> Self {
        Self {
            id,
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: m.client_urls.clone(),
            is_learner: !is_voter,
        }
    }
}
