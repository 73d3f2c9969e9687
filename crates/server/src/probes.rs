//! `/livez` and `/readyz`, as etcd 3.5 answers them (Kubernetes' probe format): named
//! checks, `ok` and 200 when all pass, 503 and one `[+]`/`[-]` line per check otherwise
//! (and with `?verbose`); `?exclude=<check>` leaves a check out.
//!
//! Alive means this member's process can serve a read of its own state; ready means it
//! can also serve a linearizable read (a leader and a quorum answer) and holds no
//! CORRUPT alarm. A NOSPACE alarm leaves a member ready, as in etcd: reads still work.

use crate::app::App;
use crate::v2::cluster::HEALTH_TIMEOUT;
use crate::v2::reply::HttpResponse;
use axum::http::{HeaderValue, StatusCode, header};
use musubi_proto::etcdserverpb::AlarmType;

#[derive(Clone, Copy)]
enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
        }
    }

    /// `Err(why)` when the check fails.
    async fn run(self, app: &App) -> Result<(), String> {
        match self {
            Check::DataCorruption => {
                if app.sm.read().alarms().is_active(AlarmType::Corrupt) {
                    Err("alarm activated: CORRUPT".into())
                } else {
                    Ok(())
                }
            }
            // The state machine answers reads while its lock can be taken: a member stuck
            // applying (or writing a snapshot under the lock) is not alive.
            Check::SerializableRead => {
                let _ = app.sm.read().revision();
                Ok(())
            }
            Check::LinearizableRead => {
                match tokio::time::timeout(HEALTH_TIMEOUT, app.raft.linearizable_barrier()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out waiting for a quorum read".into()),
                }
            }
        }
    }
}

/// `/livez`.
pub async fn livez(app: &App, query: Option<&str>) -> HttpResponse {
    probe(app, "livez", &[Check::SerializableRead], query).await
}

/// `/readyz`.
pub async fn readyz(app: &App, query: Option<&str>) -> HttpResponse {
    let checks = [
        Check::DataCorruption,
        Check::SerializableRead,
        Check::LinearizableRead,
    ];
    probe(app, "readyz", &checks, query).await
}

async fn probe(app: &App, probe: &str, checks: &[Check], query: Option<&str>) -> HttpResponse {
    let mut verbose = false;
    let mut excluded = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "verbose" => verbose = true,
            "exclude" => excluded.push(value.into_owned()),
            _ => {}
        }
    }
    let mut lines = String::new();
    let mut failed = false;
    for check in checks {
        let name = check.name();
        if excluded.iter().any(|e| e == name) {
            lines.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        match check.run(app).await {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(why) => {
                failed = true;
                lines.push_str(&format!("[-]{name} failed: {why}\n"));
            }
        }
    }
    let (status, body) = match (failed, verbose) {
        (false, false) => (StatusCode::OK, "ok".to_string()),
        (false, true) => (StatusCode::OK, format!("{lines}{probe} check passed\n")),
        (true, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{lines}{probe} check failed\n"),
        ),
    };
    let mut resp = HttpResponse::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
