//! Every peer message names the cluster it belongs to, as etcd's `X-Etcd-Cluster-ID` does.
//!
//! Anything may answer on a member's peer URL: a member of another cluster, a member
//! started with the wrong flags, a stray process that took a port an added member was
//! meant to use. Its Raft replies (a later vote), its member list (without us in it) or
//! its leadership must never reach this cluster's Raft. So each request carries the
//! sender's cluster ID and each reply the answerer's; a member refuses a request from
//! another cluster with `412 Precondition Failed`, and a sender treats a reply from another
//! cluster (or one with no ID: not a musubi peer) as if the peer were unreachable: as far as
//! this cluster is concerned, nothing was delivered.
//!
//! Only the two routes a member calls before it knows its cluster (joining with `-peers`,
//! looking itself up with `--initial-cluster-state existing`) accept a request without an
//! ID; their replies still carry one, and those callers adopt it.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

/// The header etcd uses on its peer and client replies.
pub(crate) const HEADER: &str = "x-etcd-cluster-id";

/// The header value for `cluster`: lower-case hex, as etcd writes it.
pub(crate) fn value(cluster: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("{cluster:x}")).expect("hex digits are a valid header value")
}

/// The cluster `headers` name, if they name one.
pub(crate) fn read(headers: &HeaderMap) -> Option<u64> {
    let text = headers.get(HEADER)?.to_str().ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// Why a peer's reply does not count: it answers for another cluster, or for none.
pub(crate) fn foreign_reply(url: &str, expected: u64, headers: &HeaderMap) -> Option<String> {
    match read(headers) {
        Some(id) if id == expected => None,
        Some(id) => Some(format!(
            "{url} belongs to cluster {id:x}, not to this member's cluster {expected:x}"
        )),
        None => Some(format!(
            "{url} is not a member of cluster {expected:x} (its reply names no cluster)"
        )),
    }
}

/// Guards `router`: requests naming another cluster are refused, requests naming none are
/// refused unless their path is in `open_paths`, and every reply names `cluster`.
pub(crate) fn guard(router: Router, cluster: u64, open_paths: &'static [&'static str]) -> Router {
    router.layer(middleware::from_fn_with_state(
        Guard {
            cluster,
            open_paths,
        },
        check,
    ))
}

#[derive(Clone)]
struct Guard {
    cluster: u64,
    open_paths: &'static [&'static str],
}

async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let refusal = match read(request.headers()) {
        Some(id) if id == guard.cluster => None,
        Some(id) => Some(format!(
            "cluster ID mismatch: this member is in cluster {:x}, the request came from cluster {id:x}",
            guard.cluster
        )),
        None if guard.open_paths.contains(&request.uri().path()) => None,
        None => Some(format!(
            "cluster ID mismatch: this member is in cluster {:x}, the request names no cluster",
            guard.cluster
        )),
    };
    let mut response = match refusal {
        Some(reason) => {
            tracing::debug!(path = %request.uri().path(), "{reason}");
            (StatusCode::PRECONDITION_FAILED, reason).into_response()
        }
        None => next.run(request).await,
    };
    response.headers_mut().insert(HEADER, value(guard.cluster));
    response
}
