//! JSON read as Go's `encoding/json` reads it, because the gateway's error messages are
//! Go's: `invalid character '}' after object key`, `unexpected EOF`, `unexpected end of
//! JSON input`. serde_json accepts and refuses the same texts but words its errors
//! differently, and it forgets how a number or a string was written, which the gateway's
//! rules need (`"limit":"5"` is taken, `"limit":1e2` is refused with the literal quoted).
//!
//! [`next_value`] is `json.Decoder.Decode`: one value from a stream of them, reading on
//! while the value is incomplete. [`check_valid`] is `json.Unmarshal`'s check of a whole
//! text.

use musubi_gocompat::strconv::quote_json_char as quote_char;

/// A JSON value with what the gateway needs of its spelling.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string: the text between its quotes as written, and its value (Go's unquoting:
    /// invalid UTF-8 and lone surrogates become U+FFFD).
    Str {
        raw: String,
        value: String,
    },
    Array(Vec<Json>),
    /// Members in order, duplicates kept (the last one counts, as in Go).
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The word Go's `UnmarshalTypeError` uses for what was found.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "bool",
            Json::Number(_) => "number",
            Json::Str { .. } => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
}

/// What [`next_value`] found at the front of a buffer.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// A value, and the bytes it took (leading whitespace included).
    Value(Json, usize),
    /// Only whitespace, and the input is over (Go's `io.EOF`).
    End,
    /// The value (or the whitespace) runs to the end of the buffer and more may come.
    More,
    /// A syntax error, in Go's words.
    Bad(String),
}

/// Nesting deeper than this is refused with Go's message. Go allows 10000; a Txn nested
/// that deep would exhaust a task's stack on the way through, and gRPC's own decoder
/// stops at 100 messages, about 200 levels of JSON.
pub const MAX_DEPTH: usize = 200;

/// The next value of a stream, as `json.Decoder.Decode` reads it; `eof`: the buffer holds
/// all the input there will be.
pub fn next_value(buf: &[u8], eof: bool) -> Next {
    let mut p = Parser { buf, pos: 0, eof };
    p.skip_space();
    if p.pos == buf.len() {
        return if eof { Next::End } else { Next::More };
    }
    match p.value(0, true) {
        Ok(v) => Next::Value(v, p.pos),
        Err(Stop::Incomplete) if eof => Next::Bad("unexpected EOF".into()),
        Err(Stop::Incomplete) => Next::More,
        Err(Stop::Syntax(m)) => Next::Bad(m),
    }
}

/// `text` as one whole JSON value, as `json.Unmarshal` checks it.
pub fn check_valid(text: &[u8]) -> Result<Json, String> {
    let mut p = Parser {
        buf: text,
        pos: 0,
        eof: true,
    };
    p.skip_space();
    let v = match p.value(0, true) {
        Ok(v) => v,
        Err(Stop::Incomplete) => return Err("unexpected end of JSON input".into()),
        Err(Stop::Syntax(m)) => return Err(m),
    };
    p.skip_space();
    match p.peek() {
        Some(c) => Err(invalid(c, "after top-level value")),
        None => Ok(v),
    }
}

enum Stop {
    /// The buffer ended inside the value.
    Incomplete,
    Syntax(String),
}

fn invalid(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

fn syntax(c: u8, context: &str) -> Stop {
    Stop::Syntax(invalid(c, context))
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    eof: bool,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<u8, Stop> {
        let c = self.peek().ok_or(Stop::Incomplete)?;
        self.pos += 1;
        Ok(c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    /// A value; the caller skipped the whitespace before it. `top`: not inside an array
    /// or object, where a number may end with the input.
    fn value(&mut self, depth: usize, top: bool) -> Result<Json, Stop> {
        let c = self.next()?;
        match c {
            b'{' | b'[' if depth >= MAX_DEPTH => Err(syntax(c, "exceeded max depth")),
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(c, top),
            b't' => self.literal(b"true", Json::Bool(true)),
            b'f' => self.literal(b"false", Json::Bool(false)),
            b'n' => self.literal(b"null", Json::Null),
            _ => Err(syntax(c, "looking for beginning of value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, Stop> {
        let mut members = Vec::new();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_space();
            let c = self.next()?;
            if c != b'"' {
                return Err(syntax(c, "looking for beginning of object key string"));
            }
            let Json::Str { value: key, .. } = self.string()? else {
                unreachable!("string() returns a string")
            };
            self.skip_space();
            let c = self.next()?;
            if c != b':' {
                return Err(syntax(c, "after object key"));
            }
            self.skip_space();
            members.push((key, self.value(depth, false)?));
            self.skip_space();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(Json::Object(members)),
                c => return Err(syntax(c, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, Stop> {
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_space();
            items.push(self.value(depth, false)?);
            self.skip_space();
            match self.next()? {
                b',' => continue,
                b']' => return Ok(Json::Array(items)),
                c => return Err(syntax(c, "after array element")),
            }
        }
    }

    fn literal(&mut self, word: &'static [u8], v: Json) -> Result<Json, Stop> {
        for &want in &word[1..] {
            let c = self.next()?;
            if c != want {
                let name = std::str::from_utf8(word).unwrap_or_default();
                let context = format!("in literal {name} (expecting {})", quote_char(want));
                return Err(syntax(c, &context));
            }
        }
        Ok(v)
    }

    /// After the opening quote.
    fn string(&mut self) -> Result<Json, Stop> {
        let start = self.pos;
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            let c = self.next()?;
                            if !c.is_ascii_hexdigit() {
                                return Err(syntax(c, "in \\u hexadecimal character escape"));
                            }
                        }
                    }
                    c => return Err(syntax(c, "in string escape code")),
                },
                c if c < 0x20 => return Err(syntax(c, "in string literal")),
                _ => {}
            }
        }
        let raw = &self.buf[start..self.pos - 1];
        Ok(Json::Str {
            raw: String::from_utf8_lossy(raw).into_owned(),
            value: unquote(raw),
        })
    }

    /// A number from its first character `c`, with Go's messages for each state.
    fn number(&mut self, c: u8, top: bool) -> Result<Json, Stop> {
        let start = self.pos - 1;
        let first_digit = if c == b'-' { self.next()? } else { c };
        match first_digit {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            c => return Err(syntax(c, "in numeric literal")),
        }
        if self.at_number_end(top)? {
            return Ok(self.number_text(start));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return Err(syntax(c, "after decimal point in numeric literal"));
            }
            self.digits();
            if self.at_number_end(top)? {
                return Ok(self.number_text(start));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            let mut c = self.next()?;
            if c == b'+' || c == b'-' {
                c = self.next()?;
            }
            if !c.is_ascii_digit() {
                return Err(syntax(c, "in exponent of numeric literal"));
            }
            self.digits();
            self.at_number_end(top)?;
        }
        Ok(self.number_text(start))
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    /// Whether the input ends right after a number: a whole value at the top level once
    /// the input is over; otherwise there must be more to read.
    fn at_number_end(&self, top: bool) -> Result<bool, Stop> {
        if self.pos < self.buf.len() {
            return Ok(false);
        }
        if top && self.eof {
            Ok(true)
        } else {
            Err(Stop::Incomplete)
        }
    }

    fn number_text(&self, start: usize) -> Json {
        Json::Number(String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned())
    }
}

/// A string's value from its text between the quotes (already checked), as Go's
/// `unquote` makes it.
fn unquote(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\\' => {
                let c = raw[i + 1];
                i += 2;
                match c {
                    b'b' => out.push('\u{8}'),
                    b'f' => out.push('\u{c}'),
                    b'n' => out.push('\n'),
                    b'r' => out.push('\r'),
                    b't' => out.push('\t'),
                    b'u' => {
                        let hi = hex4(&raw[i..]);
                        i += 4;
                        let lo = (raw.get(i) == Some(&b'\\') && raw.get(i + 1) == Some(&b'u'))
                            .then(|| hex4(&raw[i + 2..]));
                        match (hi, lo) {
                            (0xd800..=0xdbff, Some(lo @ 0xdc00..=0xdfff)) => {
                                let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                                out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                                i += 6;
                            }
                            _ => out.push(char::from_u32(hi).unwrap_or('\u{fffd}')),
                        }
                    }
                    c => out.push(c as char),
                }
            }
            _ => {
                let end = raw[i..]
                    .iter()
                    .position(|&c| c == b'\\')
                    .map_or(raw.len(), |n| i + n);
                // Go replaces each byte of invalid UTF-8 by U+FFFD.
                for chunk in raw[i..end].utf8_chunks() {
                    out.push_str(chunk.valid());
                    out.extend(chunk.invalid().iter().map(|_| '\u{fffd}'));
                }
                i = end;
            }
        }
    }
    out
}

fn hex4(s: &[u8]) -> u32 {
    s.get(..4)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0xfffd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(text: &str) -> String {
        match next_value(text.as_bytes(), true) {
            Next::Bad(m) => m,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_are_worded_as_go_words_them() {
        // Each seen from etcd 3.4's gateway.
        assert_eq!(bad(r#"{"key":"Zm9v","#), "unexpected EOF");
        assert_eq!(
            bad("x"),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            bad(r#"{"key":"Zm9v" "a"}"#),
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(
            bad(r#"{"key" 1}"#),
            "invalid character '1' after object key"
        );
        assert_eq!(
            bad("{,}"),
            "invalid character ',' looking for beginning of object key string"
        );
        assert_eq!(
            bad(r#"{"key":tru}"#),
            "invalid character '}' in literal true (expecting 'e')"
        );
        assert_eq!(
            bad(r#"{"key":"\x"}"#),
            "invalid character 'x' in string escape code"
        );
        assert_eq!(
            bad(r#"{"limit":01}"#),
            "invalid character '1' after object key:value pair"
        );
        assert_eq!(
            bad(r#"{"limit":-}"#),
            "invalid character '}' in numeric literal"
        );
        assert_eq!(
            bad(r#"{"limit":1.}"#),
            "invalid character '}' after decimal point in numeric literal"
        );
        assert_eq!(
            bad(r#"{"limit":1e}"#),
            "invalid character '}' in exponent of numeric literal"
        );
        assert_eq!(bad("[1 2]"), "invalid character '2' after array element");
        assert_eq!(bad("\"a\tb\""), "invalid character '\\t' in string literal");
        assert_eq!(
            bad(r#""\u12x4""#),
            "invalid character 'x' in \\u hexadecimal character escape"
        );
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(bad(&deep), "invalid character '[' exceeded max depth");
    }

    #[test]
    fn a_stream_yields_one_value_at_a_time_and_waits_for_the_rest() {
        let text = br#" {"a":1}{"b":[true,null]} 7"#;
        let Next::Value(v, used) = next_value(text, false) else {
            panic!()
        };
        assert_eq!(
            v,
            Json::Object(vec![("a".into(), Json::Number("1".into()))])
        );
        let rest = &text[used..];
        let Next::Value(v, used) = next_value(rest, false) else {
            panic!()
        };
        assert_eq!(
            v,
            Json::Object(vec![(
                "b".into(),
                Json::Array(vec![Json::Bool(true), Json::Null])
            )])
        );
        let rest = &rest[used..];
        // A number at the end of what has come so far may go on.
        assert_eq!(next_value(rest, false), Next::More);
        assert_eq!(
            next_value(rest, true),
            Next::Value(Json::Number("7".into()), rest.len())
        );
        assert_eq!(next_value(b"  ", true), Next::End);
        assert_eq!(next_value(b"  ", false), Next::More);
        assert_eq!(next_value(br#"{"a":"#, false), Next::More);
        // Whatever follows the first value is not looked at.
        assert!(matches!(next_value(b"{}x", true), Next::Value(_, 2)));
    }

    #[test]
    fn strings_keep_their_spelling_and_are_unquoted_as_go_does() {
        let Ok(Json::Str { raw, value }) = check_valid(br#""a\n\u00e9\ud83d\ude00\ud800x\/""#)
        else {
            panic!()
        };
        assert_eq!(raw, r#"a\n\u00e9\ud83d\ude00\ud800x\/"#);
        assert_eq!(value, "a\né😀\u{fffd}x/");
        let Ok(Json::Str { value, .. }) = check_valid(b"\"a\xffb\"") else {
            panic!()
        };
        assert_eq!(value, "a\u{fffd}b");
    }

    #[test]
    fn a_whole_text_must_be_one_value() {
        assert_eq!(check_valid(b" 5 "), Ok(Json::Number("5".into())));
        assert_eq!(check_valid(b""), Err("unexpected end of JSON input".into()));
        assert_eq!(
            check_valid(b" "),
            Err("unexpected end of JSON input".into())
        );
        assert_eq!(
            check_valid(b"abc"),
            Err("invalid character 'a' looking for beginning of value".into())
        );
        assert_eq!(
            check_valid(b"5 x"),
            Err("invalid character 'x' after top-level value".into())
        );
        assert_eq!(check_valid(b"-1.5e+3"), Ok(Json::Number("-1.5e+3".into())));
    }
}
