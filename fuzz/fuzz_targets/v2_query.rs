//! The v2 keys API's query string and urlencoded form body (`musubi_server::v2::params`).
//!
//! Input: one flags byte, then the query string, a NUL, and the form body.
//! flags bit 0: the request has a query string; bit 1: it has a form body; bit 2: GET.
//!
//! Checks: nothing panics; the parse fails exactly when Go's `url.ParseQuery` (etcd's) fails
//! on the body or the query; `value` and `prevValue` are what Go would decode (the first
//! one, body before query); `clean_path` is idempotent and gives a rooted, clean path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use musubi_fuzz::go_parse_query;
use musubi_server::v2::params::{Form, KeyParams, clean_path};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (query_bytes, body) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &b""[..]),
    };
    let query_string = String::from_utf8_lossy(query_bytes);
    let query = (flags & 1 != 0).then_some(&*query_string);
    let body = (flags & 2 != 0).then_some(body);
    let is_get = flags & 4 != 0;

    // The parser reads the body as UTF-8, lossily; Go's reference sees the same text.
    let body_text = body.map(String::from_utf8_lossy);
    let reference = {
        let mut pairs = Vec::new();
        let mut ok = true;
        for part in [body_text.as_deref(), query].into_iter().flatten() {
            match go_parse_query(part.as_bytes()) {
                Some(p) => pairs.extend(p),
                None => ok = false,
            }
        }
        ok.then_some(pairs)
    };

    let form = Form::parse(query, body);
    assert_eq!(
        form.is_ok(),
        reference.is_some(),
        "parse result differs from Go's url.ParseQuery: {:?}",
        form.as_ref().err()
    );
    if let (Ok(form), Some(pairs)) = (form, reference) {
        let go_first = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| String::from_utf8_lossy(k) == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        if let Ok(params) = KeyParams::from_form(&form, is_get) {
            assert_eq!(params.value, go_first("value").unwrap_or_default());
            assert_eq!(params.prev_value, go_first("prevValue").unwrap_or_default());
            let key = clean_path(&query_string);
            let _ = params.put_op(key.clone(), u64::MAX);
            let _ = params.post_op(key.clone(), 1_000);
            let _ = params.delete_op(key);
        }
    }

    let clean = clean_path(&query_string);
    assert!(clean.starts_with('/'));
    assert!(clean == "/" || !clean.ends_with('/'));
    assert!(!clean.contains("//") && !clean.contains("/./") && !clean.contains("/../"));
    assert_eq!(clean_path(&clean), clean, "clean_path is not idempotent");
});
