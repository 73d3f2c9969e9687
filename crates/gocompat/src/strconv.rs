//! Go's `strconv.Quote` (`%q`) and `strconv.ParseBool`, and `encoding/json`'s quoting of a
//! byte in its syntax errors: the v2 API's form errors and the v3 gateway's JSON errors
//! carry them, the CLIs print `%q` as etcdctl and serf do, and Go's flags and etcd's v2
//! form take booleans as `ParseBool` does.

use std::fmt::Write;

/// `encoding/json`'s quoting of one byte in a syntax error: `'x'`, `'\''`, `'"'`, `'\n'`.
pub fn quote_json_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".into(),
        b'"' => "'\"'".into(),
        _ => {
            let quoted = quote(&char::from(c).to_string());
            format!("'{}'", &quoted[1..quoted.len() - 1])
        }
    }
}

/// `strconv.Quote` (Go's `%q`) of text that may hold invalid UTF-8.
pub fn quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        out.push_str(&quote(chunk.valid())[1..]);
        out.pop();
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false False`, nothing else.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `strconv.Quote` (Go's `%q`) of valid UTF-8.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Close to Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the
/// ASCII space; not controls, other spaces or the common format characters.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !c.is_control()
        && !c.is_whitespace()
        && !matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_go() {
        assert_eq!(quote_json_char(b'x'), "'x'");
        assert_eq!(quote_json_char(b'"'), "'\"'");
        assert_eq!(quote_json_char(b'\''), r"'\''");
        assert_eq!(quote_json_char(b'\t'), r"'\t'");
        assert_eq!(quote_json_char(0x01), r"'\x01'");
        assert_eq!(quote_json_char(b'\\'), r"'\\'");
        assert_eq!(quote_json_char(0xc3), "'Ã'");
        assert_eq!(quote_json_char(0x85), r"'\u0085'");
        assert_eq!(quote_bytes(b"FOO"), r#""FOO""#);
        assert_eq!(quote_bytes(b"a\"b\\\xff\n"), r#""a\"b\\\xff\n""#);
    }
}
