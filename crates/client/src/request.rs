//! Options of each v2 keys operation and how they become an HTTP request. Parameter
//! placement (query string or form body) and defaults copy etcd's Go client
//! (`client/keys.go`), so the server sees what `etcdctl` would send.

use crate::escape::{canonical_path, encode_pairs, path_escape};
use hyper::Method;

/// `GET /v2/keys/KEY` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct GetOptions {
    pub recursive: bool,
    pub sorted: bool,
    /// Linearizable read through the leader.
    pub quorum: bool,
}

/// The `prevExist` condition of a set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PrevExist {
    #[default]
    Ignore,
    /// Update: the key must exist.
    Exist,
    /// Create: the key must not exist.
    NoExist,
}

/// `PUT /v2/keys/KEY` options; the named constructors give the etcdctl verbs.
#[derive(Debug, Clone, Default)]
pub struct SetOptions {
    /// Seconds to live; `None` makes the key permanent.
    pub ttl: Option<u64>,
    /// Compare-and-swap on the current value.
    pub prev_value: Option<String>,
    /// Compare-and-swap on the current modified index.
    pub prev_index: Option<u64>,
    pub prev_exist: PrevExist,
    /// Create a directory (the value is not sent).
    pub dir: bool,
    /// Reset the TTL without changing the value or notifying watchers.
    pub refresh: bool,
    /// The reply carries only the action.
    pub no_value_on_success: bool,
}

impl SetOptions {
    pub fn with_ttl(ttl: Option<u64>) -> Self {
        SetOptions {
            ttl,
            ..Default::default()
        }
    }

    /// Fails with 105 if the key exists.
    pub fn create(ttl: Option<u64>) -> Self {
        SetOptions {
            prev_exist: PrevExist::NoExist,
            ..Self::with_ttl(ttl)
        }
    }

    /// Fails with 100 if the key does not exist.
    pub fn update(ttl: Option<u64>) -> Self {
        SetOptions {
            prev_exist: PrevExist::Exist,
            ..Self::with_ttl(ttl)
        }
    }

    /// A directory with the given existence condition.
    pub fn dir(ttl: Option<u64>, prev_exist: PrevExist) -> Self {
        SetOptions {
            dir: true,
            prev_exist,
            ..Self::with_ttl(ttl)
        }
    }
}

/// `DELETE /v2/keys/KEY` options.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub prev_value: Option<String>,
    pub prev_index: Option<u64>,
    pub dir: bool,
    pub recursive: bool,
}

/// A watcher's options.
#[derive(Debug, Clone, Copy, Default)]
pub struct WatchOptions {
    /// Report events after this index; 0 means from now on.
    pub after_index: u64,
    pub recursive: bool,
}

/// A keys request, independent of the endpoint it will be sent to.
#[derive(Debug, Clone)]
pub(crate) struct KeysRequest {
    pub method: Method,
    /// Escaped path and query, e.g. `/v2/keys/a?prevExist=false`.
    pub path_and_query: String,
    /// Form body for the keys API, JSON for the members API (PUT and POST only).
    pub body: Option<String>,
    /// The body's `Content-Type`.
    pub body_type: &'static str,
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

impl KeysRequest {
    fn new(method: Method, key: &str, query: &[(&str, String)], body: Option<String>) -> Self {
        let key = if key.starts_with('/') || key.is_empty() {
            key.to_string()
        } else {
            format!("/{key}")
        };
        let mut path_and_query = path_escape(&canonical_path(&format!("/v2/keys{key}")));
        if !query.is_empty() {
            path_and_query.push('?');
            path_and_query.push_str(&encode_pairs(query));
        }
        KeysRequest {
            method,
            path_and_query,
            body,
            body_type: FORM,
        }
    }

    pub fn get(key: &str, o: &GetOptions) -> Self {
        let query = [
            ("recursive", o.recursive.to_string()),
            ("sorted", o.sorted.to_string()),
            ("quorum", o.quorum.to_string()),
        ];
        Self::new(Method::GET, key, &query, None)
    }

    pub fn wait(key: &str, wait_index: u64, recursive: bool) -> Self {
        let query = [
            ("wait", "true".to_string()),
            ("waitIndex", wait_index.to_string()),
            ("recursive", recursive.to_string()),
        ];
        Self::new(Method::GET, key, &query, None)
    }

    pub fn set(key: &str, value: &str, o: &SetOptions) -> Self {
        let mut query = Vec::new();
        let mut form = Vec::new();
        if o.dir {
            query.push(("dir", "true".to_string()));
        } else {
            if let Some(pv) = o.prev_value.as_ref().filter(|v| !v.is_empty()) {
                query.push(("prevValue", pv.clone()));
            }
            form.push(("value", value.to_string()));
        }
        if let Some(pi) = o.prev_index.filter(|&i| i != 0) {
            query.push(("prevIndex", pi.to_string()));
        }
        match o.prev_exist {
            PrevExist::Ignore => {}
            PrevExist::Exist => query.push(("prevExist", "true".to_string())),
            PrevExist::NoExist => query.push(("prevExist", "false".to_string())),
        }
        if let Some(ttl) = o.ttl.filter(|&t| t > 0) {
            form.push(("ttl", ttl.to_string()));
        }
        if o.refresh {
            form.push(("refresh", "true".to_string()));
        }
        if o.no_value_on_success {
            query.push(("noValueOnSuccess", "true".to_string()));
        }
        Self::new(Method::PUT, key, &query, Some(encode_pairs(&form)))
    }

    pub fn create_in_order(dir: &str, value: &str, ttl: Option<u64>) -> Self {
        let mut form = vec![("value", value.to_string())];
        if let Some(ttl) = ttl.filter(|&t| t > 0) {
            form.push(("ttl", ttl.to_string()));
        }
        Self::new(Method::POST, dir, &[], Some(encode_pairs(&form)))
    }

    pub fn delete(key: &str, o: &DeleteOptions) -> Self {
        let mut query = Vec::new();
        if let Some(pv) = o.prev_value.as_ref().filter(|v| !v.is_empty()) {
            query.push(("prevValue", pv.clone()));
        }
        if let Some(pi) = o.prev_index.filter(|&i| i != 0) {
            query.push(("prevIndex", pi.to_string()));
        }
        if o.dir {
            query.push(("dir", "true".to_string()));
        }
        if o.recursive {
            query.push(("recursive", "true".to_string()));
        }
        Self::new(Method::DELETE, key, &query, None)
    }

    /// A members API request: `rest` follows `/v2/members`, the body is JSON.
    pub fn members(method: Method, rest: &str, json: Option<String>) -> Self {
        KeysRequest {
            method,
            path_and_query: format!("/v2/members{rest}"),
            body: json,
            body_type: JSON,
        }
    }

    /// `GET /health`.
    pub fn health() -> Self {
        KeysRequest {
            method: Method::GET,
            path_and_query: "/health".to_string(),
            body: None,
            body_type: JSON,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings are etcdctl 3.4's `--debug` output for the same commands.

    #[test]
    fn get_always_sends_all_three_flags() {
        let r = KeysRequest::get(
            "/dbg",
            &GetOptions {
                sorted: true,
                quorum: true,
                ..Default::default()
            },
        );
        assert_eq!(
            r.path_and_query,
            "/v2/keys/dbg?quorum=true&recursive=false&sorted=true"
        );
        assert_eq!(
            KeysRequest::get("/", &GetOptions::default()).path_and_query,
            "/v2/keys/?quorum=false&recursive=false&sorted=false"
        );
    }

    #[test]
    fn mkdir_puts_dir_and_prev_exist_in_query_and_ttl_in_body() {
        let r = KeysRequest::set("/dd", "", &SetOptions::dir(Some(10), PrevExist::NoExist));
        assert_eq!(r.path_and_query, "/v2/keys/dd?dir=true&prevExist=false");
        assert_eq!(r.body.as_deref(), Some("ttl=10"));
    }

    #[test]
    fn compare_and_swap_sends_conditions_in_query_and_value_in_body() {
        let o = SetOptions {
            prev_index: Some(3),
            prev_value: Some("5".into()),
            ..Default::default()
        };
        let r = KeysRequest::set("/b", "6", &o);
        assert_eq!(r.path_and_query, "/v2/keys/b?prevIndex=3&prevValue=5");
        assert_eq!(r.body.as_deref(), Some("value=6"));
    }

    #[test]
    fn in_order_create_posts_value_and_ttl() {
        let r = KeysRequest::create_in_order("/q", "v3", Some(10));
        assert_eq!(
            (r.method, r.path_and_query.as_str(), r.body.as_deref()),
            (Method::POST, "/v2/keys/q", Some("ttl=10&value=v3"))
        );
    }

    #[test]
    fn delete_sends_only_given_conditions() {
        let o = DeleteOptions {
            dir: true,
            recursive: true,
            ..Default::default()
        };
        assert_eq!(
            KeysRequest::delete("/dd2", &o).path_and_query,
            "/v2/keys/dd2?dir=true&recursive=true"
        );
        assert_eq!(
            KeysRequest::delete("dd2", &DeleteOptions::default()).path_and_query,
            "/v2/keys/dd2"
        );
    }

    #[test]
    fn wait_sends_index_and_recursive() {
        assert_eq!(
            KeysRequest::wait("/w", 0, true).path_and_query,
            "/v2/keys/w?recursive=true&wait=true&waitIndex=0"
        );
    }
}
