//! The dashboard: a single-page app at `/mod/dashboard/` (where etcd 0.x served its own)
//! and at `/dashboard/`, built into the binary so it works offline and with no build step.
//!
//! Promises:
//! - the assets are plain files under `assets/`, embedded at compile time; the server
//!   adds nothing to them and keeps no state for them;
//! - the page only calls the member's public APIs (v2 keys, members and stats, the v3 JSON
//!   gateway, `/metrics`, `/health`), from the browser, so it can do nothing a client
//!   cannot, and the same APIs reach the other members through their client URLs (CORS);
//!   the Agent tab asks a `musubi agent`'s `-http-addr` for `/v1/members` the same way;
//! - `/mod/dashboard` without its slash redirects to the slash, as Go's ServeMux did for
//!   etcd 0.x's subtree; an unknown file is 404, a method other than GET or HEAD is 405.

use crate::http::method_not_allowed;
use crate::v2::reply::HttpResponse;
use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};

/// Where the dashboard is mounted.
const PREFIXES: [&str; 2] = ["/mod/dashboard", "/dashboard"];

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const fn asset(name: &'static str, body: &'static str) -> Asset {
    let content_type = match name.as_bytes() {
        [.., b'c', b's', b's'] => "text/css; charset=utf-8",
        [.., b'.', b'j', b's'] => "text/javascript; charset=utf-8",
        _ => "text/html; charset=utf-8",
    };
    Asset {
        name,
        content_type,
        body,
    }
}

/// Every file the page loads; `index.html` answers the mount point itself.
const ASSETS: &[Asset] = &[
    asset("index.html", include_str!("assets/index.html")),
    asset("dashboard.css", include_str!("assets/dashboard.css")),
    asset("app.js", include_str!("assets/app.js")),
    asset("api.js", include_str!("assets/api.js")),
    asset("prom.js", include_str!("assets/prom.js")),
    asset("chart.js", include_str!("assets/chart.js")),
    asset("keys_v2.js", include_str!("assets/keys_v2.js")),
    asset("keys_v3.js", include_str!("assets/keys_v3.js")),
    asset("tree.js", include_str!("assets/tree.js")),
    asset("detail.js", include_str!("assets/detail.js")),
    asset("stats.js", include_str!("assets/stats.js")),
    asset("members.js", include_str!("assets/members.js")),
    asset("agent.js", include_str!("assets/agent.js")),
];

/// The reply for `path` if it is the dashboard's, else `None`.
pub fn serve(path: &str, method: &Method) -> Option<HttpResponse> {
    let prefix = PREFIXES.iter().find(|p| {
        path.strip_prefix(**p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })?;
    let rest = &path[prefix.len()..];
    if *method != Method::GET && *method != Method::HEAD {
        return Some(method_not_allowed("GET, HEAD"));
    }
    let Some(file) = rest.strip_prefix('/') else {
        return Some(moved_to(&format!("{prefix}/")));
    };
    let name = if file.is_empty() { "index.html" } else { file };
    Some(match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => ok(asset),
        None => plain(StatusCode::NOT_FOUND, "404 page not found\n"),
    })
}

fn ok(asset: &Asset) -> HttpResponse {
    let mut resp = HttpResponse::new(Body::from(asset.body));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // The files change with the binary: a browser revalidates rather than keep an old
    // script beside a new page after an upgrade.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn moved_to(location: &str) -> HttpResponse {
    let mut resp = plain(StatusCode::MOVED_PERMANENTLY, "");
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn plain(status: StatusCode, text: &'static str) -> HttpResponse {
    let mut resp = HttpResponse::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Option<HttpResponse> {
        serve(path, &Method::GET)
    }

    fn content_type(resp: &HttpResponse) -> &str {
        resp.headers()[header::CONTENT_TYPE].to_str().unwrap()
    }

    #[test]
    fn both_mount_points_serve_the_page() {
        for path in ["/mod/dashboard/", "/dashboard/", "/dashboard/index.html"] {
            let resp = get(path).expect(path);
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(content_type(&resp), "text/html; charset=utf-8");
        }
    }

    #[test]
    fn the_mount_point_without_its_slash_redirects_to_it() {
        let resp = get("/mod/dashboard").unwrap();
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(resp.headers()[header::LOCATION], "/mod/dashboard/");
    }

    #[test]
    fn assets_carry_their_types_and_unknown_files_are_404() {
        assert_eq!(
            content_type(&get("/dashboard/app.js").unwrap()),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(&get("/dashboard/dashboard.css").unwrap()),
            "text/css; charset=utf-8"
        );
        let missing = get("/mod/dashboard/nope.js").unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn other_paths_are_not_the_dashboards() {
        assert!(get("/dashboards").is_none());
        assert!(get("/mod/dashboardx/").is_none());
        assert!(get("/v2/keys/dashboard/").is_none());
    }

    #[test]
    fn only_get_and_head_are_allowed() {
        let resp = serve("/dashboard/", &Method::POST).unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(serve("/dashboard/", &Method::HEAD).is_some());
    }

    #[test]
    fn every_script_the_page_imports_is_served() {
        // The modules import each other as `./name.js`: each one must be an asset.
        for asset in ASSETS {
            for import in asset.body.split("from \"./").skip(1) {
                let name = import.split('"').next().unwrap();
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{} imports {name}, which is not served",
                    asset.name
                );
            }
        }
    }
}
