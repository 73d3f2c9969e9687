//! Member and cluster IDs, derived as etcd derives them in spirit: a stable hash of the
//! member's peer URLs and the cluster token, and of the sorted member IDs. The same
//! configuration always yields the same IDs, so clients that pin `X-Etcd-Cluster-Id`
//! (python-etcd raises when it changes) see one cluster across restarts.

use crate::app::Identity;
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("--initial-cluster {cluster:?} does not name this member {name:?}")]
    NotInInitialCluster { name: String, cluster: String },
    #[error("--initial-cluster entry {0:?} is not name=peerURL")]
    BadEntry(String),
}

pub fn resolve(config: &Config) -> Result<Identity, IdentityError> {
    let mut members: Vec<(String, Vec<String>)> = Vec::new();
    for entry in config
        .initial_cluster
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| IdentityError::BadEntry(entry.to_string()))?;
        match members.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url.to_string()),
            None => members.push((name.to_string(), vec![url.to_string()])),
        }
    }
    let token = &config.initial_cluster_token;
    let mut ids: Vec<u64> = members
        .iter()
        .map(|(_, urls)| member_id(urls, token))
        .collect();
    let member = members
        .iter()
        .find(|(n, _)| *n == config.name)
        .ok_or_else(|| IdentityError::NotInInitialCluster {
            name: config.name.clone(),
            cluster: config.initial_cluster.clone(),
        })?;
    ids.sort_unstable();
    let cluster_bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    Ok(Identity {
        name: config.name.clone(),
        member_id: member_id(&member.1, token),
        cluster_id: fnv1a(&cluster_bytes),
    })
}

fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let id = fnv1a(format!("{}|{token}", urls.join(",")).as_bytes());
    // Zero means "no member" in Raft; never hand it out.
    id.max(1)
}

/// FNV-1a, 64 bit: tiny, stable across Rust versions (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_depend_on_the_token() {
        let a = member_id(&["http://127.0.0.1:2380".into()], "t");
        assert_eq!(a, member_id(&["http://127.0.0.1:2380".into()], "t"));
        assert_ne!(a, member_id(&["http://127.0.0.1:2380".into()], "u"));
    }
}
