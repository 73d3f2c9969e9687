//! The serde impls against etcd 3.4's gateway JSON, as captured in the API reference (§4).

use musubi_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    ResponseHeader, TxnRequest, WatchResponse, compare, range_request, request_op,
};
use musubi_proto::mvccpb::{Event, KeyValue, event};
use serde_json::{Value, json};

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: 6001611773266757492,
        member_id: 13049071153751544597,
        revision,
        raft_term: 2,
    })
}

fn header_json(revision: &str) -> Value {
    json!({
        "cluster_id": "6001611773266757492",
        "member_id": "13049071153751544597",
        "revision": revision,
        "raft_term": "2"
    })
}

fn kv(key: &[u8], create: i64, modified: i64, version: i64, value: &[u8]) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        create_revision: create,
        mod_revision: modified,
        version,
        value: value.to_vec(),
        lease: 0,
    }
}

#[test]
fn put_response_uses_proto_names_and_int64_strings() {
    let resp = PutResponse {
        header: header(8),
        prev_kv: Some(kv(b"foo", 7, 7, 1, b"bar")),
    };
    assert_eq!(
        serde_json::to_value(&resp).unwrap(),
        json!({
            "header": header_json("8"),
            "prev_kv": {"key": "Zm9v", "create_revision": "7", "mod_revision": "7", "version": "1", "value": "YmFy"}
        })
    );
}

#[test]
fn range_response_omits_zero_values_and_pads_base64() {
    let resp = RangeResponse {
        header: header(9),
        kvs: vec![kv(b"fop", 5, 5, 1, b""), kv(b"foo1", 6, 6, 1, b"")],
        more: true,
        count: 3,
    };
    assert_eq!(
        serde_json::to_value(&resp).unwrap(),
        json!({
            "header": header_json("9"),
            "kvs": [
                {"key": "Zm9w", "create_revision": "5", "mod_revision": "5", "version": "1"},
                {"key": "Zm9vMQ==", "create_revision": "6", "mod_revision": "6", "version": "1"}
            ],
            "more": true,
            "count": "3"
        })
    );
    // No `more: false`, `count: "0"`, or empty `kvs`.
    let empty = RangeResponse {
        header: header(9),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        json!({"header": header_json("9")})
    );
}

#[test]
fn lease_grant_response_keeps_upper_case_names() {
    let resp = LeaseGrantResponse {
        header: header(13),
        id: 5986869702522826018,
        ttl: 30,
        error: String::new(),
    };
    assert_eq!(
        serde_json::to_value(&resp).unwrap(),
        json!({"header": header_json("13"), "ID": "5986869702522826018", "TTL": "30"})
    );
}

#[test]
fn enums_are_written_by_name_and_the_zero_one_left_out() {
    let resp = WatchResponse {
        header: header(19),
        events: vec![
            Event {
                r#type: event::EventType::Put.into(),
                kv: Some(kv(b"w", 17, 17, 1, b"1")),
                prev_kv: None,
            },
            Event {
                r#type: event::EventType::Delete.into(),
                kv: Some(KeyValue {
                    key: b"w".to_vec(),
                    mod_revision: 19,
                    ..Default::default()
                }),
                prev_kv: None,
            },
        ],
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&resp).unwrap(),
        json!({
            "header": header_json("19"),
            "events": [
                {"kv": {"key": "dw==", "create_revision": "17", "mod_revision": "17", "version": "1", "value": "MQ=="}},
                {"type": "DELETE", "kv": {"key": "dw==", "mod_revision": "19"}}
            ]
        })
    );
}

#[test]
fn range_request_parses_enum_names_and_numbers() {
    let req: RangeRequest = serde_json::from_str(
        r#"{"key":"AA==","range_end":"AA==","keys_only":true,"limit":2,"sort_order":"DESCEND","sort_target":"KEY"}"#,
    )
    .unwrap();
    assert_eq!(req.key, b"\0");
    assert_eq!(req.range_end, b"\0");
    assert!(req.keys_only);
    assert_eq!(req.limit, 2);
    assert_eq!(req.sort_order(), range_request::SortOrder::Descend);
    assert_eq!(req.sort_target(), range_request::SortTarget::Key);

    // etcd3gw sends enums as numbers.
    let req: RangeRequest = serde_json::from_str(r#"{"key":"Zm9v","sort_order":2}"#).unwrap();
    assert_eq!(req.sort_order(), range_request::SortOrder::Descend);
}

#[test]
fn int64_parses_from_number_or_string() {
    let req: LeaseGrantRequest = serde_json::from_str(r#"{"TTL":"30","ID":"0"}"#).unwrap();
    assert_eq!((req.ttl, req.id), (30, 0));
    let req: LeaseGrantRequest = serde_json::from_str(r#"{"TTL":30,"ID":7}"#).unwrap();
    assert_eq!((req.ttl, req.id), (30, 7));
}

#[test]
fn lower_camel_names_and_unknown_fields_are_accepted() {
    let req: PutRequest =
        serde_json::from_str(r#"{"key":"Zm9v","value":"YmF6","prevKv":true,"nonsense":1}"#)
            .unwrap();
    assert_eq!(req.key, b"foo");
    assert_eq!(req.value, b"baz");
    assert!(req.prev_kv);

    let req: PutRequest = serde_json::from_str(r#"{"key":"Zm9v","prev_kv":true}"#).unwrap();
    assert!(req.prev_kv);

    let req: PutRequest = serde_json::from_str("{}").unwrap();
    assert_eq!(req, PutRequest::default());
}

#[test]
fn txn_request_parses_oneofs() {
    let req: TxnRequest = serde_json::from_str(
        r#"{"compare":[{"key":"Zm9vMQ==","result":"EQUAL","target":"VALUE","value":"eA=="}],
            "success":[{"request_put":{"key":"Zm9vMQ==","value":"eQ=="}},{"request_range":{"key":"Zm9vMQ=="}}]}"#,
    )
    .unwrap();
    let cmp = &req.compare[0];
    assert_eq!(cmp.result(), compare::CompareResult::Equal);
    assert_eq!(cmp.target(), compare::CompareTarget::Value);
    assert_eq!(
        cmp.target_union,
        Some(compare::TargetUnion::Value(b"x".to_vec()))
    );
    assert!(matches!(
        req.success[0].request,
        Some(request_op::Request::RequestPut(ref put)) if put.value == b"y"
    ));
    assert!(matches!(
        req.success[1].request,
        Some(request_op::Request::RequestRange(_))
    ));
}

#[test]
fn prost_round_trip_keeps_field_numbers() {
    use prost::Message;
    let resp = LeaseGrantResponse {
        header: header(2),
        id: 1,
        ttl: 5,
        error: String::new(),
    };
    let bytes = resp.encode_to_vec();
    assert_eq!(LeaseGrantResponse::decode(bytes.as_slice()).unwrap(), resp);
    // Field 2 (ID) as varint 1, field 3 (TTL) as varint 5, after the header.
    assert!(bytes.ends_with(&[0x10, 0x01, 0x18, 0x05]));
}
