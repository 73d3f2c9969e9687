//! `/v2/members`: list, add, remove and update members as etcd's v2 members API does, plus
//! `POST /v2/members/<id>/promote` for learners (musubi's; etcd has promote only in v3).
//!
//! | request | reply |
//! |---|---|
//! | `GET /v2/members` | 200 `{"members":[…]}` |
//! | `POST /v2/members` `{"peerURLs":[…],"isLearner":false}` | 201 the new member |
//! | `DELETE /v2/members/<hex id>` | 204; 410 for a member removed before, 404 for an unknown ID |
//! | `PUT /v2/members/<hex id>` `{"peerURLs":[…]}` | 204 |
//! | `POST /v2/members/<hex id>/promote` | 200 the promoted member |
//! | `GET /v2/members/leader` | 200 the leader, 503 `During election` |
//!
//! A JSON body is required (415 otherwise, as etcd); every refusal is `{"message":…}`.

use super::json;
use super::reply::{self, HttpResponse};
use crate::app::App;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use musubi_consensus::{ConsensusError, MemberInfo, MembershipChange, MembershipError};
use std::fmt::Write;

/// A parsed members request.
pub struct MembersRequest<'a> {
    pub method: &'a Method,
    /// The path after `/v2/members`: "", "/leader", "/<id>" or "/<id>/promote".
    pub rest: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

#[derive(serde::Deserialize)]
struct MemberBody {
    #[serde(rename = "peerURLs")]
    peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    is_learner: bool,
}

/// A request refused before it reached Raft: the status and etcd's message.
type Refusal = (StatusCode, String);

pub async fn handle(app: &App, req: MembersRequest<'_>) -> HttpResponse {
    let resp = match route(app, &req).await {
        Ok(resp) => resp,
        Err((status, text)) => message(status, &text),
    };
    app.with_cluster_id(resp)
}

async fn route(app: &App, req: &MembersRequest<'_>) -> Result<HttpResponse, Refusal> {
    Ok(match (req.method.clone(), req.rest) {
        (Method::GET | Method::HEAD, "" | "/") => list(app),
        (Method::GET | Method::HEAD, "/leader") => leader(app),
        (Method::POST, "" | "/") => {
            let body = member_body(req)?;
            let change = MembershipChange::Add {
                name: String::new(),
                peer_urls: body.peer_urls,
                client_urls: Vec::new(),
                is_learner: body.is_learner,
            };
            run(app, change, StatusCode::CREATED).await
        }
        (Method::DELETE, rest) => {
            let id = member_id(rest)?;
            let resp = run(app, MembershipChange::Remove { id }, StatusCode::NO_CONTENT).await;
            gone_if_removed(app, id, resp).await
        }
        (Method::PUT, rest) => {
            let id = member_id(rest)?;
            let peer_urls = member_body(req)?.peer_urls;
            let change = MembershipChange::UpdatePeerUrls { id, peer_urls };
            let resp = run(app, change, StatusCode::NO_CONTENT).await;
            if resp.status() == StatusCode::NOT_FOUND {
                no_such_member(id)
            } else {
                resp
            }
        }
        (Method::POST, rest) if rest.ends_with("/promote") => {
            let id = member_id(rest.trim_end_matches("/promote"))?;
            run(app, MembershipChange::Promote { id }, StatusCode::OK).await
        }
        _ => crate::http::method_not_allowed("GET, POST, PUT, DELETE"),
    })
}

fn list(app: &App) -> HttpResponse {
    let mut out = String::from("{\"members\":");
    json::array(&mut out, &app.raft.status().members, member_json);
    out.push_str("}\n");
    reply::json_body(StatusCode::OK, out)
}

fn leader(app: &App) -> HttpResponse {
    let status = app.raft.status();
    let Some(leader) = status
        .leader
        .and_then(|id| status.members.iter().find(|m| m.id == id))
    else {
        return message(StatusCode::SERVICE_UNAVAILABLE, "During election");
    };
    let mut out = String::new();
    member_json(&mut out, leader);
    out.push('\n');
    reply::json_body(StatusCode::OK, out)
}

/// Runs `change`; a success answers `ok`, with the member as JSON unless it is 204.
async fn run(app: &App, change: MembershipChange, ok: StatusCode) -> HttpResponse {
    match app.raft.change_membership(change).await {
        Ok(_) if ok == StatusCode::NO_CONTENT => {
            let mut resp = HttpResponse::new(axum::body::Body::empty());
            *resp.status_mut() = ok;
            resp
        }
        Ok(member) => {
            let mut out = String::new();
            member_json(&mut out, &member);
            out.push('\n');
            reply::json_body(ok, out)
        }
        Err(e) => refusal(&e),
    }
}

/// etcd answers a removal of a member removed before with 410 Gone (clients take it as
/// done) and one of an ID never seen with "No such member". The leader's "not found" may
/// come before this member has applied the removal: a read barrier catches up first.
async fn gone_if_removed(app: &App, id: u64, resp: HttpResponse) -> HttpResponse {
    if resp.status() != StatusCode::NOT_FOUND {
        return resp;
    }
    let _ = app.raft.linearizable_barrier().await;
    if app.sm.read().removed_members().contains(id) {
        message(
            StatusCode::GONE,
            &format!("Member permanently removed: {id:x}"),
        )
    } else {
        no_such_member(id)
    }
}

/// etcd's v2 answer for an ID it does not know.
fn no_such_member(id: u64) -> HttpResponse {
    message(StatusCode::NOT_FOUND, &format!("No such member: {id:x}"))
}

fn refusal(e: &ConsensusError) -> HttpResponse {
    let status = match e {
        ConsensusError::Membership(m) => match m {
            MembershipError::NotFound(_) => StatusCode::NOT_FOUND,
            MembershipError::BadPeerUrl(_) => StatusCode::BAD_REQUEST,
            MembershipError::PeerUrlExists(_)
            | MembershipError::NotLearner(_)
            | MembershipError::LearnerNotReady(_)
            | MembershipError::TooManyLearners
            | MembershipError::NotEnoughStarted => StatusCode::CONFLICT,
            MembershipError::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        },
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    message(status, &e.to_string())
}

fn member_body(req: &MembersRequest<'_>) -> Result<MemberBody, Refusal> {
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Bad Content-Type {content_type}, accept application/json"),
        ));
    }
    serde_json::from_slice(&req.body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
}

/// `/<hex id>` as a member ID; anything else is etcd's 404.
fn member_id(rest: &str) -> Result<u64, Refusal> {
    let text = rest.trim_start_matches('/');
    u64::from_str_radix(text, 16)
        .map_err(|_| (StatusCode::NOT_FOUND, format!("No such member: {text}")))
}

fn message(status: StatusCode, text: &str) -> HttpResponse {
    reply::json_body(status, json::message(text))
}

/// One member as etcd writes it; `isLearner` only for learners, which v2 clients never saw.
pub fn member_json(out: &mut String, m: &MemberInfo) {
    let _ = write!(out, "{{\"id\":\"{:x}\",\"name\":", m.id);
    json::string(out, &m.name);
    out.push_str(",\"peerURLs\":");
    json::string_array(out, &m.peer_urls);
    out.push_str(",\"clientURLs\":");
    json::string_array(out, &m.client_urls);
    if m.is_learner {
        out.push_str(",\"isLearner\":true");
    }
    out.push('}');
}
