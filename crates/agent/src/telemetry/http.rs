//! `-http-addr`: `/metrics` in Prometheus's text format; any other path is a 404.

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tracing::error;

/// Prometheus's text exposition format, version 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { ([(CONTENT_TYPE, TEXT_FORMAT)], handle.render()).into_response() }
        }),
    );
    if let Err(e) = axum::serve(listener, router).await {
        error!("HTTP listener stopped: {e}");
    }
}
