//! The request messages as the gateway reads them: which fields are bytes, 64-bit
//! integers, enums or messages. Go's `jsonpb` (what etcd's gateway runs) and pbjson (what
//! we decode with) disagree at the edges: jsonpb ignores `null`, insists on padded
//! standard base64, takes `"limit":" 5"`, and has its own error messages; pbjson refuses
//! `null` and is lenient with base64. So a request is first checked and rewritten here,
//! field by field and with jsonpb's messages, into JSON that pbjson takes as it is.
//!
//! jsonpb's rules, from golang/protobuf 1.3 `jsonpb.Unmarshaler`:
//! - a field is found under its proto name or its lowerCamel name (the latter wins when
//!   both are there); of duplicate members the last counts; unknown members are ignored;
//! - `null` leaves a field unset (in a list: the element's zero value);
//! - plain fields are read in declaration order, then the members of oneofs, so the first
//!   error reported is that of the first bad field in that order;
//! - integers may be numbers or strings (the quotes dropped and the rest read as JSON);
//!   enums are names (as written, no unescaping) or numbers.

use super::json::{Json, check_valid};
pub use super::messages::*;
use serde_json::{Map, Value};

#[derive(Clone, Copy)]
pub enum Kind {
    Bytes,
    Int(Int),
    Bool,
    Str,
    Enum(&'static Enum),
    Msg(&'static Msg),
}

/// The integer types, by their Go names.
#[derive(Clone, Copy)]
pub enum Int {
    I64,
    U64,
}

pub struct Field {
    /// The proto name, as written in the .proto (`range_end`, `TTL`, `peerURLs`).
    name: &'static str,
    kind: Kind,
    repeated: bool,
    /// The oneof this field belongs to.
    oneof: Option<&'static str>,
}

pub struct Msg {
    pub(super) fields: &'static [Field],
}

pub struct Enum {
    /// The Go type, as jsonpb names it in errors.
    pub(super) go: &'static str,
    /// Names by number.
    pub(super) names: &'static [&'static str],
}

pub(super) const fn f(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        repeated: false,
        oneof: None,
    }
}

pub(super) const fn list(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        repeated: true,
        oneof: None,
    }
}

pub(super) const fn one(oneof: &'static str, name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        repeated: false,
        oneof: Some(oneof),
    }
}

/// `v` checked as jsonpb reads a `msg`, and rewritten for pbjson: proto names, `null`s
/// gone, integers as decimal strings, enums by name, bytes in padded standard base64.
/// The error is jsonpb's message.
pub fn normalize(msg: &Msg, v: &Json) -> Result<Value, String> {
    let members = match v {
        Json::Object(members) => members,
        // A `null` request is an empty one.
        Json::Null => return Ok(Value::Object(Map::new())),
        other => return Err(type_error(other.kind(), "map[string]json.RawMessage")),
    };
    let find = |name: &str| members.iter().rev().find(|(k, _)| k == name).map(|m| &m.1);
    let mut out = Map::new();
    for oneofs in [false, true] {
        for field in msg.fields.iter().filter(|f| f.oneof.is_some() == oneofs) {
            let camel = lower_camel(field.name);
            let Some(v) = find(&camel).or_else(|| find(field.name)) else {
                continue;
            };
            if *v == Json::Null {
                continue;
            }
            let value = if field.repeated {
                repeated(field.kind, v)?
            } else {
                single(field.kind, v)?
            };
            // pbjson refuses two members of one oneof; jsonpb keeps one of them.
            if let Some(group) = field.oneof {
                for other in msg.fields.iter().filter(|f| f.oneof == Some(group)) {
                    out.remove(other.name);
                }
            }
            out.insert(field.name.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

/// protoc's JSON name: `range_end` → `rangeEnd`; `TTL`, `peerURLs` stay as they are.
fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn type_error(found: &str, go_type: &str) -> String {
    format!("json: cannot unmarshal {found} into Go value of type {go_type}")
}

fn repeated(kind: Kind, v: &Json) -> Result<Value, String> {
    let Json::Array(items) = v else {
        return Err(type_error(v.kind(), "[]json.RawMessage"));
    };
    items
        .iter()
        .map(|item| match item {
            Json::Null => Ok(zero(kind)),
            item => single(kind, item),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn zero(kind: Kind) -> Value {
    match kind {
        Kind::Bytes | Kind::Str => Value::String(String::new()),
        Kind::Int(_) => Value::String("0".into()),
        Kind::Bool => Value::Bool(false),
        Kind::Enum(e) => Value::String(e.names[0].into()),
        Kind::Msg(_) => Value::Object(Map::new()),
    }
}

/// One non-null value of a field.
fn single(kind: Kind, v: &Json) -> Result<Value, String> {
    match kind {
        Kind::Bytes => bytes(v).map(|b| Value::String(musubi_gocompat::base64::encode(&b))),
        Kind::Int(int) => integer(int, v).map(Value::String),
        Kind::Bool => match v {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            other => Err(type_error(other.kind(), "bool")),
        },
        Kind::Str => match v {
            Json::Str { value, .. } => Ok(Value::String(value.clone())),
            other => Err(type_error(other.kind(), "string")),
        },
        Kind::Enum(e) => enumeration(e, v),
        Kind::Msg(msg) => normalize(msg, v),
    }
}

/// A `[]byte`: base64 in a string, or (as Go's `encoding/json` also takes) an array of
/// numbers.
fn bytes(v: &Json) -> Result<Vec<u8>, String> {
    match v {
        Json::Str { value, .. } => {
            musubi_gocompat::base64::decode(value).map_err(|e| e.to_string())
        }
        Json::Array(items) => items
            .iter()
            .map(|item| match item {
                Json::Null => Ok(0),
                Json::Number(n) => n
                    .parse::<u8>()
                    .map_err(|_| type_error(&format!("number {n}"), "uint8")),
                other => Err(type_error(other.kind(), "uint8")),
            })
            .collect(),
        other => Err(type_error(other.kind(), "[]uint8")),
    }
}

/// An integer as a decimal string (`"0"` for a quoted `null`).
fn integer(int: Int, v: &Json) -> Result<String, String> {
    let go_type = match int {
        Int::I64 => "int64",
        Int::U64 => "uint64",
    };
    // jsonpb drops the quotes of a string and reads what was between them as JSON.
    let unquoted;
    let v = match v {
        Json::Str { raw, .. } => {
            unquoted = check_valid(raw.as_bytes())?;
            &unquoted
        }
        v => v,
    };
    match v {
        Json::Null => Ok("0".into()),
        Json::Number(n) => {
            let parsed = match int {
                Int::I64 => n.parse::<i64>().map(|i| i.to_string()),
                Int::U64 => n.parse::<u64>().map(|u| u.to_string()),
            };
            parsed.map_err(|_| type_error(&format!("number {n}"), go_type))
        }
        other => Err(type_error(other.kind(), go_type)),
    }
}

fn enumeration(e: &Enum, v: &Json) -> Result<Value, String> {
    match v {
        Json::Str { raw, .. } => match e.names.iter().find(|n| **n == raw) {
            Some(name) => Ok(Value::String((*name).into())),
            None => Err(format!(
                "unknown value {} for enum {}",
                musubi_gocompat::strconv::quote_bytes(raw.as_bytes()),
                e.go
            )),
        },
        Json::Number(n) => match n.parse::<i32>() {
            Ok(i) => Ok(usize::try_from(i)
                .ok()
                .and_then(|i| e.names.get(i))
                .map_or_else(|| Value::from(i), |name| Value::String((*name).into()))),
            Err(_) => Err(type_error(&format!("number {n}"), e.go)),
        },
        other => Err(type_error(other.kind(), e.go)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::gateway::json::check_valid;
    use serde_json::json;

    fn norm(msg: &Msg, text: &str) -> Result<Value, String> {
        normalize(msg, &check_valid(text.as_bytes()).unwrap())
    }

    #[test]
    fn nulls_are_ignored_and_names_taken_in_both_spellings() {
        assert_eq!(
            norm(
                &RANGE,
                r#"{"key":"Zm9v","rangeEnd":"AA==","limit":null,"sort_order":null,"x":null}"#
            ),
            Ok(json!({"key": "Zm9v", "range_end": "AA=="}))
        );
        // lowerCamel wins over the proto name; of duplicates the last one counts.
        assert_eq!(
            norm(
                &PUT,
                r#"{"prev_kv":false,"prevKv":true,"key":"YQ==","key":"Yg=="}"#
            ),
            Ok(json!({"key": "Yg==", "prev_kv": true}))
        );
        assert_eq!(norm(&PUT, "null"), Ok(json!({})));
        assert_eq!(
            norm(
                &TXN,
                r#"{"compare":[null],"success":[null,{"request_put":null}]}"#
            ),
            Ok(json!({"compare": [{}], "success": [{}, {}]}))
        );
    }

    #[test]
    fn bytes_must_be_padded_standard_base64() {
        assert_eq!(
            norm(&RANGE, r#"{"key":"Zm9vMQ"}"#),
            Err("illegal base64 data at input byte 4".into())
        );
        assert_eq!(
            norm(&RANGE, r#"{"key":"Zm-_"}"#),
            Err("illegal base64 data at input byte 2".into())
        );
        // Go skips newlines, takes stray bits and arrays of numbers; pbjson gets the
        // canonical form.
        assert_eq!(
            norm(&RANGE, r#"{"key":"Zm\n9v","range_end":"Zm9vMR=="}"#),
            Ok(json!({"key": "Zm9v", "range_end": "Zm9vMQ=="}))
        );
        assert_eq!(
            norm(&RANGE, r#"{"key":[102,111,111]}"#),
            Ok(json!({"key": "Zm9v"}))
        );
        assert_eq!(
            norm(&RANGE, r#"{"key":5}"#),
            Err("json: cannot unmarshal number into Go value of type []uint8".into())
        );
        assert_eq!(
            norm(&RANGE, r#"{"key":{}}"#),
            Err("json: cannot unmarshal object into Go value of type []uint8".into())
        );
        let nested = r#"{"success":[{"request_txn":{"failure":[{"request_put":{"value":"x"}}]}}]}"#;
        assert_eq!(
            norm(&TXN, nested),
            Err("illegal base64 data at input byte 0".into())
        );
    }

    #[test]
    fn integers_are_numbers_or_strings_as_jsonpb_reads_them() {
        assert_eq!(
            norm(&LEASE_GRANT, r#"{"TTL":"30","ID":7}"#),
            Ok(json!({"TTL": "30", "ID": "7"}))
        );
        assert_eq!(norm(&RANGE, r#"{"limit":" 5"}"#), Ok(json!({"limit": "5"})));
        assert_eq!(
            norm(&RANGE, r#"{"limit":"null"}"#),
            Ok(json!({"limit": "0"}))
        );
        let cases = [
            (
                r#"{"limit":"abc"}"#,
                "invalid character 'a' looking for beginning of value",
            ),
            (r#"{"limit":""}"#, "unexpected end of JSON input"),
            (
                r#"{"limit":1.5}"#,
                "json: cannot unmarshal number 1.5 into Go value of type int64",
            ),
            (
                r#"{"limit":1e2}"#,
                "json: cannot unmarshal number 1e2 into Go value of type int64",
            ),
            (
                r#"{"limit":true}"#,
                "json: cannot unmarshal bool into Go value of type int64",
            ),
            (
                r#"{"limit":99999999999999999999}"#,
                "json: cannot unmarshal number 99999999999999999999 into Go value of type int64",
            ),
            (
                r#"{"keys_only":"true"}"#,
                "json: cannot unmarshal string into Go value of type bool",
            ),
            (
                r#"{"keys_only":1}"#,
                "json: cannot unmarshal number into Go value of type bool",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(norm(&RANGE, text), Err(want.to_string()), "{text}");
        }
        assert_eq!(
            norm(&MEMBER_ID, r#"{"ID":-1}"#),
            Err("json: cannot unmarshal number -1 into Go value of type uint64".into())
        );
    }

    #[test]
    fn enums_are_names_as_written_or_numbers() {
        assert_eq!(
            norm(&RANGE, r#"{"sort_order":2,"sort_target":"MOD"}"#),
            Ok(json!({"sort_order": "DESCEND", "sort_target": "MOD"}))
        );
        assert_eq!(
            norm(&RANGE, r#"{"sort_order":"FOO"}"#),
            Err(r#"unknown value "FOO" for enum etcdserverpb.RangeRequest_SortOrder"#.into())
        );
        assert_eq!(
            norm(&RANGE, r#"{"sort_order":"2"}"#),
            Err(r#"unknown value "2" for enum etcdserverpb.RangeRequest_SortOrder"#.into())
        );
        assert_eq!(
            norm(&RANGE, r#"{"sort_order":1.5}"#),
            Err("json: cannot unmarshal number 1.5 into Go value of type etcdserverpb.RangeRequest_SortOrder".into())
        );
        assert_eq!(
            norm(
                &WATCH,
                r#"{"create_request":{"filters":["NODELETE",0,null]}}"#
            ),
            Ok(json!({"create_request": {"filters": ["NODELETE", "NOPUT", "NOPUT"]}}))
        );
    }

    #[test]
    fn the_first_bad_field_in_declaration_order_is_reported() {
        assert_eq!(
            norm(&RANGE, r#"{"limit":"x","key":"a"}"#),
            Err("illegal base64 data at input byte 0".into())
        );
        assert_eq!(
            norm(&RANGE, "[]"),
            Err(
                "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"
                    .into()
            )
        );
        assert_eq!(
            norm(&TXN, r#"{"compare":{}}"#),
            Err("json: cannot unmarshal object into Go value of type []json.RawMessage".into())
        );
    }

    #[test]
    fn normalized_requests_decode_with_pbjson() {
        use musubi_proto::etcdserverpb as pb;
        let v = norm(
            &TXN,
            r#"{"compare":[{"key":"YQ==","result":"GREATER","target":"VERSION","version":"-1","value":"eA=="}],
                "success":[{"request_range":{"key":"YQ==","sort_order":2}},{"requestPut":{"key":"YQ==","lease":null}}]}"#,
        )
        .unwrap();
        let txn: pb::TxnRequest = serde_json::from_value(v).unwrap();
        // Of two members of a oneof, the one declared last is kept.
        assert_eq!(
            txn.compare[0].target_union,
            Some(pb::compare::TargetUnion::Value(b"x".to_vec()))
        );
        assert_eq!(txn.success.len(), 2);
    }
}
