//! Who this member is, and the data dir's memory of it. Member and cluster IDs are stable
//! hashes of the flags (`musubi_consensus::{member_id, cluster_id}`) for the founding
//! members of a cluster, and handed out by the cluster for members added later; either way
//! the data dir records them, so a data dir never silently serves under another name or in
//! another cluster (the seeds/002 pitfall).

use crate::app::Identity;
use crate::config::Config;
use musubi_consensus::{cluster_id, member_id};
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

/// The identity recorded in `data_dir`, if it has served before.
pub fn recorded(data_dir: &Path) -> Result<Option<Identity>, IdentityError> {
    let unreadable = |reason: String| IdentityError::Unreadable {
        dir: data_dir.display().to_string(),
        reason,
    };
    let Some(parts) = durable::read(&data_dir.join(IDENTITY_DIR), IDENTITY_FILE)
        .map_err(|e| unreadable(e.to_string()))?
    else {
        return Ok(None);
    };
    let identity = parts
        .first()
        .and_then(|p| serde_json::from_slice(p).ok())
        .ok_or_else(|| unreadable("identity file is damaged".into()))?;
    Ok(Some(identity))
}

/// Records `identity` in a fresh data dir, before Raft writes anything there.
pub fn record(data_dir: &Path, identity: &Identity) -> Result<(), IdentityError> {
    let bytes = serde_json::to_vec(identity).expect("an identity serializes");
    durable::write_atomic(&data_dir.join(IDENTITY_DIR), IDENTITY_FILE, &[&bytes]).map_err(|e| {
        IdentityError::Unreadable {
            dir: data_dir.display().to_string(),
            reason: e.to_string(),
        }
    })
}

/// A data dir that has served before must be started under its own name, and, when the
/// flags spell out a new cluster, that cluster must be its own.
pub fn check_restart(
    config: &Config,
    recorded: &Identity,
    flags: Option<&Identity>,
) -> Result<(), IdentityError> {
    let dir = config.data_dir.display().to_string();
    if recorded.name != config.name {
        return Err(IdentityError::NameMismatch {
            dir,
            recorded: recorded.name.clone(),
            recorded_id: recorded.member_id,
            requested: config.name.clone(),
        });
    }
    match flags {
        Some(flags) if flags.cluster_id != recorded.cluster_id => {
            Err(IdentityError::ClusterMismatch {
                dir,
                recorded: recorded.cluster_id,
                requested: flags.cluster_id,
            })
        }
        _ => Ok(()),
    }
}

/// The founding members of a new cluster: `--initial-cluster` and its token, or what a
/// discovery directory handed out.
#[derive(Clone, Debug)]
pub struct Founding {
    pub initial_cluster: String,
    pub token: String,
}

impl Founding {
    pub fn from_flags(config: &Config) -> Founding {
        Founding {
            initial_cluster: config.initial_cluster.clone(),
            token: config.initial_cluster_token.clone(),
        }
    }

    /// The founding members as (member ID, name, peer URLs), in the order given.
    pub fn members(&self) -> Result<Vec<(u64, String, Vec<String>)>, IdentityError> {
        Ok(self
            .parse()?
            .into_iter()
            .map(|(name, urls)| (member_id(&urls, &self.token), name, urls))
            .collect())
    }

    /// `name=url,...`, a name given twice collecting its URLs.
    fn parse(&self) -> Result<Vec<(String, Vec<String>)>, IdentityError> {
        let mut members: Vec<(String, Vec<String>)> = Vec::new();
        let entries = self.initial_cluster.split(',').map(str::trim);
        for entry in entries.filter(|e| !e.is_empty()) {
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

    /// The identity of founding member `name`.
    pub fn identity(&self, name: &str) -> Result<Identity, IdentityError> {
        let members = self.members()?;
        let ids: Vec<u64> = members.iter().map(|(id, _, _)| *id).collect();
        let (member_id, _, _) = members.iter().find(|(_, n, _)| n == name).ok_or_else(|| {
            IdentityError::NotInInitialCluster {
                name: name.to_string(),
                cluster: self.initial_cluster.clone(),
            }
        })?;
        Ok(Identity {
            name: name.to_string(),
            member_id: *member_id,
            cluster_id: cluster_id(&ids),
            joined: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> Config {
        let args = ["--name", name, "--data-dir", "/nonexistent"].map(String::from);
        match crate::config::parse(&args).unwrap() {
            crate::config::Invocation::Serve(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    fn identity(name: &str, cluster_id: u64) -> Identity {
        Identity {
            name: name.into(),
            member_id: 7,
            cluster_id,
            joined: false,
        }
    }

    #[test]
    fn a_data_dir_remembers_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(recorded(dir.path()).unwrap(), None);
        record(dir.path(), &identity("machine1", 1)).unwrap();
        assert_eq!(recorded(dir.path()).unwrap(), Some(identity("machine1", 1)));
    }

    #[test]
    fn a_restart_refuses_another_name_and_another_cluster() {
        let mine = identity("machine1", 1);
        check_restart(&config("machine1"), &mine, None).unwrap();
        check_restart(&config("machine1"), &mine, Some(&identity("machine1", 1))).unwrap();
        let err = check_restart(&config("machine2"), &mine, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"machine1\"") && err.contains("\"machine2\""),
            "{err}"
        );
        assert!(matches!(
            check_restart(&config("machine1"), &mine, Some(&identity("machine1", 2))),
            Err(IdentityError::ClusterMismatch { .. })
        ));
    }

    #[test]
    fn founding_ids_depend_on_the_token_and_the_members() {
        let founding = |cluster: &str, token: &str| Founding {
            initial_cluster: cluster.into(),
            token: token.into(),
        };
        let a = founding("a=http://h:1,b=http://h:2", "t")
            .identity("a")
            .unwrap();
        assert_eq!(
            a,
            founding("b=http://h:2,a=http://h:1", "t")
                .identity("a")
                .unwrap()
        );
        assert_ne!(
            a,
            founding("a=http://h:1,b=http://h:2", "u")
                .identity("a")
                .unwrap()
        );
        assert!(founding("a=http://h:1", "t").identity("c").is_err());
    }
}
