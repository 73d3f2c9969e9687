//! Stream records as Serf's `monitor` prints them: Go's `%#v` of the record's values after
//! its msgpack decoder turned them into Go interfaces. Small integers came as msgpack
//! fixints and print in decimal; larger ones came with an unsigned marker and print in hex
//! (Go's `%#v` of an unsigned integer); maps print with their keys sorted, as Go's fmt does.

use musubi_gocompat::strconv::quote;
use musubi_serf_rpc::client::messages::EventRecord;
use musubi_serf_rpc::codec::MemberWire;
use std::fmt::Write;

/// `Event Info:` then a `\tKey: value` line per field of the record. Serf's order is a Go
/// map's (random); this one is sorted by key, one of the orders Serf prints.
pub fn event_info(record: &EventRecord) -> String {
    let mut fields: Vec<(&str, String)> = vec![("Event", quote(&record.event))];
    if let Some(coalesce) = record.coalesce {
        fields.push(("Coalesce", coalesce.to_string()));
    }
    if let Some(id) = record.id {
        fields.push(("ID", unsigned(id)));
    }
    if let Some(ltime) = record.ltime {
        fields.push(("LTime", unsigned(ltime)));
    }
    if let Some(members) = &record.members {
        let shown: Vec<String> = members.iter().map(member).collect();
        fields.push((
            "Members",
            format!("[]interface {{}}{{{}}}", shown.join(", ")),
        ));
    }
    if let Some(name) = &record.name {
        fields.push(("Name", quote(name)));
    }
    if let Some(payload) = &record.payload {
        // A top-level []byte prints as `[]byte{...}`; a nil one is a nil interface.
        let shown = payload
            .as_ref()
            .map_or("<nil>".to_string(), |bytes| byte_list("[]byte", bytes));
        fields.push(("Payload", shown));
    }
    fields.sort_by_key(|(key, _)| *key);
    let mut text = String::from("Event Info:");
    for (key, value) in fields {
        let _ = write!(text, "\n\t{key}: {value}");
    }
    text
}

/// A member record as the map Go decoded it into, keys sorted.
fn member(m: &MemberWire) -> String {
    let tags: Vec<String> = m
        .tags
        .iter()
        .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
        .collect();
    let fields = [
        ("Addr", byte_list("[]uint8", &m.addr)),
        ("DelegateCur", unsigned(m.delegate_cur.into())),
        ("DelegateMax", unsigned(m.delegate_max.into())),
        ("DelegateMin", unsigned(m.delegate_min.into())),
        ("Name", quote(&m.name)),
        ("Port", unsigned(m.port.into())),
        ("ProtocolCur", unsigned(m.protocol_cur.into())),
        ("ProtocolMax", unsigned(m.protocol_max.into())),
        ("ProtocolMin", unsigned(m.protocol_min.into())),
        ("Status", quote(&m.status)),
        (
            "Tags",
            format!("map[interface {{}}]interface {{}}{{{}}}", tags.join(", ")),
        ),
    ];
    let shown: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", quote(k)))
        .collect();
    format!("map[interface {{}}]interface {{}}{{{}}}", shown.join(", "))
}

/// A fixint (0..=127) decodes to int64 and prints in decimal; anything larger came with
/// an unsigned marker, decodes to uint64 and prints as `0x..`.
fn unsigned(n: u64) -> String {
    if n < 128 {
        n.to_string()
    } else {
        format!("{n:#x}")
    }
}

fn byte_list(type_name: &str, bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().map(|b| format!("{b:#x}")).collect();
    format!("{type_name}{{{}}}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    // The expected texts are Debian serf's monitor output for the same records.

    #[test]
    fn a_user_event_prints_as_serfs_monitor_does() {
        let record = EventRecord {
            event: "user".into(),
            ltime: Some(1),
            name: Some("hello".into()),
            payload: Some(Some(b"world".to_vec().into())),
            coalesce: Some(true),
            ..Default::default()
        };
        assert_eq!(
            event_info(&record),
            "Event Info:\n\tCoalesce: true\n\tEvent: \"user\"\n\tLTime: 1\n\tName: \"hello\"\n\t\
             Payload: []byte{0x77, 0x6f, 0x72, 0x6c, 0x64}"
        );
    }

    #[test]
    fn a_member_event_prints_as_serfs_monitor_does() {
        let record = EventRecord {
            event: "member-update".into(),
            members: Some(vec![MemberWire {
                addr: vec![127, 0, 0, 1],
                delegate_cur: 5,
                delegate_max: 5,
                delegate_min: 2,
                name: "m2".into(),
                port: 53961,
                protocol_cur: 2,
                protocol_max: 5,
                protocol_min: 1,
                status: "alive".into(),
                tags: BTreeMap::from([("a".to_string(), "b".to_string())]),
            }]),
            ..Default::default()
        };
        assert_eq!(
            event_info(&record),
            "Event Info:\n\tEvent: \"member-update\"\n\tMembers: []interface {}{map[interface {}]\
             interface {}{\"Addr\":[]uint8{0x7f, 0x0, 0x0, 0x1}, \"DelegateCur\":5, \
             \"DelegateMax\":5, \"DelegateMin\":2, \"Name\":\"m2\", \"Port\":0xd2c9, \
             \"ProtocolCur\":2, \"ProtocolMax\":5, \"ProtocolMin\":1, \"Status\":\"alive\", \
             \"Tags\":map[interface {}]interface {}{\"a\":\"b\"}}}"
        );
    }
}
