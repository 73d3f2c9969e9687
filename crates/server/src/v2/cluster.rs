//! The v2 endpoints around the keyspace: machines, stats, version, health.

use super::json;
use super::reply::{self, HttpResponse};
use crate::app::App;
use axum::http::{HeaderValue, StatusCode, header};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The version this server reports to clients: etcd's API level, not musubi's own.
pub const ETCD_API_VERSION: &str = "3.4.0";

pub fn version() -> HttpResponse {
    reply::json_body(
        StatusCode::OK,
        format!(
            "{{\"etcdserver\":\"{ETCD_API_VERSION}\",\"etcdcluster\":\"{ETCD_API_VERSION}\"}}\n"
        ),
    )
}

/// How long `/health` waits for its quorum read, as etcd 3.4 does.
pub(crate) const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// etcd 3.4's answer: healthy only if a quorum read completes within a second. Knowing a
/// leader is not enough: a member cut off from its quorum still remembers the last one,
/// and a load balancer would keep sending it requests it cannot serve.
pub async fn health(app: &App) -> HttpResponse {
    // An active alarm (NOSPACE, CORRUPT) makes a member unhealthy, as etcd's.
    let alarmed = !app.sm.read().alarms().is_empty();
    let quorum_read =
        async { tokio::time::timeout(HEALTH_TIMEOUT, app.raft.linearizable_barrier()).await };
    if !alarmed && matches!(quorum_read.await, Ok(Ok(()))) {
        reply::json_body(StatusCode::OK, "{\"health\":\"true\"}\n".into())
    } else {
        reply::json_body(
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"health\":\"false\"}\n".into(),
        )
    }
}

pub fn machines(app: &App) -> HttpResponse {
    // etcd sorts the URLs; python-etcd takes the first as its preferred machine.
    let mut urls: Vec<String> = app
        .raft
        .status()
        .members
        .iter()
        .flat_map(|m| m.client_urls.clone())
        .collect();
    urls.sort();
    let mut resp = HttpResponse::new(urls.join(", ").into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn unix_nanos(t: SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

pub fn stats_self(app: &App) -> HttpResponse {
    let status = app.raft.status();
    let state = if status.is_leader {
        "StateLeader"
    } else {
        "StateFollower"
    };
    let mut out = String::from("{\"name\":");
    json::string(&mut out, &app.identity.name);
    let _ = write!(
        out,
        ",\"id\":\"{:x}\",\"state\":\"{state}\",\"startTime\":\"{}\"",
        app.identity.member_id,
        json::rfc3339(unix_nanos(app.started_at))
    );
    if let Some(leader) = status.leader {
        let since = app.leader_since();
        let uptime = SystemTime::now().duration_since(since).unwrap_or_default();
        let _ = write!(
            out,
            ",\"leaderInfo\":{{\"leader\":\"{leader:x}\",\"uptime\":\"{}\",\"startTime\":\"{}\"}}",
            musubi_gocompat::duration::format(uptime),
            json::rfc3339(unix_nanos(since))
        );
    }
    let peers = app.raft.peer_stats();
    let _ = writeln!(
        out,
        ",\"recvAppendRequestCnt\":{},\"sendAppendRequestCnt\":{}}}",
        peers.received_appends, peers.sent_appends
    );
    reply::json_body(StatusCode::OK, out)
}

pub fn stats_leader(app: &App) -> HttpResponse {
    let status = app.raft.status();
    if !status.is_leader {
        return reply::json_body(
            StatusCode::FORBIDDEN,
            "{\"message\":\"not current leader\"}\n".into(),
        );
    }
    let mut out = format!(
        "{{\"leader\":\"{:x}\",\"followers\":{{",
        app.identity.member_id
    );
    let sent = app.raft.peer_stats().followers;
    let followers = status
        .members
        .iter()
        .filter(|m| m.id != app.identity.member_id);
    for (i, m) in followers.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let f = sent.get(&m.id).cloned().unwrap_or_default();
        let _ = write!(
            out,
            "\"{:x}\":{{\"latency\":{{\"current\":{},\"average\":{},\"standardDeviation\":{},\"minimum\":{},\"maximum\":{}}},\"counts\":{{\"fail\":{},\"success\":{}}}}}",
            m.id,
            f.current_ms,
            f.average_ms(),
            f.standard_deviation_ms(),
            f.minimum_ms,
            f.maximum_ms,
            f.fail,
            f.success
        );
    }
    out.push_str("}}\n");
    reply::json_body(StatusCode::OK, out)
}

pub fn stats_store(app: &Arc<App>) -> HttpResponse {
    let watchers = app.hub.watcher_count();
    let sm = app.sm.read();
    let s = sm.stats();
    let out = format!(
        "{{\"getsSuccess\":{},\"getsFail\":{},\"setsSuccess\":{},\"setsFail\":{},\"deleteSuccess\":{},\"deleteFail\":{},\"updateSuccess\":{},\"updateFail\":{},\"createSuccess\":{},\"createFail\":{},\"compareAndSwapSuccess\":{},\"compareAndSwapFail\":{},\"compareAndDeleteSuccess\":{},\"compareAndDeleteFail\":{},\"expireCount\":{},\"watchers\":{}}}\n",
        s.gets_success.load(Ordering::Relaxed),
        s.gets_fail.load(Ordering::Relaxed),
        s.sets_success,
        s.sets_fail,
        s.delete_success,
        s.delete_fail,
        s.update_success,
        s.update_fail,
        s.create_success,
        s.create_fail,
        s.compare_and_swap_success,
        s.compare_and_swap_fail,
        s.compare_and_delete_success,
        s.compare_and_delete_fail,
        s.expire_count,
        watchers
    );
    reply::json_body(StatusCode::OK, out)
}

#[cfg(test)]
mod tests {
    use musubi_gocompat::duration::format as go_duration;
    use std::time::Duration;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_millis(11_348)), "11.348s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_nanos(892)), "892ns");
        assert_eq!(go_duration(Duration::from_micros(1_500)), "1.5ms");
    }
}
