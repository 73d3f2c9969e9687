//! etcdctl's `printResponseKey`: the three output formats of a reply.

use super::Format;
use musubi_client::Response;
use std::fmt::Write;

pub fn print_response(resp: &Response, format: Format) {
    print!("{}", render(resp, format));
}

fn render(resp: &Response, format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Simple if resp.action == "delete" => {
            let _ = writeln!(out, "PrevNode.Value: {}", prev_value(resp));
        }
        Format::Simple => {
            let _ = writeln!(out, "{}", resp.node.value);
        }
        Format::Extended => {
            // An RFC 2822 style header block, then the value after a blank line.
            let node = &resp.node;
            let _ = writeln!(out, "Key: {}", node.key);
            let _ = writeln!(out, "Created-Index: {}", node.created_index);
            let _ = writeln!(out, "Modified-Index: {}", node.modified_index);
            if resp.prev_node.is_some() {
                let _ = writeln!(out, "PrevNode.Value: {}", prev_value(resp));
            }
            let _ = writeln!(out, "TTL: {}", node.ttl);
            let _ = writeln!(out, "Index: {}", resp.meta.etcd_index);
            if resp.action != "delete" {
                let _ = write!(out, "\n{}\n", node.value);
            }
        }
        Format::Json => {
            let _ = writeln!(out, "{}", go_json(resp));
        }
    }
    out
}

fn prev_value(resp: &Response) -> &str {
    resp.prev_node.as_ref().map_or("", |p| p.value.as_str())
}

/// JSON as Go's `json.Marshal` writes it (`musubi_gocompat::json`).
fn go_json(resp: &Response) -> String {
    let json = serde_json::to_string(resp).expect("a response always serialises");
    musubi_gocompat::json::escape_html(&json)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected texts are etcdctl 3.4's output for the same replies.

    fn reply(json: &str, index: u64) -> Response {
        let mut resp: Response = serde_json::from_str(json).unwrap();
        resp.meta.etcd_index = index;
        resp
    }

    #[test]
    fn extended_set_shows_headers_previous_value_and_value() {
        let resp = reply(
            r#"{"action":"set","node":{"key":"/foo","value":"qux","modifiedIndex":6,"createdIndex":6},"prevNode":{"key":"/foo","value":"baz","modifiedIndex":5,"createdIndex":5}}"#,
            6,
        );
        assert_eq!(
            render(&resp, Format::Extended),
            "Key: /foo\nCreated-Index: 6\nModified-Index: 6\nPrevNode.Value: baz\nTTL: 0\nIndex: 6\n\nqux\n"
        );
        assert_eq!(render(&resp, Format::Simple), "qux\n");
    }

    #[test]
    fn delete_shows_the_previous_value_and_no_value_block() {
        let resp = reply(
            r#"{"action":"delete","node":{"key":"/new","modifiedIndex":20,"createdIndex":8},"prevNode":{"key":"/new","value":"x","modifiedIndex":8,"createdIndex":8}}"#,
            20,
        );
        assert_eq!(render(&resp, Format::Simple), "PrevNode.Value: x\n");
        assert_eq!(
            render(&resp, Format::Extended),
            "Key: /new\nCreated-Index: 8\nModified-Index: 20\nPrevNode.Value: x\nTTL: 0\nIndex: 20\n"
        );
    }

    #[test]
    fn json_escapes_html_characters_like_go() {
        let resp = reply(
            r#"{"action":"get","node":{"key":"/k","value":"<&>","modifiedIndex":71,"createdIndex":71}}"#,
            71,
        );
        assert_eq!(
            render(&resp, Format::Json),
            "{\"action\":\"get\",\"node\":{\"key\":\"/k\",\"value\":\"\\u003c\\u0026\\u003e\",\"nodes\":null,\"createdIndex\":71,\"modifiedIndex\":71},\"prevNode\":null}\n"
        );
    }
}
