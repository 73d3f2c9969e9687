//! The escapes Go's `encoding/json` writes and serde_json does not: `<`, `>`, `&`, U+2028
//! and U+2029 as `\u` escapes (Go escapes HTML by default); and, as Go before 1.22 did, the
//! backspace and form feed as `\u0008`, `\u000c` (serde_json writes `\b`, `\f`). Each works on
//! serde_json's output: those characters occur there only inside strings, so rewriting
//! the text is exact.

/// `<`, `>`, `&`, U+2028 and U+2029 escaped, as Go's tools print JSON (serf's, etcdctl's).
pub fn escape_html(json: &str) -> String {
    escape(json, false)
}

/// [`escape_html`], and `\b`, `\f` as `\u0008`, `\u000c`: gRPC-gateway's marshaler, built
/// with the Go etcd 3.4 was.
pub fn escape_html_and_control(json: &str) -> String {
    escape(json, true)
}

fn escape(json: &str, control_as_unicode: bool) -> String {
    let mut out = String::with_capacity(json.len() + 16);
    let mut chars = json.chars();
    while let Some(c) = chars.next() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            // An escape pair is copied whole, so that `\\b` (a backslash, then `b`) stays.
            '\\' => match chars.next() {
                Some('b') if control_as_unicode => out.push_str("\\u0008"),
                Some('f') if control_as_unicode => out.push_str("\\u000c"),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> String {
        serde_json::to_string(text).unwrap()
    }

    #[test]
    fn html_characters_and_line_separators_are_escaped() {
        assert_eq!(
            escape_html(&json("<a&b>\u{8}\u{2028}\u{2029}é\\b")),
            r#""\u003ca\u0026b\u003e\b\u2028\u2029é\\b""#
        );
    }

    #[test]
    fn backspace_and_form_feed_may_be_escaped_as_old_go_did() {
        assert_eq!(
            escape_html_and_control(&json("<a&b>\u{8}\u{c}\n\\b\u{2028}é")),
            r#""\u003ca\u0026b\u003e\u0008\u000c\n\\b\u2028é""#
        );
    }
}
