//! The streaming calls through the gateway, as grpc-gateway v1 runs them:
//! - the requests of a client stream (watch, keepalive) are read from the body one JSON
//!   value after another, as Go's `json.Decoder` reads them: a bad first request is
//!   refused (500, code Unknown) before the call; a bad later one ends the requests
//!   quietly (a half-close);
//! - the responses go back as they come, one `{"result":...}` line per HTTP chunk; a
//!   failure is a last `{"error":{...}}` chunk; nothing at all is sent before the first
//!   response, whose arrival (or failure) decides the HTTP status.

use super::json::{self, Next};
use super::reply::{self, HttpResponse};
use super::schema::Msg;
use crate::grpc_metrics::Call;
use axum::body::{Body, BodyDataStream};
use axum::http::StatusCode;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Code, Status};

/// A bidirectional call of the gRPC method at `path`: `start` turns the requests read
/// from `body` into responses. `limit`: the most one request may take.
pub async fn bidi<Req, Resp, S>(
    path: &str,
    body: Body,
    msg: &'static Msg,
    limit: usize,
    start: impl FnOnce(BoxStream<'static, Result<Req, Status>>) -> S,
) -> HttpResponse
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
{
    let mut reader = BodyReader {
        body: body.into_data_stream(),
        buf: Vec::new(),
        eof: false,
        limit,
        msg,
    };
    let first = match reader.next::<Req>().await {
        Some(Ok(req)) => Some(Ok(req)),
        None => None,
        Some(Err(message)) => return reply::error(Code::Unknown, &message),
    };
    let rest = futures::stream::unfold(reader, |mut reader| async move {
        match reader.next::<Req>().await {
            Some(Ok(req)) => Some((Ok(req), reader)),
            _ => None,
        }
    });
    let requests = futures::stream::iter(first).chain(rest).fuse().boxed();
    forward(Call::start(path), start(requests)).await
}

/// The responses of a stream, one chunk each, from the first one on; `call` is counted
/// handled as the stream ends (canceled if the client goes first).
pub async fn forward<Resp, S>(call: Call, responses: S) -> HttpResponse
where
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
{
    // Fused: the stream is polled again after its first item, which may be its end.
    let mut responses = Box::pin(counted(call, responses).fuse());
    let (status, head) = match responses.next().await {
        None => (StatusCode::OK, None),
        Some(Ok(resp)) => (StatusCode::OK, Some(reply::result_chunk(&resp))),
        Some(Err(status)) => (
            reply::http_status(status.code()),
            Some(reply::error_chunk(&status)),
        ),
    };
    let failed = status != StatusCode::OK;
    let rest = responses.scan(failed, |ended, item| {
        let chunk = match item {
            _ if *ended => None,
            Ok(resp) => Some(reply::result_chunk(&resp)),
            Err(status) => {
                *ended = true;
                Some(reply::error_chunk(&status))
            }
        };
        std::future::ready(chunk)
    });
    let sent = head.is_some();
    let chunks = futures::stream::iter(head)
        .chain(rest)
        .map(Ok::<_, std::convert::Infallible>);
    let mut resp = reply::json(status, Body::from_stream(chunks));
    if sent && !failed {
        reply::grpc_metadata(&mut resp);
    }
    resp
}

/// `responses`, ending `call` with the code of their end: OK, or the failure's.
fn counted<Resp, S>(call: Call, responses: S) -> impl Stream<Item = Result<Resp, Status>>
where
    S: Stream<Item = Result<Resp, Status>>,
{
    let ends = futures::stream::once(async { None });
    responses
        .map(Some)
        .chain(ends)
        .scan(Some(call), |call, item| {
            let end = match &item {
                None => Some(Code::Ok),
                Some(Err(status)) => Some(status.code()),
                Some(Ok(_)) => None,
            };
            if let Some(code) = end
                && let Some(call) = call.take()
            {
                call.end(code);
            }
            std::future::ready(item)
        })
}

/// The requests of a client stream, read from its body.
struct BodyReader {
    body: BodyDataStream,
    buf: Vec<u8>,
    eof: bool,
    limit: usize,
    msg: &'static Msg,
}

impl BodyReader {
    /// The next request; `None` once the body is over.
    async fn next<T: DeserializeOwned>(&mut self) -> Option<Result<T, String>> {
        loop {
            match json::next_value(&self.buf, self.eof) {
                Next::Value(v, used) => {
                    self.buf.drain(..used);
                    return Some(super::decode(self.msg, &v));
                }
                Next::End => return None,
                Next::Bad(message) => return Some(Err(message)),
                Next::More if self.buf.len() > self.limit => {
                    return Some(Err("http: request body too large".into()));
                }
                Next::More => match self.body.next().await {
                    Some(Ok(data)) => self.buf.extend_from_slice(&data),
                    Some(Err(_)) => return Some(Err("unexpected EOF".into())),
                    None => self.eof = true,
                },
            }
        }
    }
}
