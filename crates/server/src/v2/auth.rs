//! `/v2/auth/{enable,users,roles}`: etcd 3.4's v2 auth handlers (`v2http/client_auth.go`).
//!
//! Reads come from the local state machine; every change is one `Request::Auth` through
//! Raft. Errors are `{"message":...}` with etcd's status; a caller without the root role
//! gets 401 before anything else (except `GET /v2/auth/enable`, which anyone may read).

use super::auth_json::{self as aj, RoleBody, UserBody};
use super::basic_auth::Credentials;
use super::reply::{self, HttpResponse};
use crate::app::App;
use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use bytes::Bytes;
use musubi_store::{AuthError, AuthOp, AuthOutcome, PasswordHash, Request, Response, Role};

pub struct AuthRequest<'a> {
    pub method: &'a Method,
    /// The path after `/v2/auth`, e.g. `/users/root`.
    pub path: &'a str,
    pub credentials: Credentials,
    pub body: Bytes,
}

enum Target<'a> {
    Enable,
    Users,
    User(&'a str),
    Roles,
    Role(&'a str),
}

/// A path deeper than `/users/<name>` or `/roles/<name>`.
struct InvalidPath;

pub async fn handle(app: &App, req: AuthRequest<'_>) -> Option<HttpResponse> {
    let target = match route(req.path) {
        Ok(Some(t)) => t,
        Ok(None) => return None,
        Err(InvalidPath) => {
            return Some(json(StatusCode::BAD_REQUEST, aj::message("Invalid path")));
        }
    };
    let allowed: &'static [Method] = match target {
        Target::Users | Target::Roles => &[Method::GET],
        _ => &[Method::GET, Method::PUT, Method::DELETE],
    };
    if !allowed.contains(req.method) {
        return Some(crate::http::method_not_allowed(if allowed.len() == 1 {
            "GET"
        } else {
            "GET,PUT,DELETE"
        }));
    }
    let anyone = matches!(target, Target::Enable) && *req.method == Method::GET;
    let root = req
        .credentials
        .as_user()
        .is_ok_and(|user| app.sm.read().auth().is_root(user));
    if !anyone && !root {
        return Some(json(
            StatusCode::UNAUTHORIZED,
            aj::message("Insufficient credentials"),
        ));
    }
    let resp = match target {
        Target::Enable => enable(app, req.method).await,
        Target::Users => list_users(app),
        Target::Roles => list_roles(app),
        Target::User(name) => user(app, req.method, name, &req.body).await,
        Target::Role(name) => role(app, req.method, name, &req.body).await,
    };
    Some(app.with_cluster_id(resp))
}

/// Go's mux patterns: `/users`, `/users/`, `/roles`, `/roles/`, `/enable`; anything deeper
/// than one name is 400 `Invalid path`. `None` for paths etcd does not serve (404).
fn route(path: &str) -> Result<Option<Target<'_>>, InvalidPath> {
    let pieces: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let target = match pieces.as_slice() {
        ["", "enable"] if !path.ends_with('/') => Target::Enable,
        ["", "users"] => Target::Users,
        ["", "roles"] => Target::Roles,
        ["", "users", name] => Target::User(name),
        ["", "roles", name] => Target::Role(name),
        ["", "users" | "roles", ..] => return Err(InvalidPath),
        _ => return Ok(None),
    };
    Ok(Some(target))
}

fn json(status: StatusCode, body: String) -> HttpResponse {
    reply::json_body(status, body)
}

fn auth_error(e: &AuthError) -> HttpResponse {
    json(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        aj::error(e),
    )
}

fn empty_ok() -> HttpResponse {
    let mut resp = HttpResponse::new(Body::empty());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Proposes one auth change and waits for it to be applied.
async fn write(app: &App, op: AuthOp) -> Result<AuthOutcome, HttpResponse> {
    let fail = |text: String| json(StatusCode::INTERNAL_SERVER_ERROR, aj::message(&text));
    match tokio::time::timeout(
        app.limits.request_timeout,
        app.raft.write(Request::Auth(op)),
    )
    .await
    {
        Ok(Ok(applied)) => match applied.response {
            Response::Auth(Ok(outcome)) => Ok(outcome),
            Response::Auth(Err(e)) => Err(auth_error(&e)),
            _ => Err(fail("unexpected response to an auth request".into())),
        },
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail("etcdserver: request timed out".into())),
    }
}

async fn enable(app: &App, method: &Method) -> HttpResponse {
    let op = match *method {
        Method::GET => {
            let enabled = app.sm.read().auth().enabled;
            return json(StatusCode::OK, format!("{{\"enabled\":{enabled}}}\n"));
        }
        Method::PUT => AuthOp::Enable,
        _ => AuthOp::Disable,
    };
    match write(app, op).await {
        Ok(_) => empty_ok(),
        Err(resp) => resp,
    }
}

fn list_users(app: &App) -> HttpResponse {
    let sm = app.sm.read();
    let auth = sm.auth();
    // Users whose roles no longer exist are listed without those roles, as etcd does.
    let users: Vec<(String, Vec<Role>)> = auth
        .user_names()
        .into_iter()
        .filter_map(|name| auth.user(&name).ok())
        .map(|u| {
            (
                u.name,
                u.roles
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|r| auth.role(r).ok())
                    .collect(),
            )
        })
        .collect();
    json(
        StatusCode::OK,
        aj::collection("users", &users, |out, (name, roles)| {
            aj::user_with_roles(out, name, roles)
        }),
    )
}

fn list_roles(app: &App) -> HttpResponse {
    let sm = app.sm.read();
    let auth = sm.auth();
    let roles: Vec<Role> = auth
        .role_names()
        .iter()
        .filter_map(|r| auth.role(r).ok())
        .collect();
    json(StatusCode::OK, aj::collection("roles", &roles, aj::role))
}

fn hash(password: &str) -> Option<PasswordHash> {
    // The salt is chosen here, not at apply time, so every member stores the same hash.
    (!password.is_empty()).then(|| {
        let salt: [u8; 16] = rand::random();
        PasswordHash::new(
            password,
            &salt.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        )
    })
}

async fn user(app: &App, method: &Method, name: &str, body: &[u8]) -> HttpResponse {
    match *method {
        Method::GET => {
            let sm = app.sm.read();
            let auth = sm.auth();
            // Unlike the list, a single user with a deleted role is a 404, as in etcd.
            let found: Result<Vec<Role>, AuthError> = auth.user(name).and_then(|u| {
                u.roles
                    .unwrap_or_default()
                    .iter()
                    .map(|r| auth.role(r))
                    .collect()
            });
            match found {
                Ok(roles) => {
                    let mut out = String::new();
                    aj::user_with_roles(&mut out, name, &roles);
                    out.push('\n');
                    json(StatusCode::OK, out)
                }
                Err(e) => auth_error(&e),
            }
        }
        Method::PUT => {
            let Ok(u) = serde_json::from_slice::<UserBody>(body) else {
                return json(
                    StatusCode::BAD_REQUEST,
                    aj::message("Invalid JSON in request body."),
                );
            };
            if u.user != name {
                return json(
                    StatusCode::BAD_REQUEST,
                    aj::message("User JSON name does not match the name in the URL"),
                );
            }
            let (grant, revoke) = (u.grant.unwrap_or_default(), u.revoke.unwrap_or_default());
            let has_roles = u.roles.as_ref().is_some_and(|r| !r.is_empty());
            let password = hash(&u.password);
            let op = match (grant.is_empty() && revoke.is_empty(), has_roles) {
                (true, true) => AuthOp::CreateUser {
                    name: u.user,
                    password,
                    roles: u.roles,
                },
                (true, false) => AuthOp::CreateOrUpdateUser {
                    name: u.user,
                    password,
                    roles: u.roles,
                },
                (false, true) => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        aj::message("User JSON contains both roles and grant/revoke"),
                    );
                }
                (false, false) => AuthOp::UpdateUser {
                    name: u.user,
                    password,
                    grant,
                    revoke,
                },
            };
            match write(app, op).await {
                Ok(AuthOutcome::User {
                    name,
                    roles,
                    created,
                }) => json(
                    if created {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    aj::user_names(&name, roles.as_deref()),
                ),
                Ok(_) => empty_ok(),
                Err(resp) => resp,
            }
        }
        _ => match write(
            app,
            AuthOp::DeleteUser {
                name: name.to_string(),
            },
        )
        .await
        {
            Ok(_) => empty_ok(),
            Err(resp) => resp,
        },
    }
}

async fn role(app: &App, method: &Method, name: &str, body: &[u8]) -> HttpResponse {
    match *method {
        Method::GET => match app.sm.read().auth().role(name) {
            Ok(r) => {
                let mut out = String::new();
                aj::role(&mut out, &r);
                out.push('\n');
                json(StatusCode::OK, out)
            }
            Err(e) => auth_error(&e),
        },
        Method::PUT => {
            let Ok(r) = serde_json::from_slice::<RoleBody>(body) else {
                return json(
                    StatusCode::BAD_REQUEST,
                    aj::message("Invalid JSON in request body."),
                );
            };
            if r.role != name {
                return json(
                    StatusCode::BAD_REQUEST,
                    aj::message("Role JSON name does not match the name in the URL"),
                );
            }
            let grant = r
                .grant
                .map(|g| g.into_permissions())
                .filter(|p| !p.is_empty());
            let revoke = r
                .revoke
                .map(|g| g.into_permissions())
                .filter(|p| !p.is_empty());
            let permissions = r.permissions.into_permissions();
            let op = if grant.is_none() && revoke.is_none() {
                AuthOp::CreateRole {
                    role: Role {
                        name: r.role,
                        kv: permissions,
                    },
                }
            } else if !permissions.is_empty() {
                return json(
                    StatusCode::BAD_REQUEST,
                    aj::message("Role JSON contains both permissions and grant/revoke"),
                );
            } else {
                AuthOp::UpdateRole {
                    name: r.role,
                    grant,
                    revoke,
                }
            };
            match write(app, op).await {
                Ok(AuthOutcome::Role { role, created }) => {
                    let mut out = String::new();
                    aj::role(&mut out, &role);
                    out.push('\n');
                    json(
                        if created {
                            StatusCode::CREATED
                        } else {
                            StatusCode::OK
                        },
                        out,
                    )
                }
                Ok(_) => empty_ok(),
                Err(resp) => resp,
            }
        }
        _ => match write(
            app,
            AuthOp::DeleteRole {
                name: name.to_string(),
            },
        )
        .await
        {
            Ok(_) => empty_ok(),
            Err(resp) => resp,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(path: &str) -> &'static str {
        match route(path) {
            Ok(Some(Target::Enable)) => "enable",
            Ok(Some(Target::Users)) => "users",
            Ok(Some(Target::User(_))) => "user",
            Ok(Some(Target::Roles)) => "roles",
            Ok(Some(Target::Role(_))) => "role",
            Ok(None) => "404",
            Err(_) => "invalid",
        }
    }

    #[test]
    fn routes_like_gos_mux() {
        assert_eq!(kind("/enable"), "enable");
        assert_eq!(kind("/enable/"), "404");
        assert_eq!(kind("/users"), "users");
        assert_eq!(kind("/users/"), "users");
        assert_eq!(kind("/users/root"), "user");
        assert_eq!(kind("/roles/r1/x"), "invalid");
        assert_eq!(kind("/other"), "404");
    }

    #[test]
    fn passwords_get_a_fresh_salt() {
        assert!(hash("").is_none());
        let (a, b) = (hash("pw").unwrap(), hash("pw").unwrap());
        assert_ne!(a, b);
        assert!(a.verify("pw") && b.verify("pw"));
    }
}
