//! Bootstrapping through a discovery URL, etcd's v2 discovery protocol: the URL names a
//! directory on a service that speaks the v2 keys API under the URL's path (a discovery
//! service's `http://host/<token>`, or `http://host:2379/v2/keys/<dir>` on any etcd or
//! musubi; see [`crate::discovery_http`]). It holds `_config/size`; each new member
//! registers `<member id> = name=peerURL` under it, and the first `size` to register found
//! the cluster together. The discovery URL is the cluster token, so a URL bootstraps
//! exactly one cluster.
//!
//! A member that comes too late finds the cluster full. etcd 3.4 then exits
//! (`--discovery-fallback exit`) or runs as a proxy (`proxy`, its default); musubi has no
//! proxy mode, so it exits either way, saying so.

use crate::config::{Config, ConfigError};
use crate::discovery_http::{Reply, Service};
use crate::identity::Founding;
use musubi_client::Node;
use musubi_consensus::member_id;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// etcd's v2 error codes the protocol relies on.
const KEY_NOT_FOUND: u32 = 100;
const NODE_EXIST: u32 = 105;

/// `--discovery-fallback`, checked as etcd checks it; `proxy` is etcd's default.
pub fn fallback(value: Option<String>) -> Result<String, ConfigError> {
    let value = value.unwrap_or_else(|| "proxy".into());
    match value.as_str() {
        "exit" | "proxy" => Ok(value),
        _ => Err(ConfigError::BadValue {
            flag: "discovery-fallback".into(),
            value,
            reason: "valid values are 'exit' and 'proxy'".into(),
        }),
    }
}

/// The founding members once `size` members have registered under `url`.
pub async fn founding(url: &str, config: &Config) -> Result<Founding, String> {
    let service = Service::new(url, config.discovery_proxy.as_deref())?;
    let size = cluster_size(&service).await?;
    let me = register(&service, url, config).await?;
    tracing::info!(%url, size, "registered for discovery; waiting for the other members");
    let registered = wait_for(&service, size).await?;
    let founders = &registered[..size];
    if !founders.iter().any(|n| n.key.ends_with(&format!("/{me}"))) {
        return Err(full(size, &config.discovery_fallback));
    }
    let initial_cluster = founders
        .iter()
        .map(|n| n.value.as_str())
        .collect::<Vec<_>>()
        .join(",");
    tracing::info!(%initial_cluster, "discovery found the founding members");
    Ok(Founding {
        initial_cluster,
        token: url.to_string(),
    })
}

fn full(size: usize, fallback: &str) -> String {
    let why = format!("the first {size} members registered before this one");
    if fallback == "proxy" {
        format!(
            "discovery: cluster is full ({why}); --discovery-fallback proxy would run this member as a proxy, and musubi has no proxy mode: add it with musubi cluster add instead"
        )
    } else {
        format!("discovery: cluster is full ({why})")
    }
}

async fn cluster_size(service: &Service) -> Result<usize, String> {
    match service.get("_config/size", "").await? {
        Ok((resp, _)) => resp
            .node
            .value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("discovery: bad size {:?} in _config/size", resp.node.value)),
        Err(e) if e.code == KEY_NOT_FOUND => Err("discovery: size key not found: set it first, e.g. curl -X PUT <discovery URL>/_config/size -d value=3".to_string()),
        Err(e) => Err(format!("discovery: cannot read _config/size: {}", e.message)),
    }
}

/// Registers this member under its ID; registering again with the same value (a restart
/// before the cluster formed) is fine, another value under the same ID is not.
async fn register(service: &Service, url: &str, config: &Config) -> Result<String, String> {
    let id = format!("{:x}", member_id(&config.initial_advertise_peer_urls, url));
    let value = config
        .initial_advertise_peer_urls
        .iter()
        .map(|u| format!("{}={u}", config.name))
        .collect::<Vec<_>>()
        .join(",");
    let form = format!("value={}", utf8_percent_encode(&value, NON_ALPHANUMERIC));
    match service.put(&id, "prevExist=false", form).await? {
        Ok(_) => Ok(id),
        Err(e) if e.code == NODE_EXIST => match service.get(&id, "").await? {
            Ok((existing, _)) if existing.node.value == value => Ok(id),
            Ok((existing, _)) => Err(format!(
                "discovery: found duplicate id {id}: registered as {:?}",
                existing.node.value
            )),
            Err(e) => Err(format!("discovery: cannot read {id}: {}", e.message)),
        },
        Err(e) => Err(format!("discovery: cannot register {id}: {}", e.message)),
    }
}

/// The registered members in registration order, once at least `size` have registered.
async fn wait_for(service: &Service, size: usize) -> Result<Vec<Node>, String> {
    loop {
        let (listing, index) = ok(service.get("", "recursive=true").await?)?;
        let mut members: Vec<Node> = listing
            .node
            .children()
            .iter()
            .filter(|n| !n.dir && !n.key.ends_with("/_config"))
            .cloned()
            .collect();
        if members.len() >= size {
            members.sort_by_key(|n| n.created_index);
            return Ok(members);
        }
        let watch = format!("wait=true&recursive=true&waitIndex={}", index + 1);
        ok(service.get("", &watch).await?)?;
    }
}

fn ok(reply: Reply) -> Result<(musubi_client::Response, u64), String> {
    reply.map_err(|e| format!("discovery: {} ({})", e.message, e.cause))
}

#[cfg(test)]
mod tests {
    use super::fallback;

    #[test]
    fn the_fallback_is_exit_or_proxy() {
        assert_eq!(fallback(None).unwrap(), "proxy");
        assert_eq!(fallback(Some("exit".into())).unwrap(), "exit");
        assert!(fallback(Some("stay".into())).is_err());
    }
}
