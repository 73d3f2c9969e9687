//! Member and cluster IDs, derived as etcd derives them in spirit: a stable hash of the
//! member's peer URLs and the cluster token, and of the sorted member IDs. The same
//! configuration always yields the same IDs, so clients that pin `X-Etcd-Cluster-Id`
//! (python-etcd raises when it changes) see one cluster across restarts.

use crate::app::Identity;
use crate::config::Config;
use musubi_raftlog::durable;
use std::path::Path;

/// Where a data dir records whose it is.
const IDENTITY_DIR: &str = "member";
const IDENTITY_FILE: &str = "identity";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("--initial-cluster {cluster:?} does not name this member {name:?}")]
    NotInInitialCluster { name: String, cluster: String },
    #[error("--initial-cluster entry {0:?} is not name=peerURL")]
    BadEntry(String),
    #[error(
        "data dir {dir} belongs to member {recorded:?} (id {recorded_id:x}), not {requested:?}: start it with -name {recorded}, or give {requested} its own --data-dir"
    )]
    NameMismatch {
        dir: String,
        recorded: String,
        recorded_id: u64,
        requested: String,
    },
    #[error(
        "data dir {dir} belongs to cluster {recorded:x}, but the flags describe cluster {requested:x} (--initial-cluster / --initial-cluster-token differ): use the data dir's original cluster flags, or another --data-dir"
    )]
    ClusterMismatch {
        dir: String,
        recorded: u64,
        requested: u64,
    },
    #[error("cannot read or record the identity in data dir {dir}: {reason}")]
    Unreadable { dir: String, reason: String },
}

/// Records `identity` in a fresh data dir, or checks it against the one recorded there,
/// so a data dir never silently serves under another name or in another cluster (the
/// seeds/002 pitfall).
pub fn check_or_record(data_dir: &Path, identity: &Identity) -> Result<(), IdentityError> {
    let dir = data_dir.join(IDENTITY_DIR);
    let unreadable = |reason: String| IdentityError::Unreadable {
        dir: data_dir.display().to_string(),
        reason,
    };
    let recorded = durable::read(&dir, IDENTITY_FILE).map_err(|e| unreadable(e.to_string()))?;
    let Some(parts) = recorded else {
        let bytes = serde_json::to_vec(identity).expect("an identity serializes");
        return durable::write_atomic(&dir, IDENTITY_FILE, &[&bytes])
            .map_err(|e| unreadable(e.to_string()));
    };
    let recorded: Identity = parts
        .first()
        .and_then(|p| serde_json::from_slice(p).ok())
        .ok_or_else(|| unreadable("identity file is damaged".into()))?;
    if recorded.name != identity.name {
        return Err(IdentityError::NameMismatch {
            dir: data_dir.display().to_string(),
            recorded: recorded.name,
            recorded_id: recorded.member_id,
            requested: identity.name.clone(),
        });
    }
    if recorded.cluster_id != identity.cluster_id {
        return Err(IdentityError::ClusterMismatch {
            dir: data_dir.display().to_string(),
            recorded: recorded.cluster_id,
            requested: identity.cluster_id,
        });
    }
    Ok(())
}

/// `--initial-cluster` as (member ID, name, peer URLs), in the order given.
pub fn initial_members(config: &Config) -> Result<Vec<(u64, String, Vec<String>)>, IdentityError> {
    Ok(parse_initial_cluster(config)?
        .into_iter()
        .map(|(name, urls)| (member_id(&urls, &config.initial_cluster_token), name, urls))
        .collect())
}

fn parse_initial_cluster(config: &Config) -> Result<Vec<(String, Vec<String>)>, IdentityError> {
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
    Ok(members)
}

pub fn resolve(config: &Config) -> Result<Identity, IdentityError> {
    let members = parse_initial_cluster(config)?;
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

    fn identity(name: &str, cluster_id: u64) -> Identity {
        Identity {
            name: name.into(),
            member_id: 7,
            cluster_id,
        }
    }

    #[test]
    fn a_data_dir_refuses_another_name_and_another_cluster() {
        let dir = tempfile::tempdir().unwrap();
        check_or_record(dir.path(), &identity("machine1", 1)).unwrap();
        check_or_record(dir.path(), &identity("machine1", 1)).unwrap();
        let err = check_or_record(dir.path(), &identity("machine2", 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"machine1\"") && err.contains("\"machine2\""),
            "{err}"
        );
        assert!(matches!(
            check_or_record(dir.path(), &identity("machine1", 2)),
            Err(IdentityError::ClusterMismatch { .. })
        ));
    }

    #[test]
    fn ids_are_stable_and_depend_on_the_token() {
        let a = member_id(&["http://127.0.0.1:2380".into()], "t");
        assert_eq!(a, member_id(&["http://127.0.0.1:2380".into()], "t"));
        assert_ne!(a, member_id(&["http://127.0.0.1:2380".into()], "u"));
    }
}
