//! etcd's v2 JSON, written by hand so that bytes match Go's `encoding/json`: field order
//! as etcd declares it, omitted empty fields, HTML-safe string escapes, a trailing newline.

use musubi_store::{Event, NodeView, V2Error};
use std::fmt::Write;
use time::OffsetDateTime;

/// An event as etcd sends it.
pub fn event(ev: &Event, no_value: bool) -> String {
    // Room for the whole reply up front: growing it from a guess moved it twice a write.
    let nodes = [Some(&ev.node), ev.prev_node.as_ref()];
    let room = 48 + nodes.iter().flatten().map(|n| node_room(n)).sum::<usize>();
    let mut out = String::with_capacity(room);
    out.push_str("{\"action\":");
    string(&mut out, ev.action.as_str());
    if !no_value {
        out.push_str(",\"node\":");
        node(&mut out, &ev.node);
        if let Some(prev) = &ev.prev_node {
            out.push_str(",\"prevNode\":");
            node(&mut out, prev);
        }
    }
    out.push_str("}\n");
    out
}

pub fn error(err: &V2Error) -> String {
    let mut out = String::with_capacity(96);
    let _ = write!(out, "{{\"errorCode\":{},\"message\":", err.code.code());
    string(&mut out, err.code.message());
    if !err.cause.is_empty() {
        out.push_str(",\"cause\":");
        string(&mut out, &err.cause);
    }
    let _ = writeln!(out, ",\"index\":{}}}", err.index);
    out
}

/// About the bytes [`node`] writes for `n` without its children: its key and value, and
/// room for the other fields and a few escapes.
fn node_room(n: &NodeView) -> usize {
    160 + n.key.len() + n.value.as_ref().map_or(0, String::len)
}

fn node(out: &mut String, n: &NodeView) {
    out.push('{');
    let mut first = true;
    let mut field = |out: &mut String, name: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
    };
    // The root's internal key is etcd's namespace prefix, which trims to "" and is omitted.
    if n.key != "/" {
        field(out, "key");
        string(out, &n.key);
    }
    if let Some(v) = &n.value {
        field(out, "value");
        string(out, v);
    }
    if n.dir {
        field(out, "dir");
        out.push_str("true");
    }
    if let Some(at) = n.expiration_ms {
        field(out, "expiration");
        string(out, &rfc3339(at as i128 * 1_000_000));
        if n.ttl != 0 {
            field(out, "ttl");
            let _ = write!(out, "{}", n.ttl);
        }
    }
    if let Some(children) = &n.nodes {
        field(out, "nodes");
        array(out, children, node);
    }
    if n.modified_index != 0 {
        field(out, "modifiedIndex");
        let _ = write!(out, "{}", n.modified_index);
    }
    if n.created_index != 0 {
        field(out, "createdIndex");
        let _ = write!(out, "{}", n.created_index);
    }
    out.push('}');
}

/// Go's `time.Time` JSON form in UTC (RFC 3339, nanoseconds with trailing zeros dropped)
/// for a Unix time in nanoseconds.
pub fn rfc3339(unix_nanos: i128) -> String {
    let t =
        OffsetDateTime::from_unix_timestamp_nanos(unix_nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// A JSON array, each item written by `item`.
pub fn array<T>(out: &mut String, items: &[T], mut item: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(out, it);
    }
    out.push(']');
}

/// `{"message":"..."}` without a newline: etcd writes the errors of its auth and members
/// APIs with `json.Marshal`.
pub fn message(text: &str) -> String {
    let mut out = String::from("{\"message\":");
    string(&mut out, text);
    out.push('}');
    out
}

/// A JSON array of strings.
pub fn string_array(out: &mut String, items: &[String]) {
    array(out, items, |out, s| string(out, s));
}

/// A JSON string with Go's escapes: `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX`; U+FFFD
/// too, because it stands for the invalid UTF-8 Go would have escaped that way.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\u{fffd}' | '\u{0}'..='\u{1f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use musubi_store::{Action, ErrorCode};

    fn file(key: &str, value: &str, index: u64) -> NodeView {
        NodeView {
            key: key.into(),
            value: Some(value.into()),
            dir: false,
            expiration_ms: None,
            ttl: 0,
            nodes: None,
            modified_index: index,
            created_index: index,
        }
    }

    #[test]
    fn a_set_over_an_old_value_matches_etcd_byte_for_byte() {
        let ev = Event {
            action: Action::Set,
            node: file("/a/b", "2", 9),
            prev_node: Some(file("/a/b", "1", 8)),
            etcd_index: 9,
            refresh: false,
        };
        assert_eq!(
            event(&ev, false),
            "{\"action\":\"set\",\"node\":{\"key\":\"/a/b\",\"value\":\"2\",\"modifiedIndex\":9,\"createdIndex\":9},\"prevNode\":{\"key\":\"/a/b\",\"value\":\"1\",\"modifiedIndex\":8,\"createdIndex\":8}}\n"
        );
    }

    #[test]
    fn errors_omit_an_empty_cause() {
        let err = V2Error::new(ErrorCode::NotFile, "", 6);
        assert_eq!(
            error(&err),
            "{\"errorCode\":102,\"message\":\"Not a file\",\"index\":6}\n"
        );
    }

    #[test]
    fn strings_are_escaped_like_go() {
        let mut s = String::new();
        string(&mut s, "<a&b>\"\\\n\u{1}");
        assert_eq!(s, r#""\u003ca\u0026b\u003e\"\\\n\u0001""#);
    }

    #[test]
    fn expiration_drops_trailing_zeros() {
        assert_eq!(rfc3339(1_500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
