//! What queries look like on the wire: Serf's `messageQuery` (gossiped as a foca custom
//! broadcast), its `messageQueryResponse` (an ack or a response, sent straight back to the
//! origin in a kind-2 datagram) and the relay wrapper that asks another member to forward a
//! response. Field names are Serf's; the bodies are msgpack maps.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Serf's message type bytes (serf/messages.go), kept so the bodies read like Serf's.
pub const QUERY_RESPONSE_TYPE: u8 = 5;
pub const RELAY_TYPE: u8 = 9;

/// Query flags: the origin wants acks; members must not pass the query on.
pub const FLAG_ACK: u32 = 1;
pub const FLAG_NO_BROADCAST: u32 = 2;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryMessage {
    #[serde(rename = "LTime")]
    pub ltime: u64,
    /// Random, so two queries stamped with the same time stay apart.
    #[serde(rename = "ID")]
    pub id: u32,
    /// Where acks and responses go: the origin's advertised address, 4 or 16 bytes.
    #[serde(with = "serde_bytes")]
    pub addr: Vec<u8>,
    pub port: u16,
    pub source_node: String,
    /// Each a type byte then a msgpack body; see [`super::filters`].
    pub filters: Vec<serde_bytes::ByteBuf>,
    pub flags: u32,
    pub relay_factor: u8,
    /// Nanoseconds, as Go's `time.Duration`.
    pub timeout: i64,
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

impl QueryMessage {
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("a query always encodes")
    }

    /// How long Serf's encoding of this query is, type byte included, given ours
    /// (`encoded_len`): Go's codec writes byte slices and strings in msgpack's old raw
    /// format, whose headers differ from the bin and str8 headers ours uses. Checking
    /// `query_size_limit` against this refuses exactly the queries Serf refuses.
    pub fn serf_encoded_len(&self, encoded_len: usize) -> usize {
        let bytes = [self.addr.len(), self.payload.len()]
            .into_iter()
            .chain(self.filters.iter().map(|filter| filter.len()));
        let ours: usize = bytes.clone().map(bin_header_len).sum::<usize>()
            + [self.name.len(), self.source_node.len()]
                .into_iter()
                .map(str_header_len)
                .sum::<usize>();
        let serfs: usize = bytes
            .chain([self.name.len(), self.source_node.len()])
            .map(raw_header_len)
            .sum();
        1 + encoded_len + serfs - ours
    }

    pub fn wants_ack(&self) -> bool {
        self.flags & FLAG_ACK != 0
    }

    pub fn no_broadcast(&self) -> bool {
        self.flags & FLAG_NO_BROADCAST != 0
    }

    /// The origin's address; `None` if the address bytes are neither IPv4 nor IPv6.
    pub fn origin(&self) -> Option<SocketAddr> {
        let ip = match self.addr.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(&self.addr[..]).ok()?),
            16 => IpAddr::from(<[u8; 16]>::try_from(&self.addr[..]).ok()?),
            _ => return None,
        };
        Some(SocketAddr::new(ip, self.port))
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(u64::try_from(self.timeout).unwrap_or(0))
    }
}

/// msgpack's old raw header (fixraw, raw16, raw32), which Go's codec writes.
fn raw_header_len(len: usize) -> usize {
    match len {
        0..32 => 1,
        32..65536 => 3,
        _ => 5,
    }
}

fn bin_header_len(len: usize) -> usize {
    match len {
        0..256 => 2,
        256..65536 => 3,
        _ => 5,
    }
}

fn str_header_len(len: usize) -> usize {
    match len {
        0..32 => 1,
        32..256 => 2,
        256..65536 => 3,
        _ => 5,
    }
}

/// The address bytes a query carries for `addr`.
pub fn address_bytes(addr: SocketAddr) -> Vec<u8> {
    match addr.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    }
}

/// An ack (`Flags` has [`FLAG_ACK`], no payload) or a response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryResponseMessage {
    #[serde(rename = "LTime")]
    pub ltime: u64,
    #[serde(rename = "ID")]
    pub id: u32,
    pub from: String,
    pub flags: u32,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

impl QueryResponseMessage {
    pub fn is_ack(&self) -> bool {
        self.flags & FLAG_ACK != 0
    }

    /// The body of a kind-2 datagram: Serf's type byte, then the map. Its length is what
    /// `query_response_size_limit` limits.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![QUERY_RESPONSE_TYPE];
        out.extend(rmp_serde::to_vec_named(self).expect("a response always encodes"));
        out
    }
}

/// Who a relayed message is for.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RelayHeader {
    dest_addr: String,
    dest_name: String,
}

/// A kind-2 body asking the receiver to forward `inner` (an encoded response) to `dest`.
pub fn encode_relay(dest: SocketAddr, dest_name: &str, inner: &[u8]) -> Vec<u8> {
    let header = RelayHeader {
        dest_addr: dest.to_string(),
        dest_name: dest_name.to_string(),
    };
    let mut out = vec![RELAY_TYPE];
    out.extend(rmp_serde::to_vec_named(&header).expect("a relay header always encodes"));
    out.extend_from_slice(inner);
    out
}

/// A kind-2 datagram's body, decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    Response(QueryResponseMessage),
    Relay { dest: SocketAddr, inner: &'a [u8] },
}

#[derive(Debug, thiserror::Error)]
pub enum MalformedReply {
    #[error("empty query reply")]
    Empty,
    #[error("unknown query reply type {0}")]
    UnknownType(u8),
    #[error("malformed query reply: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("relay to a bad address {0:?}")]
    BadRelayAddress(String),
}

pub fn decode_reply(body: &[u8]) -> Result<Reply<'_>, MalformedReply> {
    let (&kind, rest) = body.split_first().ok_or(MalformedReply::Empty)?;
    match kind {
        QUERY_RESPONSE_TYPE => Ok(Reply::Response(rmp_serde::from_slice(rest)?)),
        RELAY_TYPE => {
            let mut decoder = rmp_serde::Deserializer::new(std::io::Cursor::new(rest));
            let header = RelayHeader::deserialize(&mut decoder)?;
            let used = decoder.position() as usize;
            let dest = header
                .dest_addr
                .parse()
                .map_err(|_| MalformedReply::BadRelayAddress(header.dest_addr.clone()))?;
            Ok(Reply::Relay {
                dest,
                inner: &rest[used..],
            })
        }
        other => Err(MalformedReply::UnknownType(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> QueryMessage {
        QueryMessage {
            ltime: 9,
            id: 77,
            addr: vec![10, 0, 0, 1],
            port: 7946,
            source_node: "origin".into(),
            filters: vec![],
            flags: FLAG_ACK,
            relay_factor: 2,
            timeout: 1_500_000_000,
            name: "uptime".into(),
            payload: b"x".to_vec(),
        }
    }

    #[test]
    fn a_query_round_trips_with_serfs_field_names() {
        let encoded = query().encode();
        let decoded: QueryMessage = rmp_serde::from_slice(&encoded).unwrap();
        assert_eq!(decoded, query());
        let map: std::collections::BTreeMap<String, serde::de::IgnoredAny> =
            rmp_serde::from_slice(&encoded).unwrap();
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "Addr",
                "Filters",
                "Flags",
                "ID",
                "LTime",
                "Name",
                "Payload",
                "Port",
                "RelayFactor",
                "SourceNode",
                "Timeout"
            ]
        );
        assert_eq!(decoded.origin(), Some("10.0.0.1:7946".parse().unwrap()));
        assert_eq!(decoded.timeout(), Duration::from_millis(1500));
        assert!(decoded.wants_ack() && !decoded.no_broadcast());
    }

    #[test]
    fn sizes_are_counted_as_serf_encodes_them() {
        // serf 0.8.2 refuses `serf query q PAYLOAD` from a node named `bnd` past 914 bytes
        let at_limit = |len: usize| {
            let query = QueryMessage {
                source_node: "bnd".into(),
                name: "q".into(),
                payload: vec![b'x'; len],
                flags: FLAG_ACK,
                timeout: 3_200_000_000,
                ltime: 1,
                id: u32::MAX,
                ..query()
            };
            query.serf_encoded_len(query.encode().len())
        };
        assert_eq!(at_limit(914), 1024);
        assert_eq!(at_limit(915), 1025);
    }

    #[test]
    fn responses_and_relays_decode_from_their_bodies() {
        let ack = QueryResponseMessage {
            ltime: 9,
            id: 77,
            from: "b".into(),
            flags: FLAG_ACK,
            payload: vec![],
        };
        let encoded = ack.encode();
        assert_eq!(decode_reply(&encoded).unwrap(), Reply::Response(ack));
        let dest: SocketAddr = "[::1]:7946".parse().unwrap();
        let relay = encode_relay(dest, "origin", &encoded);
        assert_eq!(
            decode_reply(&relay).unwrap(),
            Reply::Relay {
                dest,
                inner: &encoded
            }
        );
    }

    #[test]
    fn garbage_replies_are_errors() {
        assert!(matches!(decode_reply(b""), Err(MalformedReply::Empty)));
        assert!(matches!(
            decode_reply(b"\x07"),
            Err(MalformedReply::UnknownType(7))
        ));
        assert!(decode_reply(b"\x05\xc1").is_err());
        let bad = encode_relay("1.2.3.4:5".parse().unwrap(), "x", b"");
        let tampered = String::from_utf8_lossy(&bad).replace("1.2.3.4:5", "nowhere!!");
        assert!(decode_reply(tampered.as_bytes()).is_err());
        assert_eq!(query().origin().map(|_| ()), Some(()));
        let mut odd = query();
        odd.addr = vec![1, 2, 3];
        assert_eq!(odd.origin(), None);
    }
}
