//! The client port: one entry point that decodes the path, applies Go's path cleaning
//! redirect and CORS, and dispatches to the v2 handlers and the v3 JSON gateway.

use crate::app::App;
use crate::conn::HttpService;
use crate::probes;
use crate::v2::auth::{self, AuthRequest};
use crate::v2::basic_auth::Credentials;
use crate::v2::keys::{self, KeysRequest};
use crate::v2::members::{self, MembersRequest};
use crate::v2::params::clean_path;
use crate::v2::{cluster, reply};
use crate::v3::{V3, gateway};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use std::sync::Arc;

/// The client port's HTTP API: every path goes to one function, which dispatches itself
/// (an axum Router in front would match a catch-all route on every request for nothing).
pub fn service(v3: V3) -> HttpService {
    HttpService::new(tower::service_fn(move |req: Request| {
        let v3 = v3.clone();
        async move { Ok::<_, std::convert::Infallible>(dispatch(v3, req).await) }
    }))
}

/// What a `--listen-metrics-urls` listener serves, as etcd's: `/metrics` and the health
/// probes.
pub fn metrics_router(v3: V3) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(v3): State<V3>| async move { metrics_text(&v3.app) }),
        )
        .route(
            "/health",
            axum::routing::get(
                |State(v3): State<V3>| async move { cluster::health(&v3.app).await },
            ),
        )
        .route(
            "/livez",
            axum::routing::get(|State(v3): State<V3>, req: Request| async move {
                probes::livez(&v3.app, req.uri().query()).await
            }),
        )
        .route(
            "/readyz",
            axum::routing::get(|State(v3): State<V3>, req: Request| async move {
                probes::readyz(&v3.app, req.uri().query()).await
            }),
        )
        .with_state(v3)
}

async fn dispatch(v3: V3, req: Request) -> reply::HttpResponse {
    let mut resp = route(v3, req).await;
    add_cors(resp.headers_mut());
    resp
}

async fn route(v3: V3, req: Request) -> reply::HttpResponse {
    let app = v3.app.clone();
    let raw_path = req.uri().path().to_string();
    let path = percent_encoding::percent_decode_str(&raw_path)
        .decode_utf8_lossy()
        .into_owned();
    if let Some(target) = redirect_target(&path) {
        return redirect(&target, req.uri().query(), req.method());
    }
    if req.method() == Method::OPTIONS {
        return reply::HttpResponse::new(Body::empty());
    }
    if let Some(resp) = crate::dashboard::serve(&path, req.method()) {
        return resp;
    }
    if let Some(rpc_path) = gateway::api_path(&path) {
        return gateway::serve(&v3, req, rpc_path).await;
    }
    if path == "/v2/keys" || path.starts_with("/v2/keys/") {
        return keys_entry(app, req, &path["/v2/keys".len()..]).await;
    }
    // The cold paths' futures boxed (2-7 KiB each): inline, every request's future is as
    // large as the largest, and is copied whole as it is made (a tenth of a v2 put's CPU).
    if path == "/v2/members" || path.starts_with("/v2/members/") {
        return Box::pin(members_entry(&app, req, &path["/v2/members".len()..])).await;
    }
    if path.starts_with("/v2/auth/") {
        return Box::pin(auth_entry(&app, req, &path["/v2/auth".len()..])).await;
    }
    let get_only = |resp: fn(&App) -> reply::HttpResponse, req: &Request, app: &App| {
        if req.method() == Method::GET || req.method() == Method::HEAD {
            resp(app)
        } else {
            method_not_allowed("GET, HEAD")
        }
    };
    match path.as_str() {
        "/version" => cluster::version(),
        "/health" if req.method() == Method::GET || req.method() == Method::HEAD => {
            Box::pin(cluster::health(&app)).await
        }
        "/health" => method_not_allowed("GET, HEAD"),
        "/metrics" => get_only(metrics_text, &req, &app),
        "/livez" => Box::pin(probes::livez(&app, req.uri().query())).await,
        "/readyz" => Box::pin(probes::readyz(&app, req.uri().query())).await,
        "/v2/machines" => get_only(cluster::machines, &req, &app),
        "/v2/stats/self" => get_only(cluster::stats_self, &req, &app),
        "/v2/stats/leader" => get_only(cluster::stats_leader, &req, &app),
        "/v2/stats/store" => cluster::stats_store(&app),
        _ => not_found(),
    }
}

async fn keys_entry(app: Arc<App>, req: Request, key_path: &str) -> reply::HttpResponse {
    let method = req.method().clone();
    if !matches!(
        method,
        Method::HEAD | Method::GET | Method::PUT | Method::POST | Method::DELETE
    ) {
        return method_not_allowed("HEAD,GET,PUT,POST,DELETE");
    }
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let has_form = matches!(method, Method::PUT | Method::POST) && is_form(req.headers());
    let form_body = if has_form {
        match axum::body::to_bytes(req.into_body(), app.limits.max_body_bytes).await {
            Ok(bytes) => Some(bytes),
            Err(_) => return reply::internal("etcdserver: request is too large"),
        }
    } else {
        None
    };
    let key = clean_path(key_path);
    let credentials = Credentials::from_headers(&headers);
    let request = KeysRequest {
        method: &method,
        key,
        query: query.as_deref(),
        form_body,
        auth_key: key_path,
        credentials,
    };
    let resp = keys::handle(app.clone(), request).await;
    app.with_cluster_id(resp)
}

async fn auth_entry(app: &App, req: Request, auth_path: &str) -> reply::HttpResponse {
    let method = req.method().clone();
    let credentials = Credentials::from_headers(req.headers());
    let body = match axum::body::to_bytes(req.into_body(), app.limits.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => return reply::internal("etcdserver: request is too large"),
    };
    auth::handle(
        app,
        AuthRequest {
            method: &method,
            path: auth_path,
            credentials,
            body,
        },
    )
    .await
    .unwrap_or_else(not_found)
}

async fn members_entry(app: &App, req: Request, rest: &str) -> reply::HttpResponse {
    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), app.limits.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => return reply::internal("etcdserver: request is too large"),
    };
    members::handle(
        app,
        MembersRequest {
            method: &method,
            rest,
            headers: &headers,
            body,
        },
    )
    .await
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// Go's ServeMux redirects any path that is not clean (keeping a trailing slash).
fn redirect_target(path: &str) -> Option<String> {
    let without_slash = path.strip_suffix('/').filter(|p| !p.is_empty());
    if musubi_gocompat::path::is_clean_rooted(without_slash.unwrap_or(path)) {
        return None;
    }
    let mut clean = clean_path(path);
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    (clean != path).then_some(clean)
}

fn redirect(target: &str, query: Option<&str>, method: &Method) -> reply::HttpResponse {
    let encoded = percent_encoding::utf8_percent_encode(target, PATH_ESCAPES).to_string();
    let location = match query {
        Some(q) if !q.is_empty() => format!("{encoded}?{q}"),
        _ => encoded,
    };
    let body = if *method == Method::GET || *method == Method::HEAD {
        format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            html_escape(&location)
        )
    } else {
        String::new()
    };
    let mut resp = reply::HttpResponse::new(Body::from(body));
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if *method == Method::GET || *method == Method::HEAD {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    resp
}

/// Go's `html.EscapeString`, used in the redirect page.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('\'', "&#39;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
}

const PATH_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fn plain(status: StatusCode, text: &'static str) -> reply::HttpResponse {
    let mut resp = reply::HttpResponse::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

pub(crate) fn method_not_allowed(allow: &'static str) -> reply::HttpResponse {
    let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn not_found() -> reply::HttpResponse {
    plain(StatusCode::NOT_FOUND, "404 page not found\n")
}

/// etcd 3.4 answers every origin (`--cors` defaults to `*`).
/// The names are `http`'s constants: a name given as text is parsed on every response.
fn add_cors(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("accept, content-type, authorization"),
    );
}

/// Prometheus's text exposition format, version 0.0.4.
fn metrics_text(app: &App) -> reply::HttpResponse {
    let mut resp = reply::HttpResponse::new(Body::from(crate::metrics::render(app)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::redirect_target;

    #[test]
    fn unclean_paths_redirect_and_clean_ones_do_not() {
        assert_eq!(
            redirect_target("/v2/keys//a/../b/").as_deref(),
            Some("/v2/keys/b/")
        );
        assert_eq!(redirect_target("/v2/keys/a/"), None);
        assert_eq!(redirect_target("/v2/keys"), None);
        assert_eq!(redirect_target("/"), None);
        assert_eq!(redirect_target("/v2/keys/."), Some("/v2/keys".into()));
    }
}
