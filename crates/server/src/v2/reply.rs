//! Building HTTP responses the way etcd's v2 handlers write them: headers, status codes,
//! and the one table that maps v2 error codes to HTTP statuses.

use super::json;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use musubi_store::{Action, ErrorCode, Event, V2Error};

/// etcd's v2 headers, named once: a name given as text is parsed on every reply.
pub const X_ETCD_INDEX: HeaderName = HeaderName::from_static("x-etcd-index");
const X_RAFT_INDEX: HeaderName = HeaderName::from_static("x-raft-index");
const X_RAFT_TERM: HeaderName = HeaderName::from_static("x-raft-term");
pub const X_ETCD_CLUSTER_ID: HeaderName = HeaderName::from_static("x-etcd-cluster-id");

/// The headers a v2 keys reply carries: type, cluster ID, three indexes, three for CORS.
const REPLY_HEADERS: usize = 8;

pub type HttpResponse = Response<Body>;

/// The Raft position a reply reports in `X-Raft-Index` / `X-Raft-Term`.
#[derive(Clone, Copy, Debug)]
pub struct RaftPosition {
    pub index: u64,
    pub term: u64,
}

/// etcd's mapping from `errorCode` to HTTP status.
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::KeyNotFound => StatusCode::NOT_FOUND,
        ErrorCode::TestFailed | ErrorCode::NodeExist => StatusCode::PRECONDITION_FAILED,
        ErrorCode::NotFile | ErrorCode::DirNotEmpty => StatusCode::FORBIDDEN,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::RaftInternal | ErrorCode::LeaderElect => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn header_value(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

pub fn json_body(status: StatusCode, body: String) -> HttpResponse {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    // Room for what a keys reply carries, so the map is allocated once instead of
    // growing as the headers are added.
    resp.headers_mut().reserve(REPLY_HEADERS);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn error(err: &V2Error) -> HttpResponse {
    let mut resp = json_body(status_for(err.code), json::error(err));
    resp.headers_mut()
        .insert(X_ETCD_INDEX, header_value(err.index));
    resp
}

/// An internal failure (timeout, lost leader, storage) as etcd reports it: 300 with the
/// error text as cause.
pub fn internal(cause: impl Into<String>) -> HttpResponse {
    error(&V2Error::new(ErrorCode::RaftInternal, cause, 0))
}

pub fn set_raft_headers(resp: &mut HttpResponse, etcd_index: u64, raft: RaftPosition) {
    let headers = resp.headers_mut();
    headers.insert(X_ETCD_INDEX, header_value(etcd_index));
    headers.insert(X_RAFT_INDEX, header_value(raft.index));
    headers.insert(X_RAFT_TERM, header_value(raft.term));
}

/// A completed operation: 201 for a create or a set of a new key, else 200.
pub fn event(ev: &Event, raft: RaftPosition, no_value_on_success: bool) -> HttpResponse {
    let created =
        ev.action == Action::Create || (ev.action == Action::Set && ev.prev_node.is_none());
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let hide = no_value_on_success
        && matches!(
            ev.action,
            Action::Set | Action::Create | Action::Update | Action::CompareAndSwap
        );
    let mut resp = json_body(status, json::event(ev, hide));
    set_raft_headers(&mut resp, ev.etcd_index, raft);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_statuses_follow_etcd() {
        assert_eq!(status_for(ErrorCode::KeyNotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            status_for(ErrorCode::NodeExist),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(status_for(ErrorCode::DirNotEmpty), StatusCode::FORBIDDEN);
        assert_eq!(status_for(ErrorCode::RootReadOnly), StatusCode::BAD_REQUEST);
        assert_eq!(
            status_for(ErrorCode::EventIndexCleared),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_for(ErrorCode::RaftInternal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
