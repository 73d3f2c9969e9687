//! JSON as Go's `encoding/json` writes it, for output that must match Go tools byte for byte.

/// Escape what Go escapes by default and serde_json does not: the HTML-significant `<`, `>`,
/// `&` and the JavaScript line separators U+2028 and U+2029. They can only occur inside
/// strings, so replacing them in the serialised text is exact.
pub fn html_escaped(json: &str) -> String {
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
