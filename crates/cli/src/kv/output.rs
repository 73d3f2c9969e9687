//! etcdctl's `printResponseKey`: the three output formats of a reply.

use super::Format;
use musubi_client::Response;

pub fn print_response(resp: &Response, format: Format) {
    match format {
        Format::Simple => {
            if resp.action == "delete" {
                println!("PrevNode.Value: {}", prev_value(resp));
            } else {
                println!("{}", resp.node.value);
            }
        }
        Format::Extended => {
            // An RFC 2822 style header block, then the value after a blank line.
            println!("Key: {}", resp.node.key);
            println!("Created-Index: {}", resp.node.created_index);
            println!("Modified-Index: {}", resp.node.modified_index);
            if resp.prev_node.is_some() {
                println!("PrevNode.Value: {}", prev_value(resp));
            }
            println!("TTL: {}", resp.node.ttl);
            println!("Index: {}", resp.meta.etcd_index);
            if resp.action != "delete" {
                println!();
                println!("{}", resp.node.value);
            }
        }
        Format::Json => println!("{}", go_json(resp)),
    }
}

fn prev_value(resp: &Response) -> &str {
    resp.prev_node.as_ref().map_or("", |p| p.value.as_str())
}

/// JSON as Go's `json.Marshal` writes it: HTML-significant characters and the JavaScript
/// line separators are escaped. They can only occur inside strings, so replacing them in the
/// serialised text is safe.
fn go_json(resp: &Response) -> String {
    let json = serde_json::to_string(resp).expect("a response always serialises");
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_html_characters_like_go() {
        let resp: Response =
            serde_json::from_str(r#"{"action":"get","node":{"key":"/k","value":"<&>","modifiedIndex":71,"createdIndex":71}}"#)
                .unwrap();
        assert_eq!(
            go_json(&resp),
            r#"{"action":"get","node":{"key":"/k","value":"\u003c\u0026\u003e","nodes":null,"createdIndex":71,"modifiedIndex":71},"prevNode":null}"#
        );
    }
}
