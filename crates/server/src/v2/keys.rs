//! `/v2/keys`: every request follows one path: parse and validate (`params`), then either
//! read locally, read after a ReadIndex barrier, start a watch, or propose exactly one
//! `Request` and wait for it to be applied.

use super::basic_auth::Credentials;
use super::json;
use super::params::{Form, KeyParams};
use super::reply::{self, HttpResponse, RaftPosition};
use crate::app::App;
use axum::body::{Body, HttpBody};
use axum::http::{HeaderValue, Method, StatusCode, header};
use bytes::Bytes;
use musubi_store::{Request, Response, V2Error};
use std::sync::Arc;

/// One parsed keys request.
pub struct KeysRequest<'a> {
    pub method: &'a Method,
    /// The key, already cleaned (`/` for the root).
    pub key: String,
    pub query: Option<&'a str>,
    /// The urlencoded form body, when the request has one.
    pub form_body: Option<Bytes>,
    /// The decoded path after `/v2/keys`, uncleaned: etcd checks permissions on it
    /// (so `/v2/keys` is `""`, and a trailing `/` counts).
    pub auth_key: &'a str,
    pub credentials: Credentials,
}

pub async fn handle(app: Arc<App>, req: KeysRequest<'_>) -> HttpResponse {
    let form = match Form::parse(req.query, req.form_body.as_deref()) {
        Ok(form) => form,
        Err(e) => return reply::error(&e),
    };
    let is_get = *req.method == Method::GET || *req.method == Method::HEAD;
    let params = match KeyParams::from_form(&form, is_get) {
        Ok(p) => p,
        Err(e) => return reply::error(&e),
    };
    // As in etcd: after the parameters are validated, before anything is read or written.
    let denied = match req.credentials.as_user() {
        Ok(user) => app
            .sm
            .read()
            .auth()
            .authorize(user, req.auth_key, params.recursive, !is_get)
            .err(),
        Err(()) => Some(musubi_store::unauthorized()),
    };
    if let Some(e) = denied {
        return reply::error(&e);
    }
    if params.value.len() > app.limits.max_value_bytes {
        return reply::internal("etcdserver: request is too large");
    }
    let now = crate::clock::now_ms();
    let op = match *req.method {
        Method::GET | Method::HEAD => {
            return read(&app, req.key, &params, *req.method == Method::HEAD).await;
        }
        Method::PUT => params.put_op(req.key, now),
        Method::POST => params.post_op(req.key, now),
        _ => params.delete_op(req.key),
    };
    write(
        &app,
        Request::V2 { op, now_ms: now },
        params.no_value_on_success,
    )
    .await
}

async fn write(app: &App, request: Request, no_value_on_success: bool) -> HttpResponse {
    let applied =
        match tokio::time::timeout(app.limits.request_timeout, app.raft.write(request)).await {
            Ok(Ok(applied)) => applied,
            Ok(Err(e)) => return reply::internal(e.to_string()),
            Err(_) => return reply::internal("etcdserver: request timed out"),
        };
    let raft = RaftPosition {
        index: applied.log_index,
        term: applied.term,
    };
    match &applied.response {
        Response::V2(Ok(event)) => reply::event(event, raft, no_value_on_success),
        Response::V2(Err(e)) => reply::error(e),
        Response::Expired(_) | Response::Auth(_) | Response::V3 { .. } | Response::Refused => {
            reply::internal("unexpected response to a keys request")
        }
    }
}

async fn read(app: &App, key: String, params: &KeyParams, head: bool) -> HttpResponse {
    if params.wait {
        return watch(app, &key, params);
    }
    if params.quorum {
        let barrier =
            tokio::time::timeout(app.limits.request_timeout, app.raft.linearizable_barrier()).await;
        match barrier {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return reply::internal(e.to_string()),
            Err(_) => return reply::internal("etcdserver: request timed out"),
        }
    }
    let now_ms = crate::clock::now_ms();
    let result = app.sm.read().get(&key, params.recursive, now_ms);
    let raft = app.raft_position();
    let mut resp = match result {
        Ok(event) => reply::event(&event, raft, false),
        Err(e) => reply::error(&e),
    };
    if head {
        // As etcd (Go's net/http): the length the GET's body would have, and no body.
        if let Some(length) = resp.body().size_hint().exact() {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        *resp.body_mut() = Body::empty();
    }
    resp
}

/// Starts a watch: headers go out at once; the body is one event, or with `stream=true`
/// one event per line until the client leaves or falls 100 events behind.
fn watch(app: &App, key: &str, params: &KeyParams) -> HttpResponse {
    let started: Result<_, V2Error> = {
        let sm = app.sm.read();
        let index = sm.index();
        app.hub
            .watch(
                key,
                params.recursive,
                params.stream,
                params.wait_index,
                index,
            )
            .map(|w| (w, index))
    };
    let (watch, start_index) = match started {
        Ok(started) => started,
        Err(e) => return reply::error(&e),
    };
    let stream = params.stream;
    let body = futures::stream::unfold(
        (watch.events, false),
        move |(mut events, done)| async move {
            if done {
                return None;
            }
            let event = events.recv().await?;
            let line = Bytes::from(json::event(&event, false));
            Some((Ok::<_, std::convert::Infallible>(line), (events, !stream)))
        },
    );
    let mut resp = reply::json_body(StatusCode::OK, String::new());
    *resp.body_mut() = Body::from_stream(body);
    reply::set_raft_headers(&mut resp, start_index, app.raft_position());
    resp
}
