//! The Auth service: etcd 3.4's RPCs over the replicated v3 auth state.
//!
//! Changes go through the log (one `V3Write::Auth` each) after the caller is checked
//! (root, or anyone while auth is off); reads are served from this member after a
//! ReadIndex, as etcd serves them through its log. Passwords are hashed (bcrypt, cost
//! 10, as etcd) and checked on the member that takes the call, off the async threads.

use super::{Seen, admin, caller_name, status};
use crate::v3::V3;
use musubi_proto::authpb::permission::Type as PermType;
use musubi_proto::etcdserverpb::{self as pb, auth_server::Auth};
use musubi_store::v3::auth::{AuthV3Error, AuthV3Op};
use musubi_store::v3::{V3Response, V3Write};
use rand::Rng;
use tonic::{Request, Response, Status};

/// etcd's bcrypt cost.
const BCRYPT_COST: u32 = 10;

pub struct AuthService(pub V3);

type Answer<T> = Result<Response<T>, Status>;

impl AuthService {
    /// Proposes `op` (for a caller checked at auth revision `seen`); the header of its
    /// answer, and the token of an Authenticate.
    async fn change(
        &self,
        op: AuthV3Op,
        seen: Option<Seen>,
    ) -> Result<(Option<pb::ResponseHeader>, String), Status> {
        match self.0.propose_as(V3Write::Auth(op), seen).await? {
            V3Response::Auth(mut resp) => {
                self.0.fill(&mut resp.header);
                Ok((resp.header, resp.token))
            }
            _ => Err(Status::internal("unexpected response to an auth request")),
        }
    }

    /// An admin change: the caller checked, then `op` proposed.
    async fn admin_change<T>(
        &self,
        md: &tonic::metadata::MetadataMap,
        op: AuthV3Op,
        answer: impl FnOnce(Option<pb::ResponseHeader>) -> T,
    ) -> Answer<T> {
        let seen = admin(&self.0, md)?;
        let (header, _) = self.change(op, Some(seen)).await?;
        Ok(Response::new(answer(header)))
    }

    /// The header of a read, at the current revision, after a ReadIndex.
    async fn read_header(&self) -> Result<Option<pb::ResponseHeader>, Status> {
        self.0.linearize().await?;
        Ok(Some(self.0.header(self.0.app.sm.read().revision())))
    }
}

/// A bcrypt hash of `password`, computed off the async threads.
async fn hash(password: String) -> Result<String, Status> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, BCRYPT_COST))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))
}

/// 16 random letters: the first part of a simple token, as etcd's.
fn token_prefix() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
        .collect()
}

fn err(e: AuthV3Error) -> Status {
    status::from_auth(e)
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        r: Request<pb::AuthEnableRequest>,
    ) -> Answer<pb::AuthEnableResponse> {
        self.admin_change(r.metadata(), AuthV3Op::Enable, |header| {
            pb::AuthEnableResponse { header }
        })
        .await
    }

    async fn auth_disable(
        &self,
        r: Request<pb::AuthDisableRequest>,
    ) -> Answer<pb::AuthDisableResponse> {
        self.admin_change(r.metadata(), AuthV3Op::Disable, |header| {
            pb::AuthDisableResponse { header }
        })
        .await
    }

    async fn authenticate(
        &self,
        r: Request<pb::AuthenticateRequest>,
    ) -> Answer<pb::AuthenticateResponse> {
        let r = r.into_inner();
        let stored = {
            let sm = self.0.app.sm.read();
            let auth = sm.auth_v3();
            if !auth.enabled {
                return Err(err(AuthV3Error::NotEnabled));
            }
            auth.user(&r.name).and_then(|u| u.password.clone())
        };
        // A user without a password (or none at all) cannot log in, as in etcd.
        let hash = stored.ok_or_else(|| err(AuthV3Error::AuthFailed))?;
        let password = r.password;
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .unwrap_or(false);
        if !ok {
            return Err(err(AuthV3Error::AuthFailed));
        }
        let op = AuthV3Op::Authenticate {
            name: r.name,
            prefix: token_prefix(),
            ttl_ms: self.0.app.limits.auth_token_ttl.as_millis() as u64,
        };
        let (header, token) = self.change(op, None).await?;
        Ok(Response::new(pb::AuthenticateResponse { header, token }))
    }

    async fn user_add(
        &self,
        r: Request<pb::AuthUserAddRequest>,
    ) -> Answer<pb::AuthUserAddResponse> {
        let seen = admin(&self.0, r.metadata())?;
        let r = r.into_inner();
        if r.name.is_empty() {
            return Err(err(AuthV3Error::UserEmpty));
        }
        let no_password = r.options.is_some_and(|o| o.no_password);
        let hash = match no_password {
            true => None,
            false => Some(hash(r.password).await?),
        };
        let (header, _) = self
            .change(AuthV3Op::UserAdd { name: r.name, hash }, Some(seen))
            .await?;
        Ok(Response::new(pb::AuthUserAddResponse { header }))
    }

    async fn user_get(
        &self,
        r: Request<pb::AuthUserGetRequest>,
    ) -> Answer<pb::AuthUserGetResponse> {
        // Anyone may read their own user; others' need root.
        let own = caller_name(&self.0, r.metadata())?.is_some_and(|me| me == r.get_ref().name);
        if !own {
            admin(&self.0, r.metadata())?;
        }
        let header = self.read_header().await?;
        let sm = self.0.app.sm.read();
        let user = sm
            .auth_v3()
            .user(&r.get_ref().name)
            .ok_or_else(|| err(AuthV3Error::UserNotFound))?;
        Ok(Response::new(pb::AuthUserGetResponse {
            header,
            roles: user.roles.iter().cloned().collect(),
        }))
    }

    async fn user_list(
        &self,
        r: Request<pb::AuthUserListRequest>,
    ) -> Answer<pb::AuthUserListResponse> {
        admin(&self.0, r.metadata())?;
        let header = self.read_header().await?;
        let users = self
            .0
            .app
            .sm
            .read()
            .auth_v3()
            .users()
            .map(str::to_owned)
            .collect();
        Ok(Response::new(pb::AuthUserListResponse { header, users }))
    }

    async fn user_delete(
        &self,
        r: Request<pb::AuthUserDeleteRequest>,
    ) -> Answer<pb::AuthUserDeleteResponse> {
        let op = AuthV3Op::UserDelete {
            name: r.get_ref().name.clone(),
        };
        self.admin_change(r.metadata(), op, |header| pb::AuthUserDeleteResponse {
            header,
        })
        .await
    }

    async fn user_change_password(
        &self,
        r: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Answer<pb::AuthUserChangePasswordResponse> {
        let seen = admin(&self.0, r.metadata())?;
        let r = r.into_inner();
        if self.0.app.sm.read().auth_v3().user(&r.name).is_none() {
            return Err(err(AuthV3Error::UserNotFound));
        }
        let hash = Some(hash(r.password).await?);
        let (header, _) = self
            .change(
                AuthV3Op::UserChangePassword { name: r.name, hash },
                Some(seen),
            )
            .await?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        r: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Answer<pb::AuthUserGrantRoleResponse> {
        let pb::AuthUserGrantRoleRequest { user, role } = r.get_ref().clone();
        let op = AuthV3Op::UserGrantRole { user, role };
        self.admin_change(r.metadata(), op, |header| pb::AuthUserGrantRoleResponse {
            header,
        })
        .await
    }

    async fn user_revoke_role(
        &self,
        r: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Answer<pb::AuthUserRevokeRoleResponse> {
        let pb::AuthUserRevokeRoleRequest { name, role } = r.get_ref().clone();
        let op = AuthV3Op::UserRevokeRole { name, role };
        self.admin_change(r.metadata(), op, |header| pb::AuthUserRevokeRoleResponse {
            header,
        })
        .await
    }

    async fn role_add(
        &self,
        r: Request<pb::AuthRoleAddRequest>,
    ) -> Answer<pb::AuthRoleAddResponse> {
        let op = AuthV3Op::RoleAdd {
            name: r.get_ref().name.clone(),
        };
        self.admin_change(r.metadata(), op, |header| pb::AuthRoleAddResponse {
            header,
        })
        .await
    }

    async fn role_get(
        &self,
        r: Request<pb::AuthRoleGetRequest>,
    ) -> Answer<pb::AuthRoleGetResponse> {
        // Anyone may read the roles they hold; others need root.
        let role = &r.get_ref().role;
        let holds = caller_name(&self.0, r.metadata())?
            .is_some_and(|me| self.0.app.sm.read().auth_v3().has_role(&me, role));
        if !holds {
            admin(&self.0, r.metadata())?;
        }
        let header = self.read_header().await?;
        let sm = self.0.app.sm.read();
        let found = sm
            .auth_v3()
            .role(role)
            .ok_or_else(|| err(AuthV3Error::RoleNotFound))?;
        Ok(Response::new(pb::AuthRoleGetResponse {
            header,
            perm: found.perms.clone(),
        }))
    }

    async fn role_list(
        &self,
        r: Request<pb::AuthRoleListRequest>,
    ) -> Answer<pb::AuthRoleListResponse> {
        admin(&self.0, r.metadata())?;
        let header = self.read_header().await?;
        let roles = self
            .0
            .app
            .sm
            .read()
            .auth_v3()
            .roles()
            .map(str::to_owned)
            .collect();
        Ok(Response::new(pb::AuthRoleListResponse { header, roles }))
    }

    async fn role_delete(
        &self,
        r: Request<pb::AuthRoleDeleteRequest>,
    ) -> Answer<pb::AuthRoleDeleteResponse> {
        let op = AuthV3Op::RoleDelete {
            role: r.get_ref().role.clone(),
        };
        self.admin_change(r.metadata(), op, |header| pb::AuthRoleDeleteResponse {
            header,
        })
        .await
    }

    async fn role_grant_permission(
        &self,
        r: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Answer<pb::AuthRoleGrantPermissionResponse> {
        let req = r.get_ref();
        let perm = req.perm.clone().unwrap_or_default();
        // A type outside READ/WRITE/READWRITE: etcd's "invalid permission type" is not
        // one of its mapped errors; refuse it as an invalid argument.
        if PermType::try_from(perm.perm_type).is_err() {
            return Err(Status::invalid_argument(
                "etcdserver: invalid permission type",
            ));
        }
        let op = AuthV3Op::RoleGrantPermission {
            name: req.name.clone(),
            perm,
        };
        self.admin_change(r.metadata(), op, |header| {
            pb::AuthRoleGrantPermissionResponse { header }
        })
        .await
    }

    async fn role_revoke_permission(
        &self,
        r: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Answer<pb::AuthRoleRevokePermissionResponse> {
        let req = r.get_ref();
        let op = AuthV3Op::RoleRevokePermission {
            role: req.role.clone(),
            key: req.key.clone(),
            range_end: req.range_end.clone(),
        };
        self.admin_change(r.metadata(), op, |header| {
            pb::AuthRoleRevokePermissionResponse { header }
        })
        .await
    }
}
