//! Request and reply bodies of the streaming, key and introspection commands, as Serf's Go
//! client writes and reads them (maps keyed by Go field names; `[]byte` as msgpack bin).
//! The simpler commands use `rpc::codec`'s shapes directly.

use crate::rpc::codec::MemberWire;
use serde::{Deserialize, Deserializer, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;

/// `query`: who should answer, how long to wait (nanoseconds; 0 = the agent's default).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryRequest {
    pub filter_nodes: Vec<String>,
    pub filter_tags: BTreeMap<String, String>,
    pub request_ack: bool,
    pub relay_factor: u8,
    pub timeout: i64,
    pub name: String,
    pub payload: Option<ByteBuf>,
}

/// One `query` stream record: `ack`, `response` or the closing `done`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct QueryRecord {
    #[serde(rename = "Type")]
    pub kind: String,
    pub from: String,
    #[serde(deserialize_with = "nil_as_empty_bytes")]
    pub payload: ByteBuf,
}

/// `stream`: which events to receive, in event-handler filter syntax (`*`, `user:deploy`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamRequest {
    #[serde(rename = "Type")]
    pub filter: String,
}

/// One `stream` record: a member event (`Members`), a user event (`LTime`, `Name`,
/// `Payload`, `Coalesce`) or a query (`ID` too). Absent keys stay `None`; a payload sent as
/// nil is `Some(None)`, which Serf's monitor shows apart from an empty one.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EventRecord {
    pub event: String,
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(rename = "LTime", skip_serializing_if = "Option::is_none")]
    pub ltime: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub payload: Option<Option<ByteBuf>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coalesce: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberWire>>,
}

/// `monitor`: the lowest log level to send (`DEBUG`, `INFO`, ...).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MonitorRequest {
    pub log_level: String,
}

/// One `monitor` record: a log line without its newline.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogRecord {
    pub log: String,
}

/// `install-key`, `use-key`, `remove-key`: a base64 key.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyRequest {
    pub key: String,
}

/// The key commands' reply: per-node failure messages and counts; `list-keys` adds how
/// many nodes hold each key.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct KeyResponse {
    #[serde(deserialize_with = "nil_as_empty")]
    pub messages: BTreeMap<String, String>,
    #[serde(deserialize_with = "nil_as_empty")]
    pub keys: BTreeMap<String, i64>,
    pub num_nodes: i64,
    pub num_err: i64,
    pub num_resp: i64,
}

/// `stats`: sections (`agent`, `runtime`, `serf`, `tags`, ...) of string values.
pub type Stats = BTreeMap<String, BTreeMap<String, String>>;

/// `get-coordinate`: the node whose network coordinate to fetch.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CoordinateRequest {
    pub node: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CoordinateResponse {
    pub coord: Coordinate,
    pub ok: bool,
}

/// A Vivaldi coordinate: position, error estimate, height and adjustment, in seconds.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Coordinate {
    #[serde(deserialize_with = "nil_as_empty")]
    pub vec: Vec<f64>,
    pub error: f64,
    pub adjustment: f64,
    pub height: f64,
}

impl Coordinate {
    /// The estimated round trip to `other`, in seconds: the Euclidean distance plus both
    /// heights, plus both adjustments unless that would make it negative.
    pub fn rtt_seconds(&self, other: &Coordinate) -> Result<f64, String> {
        if self.vec.len() != other.vec.len() {
            return Err("coordinate dimensionality does not match".to_string());
        }
        let squares: f64 = self
            .vec
            .iter()
            .zip(&other.vec)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let plain = squares.sqrt() + self.height + other.height;
        let adjusted = plain + self.adjustment + other.adjustment;
        Ok(if adjusted > 0.0 { adjusted } else { plain })
    }
}

/// Go writes an empty map or slice as nil.
fn nil_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A key that is there, even with a nil value; `default` covers the absent key.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Payloads come as bin, as str from loose clients, or as nil.
fn nil_as_empty_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ByteBuf, D::Error> {
    Ok(Option::<ByteBuf>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_adds_heights_and_adjustments_unless_negative() {
        let a = Coordinate {
            vec: vec![0.0, 0.003],
            height: 0.0001,
            adjustment: 0.0002,
            ..Default::default()
        };
        let b = Coordinate {
            vec: vec![0.004, 0.0],
            height: 0.0001,
            adjustment: -0.0001,
            ..Default::default()
        };
        let rtt = a.rtt_seconds(&b).unwrap();
        assert!((rtt - 0.0053).abs() < 1e-12, "{rtt}");
        let far_negative = Coordinate {
            adjustment: -1.0,
            ..b.clone()
        };
        let rtt = a.rtt_seconds(&far_negative).unwrap();
        assert!((rtt - 0.0052).abs() < 1e-12, "{rtt}");
        assert!(a.rtt_seconds(&Coordinate::default()).is_err());
    }

    #[test]
    fn query_records_take_nil_payloads() {
        // {"From": "", "Payload": nil, "Type": "done"}
        let bytes = rmp_serde::to_vec_named(&serde_json::json!({
            "From": "", "Payload": null, "Type": "done"
        }))
        .unwrap();
        let record: QueryRecord = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!((record.kind.as_str(), record.payload.len()), ("done", 0));
    }
}
