//! `grpc_server_started_total` and `grpc_server_handled_total`, labelled as etcd's
//! go-grpc-prometheus labels them (`grpc_type`, `grpc_service`, `grpc_method`,
//! `grpc_code`), counted around every gRPC call on the client port.
//!
//! A call's code is in its response headers when it fails at once (a "trailers-only"
//! response) and in its trailers otherwise, so the body is watched to its end; a stream
//! dropped before its trailers (the client went away) counts as `Canceled`, as grpc-go
//! counts it.

use axum::body::{Body, HttpBody};
use axum::http::{HeaderMap, Response};
use metrics::Counter;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, OnceLock};
use std::task::{Context, Poll};

/// One call being served.
pub struct Call {
    counters: Arc<MethodCounters>,
    finished: bool,
}

/// One method's counters, registered on its first call and kept: every request passes
/// here, and building label strings and finding the counters in the registry on each call
/// cost more than the lookup of this map.
struct MethodCounters {
    labels: [(&'static str, String); 3],
    started: Counter,
    /// By gRPC code number, each registered when first seen.
    handled: [OnceLock<Counter>; CODE_NAMES.len()],
}

/// Kept methods, by path. Bounded: a client can send any path, and only etcd's ~60
/// methods deserve a place; past the bound a path's counters are registered per call.
static METHODS: LazyLock<RwLock<HashMap<String, Arc<MethodCounters>>>> =
    LazyLock::new(RwLock::default);
const KEPT_METHODS: usize = 256;

impl MethodCounters {
    fn of(path: &str) -> Arc<MethodCounters> {
        if let Some(counters) = METHODS.read().get(path) {
            return counters.clone();
        }
        let counters = Arc::new(MethodCounters::new(path));
        let mut methods = METHODS.write();
        if methods.len() >= KEPT_METHODS {
            return counters;
        }
        methods.entry(path.to_string()).or_insert(counters).clone()
    }

    fn new(path: &str) -> MethodCounters {
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", path));
        let labels = [
            ("grpc_type", call_type(method).to_string()),
            ("grpc_service", service.to_string()),
            ("grpc_method", method.to_string()),
        ];
        MethodCounters {
            started: metrics::counter!("grpc_server_started_total", &labels),
            labels,
            handled: Default::default(),
        }
    }

    fn handled(&self, code: usize) -> &Counter {
        self.handled[code].get_or_init(|| {
            let [t, s, m] = &self.labels;
            let labels = [
                t.clone(),
                s.clone(),
                m.clone(),
                ("grpc_code", CODE_NAMES[code].to_string()),
            ];
            metrics::counter!("grpc_server_handled_total", &labels)
        })
    }
}

impl Call {
    /// Counts the start of the call at `path` (`/etcdserverpb.KV/Range`).
    pub fn start(path: &str) -> Call {
        let counters = MethodCounters::of(path);
        counters.started.increment(1);
        Call {
            counters,
            finished: false,
        }
    }

    /// Counts the call as handled once its status is known: now if the headers carry it,
    /// else when the body's trailers go out.
    pub fn finish(mut self, response: Response<Body>) -> Response<Body> {
        if let Some(code) = status_in(response.headers()) {
            self.handled(code);
            return response;
        }
        response.map(|body| Body::new(Watched { body, call: self }))
    }

    /// Counts the call as handled with `code`, for a caller that knows it without a
    /// gRPC response to read it from (the JSON gateway).
    pub fn end(mut self, code: tonic::Code) {
        self.handled(code as usize);
    }

    fn handled(&mut self, code: usize) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.counters.handled(code).increment(1);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.handled(CANCELED);
    }
}

/// A response body that reports its call's status when the trailers pass.
struct Watched {
    body: Body,
    call: Call,
}

impl HttpBody for Watched {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(code) = frame.trailers_ref().and_then(status_in)
        {
            self.call.handled(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The `grpc-status` in `headers` (a code past gRPC's list counts as Unknown).
fn status_in(headers: &HeaderMap) -> Option<usize> {
    let code: usize = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    Some(if code < CODE_NAMES.len() {
        code
    } else {
        UNKNOWN
    })
}

const CANCELED: usize = 1;
const UNKNOWN: usize = 2;

/// gRPC's status codes by number, spelled as grpc-go spells them.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The streaming kind of each etcd method that streams; every other method is unary.
fn call_type(method: &str) -> &'static str {
    match method {
        "Watch" | "LeaseKeepAlive" => "bidi_stream",
        "Snapshot" | "Observe" => "server_stream",
        _ => "unary",
    }
}
