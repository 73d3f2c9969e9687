//! Request and reply bodies of the streaming, key and introspection commands, as Serf's Go
//! client writes and reads them (maps keyed by Go field names; `[]byte` as msgpack bin).
//! Requests, and the replies the server's types cannot decode (they are written for
//! encoding), use [`crate::codec`]'s shapes directly.

use crate::codec::{MemberWire, nil_as_empty};
use serde::{Deserialize, Deserializer, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;

/// One `query` stream record: `ack`, `response` or the closing `done`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct QueryRecord {
    #[serde(rename = "Type")]
    pub kind: String,
    pub from: String,
    #[serde(deserialize_with = "nil_as_empty")]
    pub payload: ByteBuf,
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

/// One `monitor` record: a log line without its newline.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogRecord {
    pub log: String,
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
    /// The estimated round trip to `other`, in seconds, as Serf's `coordinate` package
    /// computes it: the Euclidean distance plus both heights, plus both adjustments unless
    /// that would make it negative.
    pub fn rtt_seconds(&self, other: &Coordinate) -> Result<f64, String> {
        if self.vec.len() != other.vec.len() {
            return Err("coordinate dimensionality does not match".to_string());
        }
        let distance = self
            .vec
            .iter()
            .zip(&other.vec)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        let raw = distance + self.height + other.height;
        let adjusted = raw + self.adjustment + other.adjustment;
        Ok(if adjusted > 0.0 { adjusted } else { raw })
    }
}

/// A key that is there, even with a nil value; `default` covers the absent key.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
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
