//! Bootstrapping through a discovery URL, as etcd's discovery service works: a v2 keys
//! directory on any etcd-compatible store (a musubi cluster included) holds `_config/size`;
//! each new member registers `<member id> = name=peerURL` under it, and the first `size`
//! to register found the cluster together. The discovery URL is the cluster token, so a
//! URL bootstraps exactly one cluster.

use crate::config::Config;
use crate::identity::Founding;
use musubi_client::{Client, Error, GetOptions, Node, SetOptions, WatchOptions};
use musubi_consensus::member_id;

/// The founding members once `size` members have registered under `url`.
pub async fn founding(url: &str, config: &Config) -> Result<Founding, String> {
    let (endpoint, dir) = split_url(url)?;
    let client = Client::new(vec![endpoint]).map_err(|e| e.to_string())?;
    let size = cluster_size(&client, &dir).await?;
    let me = register(&client, &dir, url, config).await?;
    tracing::info!(%url, size, "registered for discovery; waiting for the other members");
    let registered = wait_for(&client, &dir, size).await?;
    let founders = &registered[..size];
    if !founders.iter().any(|n| n.key.ends_with(&format!("/{me}"))) {
        return Err(format!(
            "discovery: cluster is full: the first {size} members registered before this one"
        ));
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

/// `http://host:port/v2/keys/dir` → (`http://host:port`, `/dir`).
fn split_url(url: &str) -> Result<(String, String), String> {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .ok_or_else(|| format!("discovery URL {url:?} has no path"))?;
    let (endpoint, path) = url.split_at(path_start);
    let dir = path
        .strip_prefix("/v2/keys")
        .filter(|d| d.starts_with('/') && d.len() > 1)
        .ok_or_else(|| format!("discovery URL {url:?} is not a /v2/keys/<dir> URL"))?;
    Ok((endpoint.to_string(), dir.trim_end_matches('/').to_string()))
}

async fn cluster_size(client: &Client, dir: &str) -> Result<usize, String> {
    let key = format!("{dir}/_config/size");
    match client.get(&key, &GetOptions::default()).await {
        Ok(resp) => resp
            .node
            .value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("discovery: bad size {:?} in {key}", resp.node.value)),
        Err(Error::Etcd(e)) if e.code == 100 => Err("discovery: size key not found: set it first, e.g. curl -X PUT <discovery URL>/_config/size -d value=3".to_string()),
        Err(e) => Err(format!("discovery: cannot read {key}: {e}")),
    }
}

/// Registers this member under its ID; registering again with the same value (a restart
/// before the cluster formed) is fine, another value under the same ID is not.
async fn register(
    client: &Client,
    dir: &str,
    url: &str,
    config: &Config,
) -> Result<String, String> {
    let id = format!("{:x}", member_id(&config.initial_advertise_peer_urls, url));
    let value = config
        .initial_advertise_peer_urls
        .iter()
        .map(|u| format!("{}={u}", config.name))
        .collect::<Vec<_>>()
        .join(",");
    let key = format!("{dir}/{id}");
    match client.set(&key, &value, &SetOptions::create(None)).await {
        Ok(_) => Ok(id),
        Err(Error::Etcd(e)) if e.code == 105 => {
            let existing = client
                .get(&key, &GetOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            if existing.node.value == value {
                Ok(id)
            } else {
                Err(format!(
                    "discovery: found duplicate id {id}: registered as {:?}",
                    existing.node.value
                ))
            }
        }
        Err(e) => Err(format!("discovery: cannot register {key}: {e}")),
    }
}

/// The registered members in registration order, once at least `size` have registered.
async fn wait_for(client: &Client, dir: &str, size: usize) -> Result<Vec<Node>, String> {
    let opts = GetOptions {
        recursive: true,
        ..GetOptions::default()
    };
    loop {
        let listing = client.get(dir, &opts).await.map_err(|e| e.to_string())?;
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
        let after = WatchOptions {
            after_index: listing.meta.etcd_index,
            recursive: true,
        };
        client
            .watcher(dir, after)
            .next()
            .await
            .map_err(|e| e.to_string())?;
    }
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn a_discovery_url_splits_into_endpoint_and_directory() {
        assert_eq!(
            split_url("http://10.0.0.1:2379/v2/keys/discovery/abc").unwrap(),
            ("http://10.0.0.1:2379".into(), "/discovery/abc".into())
        );
        assert!(split_url("http://10.0.0.1:2379/other").is_err());
        assert!(split_url("http://10.0.0.1:2379").is_err());
    }
}
