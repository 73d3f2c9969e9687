//! What travels in one gossip datagram: a kind byte, then either a foca packet or one of
//! the agent's own messages (a leave intent, a query's ack or response, a key catch-up). foca owns the membership protocol; the agent adds only what
//! foca has no word for (a member saying it leaves, as opposed to failing).

const KIND_FOCA: u8 = 0;
const KIND_LEAVE_INTENT: u8 = 1;
const KIND_QUERY_REPLY: u8 = 2;
const KIND_KEY_CATCH_UP: u8 = 5;

#[derive(Debug, PartialEq, Eq)]
pub enum Datagram<'a> {
    Foca(&'a [u8]),
    /// The named member is leaving (it said so itself) or was force-left.
    LeaveIntent(&'a str),
    /// A query's ack or response, or a request to relay one ([`crate::query::message`]).
    QueryReply(&'a [u8]),
    /// Another member's key ring, sent because we sealed with a key it retired (keys.rs).
    KeyCatchUp(&'a [u8]),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("empty datagram")]
    Empty,
    #[error("unknown datagram kind {0}")]
    UnknownKind(u8),
    #[error("leave intent names no valid node")]
    BadNodeName,
}

pub fn decode(datagram: &[u8]) -> Result<Datagram<'_>, WireError> {
    let (&kind, body) = datagram.split_first().ok_or(WireError::Empty)?;
    match kind {
        KIND_FOCA => Ok(Datagram::Foca(body)),
        KIND_LEAVE_INTENT => std::str::from_utf8(body)
            .ok()
            .filter(|name| !name.is_empty())
            .map(Datagram::LeaveIntent)
            .ok_or(WireError::BadNodeName),
        KIND_KEY_CATCH_UP => Ok(Datagram::KeyCatchUp(body)),
        KIND_QUERY_REPLY => Ok(Datagram::QueryReply(body)),
        other => Err(WireError::UnknownKind(other)),
    }
}

pub fn foca_datagram(packet: &[u8]) -> Vec<u8> {
    framed(KIND_FOCA, packet)
}

pub fn leave_intent_datagram(node: &str) -> Vec<u8> {
    framed(KIND_LEAVE_INTENT, node.as_bytes())
}

pub fn key_catch_up_datagram(ring: &[u8]) -> Vec<u8> {
    framed(KIND_KEY_CATCH_UP, ring)
}

pub fn query_reply_datagram(body: &[u8]) -> Vec<u8> {
    framed(KIND_QUERY_REPLY, body)
}

/// A kind (or type) byte, then the body.
pub fn framed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(1 + body.len());
    datagram.push(kind);
    datagram.extend_from_slice(body);
    datagram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip() {
        assert_eq!(
            decode(&foca_datagram(b"\x01\x02")),
            Ok(Datagram::Foca(b"\x01\x02"))
        );
        assert_eq!(
            decode(&leave_intent_datagram("node-1")),
            Ok(Datagram::LeaveIntent("node-1"))
        );
        assert_eq!(
            decode(&query_reply_datagram(b"\x05x")),
            Ok(Datagram::QueryReply(b"\x05x"))
        );
        assert_eq!(
            decode(&key_catch_up_datagram(b"\x10k")),
            Ok(Datagram::KeyCatchUp(b"\x10k"))
        );
    }

    #[test]
    fn malformed_datagrams_are_rejected() {
        assert_eq!(decode(b""), Err(WireError::Empty));
        assert_eq!(decode(b"\x07abc"), Err(WireError::UnknownKind(7)));
        assert_eq!(decode(b"\x01"), Err(WireError::BadNodeName));
        assert_eq!(decode(b"\x01\xff\xfe"), Err(WireError::BadNodeName));
    }
}
