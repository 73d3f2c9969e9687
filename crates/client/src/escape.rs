//! Go's `net/url` escaping and etcd's canonical request paths (on `musubi_gocompat`'s
//! `path.Clean`), reproduced so requests (and the curl lines printed for them) are the
//! ones etcd's Go client sends.

use std::fmt::Write;

/// `url.QueryEscape`: keeps `A-Za-z0-9-_.~`, turns space into `+`, %-escapes the rest.
pub fn query_escape(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// `url.Values.Encode`: `k=v` pairs sorted by key, joined by `&`.
pub fn encode_pairs(pairs: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = pairs.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    let mut out = String::new();
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        query_escape(k, &mut out);
        out.push('=');
        query_escape(v, &mut out);
    }
    out
}

/// `url.URL.EscapedPath` for a path set programmatically: keeps unreserved characters and
/// `$&+,/:;=@`, %-escapes the rest.
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'$'
            | b'&'
            | b'+'
            | b','
            | b'/'
            | b':'
            | b';'
            | b'='
            | b'@' => out.push(b as char),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// etcd's `pathutil.CanonicalURLPath`: `path.Clean` that keeps a trailing slash, and "/" for
/// an empty path.
pub fn canonical_path(p: &str) -> String {
    let mut out = musubi_gocompat::path::clean_rooted(p);
    if p.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_encode_sorts_and_escapes_like_go() {
        let pairs = [
            ("value", "a b&c=d~*".to_string()),
            ("ttl", "10".to_string()),
        ];
        assert_eq!(encode_pairs(&pairs), "ttl=10&value=a+b%26c%3Dd~%2A");
    }

    #[test]
    fn canonical_path_keeps_trailing_slash_and_cleans() {
        assert_eq!(canonical_path("/v2/keys/"), "/v2/keys/");
        assert_eq!(canonical_path("/v2/keys//a/./b/../c"), "/v2/keys/a/c");
        assert_eq!(canonical_path("/v2/keys/q/"), "/v2/keys/q/");
        assert_eq!(canonical_path(""), "/");
    }

    #[test]
    fn path_escape_keeps_sub_delims_but_not_question_mark_or_space() {
        assert_eq!(path_escape("/a b?c&d=e!"), "/a%20b%3Fc&d=e%21");
    }
}
