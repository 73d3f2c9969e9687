//! `-discover NAME`: find the cluster's other agents on the LAN by mDNS, as Serf does.
//! Each agent announces itself as an instance of `_serf_NAME._tcp` (instance = node name,
//! port and address = the gossip advertise address), looks for the others at start and
//! then every minute, and joins those it is not already a member with.

use crate::node::NodeHandle;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use musubi_gossip::membership::MemberStatus;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Serf polls mDNS once a minute.
const POLL_INTERVAL: Duration = Duration::from_secs(60);
/// How long one poll listens for answers.
const LISTEN_FOR: Duration = Duration::from_secs(3);
/// DNS-SD allows 15 bytes of service name; `serf_` plus a cluster name needs more.
const SERVICE_NAME_MAX: u8 = 30;

pub struct Discovery {
    pub cluster: String,
    pub node_name: String,
    pub advertise: SocketAddr,
    pub replay: bool,
    /// `-iface`: as in Serf, mDNS then uses only that interface (else every one).
    pub interface: Option<String>,
}

/// Start announcing this agent and polling for the others. The returned daemon keeps the
/// announcement alive; drop it to stop.
pub fn start(node: NodeHandle, discovery: Discovery) -> Result<ServiceDaemon, String> {
    let service = format!("_serf_{}._tcp.local.", discovery.cluster);
    let daemon = ServiceDaemon::new().map_err(|e| e.to_string())?;
    daemon
        .set_service_name_len_max(SERVICE_NAME_MAX)
        .map_err(|e| e.to_string())?;
    if let Some(interface) = &discovery.interface {
        daemon
            .disable_interface(IfKind::All)
            .and_then(|()| daemon.enable_interface(IfKind::Name(interface.clone())))
            .map_err(|e| e.to_string())?;
    }
    let host = format!("{}.local.", dns_label(&discovery.node_name));
    let announcement = ServiceInfo::new(
        &service,
        &discovery.node_name,
        &host,
        discovery.advertise.ip(),
        discovery.advertise.port(),
        None::<std::collections::HashMap<String, String>>,
    )
    .map_err(|e| e.to_string())?;
    daemon.register(announcement).map_err(|e| e.to_string())?;
    info!("mDNS: announcing {} as {service}", discovery.node_name);
    tokio::spawn(poll(daemon.clone(), node, service, discovery));
    Ok(daemon)
}

async fn poll(daemon: ServiceDaemon, node: NodeHandle, service: String, discovery: Discovery) {
    loop {
        match find_peers(&daemon, &service, discovery.advertise).await {
            Ok(found) => {
                if join_new(&node, found, discovery.replay).await.is_err() {
                    return;
                }
            }
            Err(e) => warn!("mDNS lookup of {service}: {e}"),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The gossip addresses other agents announce, heard within [`LISTEN_FOR`].
async fn find_peers(
    daemon: &ServiceDaemon,
    service: &str,
    ourselves: SocketAddr,
) -> Result<BTreeSet<SocketAddr>, String> {
    let events = daemon.browse(service).map_err(|e| e.to_string())?;
    let mut found = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + LISTEN_FOR;
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, events.recv_async()).await {
        if let ServiceEvent::ServiceResolved(resolved) = event {
            for ip in &resolved.addresses {
                let addr = SocketAddr::new(ip.to_ip_addr(), resolved.port);
                if addr != ourselves {
                    debug!("mDNS: {} at {addr}", resolved.fullname);
                    found.insert(addr);
                }
            }
        }
    }
    // A new browse next time asks the network again instead of waiting on this one's
    // backing-off schedule.
    let _ = daemon.stop_browse(service);
    Ok(found)
}

/// Join the addresses that are not alive members yet. `Err` when the node has stopped.
async fn join_new(
    node: &NodeHandle,
    found: BTreeSet<SocketAddr>,
    replay: bool,
) -> Result<(), crate::node::NodeStopped> {
    let members = node.members().await?;
    let new: Vec<String> = found
        .into_iter()
        .filter(|addr| {
            !members
                .iter()
                .any(|m| m.id.addr == *addr && m.status == MemberStatus::Alive)
        })
        .map(|addr| addr.to_string())
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let outcome = super::join(node, &new, replay).await?;
    match outcome.error() {
        None => info!("mDNS: joined {} of {:?}", outcome.reached, new),
        Some(error) => warn!("mDNS: joining {new:?} failed: {error}"),
    }
    Ok(())
}

/// A node name as a DNS label: letters, digits and `-`, the rest as `-`.
fn dns_label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    if label.is_empty() {
        "musubi".to_string()
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_become_dns_labels() {
        assert_eq!(dns_label("web_1.example"), "web-1-example");
        assert_eq!(dns_label(""), "musubi");
    }
}
