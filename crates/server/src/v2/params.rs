//! Parsing a `/v2/keys` request (query string and form body) into what etcd would do,
//! with etcd's error code and cause for every malformed parameter.

use musubi_gocompat::strconv::parse_bool;
use musubi_store::{Compare, ErrorCode, Expiry, V2Error, V2Op};

/// The parameters of one keys request, validated.
#[derive(Debug, Default, PartialEq)]
pub struct KeyParams {
    pub value: String,
    pub dir: bool,
    pub recursive: bool,
    pub sorted: bool,
    pub wait: bool,
    pub stream: bool,
    pub quorum: bool,
    pub no_value_on_success: bool,
    pub prev_value: String,
    pub prev_index: u64,
    pub wait_index: u64,
    pub ttl: Option<u64>,
    pub prev_exist: Option<bool>,
    pub refresh: bool,
}

/// Form values in Go's order: body values before query values, first one wins.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// `body` is the form body when the request carries one (PUT/POST, urlencoded).
    pub fn parse(query: Option<&str>, body: Option<&[u8]>) -> Result<Form, V2Error> {
        let mut pairs = Vec::new();
        if let Some(body) = body {
            decode_pairs(&String::from_utf8_lossy(body), &mut pairs)?;
        }
        if let Some(query) = query {
            decode_pairs(query, &mut pairs)?;
        }
        Ok(Form(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(code: ErrorCode, cause: &str) -> V2Error {
    V2Error::new(code, cause, 0)
}

/// Go's `url.ParseQuery` rules: `&` separates, `;` is refused, `+` is a space.
fn decode_pairs(raw: &str, out: &mut Vec<(String, String)>) -> Result<(), V2Error> {
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        if piece.contains(';') {
            return Err(invalid(
                ErrorCode::InvalidForm,
                "invalid semicolon separator in query",
            ));
        }
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        out.push((unescape(k)?, unescape(v)?));
    }
    Ok(())
}

fn unescape(s: &str) -> Result<String, V2Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                // Two hex digits, as Go's `ishex` checks them (`from_str_radix` alone
                // would take "+f").
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(byte) = hex else {
                    // Go cuts bytes, not characters: the cut may split one.
                    let bad =
                        musubi_gocompat::strconv::quote_bytes(&bytes[i..(i + 3).min(bytes.len())]);
                    return Err(invalid(
                        ErrorCode::InvalidForm,
                        &format!("invalid URL escape {bad}"),
                    ));
                };
                out.push(byte);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

fn flag(form: &Form, name: &str) -> Result<bool, V2Error> {
    match form.get(name) {
        None => Ok(false),
        Some(v) => parse_bool(v).ok_or_else(|| {
            invalid(
                ErrorCode::InvalidField,
                &format!("invalid value for \"{name}\""),
            )
        }),
    }
}

fn number(form: &Form, name: &str, code: ErrorCode) -> Result<u64, V2Error> {
    match form.get(name) {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| invalid(code, &format!("invalid value for \"{name}\""))),
    }
}

impl KeyParams {
    /// Validates in etcd's order, so the first error reported is the one etcd reports.
    pub fn from_form(form: &Form, method_is_get: bool) -> Result<KeyParams, V2Error> {
        let prev_index = number(form, "prevIndex", ErrorCode::IndexNan)?;
        let wait_index = number(form, "waitIndex", ErrorCode::IndexNan)?;
        let recursive = flag(form, "recursive")?;
        let sorted = flag(form, "sorted")?;
        let wait = flag(form, "wait")?;
        let dir = flag(form, "dir")?;
        let quorum = flag(form, "quorum")?;
        let stream = flag(form, "stream")?;
        if wait && !method_is_get {
            return Err(invalid(
                ErrorCode::InvalidField,
                "\"wait\" can only be used with GET requests",
            ));
        }
        let prev_value = form.get("prevValue");
        if prev_value == Some("") {
            return Err(invalid(
                ErrorCode::PrevValueRequired,
                "\"prevValue\" cannot be empty",
            ));
        }
        let no_value_on_success = flag(form, "noValueOnSuccess")?;
        let ttl = match form.get("ttl") {
            None | Some("") => None,
            Some(t) => Some(
                t.parse()
                    .map_err(|_| invalid(ErrorCode::TtlNan, "invalid value for \"ttl\""))?,
            ),
        };
        let prev_exist =
            match form.get("prevExist") {
                None => None,
                Some(v) => Some(parse_bool(v).ok_or_else(|| {
                    invalid(ErrorCode::InvalidField, "invalid value for prevExist")
                })?),
            };
        let refresh = match form.get("refresh") {
            None => false,
            Some(v) => parse_bool(v)
                .ok_or_else(|| invalid(ErrorCode::InvalidField, "invalid value for refresh"))?,
        };
        let value = form.get("value").unwrap_or_default();
        if refresh {
            if !value.is_empty() {
                return Err(invalid(
                    ErrorCode::RefreshValue,
                    "A value was provided on a refresh",
                ));
            }
            if ttl.is_none() {
                return Err(invalid(ErrorCode::RefreshTtlRequired, "No TTL value set"));
            }
        }
        Ok(KeyParams {
            value: value.to_string(),
            dir,
            recursive,
            sorted,
            wait,
            stream,
            quorum,
            no_value_on_success,
            prev_value: prev_value.unwrap_or_default().to_string(),
            prev_index,
            wait_index,
            ttl,
            prev_exist,
            refresh,
        })
    }

    fn expiry(&self, now_ms: u64) -> Expiry {
        match self.ttl {
            None => Expiry::Permanent,
            Some(ttl) => Expiry::At(now_ms.saturating_add(ttl.saturating_mul(1000))),
        }
    }

    fn compare(&self) -> Compare {
        Compare {
            prev_value: Some(self.prev_value.clone()).filter(|v| !v.is_empty()),
            prev_index: Some(self.prev_index).filter(|i| *i != 0),
        }
    }

    fn has_compare(&self) -> bool {
        self.prev_index > 0 || !self.prev_value.is_empty()
    }

    /// A PUT becomes update, compareAndSwap, create or set, by etcd's rules.
    pub fn put_op(&self, key: String, now_ms: u64) -> V2Op {
        let expiry = self.expiry(now_ms);
        let file_value = (!self.dir).then(|| self.value.clone());
        match self.prev_exist {
            Some(true) if !self.has_compare() => V2Op::Update {
                key,
                value: Some(self.value.clone()),
                expiry,
                refresh: self.refresh,
            },
            Some(false) => V2Op::Create {
                key,
                value: file_value,
                expiry,
                in_order: false,
            },
            _ if self.has_compare() => V2Op::CompareAndSwap {
                key,
                value: self.value.clone(),
                expiry,
                refresh: self.refresh,
                compare: self.compare(),
            },
            _ => V2Op::Set {
                key,
                value: file_value,
                expiry,
                refresh: self.refresh,
            },
        }
    }

    /// A POST creates an in-order child of `key`.
    pub fn post_op(&self, key: String, now_ms: u64) -> V2Op {
        V2Op::Create {
            key,
            value: (!self.dir).then(|| self.value.clone()),
            expiry: self.expiry(now_ms),
            in_order: true,
        }
    }

    pub fn delete_op(&self, key: String) -> V2Op {
        if self.has_compare() {
            V2Op::CompareAndDelete {
                key,
                compare: self.compare(),
            }
        } else {
            V2Op::Delete {
                key,
                dir: self.dir,
                recursive: self.recursive,
            }
        }
    }
}

/// Go's `path.Clean` for a rooted path: no empty, `.` or `..` components, no trailing `/`.
pub fn clean_path(path: &str) -> String {
    musubi_store::clean_key(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str, get: bool) -> Result<KeyParams, V2Error> {
        KeyParams::from_form(&Form::parse(Some(query), None)?, get)
    }

    #[test]
    fn body_values_win_over_query_values() {
        let form = Form::parse(Some("value=q"), Some(b"value=body")).unwrap();
        assert_eq!(KeyParams::from_form(&form, false).unwrap().value, "body");
    }

    #[test]
    fn malformed_parameters_get_etcds_codes_and_causes() {
        let cases = [
            ("ttl=abc", 202, "invalid value for \"ttl\""),
            ("ttl=-1", 202, "invalid value for \"ttl\""),
            ("prevIndex=x", 203, "invalid value for \"prevIndex\""),
            ("prevExist=maybe", 209, "invalid value for prevExist"),
            ("wait=yes", 209, "invalid value for \"wait\""),
            ("prevValue=", 201, "\"prevValue\" cannot be empty"),
            (
                "refresh=true&value=1&ttl=1",
                211,
                "A value was provided on a refresh",
            ),
            ("refresh=true", 212, "No TTL value set"),
            ("value=%zz", 210, "invalid URL escape \"%zz\""),
        ];
        for (query, code, cause) in cases {
            let err = params(query, true).unwrap_err();
            assert_eq!(
                (err.code.code(), err.cause.as_str()),
                (code, cause),
                "{query}"
            );
        }
        assert_eq!(
            params("wait=true", false).unwrap_err().cause,
            "\"wait\" can only be used with GET requests"
        );
    }

    #[test]
    fn a_bad_escape_that_cuts_a_character_is_refused_not_a_panic() {
        // Found by the v2_query fuzz target: the cause sliced the string inside a character.
        let cause = |query: &str| params(query, true).unwrap_err().cause;
        assert_eq!(cause("value=%a\u{e9}"), "invalid URL escape \"%a\\xc3\"");
        assert_eq!(cause("%\u{fffd}"), "invalid URL escape \"%\\xef\\xbf\"");
        let form = Form::parse(None, Some(b"value=%\xff"));
        assert_eq!(form.err().unwrap().code.code(), 210);
        assert_eq!(cause("value=%\"1"), "invalid URL escape \"%\\\"1\"");
    }

    #[test]
    fn an_escape_takes_two_hex_digits_and_no_sign() {
        // Go's ishex refuses "+f", which u8::from_str_radix would take as 15.
        let err = params("value=%+f", true).unwrap_err();
        assert_eq!(
            (err.code.code(), err.cause.as_str()),
            (210, "invalid URL escape \"%+f\"")
        );
        assert_eq!(
            params("value=%2B%e3%81%82", false).unwrap().value,
            "+\u{3042}"
        );
    }

    #[test]
    fn an_empty_ttl_means_no_ttl() {
        assert_eq!(params("ttl=", false).unwrap().ttl, None);
    }

    #[test]
    fn puts_map_to_etcds_actions() {
        let op = |q: &str| {
            params(q, false)
                .unwrap()
                .put_op("/k".into(), 0)
                .action_name()
        };
        assert_eq!(op("value=1"), "set");
        assert_eq!(op("prevExist=true"), "update");
        assert_eq!(op("prevExist=true&prevValue=a"), "compareAndSwap");
        assert_eq!(op("prevExist=false"), "create");
        assert_eq!(op("prevIndex=3"), "compareAndSwap");
        assert_eq!(op("prevIndex=0"), "set");
    }

    #[test]
    fn paths_are_cleaned_like_go() {
        assert_eq!(clean_path("//a/../b/./c/"), "/b/c");
        assert_eq!(clean_path(""), "/");
        assert_eq!(clean_path("/../.."), "/");
    }
}
