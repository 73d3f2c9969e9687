//! How this member comes to be in a cluster, decided before Raft starts:
//! - its data dir has served before: it resumes as the member recorded there;
//! - it founds a new cluster from `--initial-cluster`, or from a `--discovery` directory;
//! - it joins a running cluster: 0.x `-peers` asks a peer to add it, and after `member add`
//!   `--initial-cluster-state existing` finds its ID in the cluster's member list.
//!
//! A fresh data dir records the identity first, so a crash at any later point restarts as
//! the same member.

use crate::app::Identity;
use crate::config::Config;
use crate::discovery;
use crate::identity::{self, Founding, IdentityError};
use musubi_consensus::{ConsensusError, Member};
use rustls::ClientConfig;
use std::sync::Arc;

/// Who this member is, and whom a fresh log is initialized with.
pub struct Bootstrap {
    pub identity: Identity,
    /// The founding members (ID, name, peer URLs); empty for a member that joined.
    pub founding_members: Vec<(u64, String, Vec<String>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("cannot join the cluster through {peers}: {source}")]
    Join {
        peers: String,
        source: ConsensusError,
    },
    #[error(
        "--initial-cluster-state existing: the cluster at {peers} has no member with peer URLs {mine}; add this member first (musubi cluster add {name} {mine}, or etcdctl member add), then start it. Members: {members}"
    )]
    NotAMember {
        peers: String,
        mine: String,
        name: String,
        members: String,
    },
    #[error(
        "member {name} ({id:x}) has already been bootstrapped: its cluster knows it as started, but data dir {dir} is empty. It has lost its data; remove it (musubi cluster remove {id:x}), add it back (musubi cluster add {name} <peer URL>) and start it with --initial-cluster-state existing, or restore its data dir"
    )]
    AlreadyBootstrapped { dir: String, name: String, id: u64 },
    #[error("{reason} (discovery URL {url})")]
    Discovery { url: String, reason: String },
}

/// `peer_tls` dials `https://` peers when joining.
pub async fn resolve(
    config: &Config,
    peer_tls: Option<Arc<ClientConfig>>,
) -> Result<Bootstrap, BootstrapError> {
    if let Some(recorded) = identity::recorded(&config.data_dir)? {
        return resume(config, recorded);
    }
    let bootstrap = if !config.peers.is_empty() {
        join(config, peer_tls).await?
    } else if let Some(url) = &config.discovery {
        let founding =
            discovery::founding(url, config)
                .await
                .map_err(|reason| BootstrapError::Discovery {
                    url: url.clone(),
                    reason,
                })?;
        found(config, founding)?
    } else if config.initial_cluster_state == "existing" {
        existing(config, peer_tls).await?
    } else {
        let founding = found(config, Founding::from_flags(config))?;
        refuse_if_bootstrapped(config, &founding, peer_tls).await?;
        founding
    };
    identity::record(&config.data_dir, &bootstrap.identity)?;
    Ok(bootstrap)
}

/// A data dir that has served before. Only flags that spell out a new cluster can
/// contradict it; a 0.x member restarted with or without `-peers` simply resumes.
fn resume(config: &Config, recorded: Identity) -> Result<Bootstrap, BootstrapError> {
    let founding = Founding::from_flags(config);
    let spelled_out = config.initial_cluster_given
        && config.initial_cluster_state == "new"
        && config.peers.is_empty()
        && config.discovery.is_none();
    let flags = if spelled_out {
        Some(founding.identity(&config.name)?)
    } else {
        None
    };
    identity::check_restart(config, &recorded, flags.as_ref())?;
    // A founder that crashed before its first log write initializes on this start.
    let founding_members = if recorded.joined {
        Vec::new()
    } else {
        founding.members()?
    };
    Ok(Bootstrap {
        identity: recorded,
        founding_members,
    })
}

fn found(config: &Config, founding: Founding) -> Result<Bootstrap, BootstrapError> {
    Ok(Bootstrap {
        identity: founding.identity(&config.name)?,
        founding_members: founding.members()?,
    })
}

/// A founding member with an empty data dir that its cluster knows as started (it published
/// its client URLs) has lost its data: initializing again would let it vote with an empty
/// log and undo commits it had acknowledged. etcd refuses this too.
async fn refuse_if_bootstrapped(
    config: &Config,
    founding: &Bootstrap,
    peer_tls: Option<Arc<ClientConfig>>,
) -> Result<(), BootstrapError> {
    let me = founding.identity.member_id;
    let others = other_peer_urls(&founding.founding_members, &config.name);
    if others.is_empty() {
        return Ok(());
    }
    let Some(view) =
        musubi_consensus::probe_cluster(&others, founding.identity.cluster_id, peer_tls).await
    else {
        return Ok(());
    };
    match view
        .members
        .iter()
        .find(|m| m.id == me && !m.client_urls.is_empty())
    {
        Some(_) => Err(BootstrapError::AlreadyBootstrapped {
            dir: config.data_dir.display().to_string(),
            name: config.name.clone(),
            id: me,
        }),
        None => Ok(()),
    }
}

/// 0.x `-peers`: any reachable peer adds this member (a learner until it has caught up).
async fn join(
    config: &Config,
    peer_tls: Option<Arc<ClientConfig>>,
) -> Result<Bootstrap, BootstrapError> {
    let me = Member {
        name: config.name.clone(),
        peer_urls: config.initial_advertise_peer_urls.clone(),
        client_urls: config.advertise_client_urls.clone(),
        is_learner: false,
    };
    let join_error = |source| BootstrapError::Join {
        peers: config.peers.join(","),
        source,
    };
    let view = musubi_consensus::join(&config.peers, &me, peer_tls)
        .await
        .map_err(join_error)?;
    let member = view.member.ok_or_else(|| {
        join_error(ConsensusError::Rejected(
            "the peer did not say which ID it gave this member".into(),
        ))
    })?;
    tracing::info!(id = %format!("{:x}", member.id), cluster = %format!("{:x}", view.cluster_id), "joined the cluster");
    Ok(joined(config, member.id, view.cluster_id))
}

/// `--initial-cluster-state existing`: this member was added already (`member add`); find
/// its ID in the cluster's member list by its peer URLs.
async fn existing(
    config: &Config,
    peer_tls: Option<Arc<ClientConfig>>,
) -> Result<Bootstrap, BootstrapError> {
    let others = other_peer_urls(&Founding::from_flags(config).members()?, &config.name);
    let mine = &config.initial_advertise_peer_urls;
    let view = musubi_consensus::fetch_cluster(&others, peer_tls)
        .await
        .map_err(|source| BootstrapError::Join {
            peers: others.join(","),
            source,
        })?;
    let found = view
        .members
        .iter()
        .find(|m| m.peer_urls.iter().any(|u| mine.contains(u)));
    match found {
        Some(member) => Ok(joined(config, member.id, view.cluster_id)),
        None => Err(BootstrapError::NotAMember {
            peers: others.join(","),
            mine: mine.join(","),
            name: config.name.clone(),
            members: view
                .members
                .iter()
                .map(|m| format!("{:x} {:?} {}", m.id, m.name, m.peer_urls.join(",")))
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// The peer URLs of the founding members other than `name`: whom to ask about the cluster.
fn other_peer_urls(founders: &[(u64, String, Vec<String>)], name: &str) -> Vec<String> {
    founders
        .iter()
        .filter(|(_, founder, _)| founder != name)
        .flat_map(|(_, _, urls)| urls.iter().cloned())
        .collect()
}

fn joined(config: &Config, member_id: u64, cluster_id: u64) -> Bootstrap {
    Bootstrap {
        identity: Identity {
            name: config.name.clone(),
            member_id,
            cluster_id,
            joined: true,
        },
        founding_members: Vec::new(),
    }
}
