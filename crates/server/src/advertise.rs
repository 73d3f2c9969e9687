//! Advertised URLs must be addresses other machines can reach. Listening on `0.0.0.0` is
//! fine, but a member that advertises it tells every peer to connect to itself: seeds/002's
//! first pitfall (machine2 "cannot join to cluster via given peers"). A URL musubi derived
//! from a wildcard listen address gets this machine's routable address instead; one given
//! explicitly as an advertised URL is refused.

use std::net::{IpAddr, UdpSocket};

/// The address this machine uses to reach the rest of the network: the source address of
/// its default route. Connecting a UDP socket sends nothing; it only picks the route.
pub fn routable_ip() -> Option<IpAddr> {
    let probe = |bind: &str, target: &str| -> Option<IpAddr> {
        let socket = UdpSocket::bind(bind).ok()?;
        socket.connect(target).ok()?;
        Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified())
    };
    // TEST-NET addresses: never routed anywhere, but they select the default route.
    probe("0.0.0.0:0", "192.0.2.1:9").or_else(|| probe("[::]:0", "[2001:db8::1]:9"))
}

/// The host part of `url` when it is a wildcard (`0.0.0.0`, `[::]`).
pub fn wildcard_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.split('/').next().unwrap_or(rest);
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host_port,
    };
    matches!(host, "0.0.0.0" | "[::]" | "::").then_some(host)
}

/// `url` with its wildcard host replaced by `ip`.
pub fn with_host(url: &str, ip: IpAddr) -> String {
    match wildcard_host(url) {
        Some(host) => {
            let ip = match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            url.replacen(host, &ip, 1)
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_found_and_replaced() {
        assert_eq!(wildcard_host("http://0.0.0.0:7001"), Some("0.0.0.0"));
        assert_eq!(wildcard_host("http://[::]:2380"), Some("[::]"));
        assert_eq!(wildcard_host("http://10.0.0.1:2380"), None);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(with_host("http://0.0.0.0:7001", ip), "http://10.1.2.3:7001");
        assert_eq!(
            with_host("http://10.0.0.1:7001", ip),
            "http://10.0.0.1:7001"
        );
    }
}
