//! HTTP Basic credentials, read the way Go's `Request.BasicAuth` reads them. etcd tells
//! "no Authorization header" (guest) apart from "a header that is not valid Basic" (denied).

use axum::http::{HeaderMap, header};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// No Authorization header at all: the guest role applies.
    Absent,
    Basic {
        user: String,
        password: String,
    },
    /// A header that is not Basic, or not decodable: always denied.
    Malformed,
}

impl Credentials {
    pub fn from_headers(headers: &HeaderMap) -> Credentials {
        match headers.get(header::AUTHORIZATION) {
            None => Credentials::Absent,
            Some(v) if v.is_empty() => Credentials::Absent,
            Some(v) => v
                .to_str()
                .ok()
                .and_then(parse_basic)
                .unwrap_or(Credentials::Malformed),
        }
    }

    /// As the store's `authorize` / `is_root` take it; `Err` for a malformed header.
    pub(crate) fn as_user(&self) -> Result<Option<(&str, &str)>, ()> {
        match self {
            Credentials::Absent => Ok(None),
            Credentials::Basic { user, password } => Ok(Some((user, password))),
            Credentials::Malformed => Err(()),
        }
    }
}

fn parse_basic(value: &str) -> Option<Credentials> {
    const PREFIX: &str = "Basic ";
    let head = value.get(..PREFIX.len())?;
    if !head.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let decoded =
        String::from_utf8(musubi_gocompat::base64::decode(&value[PREFIX.len()..]).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some(Credentials::Basic {
        user: user.to_string(),
        password: password.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn creds(v: Option<&str>) -> Credentials {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        Credentials::from_headers(&h)
    }

    #[test]
    fn parses_like_go() {
        assert_eq!(creds(None), Credentials::Absent);
        // "root:pw" and "u:a:b" (the password may hold colons).
        assert_eq!(
            creds(Some("Basic cm9vdDpwdw==")),
            Credentials::Basic {
                user: "root".into(),
                password: "pw".into()
            }
        );
        assert_eq!(
            creds(Some("basic dTphOmI=")),
            Credentials::Basic {
                user: "u".into(),
                password: "a:b".into()
            }
        );
        assert_eq!(creds(Some("Bearer x")), Credentials::Malformed);
        assert_eq!(creds(Some("Basic !!!!")), Credentials::Malformed);
        assert_eq!(
            creds(Some("Basic cm9vdA==")),
            Credentials::Malformed,
            "no colon"
        );
    }
}
