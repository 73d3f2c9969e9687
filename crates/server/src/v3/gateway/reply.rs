//! The gateway's replies as grpc-gateway v1 writes them: a message as JSON, an error as
//! `{"error","message","code"}` with the HTTP status of its gRPC code, the chunks of a
//! stream, and Go's plain-text 404 and 405.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;
use tonic::{Code, Status};

pub type HttpResponse = Response<Body>;

/// A successful unary reply: the response message.
pub fn message<T: Serialize>(resp: &T) -> HttpResponse {
    let mut reply = json(StatusCode::OK, Body::from(to_json(resp)));
    grpc_metadata(&mut reply);
    reply
}

/// A unary error: `{"error":M,"message":M,"code":N}` with the HTTP status of the code
/// (jsonpb leaves out the empty message).
pub fn error(code: Code, message: &str) -> HttpResponse {
    let mut body = serde_json::Map::new();
    if !message.is_empty() {
        body.insert("error".into(), message.into());
        body.insert("message".into(), message.into());
    }
    if code != Code::Ok {
        body.insert("code".into(), (code as i32).into());
    }
    json(http_status(code), Body::from(to_json(&body)))
}

pub fn status(status: &Status) -> HttpResponse {
    error(status.code(), status.message())
}

/// One message of a stream: `{"result":...}` and a newline.
pub fn result_chunk<T: Serialize>(resp: &T) -> Bytes {
    let mut out = b"{\"result\":".to_vec();
    out.extend(to_json(resp));
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// The last message of a stream that failed (grpc-gateway writes no newline after it).
pub fn error_chunk(status: &Status) -> Bytes {
    let http = http_status(status.code());
    let mut inner = serde_json::Map::new();
    inner.insert("grpc_code".into(), (status.code() as i32).into());
    inner.insert("http_code".into(), http.as_u16().into());
    if !status.message().is_empty() {
        inner.insert("message".into(), status.message().into());
    }
    let reason = http.canonical_reason().unwrap_or_default();
    inner.insert("http_status".into(), reason.into());
    let chunk = serde_json::json!({ "error": inner });
    Bytes::from(to_json(&chunk))
}

/// `value` as Go's jsonpb writes it (pbjson's field names and forms, Go's escaping).
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    musubi_gocompat::json::escape_html_and_control(
        &serde_json::to_string(value).unwrap_or_default(),
    )
    .into_bytes()
}

/// grpc-gateway's `HTTPStatusFromCode` (v1).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

pub fn json(status: StatusCode, body: Body) -> HttpResponse {
    let mut reply = Response::new(body);
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    reply
}

/// The gRPC response header etcd's gateway passes on with a successful reply.
pub fn grpc_metadata(reply: &mut HttpResponse) {
    reply.headers_mut().insert(
        "Grpc-Metadata-Content-Type",
        HeaderValue::from_static("application/grpc"),
    );
}

/// Go's `http.Error`, which grpc-gateway answers 404 and 405 with.
pub fn plain(status: StatusCode, text: &'static str) -> HttpResponse {
    let mut reply = Response::new(Body::from(text));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use musubi_proto::etcdserverpb as pb;

    #[test]
    fn errors_carry_the_http_status_of_their_code() {
        let future = "etcdserver: mvcc: required revision is a future revision";
        assert_eq!(
            error(Code::OutOfRange, future).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            http_status(Code::FailedPrecondition),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            http_status(Code::Unimplemented),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            error_chunk(&Status::unavailable("etcdserver: no leader")),
            Bytes::from_static(
                br#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#
            )
        );
    }

    #[test]
    fn stream_messages_are_one_result_line_each() {
        let chunk = result_chunk(&pb::LeaseKeepAliveResponse {
            header: None,
            id: 8,
            ttl: 0,
        });
        assert_eq!(chunk, Bytes::from_static(b"{\"result\":{\"ID\":\"8\"}}\n"));
    }
}
