//! gRPC on the client port: tonic services beside the HTTP API, on one service.
//!
//! A request goes to gRPC when it is HTTP/2 with a `content-type` of `application/grpc*`,
//! the test etcd's own handler makes (`grpcHandlerFunc`); everything else, HTTP/2 or not,
//! goes to the HTTP handlers (v2, the `/v3/` gateway, `/version`). A gRPC call to a service
//! we do not serve gets gRPC's `Unimplemented`, as from etcd.

use crate::conn::HttpService;
use crate::grpc_metrics;
use crate::v3::V3;
use crate::v3::auth::service::AuthService;
use crate::v3::cluster::ClusterService;
use crate::v3::election::ElectionService;
use crate::v3::kv::KvService;
use crate::v3::learner;
use crate::v3::lease::{LeaseGrpc, LeaseService};
use crate::v3::lock::LockService;
use crate::v3::maintenance::MaintenanceService;
use crate::v3::watch::WatchService;
use axum::extract::Request;
use axum::http::{Version, header};
use axum::response::{IntoResponse, Response};
use musubi_proto::etcdserverpb::auth_server::AuthServer;
use musubi_proto::etcdserverpb::cluster_server::ClusterServer;
use musubi_proto::etcdserverpb::kv_server::KvServer;
use musubi_proto::etcdserverpb::lease_server::LeaseServer;
use musubi_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use musubi_proto::etcdserverpb::watch_server::WatchServer;
use musubi_proto::v3electionpb::election_server::ElectionServer;
use musubi_proto::v3lockpb::lock_server::LockServer;
use std::convert::Infallible;
use std::sync::Arc;
use tonic::server::NamedService;
use tower::{Service, ServiceExt};

/// `http` with the gRPC services mounted beside it, each gRPC call counted for `/metrics`.
pub fn mount(http: HttpService, v3: &V3) -> HttpService {
    // One reference counted per call, not the three parts (the HTTP service's clone is a
    // boxed allocation that a gRPC call would only drop).
    let parts = Arc::new((services(v3), http, v3.clone()));
    HttpService::new(tower::service_fn(move |req: Request| {
        let parts = parts.clone();
        async move {
            let (grpc, http, v3) = &*parts;
            if !is_grpc(&req) {
                return http.clone().oneshot(req).await;
            }
            let call = grpc_metrics::Call::start(req.uri().path());
            let response = match learner::check_call(v3, req.uri().path()) {
                Ok(()) => grpc.serve(req).await,
                Err(refused) => refused.into_http::<axum::body::Body>(),
            };
            Ok(call.finish(response))
        }
    }))
}

/// The gRPC services of the client port: one `.add(...)` line each.
fn services(v3: &V3) -> Services {
    // As etcd's gRPC server: a message may exceed --max-request-bytes by 512 KiB before
    // gRPC itself refuses it (the KV service refuses what passes --max-request-bytes).
    let limit = v3.app.limits.max_value_bytes;
    // Reports SERVING for the server as a whole (""), which etcd 3.4 never changes either.
    let (_reporter, health) = tonic_health::server::health_reporter();
    // The busiest first: a call's service is found by comparing names in this order.
    Services::default()
        .add(KvServer::new(KvService(v3.clone())).max_decoding_message_size(limit))
        .add(WatchServer::new(WatchService(v3.clone())).max_decoding_message_size(limit))
        .add(
            LeaseServer::new(LeaseGrpc(Arc::new(LeaseService(v3.clone()))))
                .max_decoding_message_size(limit),
        )
        .add(ClusterServer::new(ClusterService(v3.clone())))
        .add(MaintenanceServer::new(MaintenanceService(v3.clone())))
        .add(AuthServer::new(AuthService(v3.clone())))
        .add(LockServer::new(LockService(v3.clone())).max_decoding_message_size(limit))
        .add(ElectionServer::new(ElectionService(v3.clone())).max_decoding_message_size(limit))
        .add(health)
}

/// The gRPC services by name. A call goes straight to its service by the first segment of
/// its path; each generated server then matches the method. tonic's own `Routes` is an
/// axum Router, which behind this module's fallback routed every call a second time
/// (matching the path, recording its parameters), a few per cent of a put's CPU.
#[derive(Clone, Default)]
struct Services(Arc<Vec<(&'static str, HttpService)>>);

impl Services {
    fn add<S>(mut self, service: S) -> Self
    where
        S: Service<Request, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        let boxed = HttpService::new(service.map_response(IntoResponse::into_response));
        Arc::make_mut(&mut self.0).push((S::NAME, boxed));
        self
    }

    /// Runs `req` on the service its path names, or answers `Unimplemented` as tonic does
    /// for a service it does not know.
    async fn serve(&self, req: Request) -> Response {
        // `/etcdserverpb.KV/Put`: the service is the first segment.
        let name = req.uri().path().split('/').nth(1).unwrap_or_default();
        match self.0.iter().find(|(n, _)| *n == name) {
            Some((_, service)) => match service.clone().oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            None => tonic::Status::unimplemented("").into_http(),
        }
    }
}

fn is_grpc(req: &Request) -> bool {
    req.version() == Version::HTTP_2
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"))
}
