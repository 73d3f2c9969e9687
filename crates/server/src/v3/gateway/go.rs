//! `encoding/json`'s escaping of strings, which the gateway's replies repeat (the rest of
//! Go's behaviour it needs is in `musubi_gocompat`).

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
    fn json_strings_are_escaped_as_go_escapes_them() {
        let text = serde_json::to_vec(&"<a&b>\u{8}\u{c}\n\\b\u{2028}é").unwrap();
        assert_eq!(
            String::from_utf8(escape_json(text)).unwrap(),
            r#""\u003ca\u0026b\u003e\u0008\u000c\n\\b\u2028é""#
        );
    }
}
