//! What travels in one gossip datagram: a kind byte, then either a foca packet or one of
//! the agent's own messages. foca owns the membership protocol; the agent adds only what
//! foca has no word for (a member saying it leaves, as opposed to failing; a query's ack
//! or response; coordinate pings, since foca does not expose its probe timings; user
//! events and queries too big to ride on foca's packets). The same datagrams also arrive whole over
//! the stream transport.

const KIND_FOCA: u8 = 0;
const KIND_LEAVE_INTENT: u8 = 1;
const KIND_QUERY_REPLY: u8 = 2;
const KIND_COORDINATE_PING: u8 = 3;
const KIND_COORDINATE_PONG: u8 = 4;
const KIND_DIRECT_BROADCAST: u8 = 8;

#[derive(Debug, PartialEq, Eq)]
pub enum Datagram<'a> {
    Foca(&'a [u8]),
    /// The named member is leaving (it said so itself) or was force-left.
    LeaveIntent(&'a str),
    /// A query's ack or response, or a request to relay one ([`crate::query::message`]).
    QueryReply(&'a [u8]),
    /// A `coordinate::CoordinateMessage`: answer it with a pong.
    CoordinatePing(&'a [u8]),
    /// A `coordinate::CoordinateMessage` answering one of our pings.
    CoordinatePong(&'a [u8]),
    /// A custom broadcast (`broadcasts`: a user event or a query) sent straight from its
    /// origin, over the stream transport since it is too big for gossip; delivered here,
    /// not passed on.
    DirectBroadcast(&'a [u8]),
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
        KIND_QUERY_REPLY => Ok(Datagram::QueryReply(body)),
        KIND_COORDINATE_PING => Ok(Datagram::CoordinatePing(body)),
        KIND_COORDINATE_PONG => Ok(Datagram::CoordinatePong(body)),
        KIND_DIRECT_BROADCAST => Ok(Datagram::DirectBroadcast(body)),
        other => Err(WireError::UnknownKind(other)),
    }
}

pub fn foca_datagram(packet: &[u8]) -> Vec<u8> {
    framed(KIND_FOCA, packet)
}

pub fn leave_intent_datagram(node: &str) -> Vec<u8> {
    framed(KIND_LEAVE_INTENT, node.as_bytes())
}

pub fn query_reply_datagram(body: &[u8]) -> Vec<u8> {
    framed(KIND_QUERY_REPLY, body)
}

pub fn coordinate_ping_datagram(body: &[u8]) -> Vec<u8> {
    framed(KIND_COORDINATE_PING, body)
}

pub fn coordinate_pong_datagram(body: &[u8]) -> Vec<u8> {
    framed(KIND_COORDINATE_PONG, body)
}

pub fn direct_broadcast_datagram(broadcast: &[u8]) -> Vec<u8> {
    framed(KIND_DIRECT_BROADCAST, broadcast)
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
            decode(&coordinate_ping_datagram(b"p")),
            Ok(Datagram::CoordinatePing(b"p"))
        );
        assert_eq!(
            decode(&coordinate_pong_datagram(b"q")),
            Ok(Datagram::CoordinatePong(b"q"))
        );
        assert_eq!(
            decode(&direct_broadcast_datagram(b"\x03e")),
            Ok(Datagram::DirectBroadcast(b"\x03e"))
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
