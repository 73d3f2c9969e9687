//! Just enough HTTP/1.1 response parsing for the load generator: the status, where the
//! response ends (Content-Length or chunked), and whether the server will close.

/// What the bytes at the front of the read buffer hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// One whole response of `len` bytes.
    Complete {
        status: u16,
        len: usize,
        close: bool,
    },
    /// Not HTTP this parser understands; the connection must be dropped.
    Invalid,
}

pub fn parse(buf: &[u8]) -> Parsed {
    let Some(head_end) = find(buf, b"\r\n\r\n").map(|i| i + 4) else {
        return Parsed::Incomplete;
    };
    let head = &buf[..head_end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status = match lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|s| std::str::from_utf8(s).ok())
    {
        Some(code) => match code.parse::<u16>() {
            Ok(s) => s,
            Err(_) => return Parsed::Invalid,
        },
        None => return Parsed::Invalid,
    };
    let mut content_length = None;
    let mut chunked = false;
    let mut close = false;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value.eq_ignore_ascii_case(b"close");
        }
    }
    let body_len = if chunked {
        match chunked_len(&buf[head_end..]) {
            Some(Ok(n)) => n,
            Some(Err(())) => return Parsed::Invalid,
            None => return Parsed::Incomplete,
        }
    } else if let Some(n) = content_length {
        n
    } else if status == 204 || status == 304 || status < 200 {
        0
    } else {
        // A body delimited by closing the connection: not something a benchmark can pace.
        return Parsed::Invalid;
    };
    if buf.len() < head_end + body_len {
        return Parsed::Incomplete;
    }
    Parsed::Complete {
        status,
        len: head_end + body_len,
        close,
    }
}

/// The length of a complete chunked body (`None` while incomplete; trailers unsupported).
fn chunked_len(body: &[u8]) -> Option<Result<usize, ()>> {
    let mut at = 0;
    loop {
        let line_end = find(&body[at..], b"\r\n")? + at;
        let size_text = body[at..line_end]
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default();
        let Some(size) = std::str::from_utf8(size_text)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
        else {
            return Some(Err(()));
        };
        at = line_end + 2 + size + 2;
        if body.len() < at {
            return None;
        }
        if size == 0 {
            return Some(Ok(at));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_response_is_complete_only_with_its_body() {
        let r = b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Etcd-Index: 4\r\n\r\nhello";
        assert_eq!(
            parse(r),
            Parsed::Complete {
                status: 201,
                len: r.len(),
                close: false
            }
        );
        assert_eq!(parse(&r[..r.len() - 1]), Parsed::Incomplete);
        assert_eq!(parse(&r[..10]), Parsed::Incomplete);
    }

    #[test]
    fn chunked_response_ends_at_the_zero_chunk() {
        let r = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1";
        assert_eq!(
            parse(r),
            Parsed::Complete {
                status: 200,
                len: r.len() - 8,
                close: true
            }
        );
        assert_eq!(parse(&r[..r.len() - 10]), Parsed::Incomplete);
    }

    #[test]
    fn garbage_is_invalid() {
        assert_eq!(parse(b"SSH-2.0\r\n\r\n"), Parsed::Invalid);
    }
}
