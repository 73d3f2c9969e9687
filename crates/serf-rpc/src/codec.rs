//! Serf's RPC wire format: back-to-back msgpack objects on a TCP stream, no framing.
//! Requests are a header `{Command, Seq}` and an optional body; responses a header
//! `{Error, Seq}` and an optional body. Structs are maps keyed by Go field names, written
//! in the alphabetical order Serf's own agent uses (checked byte for byte in the tests).
//! The types serve both ends: the agent's server and `musubi`'s own client ([`crate::client`]).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Cursor;
use tokio::io::{AsyncRead, AsyncReadExt};

/// A request (header plus body) larger than this is not a Serf client talking.
const MAX_PENDING_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RequestHeader {
    pub command: String,
    pub seq: u64,
}

/// A header as Serf's agent reads it: decoded over the previous one, so a key left out
/// keeps its previous value. This is what a body the agent left unread (after
/// `Authentication required`) turns into: the previous command again, as in Serf.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HeaderFields {
    pub command: Option<String>,
    pub seq: Option<u64>,
}

impl HeaderFields {
    pub fn over(self, previous: &RequestHeader) -> RequestHeader {
        RequestHeader {
            command: self.command.unwrap_or_else(|| previous.command.clone()),
            seq: self.seq.unwrap_or(previous.seq),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResponseHeader<'a> {
    pub error: &'a str,
    pub seq: u64,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HandshakeRequest {
    pub version: i32,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AuthRequest {
    pub auth_key: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JoinRequest {
    pub existing: Vec<String>,
    /// Replay past user events to the joiner (`serf join -replay`); otherwise they are
    /// ignored.
    pub replay: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinResponse {
    pub num: i32,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MembersFilter {
    pub tags: BTreeMap<String, String>,
    pub status: String,
    pub name: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ForceLeaveRequest {
    pub node: String,
    /// Serf 0.8.4's `-prune`: the member is dropped from every member list at once.
    pub prune: bool,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagsRequest {
    #[serde(deserialize_with = "nil_as_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(deserialize_with = "nil_as_empty")]
    pub delete_tags: Vec<String>,
}

/// Go sends an empty map or slice as msgpack nil (`serf tags -delete k` alone), and loose
/// clients a missing payload as nil. Shared with the client's reply shapes ([`crate::client`]).
pub(crate) fn nil_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EventRequest {
    pub name: String,
    /// nil when `serf event` is given no payload.
    #[serde(deserialize_with = "nil_as_empty")]
    pub payload: serde_bytes::ByteBuf,
    pub coalesce: bool,
}

/// `install-key`, `use-key` and `remove-key`: the key in base64, as the CLI was given it.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct KeyringRequest {
    pub key: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StopRequest {
    pub stop: u64,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MonitorRequest {
    pub log_level: String,
}

/// One line of a `monitor` stream.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogRecord<'a> {
    pub log: &'a str,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct QueryRequest {
    #[serde(deserialize_with = "nil_as_empty")]
    pub filter_nodes: Vec<String>,
    #[serde(deserialize_with = "nil_as_empty")]
    pub filter_tags: BTreeMap<String, String>,
    pub request_ack: bool,
    pub relay_factor: u8,
    /// Go's `time.Duration` in nanoseconds; 0 asks for the default.
    pub timeout: i64,
    pub name: String,
    /// nil and empty differ: only a nil payload may go with `_serf_ping`.
    pub payload: Option<serde_bytes::ByteBuf>,
}

/// One record of a query's stream: `ack`, `response` or `done`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryRecordWire {
    pub from: String,
    /// nil for acks and `done`.
    pub payload: Option<serde_bytes::ByteBuf>,
    #[serde(rename = "Type")]
    pub kind: &'static str,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CoordinateRequest {
    pub node: String,
}

/// `get-coordinate`'s reply: for a node without a coordinate, zeros, a nil `Vec` and
/// `Ok: false`, as Serf sends them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CoordinateResponse {
    pub coord: CoordinateWire,
    pub ok: bool,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CoordinateWire {
    pub adjustment: f64,
    pub error: f64,
    pub height: f64,
    pub vec: Option<Vec<f64>>,
}

impl From<Option<CoordinateWire>> for CoordinateResponse {
    fn from(coordinate: Option<CoordinateWire>) -> Self {
        CoordinateResponse {
            ok: coordinate.is_some(),
            coord: coordinate.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StreamRequest {
    /// Event filters, as `-event-handler` takes them: `member-join,user:deploy`, `*`.
    #[serde(rename = "Type")]
    pub filter: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RespondRequest {
    #[serde(rename = "ID")]
    pub id: u64,
    #[serde(deserialize_with = "nil_as_empty")]
    pub payload: serde_bytes::ByteBuf,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemberEventRecord {
    pub event: &'static str,
    pub members: Vec<MemberWire>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserEventRecord {
    pub coalesce: bool,
    pub event: &'static str,
    #[serde(rename = "LTime")]
    pub ltime: u64,
    pub name: String,
    pub payload: serde_bytes::ByteBuf,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryEventRecord {
    pub event: &'static str,
    /// This connection's handle for `respond`.
    #[serde(rename = "ID")]
    pub id: u64,
    #[serde(rename = "LTime")]
    pub ltime: u64,
    pub name: String,
    pub payload: serde_bytes::ByteBuf,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MembersResponse {
    /// Serf sends nil when no member matches.
    #[serde(deserialize_with = "nil_as_empty")]
    pub members: Vec<MemberWire>,
}

/// One member as Serf's `members` reply carries it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemberWire {
    /// 4 bytes for IPv4, 16 for IPv6, as Serf 0.9's agent sends them.
    #[serde(with = "serde_bytes")]
    pub addr: Vec<u8>,
    pub delegate_cur: u8,
    pub delegate_max: u8,
    pub delegate_min: u8,
    pub name: String,
    pub port: u16,
    pub protocol_cur: u8,
    pub protocol_max: u8,
    pub protocol_min: u8,
    pub status: String,
    #[serde(deserialize_with = "nil_as_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Encode a response: header, then the body if the command has one.
pub fn encode_response<B: Serialize>(seq: u64, error: &str, body: Option<&B>) -> Vec<u8> {
    let mut out = to_map_bytes(&ResponseHeader { error, seq });
    if let Some(body) = body {
        out.extend(to_map_bytes(body));
    }
    out
}

fn to_map_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("our response types always encode")
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed request: {0}")]
    Malformed(rmp_serde::decode::Error),
    #[error("request larger than {MAX_PENDING_BYTES} bytes")]
    TooLarge,
    #[error("connection closed in the middle of a request")]
    Truncated,
    #[error("reading the connection: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one msgpack object at a time from an unframed stream.
pub struct RequestReader<R> {
    reader: R,
    pending: Vec<u8>,
}

impl<R: AsyncRead + Unpin> RequestReader<R> {
    pub fn new(reader: R) -> Self {
        RequestReader {
            reader,
            pending: Vec::new(),
        }
    }

    /// The next object, or `None` when the peer closed between objects.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, DecodeError> {
        loop {
            if !self.pending.is_empty() {
                if let Some((value, used)) = decode_prefix(&self.pending)? {
                    self.pending.drain(..used);
                    return Ok(Some(value));
                }
                if self.pending.len() > MAX_PENDING_BYTES {
                    return Err(DecodeError::TooLarge);
                }
            }
            let mut chunk = [0u8; 4096];
            let read = self.reader.read(&mut chunk).await?;
            if read == 0 {
                return if self.pending.is_empty() {
                    Ok(None)
                } else {
                    Err(DecodeError::Truncated)
                };
            }
            self.pending.extend_from_slice(&chunk[..read]);
        }
    }
}

/// Decode one object from the front of `bytes`: `Ok(None)` if it is not all there yet.
fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<(T, usize)>, DecodeError> {
    use rmp_serde::decode::Error;
    let mut decoder = rmp_serde::Deserializer::new(Cursor::new(bytes));
    match T::deserialize(&mut decoder) {
        Ok(value) => Ok(Some((value, decoder.position() as usize))),
        Err(Error::InvalidMarkerRead(e) | Error::InvalidDataRead(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(None)
        }
        Err(e) => Err(DecodeError::Malformed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    // The expected bytes below are replies captured from Debian's serf 0.9.4 agent.

    #[test]
    fn a_successful_header_matches_serf() {
        let bytes = encode_response::<()>(0, "", None);
        assert_eq!(hex(&bytes), "82a54572726f72a0a353657100");
    }

    #[test]
    fn an_error_header_matches_serf() {
        let bytes = encode_response::<()>(3, "Unsupported command", None);
        assert_eq!(
            hex(&bytes),
            "82a54572726f72b3556e737570706f7274656420636f6d6d616e64a353657103"
        );
    }

    #[test]
    fn a_members_reply_matches_serf() {
        let member = MemberWire {
            addr: vec![127, 0, 0, 1],
            delegate_cur: 5,
            delegate_max: 5,
            delegate_min: 2,
            name: "ref1".into(),
            port: 17946,
            protocol_cur: 2,
            protocol_max: 5,
            protocol_min: 1,
            status: "alive".into(),
            tags: BTreeMap::from([("role".to_string(), "web".to_string())]),
        };
        let bytes = encode_response(
            1,
            "",
            Some(&MembersResponse {
                members: vec![member],
            }),
        );
        assert_eq!(
            hex(&bytes),
            concat!(
                "82a54572726f72a0a35365710181a74d656d62657273918ba441646472c4047f000001",
                "ab44656c656761746543757205ab44656c65676174654d617805ab44656c65676174654d696e02",
                "a44e616d65a472656631a4506f7274cd461aab50726f746f636f6c43757202",
                "ab50726f746f636f6c4d617805ab50726f746f636f6c4d696e01",
                "a6537461747573a5616c697665a45461677381a4726f6c65a3776562"
            )
        );
    }

    #[test]
    fn a_failed_join_reply_matches_serf() {
        let error = "1 error occurred:\n\t* Failed to join 127.0.0.1: dial tcp 127.0.0.1:1: \
                     connect: connection refused\n\n";
        let bytes = encode_response(2, error, Some(&JoinResponse { num: 0 }));
        assert_eq!(
            hex(&bytes),
            concat!(
                "82a54572726f72d96231206572726f72206f636375727265643a0a092a204661696c656420746f",
                "206a6f696e203132372e302e302e313a206469616c20746370203132372e302e302e313a313a20",
                "636f6e6e6563743a20636f6e6e656374696f6e20726566757365640a0a",
                "a35365710281a34e756d00"
            )
        );
    }

    #[test]
    fn a_missing_coordinate_matches_serf() {
        let bytes = encode_response(1, "", Some(&CoordinateResponse::from(None)));
        assert_eq!(
            hex(&bytes),
            concat!(
                "82a54572726f72a0a35365710182a5436f6f726484aa41646a7573746d656e74cb0000000000000000",
                "a54572726f72cb0000000000000000a6486569676874cb0000000000000000a3566563c0a24f6bc2"
            )
        );
    }

    #[test]
    fn a_known_coordinate_matches_serf() {
        // the floats of a coordinate captured from serf 0.9.4, by their bits
        let f = f64::from_bits;
        let coordinate = CoordinateWire {
            adjustment: f(0x3ef6af7a97e7b01d),
            error: f(0x3fec4095fb1a8279),
            height: f(0x3ee4f8b588e368f1),
            vec: [
                0x3e843ed69fad2934,
                0xbea30652624381e4,
                0xbe909cc5b6ea20f3,
                0xbe984593c04cc1be,
                0x3e92a81adb6d7a7c,
                0xbe72ed6364a08f23,
                0xbe9a1a7b5f78fa96,
                0x3e8e4b918bdf9b83,
            ]
            .map(f)
            .to_vec()
            .into(),
        };
        let bytes = encode_response(1, "", Some(&CoordinateResponse::from(Some(coordinate))));
        assert_eq!(
            hex(&bytes),
            concat!(
                "82a54572726f72a0a35365710182a5436f6f726484aa41646a7573746d656e74cb3ef6af7a97e7b01d",
                "a54572726f72cb3fec4095fb1a8279a6486569676874cb3ee4f8b588e368f1a356656398",
                "cb3e843ed69fad2934cbbea30652624381e4cbbe909cc5b6ea20f3cbbe984593c04cc1be",
                "cb3e92a81adb6d7a7ccbbe72ed6364a08f23cbbe9a1a7b5f78fa96cb3e8e4b918bdf9b83",
                "a24f6bc3"
            )
        );
    }

    #[tokio::test]
    async fn back_to_back_objects_split_anywhere_are_read_one_by_one() {
        // handshake header + body, then a members header, as the Go client writes them
        let stream = unhex(concat!(
            "82a7436f6d6d616e64a968616e647368616b65a3536571",
            "01",
            "81a756657273696f6e01",
            "82a7436f6d6d616e64a76d656d62657273a353657102"
        ));
        for split in 0..stream.len() {
            let (first, second) = stream.split_at(split);
            let reader = tokio_test_reader(first, second);
            let mut requests = RequestReader::new(reader);
            let header: RequestHeader = requests.next().await.unwrap().unwrap();
            assert_eq!(header.command, "handshake");
            let body: HandshakeRequest = requests.next().await.unwrap().unwrap();
            assert_eq!(body.version, 1);
            let header: RequestHeader = requests.next().await.unwrap().unwrap();
            assert_eq!((header.command.as_str(), header.seq), ("members", 2));
            assert!(requests.next::<RequestHeader>().await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn garbage_is_malformed_not_a_hang() {
        let mut requests = RequestReader::new(&b"\xc1GET / HTTP/1.1\r\n\r\n"[..]);
        let result = requests.next::<RequestHeader>().await;
        assert!(
            matches!(result, Err(DecodeError::Malformed(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_request_cut_short_is_truncated() {
        let cut_short = unhex("82a7436f6d6d");
        let mut requests = RequestReader::new(&cut_short[..]);
        let result = requests.next::<RequestHeader>().await;
        assert!(matches!(result, Err(DecodeError::Truncated)), "{result:?}");
    }

    #[test]
    fn query_requests_tell_a_nil_payload_from_an_empty_one() {
        // {"Name": "_serf_ping", "Payload": nil, "Timeout": 1000000000 as uint32}
        let nil: QueryRequest = rmp_serde::from_slice(&unhex(
            "83a44e616d65aa5f736572665f70696e67a75061796c6f6164c0a754696d656f7574ce3b9aca00",
        ))
        .unwrap();
        assert_eq!(
            (nil.name.as_str(), nil.payload, nil.timeout),
            ("_serf_ping", None, 1_000_000_000)
        );
        // {"Payload": bin ""}, and serfclient-py's str payloads
        let empty: QueryRequest = rmp_serde::from_slice(&unhex("81a75061796c6f6164c400")).unwrap();
        assert_eq!(empty.payload.map(|p| p.into_vec()), Some(vec![]));
        let text: QueryRequest = rmp_serde::from_slice(&unhex("81a75061796c6f6164a178")).unwrap();
        assert_eq!(text.payload.map(|p| p.into_vec()), Some(b"x".to_vec()));
    }

    #[test]
    fn query_records_carry_nil_payloads_for_acks() {
        let ack = QueryRecordWire {
            from: "a".into(),
            payload: None,
            kind: "ack",
        };
        // {"From": "a", "Payload": nil, "Type": "ack"}
        assert_eq!(
            hex(&rmp_serde::to_vec_named(&ack).unwrap()),
            "83a446726f6da161a75061796c6f6164c0a454797065a361636b"
        );
    }

    #[test]
    fn loose_clients_may_leave_out_body_keys() {
        // serfclient-py sends partial maps: {"Name": "web.*"} alone
        let filter: MembersFilter =
            rmp_serde::from_slice(&unhex("81a44e616d65a57765622e2a")).unwrap();
        assert_eq!(filter.name, "web.*");
        assert!(filter.tags.is_empty() && filter.status.is_empty());
    }

    #[test]
    fn a_body_read_as_a_header_repeats_the_previous_one() {
        let previous = RequestHeader {
            command: "join".to_string(),
            seq: 2,
        };
        // {"Existing": [], "Replay": false}: a join body, no header keys.
        let body: HeaderFields =
            rmp_serde::from_slice(&unhex("82a84578697374696e6790a65265706c6179c2")).unwrap();
        assert_eq!(body.over(&previous), previous);
        let next: HeaderFields = rmp_serde::from_slice(&unhex("81a353657103")).unwrap();
        assert_eq!(
            next.over(&previous),
            RequestHeader {
                command: "join".to_string(),
                seq: 3
            }
        );
    }

    #[test]
    fn an_event_payload_may_be_a_string_bytes_or_nil() {
        // serfclient-py packs a Python str payload as msgpack str; Go's client sends bin,
        // or nil when there is no payload. Bytes here are serfclient's own requests.
        let with_str = "83a44e616d65a66465706c6f79a75061796c6f6164a3763132a8436f616c65736365c2";
        let with_bin = "83a44e616d65a66465706c6f79a75061796c6f6164c403763132a8436f616c65736365c2";
        for body in [with_str, with_bin] {
            let event: EventRequest = rmp_serde::from_slice(&unhex(body)).unwrap();
            assert_eq!(
                (event.name.as_str(), &event.payload[..]),
                ("deploy", &b"v12"[..])
            );
            assert!(!event.coalesce);
        }
        let with_nil = "83a44e616d65a66465706c6f79a75061796c6f6164c0a8436f616c65736365c3";
        let event: EventRequest = rmp_serde::from_slice(&unhex(with_nil)).unwrap();
        assert!(event.payload.is_empty() && event.coalesce);
    }

    #[test]
    fn a_join_may_leave_out_replay() {
        let join: JoinRequest = rmp_serde::from_slice(&unhex(
            "81a84578697374696e6791ae3132372e302e302e313a37393436",
        ))
        .unwrap();
        assert_eq!(join.existing, ["127.0.0.1:7946"]);
        assert!(!join.replay);
    }

    /// A reader that hands out its bytes in two reads, to exercise partial objects.
    fn tokio_test_reader<'a>(first: &'a [u8], second: &'a [u8]) -> impl AsyncRead + Unpin + 'a {
        first.chain(second)
    }
}
