//! A `members` reply as Serf's CLI prints it: the JSON document of `serf members -format
//! json` (also the agent's `-http-addr` `/v1/members`) and the address column.

use crate::codec::MemberWire;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `{"members": [...]}`, `null` when none match (Serf's document, field for field).
pub fn json_document(members: &[MemberWire]) -> serde_json::Value {
    if members.is_empty() {
        return json!({ "members": null });
    }
    let list: Vec<serde_json::Value> = members
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "addr": address(m),
                "port": m.port,
                "tags": m.tags,
                "status": m.status,
                "protocol": {
                    "max": m.delegate_max,
                    "min": m.delegate_min,
                    "version": m.delegate_cur,
                },
            })
        })
        .collect();
    json!({ "members": list })
}

/// `ip:port`, `[v6]:port`; an IPv4 address sent as 16 bytes (Serf 0.6) prints as IPv4.
pub fn address(member: &MemberWire) -> String {
    let ip = match member.addr.len() {
        4 => IpAddr::V4(Ipv4Addr::new(
            member.addr[0],
            member.addr[1],
            member.addr[2],
            member.addr[3],
        )),
        16 => {
            let octets: [u8; 16] = member.addr.as_slice().try_into().expect("16 bytes");
            let v6 = Ipv6Addr::from(octets);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return format!("<nil>:{}", member.port),
    };
    SocketAddr::new(ip, member.port).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(addr: Vec<u8>) -> MemberWire {
        MemberWire {
            addr,
            delegate_cur: 5,
            delegate_max: 5,
            delegate_min: 2,
            name: "a".into(),
            port: 7946,
            protocol_cur: 2,
            protocol_max: 5,
            protocol_min: 1,
            status: "alive".into(),
            tags: [("role".to_string(), "web".to_string())].into(),
        }
    }

    #[test]
    fn addresses_print_as_go_prints_them() {
        assert_eq!(address(&member(vec![10, 0, 0, 1])), "10.0.0.1:7946");
        let mut mapped = vec![0; 10];
        mapped.extend([0xff, 0xff, 10, 0, 0, 1]);
        assert_eq!(address(&member(mapped)), "10.0.0.1:7946");
        let mut v6 = vec![0; 15];
        v6.push(1);
        assert_eq!(address(&member(v6)), "[::1]:7946");
        assert_eq!(address(&member(vec![])), "<nil>:7946");
    }

    #[test]
    fn the_document_is_serfs_and_null_when_empty() {
        assert_eq!(json_document(&[]), json!({ "members": null }));
        assert_eq!(
            json_document(&[member(vec![10, 0, 0, 1])]),
            json!({ "members": [{
                "name": "a",
                "addr": "10.0.0.1:7946",
                "port": 7946,
                "tags": { "role": "web" },
                "status": "alive",
                "protocol": { "max": 5, "min": 2, "version": 5 },
            }] })
        );
    }
}
