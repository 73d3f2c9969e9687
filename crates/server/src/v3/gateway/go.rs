//! The pieces of Go's standard library whose exact output the gateway repeats, beside
//! `musubi_gocompat::base64`: `strconv.Quote` and `encoding/json`'s escaping of strings.

use std::fmt::Write;

/// `encoding/json`'s quoting of one byte in a syntax error: `'x'`, `'\''`, `'"'`, `'\n'`.
pub fn quote_char(c: u8) -> String {
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

/// `strconv.Quote` of valid UTF-8.
fn quote(s: &str) -> String {
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

/// JSON text from serde_json with strings escaped as Go's `encoding/json` escapes them
/// (gRPC-gateway's marshaler is Go's): `<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes,
/// and `\b`, `\f` as `\u0008`, `\u000c`.
pub fn escape_json(text: Vec<u8>) -> Vec<u8> {
    let needs = text
        .iter()
        .any(|&c| matches!(c, b'<' | b'>' | b'&' | b'\\' | 0xe2));
    if !needs {
        return text;
    }
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        match c {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            b'\\' => {
                match text.get(i + 1) {
                    Some(b'b') => out.extend_from_slice(b"\\u0008"),
                    Some(b'f') => out.extend_from_slice(b"\\u000c"),
                    Some(&next) => out.extend_from_slice(&[b'\\', next]),
                    None => out.push(b'\\'),
                }
                i += 2;
                continue;
            }
            0xe2 if text.get(i + 1) == Some(&0x80)
                && matches!(text.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                let last = if text[i + 2] == 0xa8 { b'8' } else { b'9' };
                out.extend_from_slice(b"\\u202");
                out.push(last);
                i += 3;
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_go() {
        assert_eq!(quote_char(b'x'), "'x'");
        assert_eq!(quote_char(b'"'), "'\"'");
        assert_eq!(quote_char(b'\''), r"'\''");
        assert_eq!(quote_char(b'\t'), r"'\t'");
        assert_eq!(quote_char(0x01), r"'\x01'");
        assert_eq!(quote_char(b'\\'), r"'\\'");
        assert_eq!(quote_char(0xc3), "'Ã'");
        assert_eq!(quote_char(0x85), r"'\u0085'");
        assert_eq!(quote_bytes(b"FOO"), r#""FOO""#);
        assert_eq!(quote_bytes(b"a\"b\\\xff\n"), r#""a\"b\\\xff\n""#);
    }

    #[test]
    fn json_strings_are_escaped_as_go_escapes_them() {
        let text = serde_json::to_vec(&"<a&b>\u{8}\u{c}\n\\b\u{2028}é").unwrap();
        assert_eq!(
            String::from_utf8(escape_json(text)).unwrap(),
            r#""\u003ca\u0026b\u003e\u0008\u000c\n\\b\u2028é""#
        );
    }
}
