//! Go's `strconv.Quote` (`%q`), `strconv.ParseBool`, `ParseInt` and `ParseUint`, and
//! `encoding/json`'s quoting of a byte in its syntax errors: the v2 API's form errors and
//! the v3 gateway's JSON errors carry them, the CLIs print `%q` as etcdctl and serf do, and
//! Go's flags (`flag`) and etcd's v2 form take booleans and integers as these do.

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

/// Why Go's integer parsing refused a text: `strconv.ErrSyntax` or `strconv.ErrRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumError {
    Syntax,
    Range,
}

/// `strconv.ParseUint(text, 0, 64)`, as Go's `uint` flags read their values: decimal,
/// `0x`/`0o`/`0b` prefixes, a leading `0` for octal, `_` between digits; no sign.
pub fn parse_uint(text: &str) -> Result<u64, NumError> {
    let (radix, digits) = match text.as_bytes() {
        [b'0', b'x' | b'X', ..] => (16, &text[2..]),
        [b'0', b'o' | b'O', ..] => (8, &text[2..]),
        [b'0', b'b' | b'B', ..] => (2, &text[2..]),
        [b'0', _, ..] => (8, &text[1..]),
        _ => (10, text),
    };
    // An underscore must sit between digits, or right after a base prefix.
    let misplaced_underscore =
        digits.ends_with('_') || digits.contains("__") || (radix == 10 && digits.starts_with('_'));
    if misplaced_underscore || digits.starts_with(['+', '-']) {
        return Err(NumError::Syntax);
    }
    u64::from_str_radix(&digits.replace('_', ""), radix).map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => NumError::Range,
        _ => NumError::Syntax,
    })
}

/// `strconv.ParseInt(text, 0, 64)`, as Go's `int` flags read their values: an optional
/// sign, then what [`parse_uint`] takes.
pub fn parse_int(text: &str) -> Result<i64, NumError> {
    let (negative, magnitude) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = parse_uint(magnitude)?;
    match (negative, i64::try_from(magnitude)) {
        (false, Ok(n)) => Ok(n),
        (true, Ok(n)) => Ok(-n),
        (true, Err(_)) if magnitude == i64::MIN.unsigned_abs() => Ok(i64::MIN),
        _ => Err(NumError::Range),
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

    #[test]
    fn integers_are_read_as_go_reads_them_with_base_zero() {
        assert_eq!(parse_uint("42"), Ok(42));
        assert_eq!(parse_uint("0x1f"), Ok(31));
        assert_eq!(parse_uint("0o17"), Ok(15));
        assert_eq!(parse_uint("017"), Ok(15));
        assert_eq!(parse_uint("0b101"), Ok(5));
        assert_eq!(parse_uint("1_000"), Ok(1000));
        assert_eq!(parse_uint("0x_1f"), Ok(31));
        assert_eq!(parse_uint("0"), Ok(0));
        for bad in [
            "", "+1", "-1", "1.5", "abc", "08", "0x", "_1", "1_", "1__0", " 1",
        ] {
            assert_eq!(parse_uint(bad), Err(NumError::Syntax), "{bad:?}");
        }
        assert_eq!(parse_uint("18446744073709551616"), Err(NumError::Range));
        assert_eq!(parse_int("-0x10"), Ok(-16));
        assert_eq!(parse_int("+7"), Ok(7));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int("9223372036854775808"), Err(NumError::Range));
        assert_eq!(parse_int("-"), Err(NumError::Syntax));
        assert_eq!(parse_int("--1"), Err(NumError::Syntax));
    }
}
