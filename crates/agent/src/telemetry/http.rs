//! `-http-addr`: `/metrics` in Prometheus's text format, and `/v1/members`, the agent's
//! members as `serf members -format json` prints them, open to any origin (CORS) so that
//! the store's dashboard, served from another port, can list them. Any other path is a
//! 404.

use crate::node::NodeHandle;
use crate::rpc::members::member_wire;
use axum::Router;
use axum::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use musubi_serf_rpc::members::json_document;
use serde_json::json;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpListener;
use tracing::error;

/// Prometheus's text exposition format, version 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The node, once it runs. The listener starts before the node (so that the node's first
/// join is counted); until the agent fills this, `/v1/members` answers 503.
#[derive(Clone, Default)]
pub struct NodeSlot(Arc<OnceLock<NodeHandle>>);

impl NodeSlot {
    pub fn fill(&self, node: NodeHandle) {
        // Filled once per agent: a second fill would be the same node.
        let _ = self.0.set(node);
    }
}

pub async fn serve(listener: TcpListener, handle: PrometheusHandle, node: NodeSlot) {
    let router = Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move { ([(CONTENT_TYPE, TEXT_FORMAT)], handle.render()).into_response() }
            }),
        )
        .route(
            "/v1/members",
            get(move || {
                let node = node.clone();
                async move { members(&node).await }
            }),
        );
    if let Err(e) = axum::serve(listener, router).await {
        error!("HTTP listener stopped: {e}");
    }
}

/// The members as the RPC's `members` lists them; 503 with `{"error": ...}` while the node
/// is not running (not yet started, or stopped after losing its name).
async fn members(slot: &NodeSlot) -> Response {
    let listed = match slot.0.get() {
        Some(node) => node
            .members()
            .await
            .map_err(|_| "the agent's node has stopped"),
        None => Err("the agent's node is not running yet"),
    };
    match listed {
        Ok(records) => {
            let wires: Vec<_> = records.iter().map(member_wire).collect();
            json_reply(StatusCode::OK, &json_document(&wires))
        }
        Err(why) => json_reply(StatusCode::SERVICE_UNAVAILABLE, &json!({ "error": why })),
    }
}

fn json_reply(status: StatusCode, body: &serde_json::Value) -> Response {
    let headers: [(HeaderName, &str); 3] = [
        (CONTENT_TYPE, "application/json"),
        // Any page may read the member list, as any client on the network may ask the RPC.
        (ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        // A list that changes every probe: a browser must not answer from its cache.
        (CACHE_CONTROL, "no-store"),
    ];
    (status, headers, format!("{body}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    #[tokio::test]
    async fn members_are_503_until_the_node_runs() {
        let resp = members(&NodeSlot::default()).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let body = to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "the agent's node is not running yet");
    }
}
