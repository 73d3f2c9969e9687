//! Turning the addresses users type (`-join`, `serf join`, `-advertise`) into sockets.
//! Serf accepts `host`, `host:port`, `ip`, `ip:port` and `[ipv6]:port`; the port defaults
//! to the gossip port 7946.

use std::io;
use std::net::{IpAddr, SocketAddr};

pub const DEFAULT_GOSSIP_PORT: u16 = 7946;

/// Resolve `text` to the first address it names.
pub async fn resolve_peer(text: &str) -> io::Result<SocketAddr> {
    let mut candidates = match split_host_port(text) {
        (host, Some(port)) => tokio::net::lookup_host((host, port)).await?,
        (host, None) => tokio::net::lookup_host((host, DEFAULT_GOSSIP_PORT)).await?,
    };
    candidates
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{text} names no address")))
}

/// `ip` or `ip:port` (no name lookup), with the port defaulting to `default_port`.
pub fn parse_ip_port(text: &str, default_port: u16) -> Option<SocketAddr> {
    let (host, port) = split_host_port(text);
    Some(SocketAddr::new(
        host.parse::<IpAddr>().ok()?,
        port.unwrap_or(default_port),
    ))
}

/// Split off a trailing `:port`, minding IPv6's colons: `::1` has no port, `[::1]:80` has.
fn split_host_port(text: &str) -> (&str, Option<u16>) {
    if let Some(rest) = text.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (text, None),
        },
        _ => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_default_to_the_gossip_port() {
        assert_eq!(
            parse_ip_port("10.0.0.1", 7946),
            Some("10.0.0.1:7946".parse().unwrap())
        );
        assert_eq!(
            parse_ip_port("10.0.0.1:9", 7946),
            Some("10.0.0.1:9".parse().unwrap())
        );
        assert_eq!(
            parse_ip_port("::1", 7946),
            Some("[::1]:7946".parse().unwrap())
        );
        assert_eq!(
            parse_ip_port("[::1]:9", 7946),
            Some("[::1]:9".parse().unwrap())
        );
        assert_eq!(parse_ip_port("[::1]", 5), Some("[::1]:5".parse().unwrap()));
        assert_eq!(parse_ip_port("example.com", 7946), None);
    }

    #[tokio::test]
    async fn peers_resolve_with_or_without_a_port() {
        assert_eq!(
            resolve_peer("127.0.0.1").await.unwrap(),
            "127.0.0.1:7946".parse().unwrap()
        );
        assert_eq!(resolve_peer("localhost:8000").await.unwrap().port(), 8000);
    }
}
