//! etcd 3.4's v3 auth as replicated state: users, roles, key permissions, the `enabled`
//! switch, the auth revision, and the simple tokens members accept.
//!
//! Apart from v2 auth (`crate::auth`), as in etcd 3.4: the two differ in what a
//! permission is (v2: path globs; v3: byte ranges), in their built-in roles (v2's `guest`
//! and an implicit `root`; v3 stores `root` and has no guest) and in their switches, so
//! one shared set could not answer both APIs as etcd does (docs/v3-api.md, "Auth").
//!
//! Everything a write needs from a clock or an RNG arrives in the op: the proposer hashes
//! passwords (bcrypt) and draws a token's letters; the apply clock is the proposer's. No
//! auth change costs a KV revision; each one that changes users, roles or the switch bumps
//! the auth revision, as etcd's.

mod perms;

use musubi_proto::authpb::{Permission, permission::Type as PermType};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub use perms::Access;

/// The user and role that may do everything.
pub const ROOT: &str = "root";

/// Why an auth op or check failed: etcd's errors (the server maps them to etcd's gRPC
/// codes and messages, `etcdserver: ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AuthV3Error {
    #[error("user name is empty")]
    UserEmpty,
    #[error("role name is empty")]
    RoleEmpty,
    #[error("user name already exists")]
    UserExists,
    #[error("user name not found")]
    UserNotFound,
    #[error("role name already exists")]
    RoleExists,
    #[error("role name not found")]
    RoleNotFound,
    #[error("role is not granted to the user")]
    RoleNotGranted,
    #[error("permission is not granted to the role")]
    PermissionNotGranted,
    #[error("root user does not exist")]
    RootUserMissing,
    #[error("root user does not have root role")]
    RootRoleMissing,
    #[error("authentication is not enabled")]
    NotEnabled,
    #[error("authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("permission denied")]
    PermissionDenied,
    #[error("invalid auth token")]
    InvalidToken,
    #[error("invalid auth management")]
    InvalidManagement,
    #[error("revision of auth store is old")]
    OldRevision,
}

type Result<T> = std::result::Result<T, AuthV3Error>;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserV3 {
    /// The bcrypt hash; `None` for a user added with `no_password` (who cannot
    /// authenticate, only be used through other means, as in etcd).
    pub password: Option<String>,
    /// Role names, sorted (etcd keeps them sorted).
    pub roles: BTreeSet<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleV3 {
    /// Sorted by key, one per (key, range_end), as etcd keeps them.
    pub perms: Vec<Permission>,
}

/// A simple token: whose it is and until when (proposer's Unix ms) it is good. A member
/// that accepts a token close to its end proposes a refresh, so a token in use lives on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub user: String,
    pub expires_ms: u64,
    pub ttl_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthV3 {
    pub enabled: bool,
    /// etcd's auth revision: 1 on a fresh store, +1 per change of users, roles or switch.
    #[serde(default)]
    revision: u64,
    users: BTreeMap<String, UserV3>,
    roles: BTreeMap<String, RoleV3>,
    tokens: BTreeMap<String, Token>,
    /// Issued tokens so far: the suffix that makes each unique (etcd uses the Raft index).
    issued: u64,
}

/// What applying an op did: only a change of users, roles or the switch moves the auth
/// revision (etcd's commitRevision).
enum Applied {
    Changed,
    Unchanged,
    Token(String),
}

/// One replicated auth change (one Raft entry). Reads are served from the state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AuthV3Op {
    Enable,
    Disable,
    /// `prefix`: the proposer's random letters; the token is `prefix.<n>`. The password
    /// was checked by the member that took the call, as in etcd.
    Authenticate {
        name: String,
        prefix: String,
        ttl_ms: u64,
    },
    /// Extends a token in use by its TTL from the proposer's clock.
    Refresh {
        token: String,
    },
    UserAdd {
        name: String,
        /// bcrypt hash; `None` with `no_password`.
        hash: Option<String>,
    },
    UserDelete {
        name: String,
    },
    UserChangePassword {
        name: String,
        hash: Option<String>,
    },
    UserGrantRole {
        user: String,
        role: String,
    },
    UserRevokeRole {
        name: String,
        role: String,
    },
    RoleAdd {
        name: String,
    },
    RoleDelete {
        role: String,
    },
    RoleGrantPermission {
        name: String,
        perm: Permission,
    },
    RoleRevokePermission {
        role: String,
        key: Vec<u8>,
        range_end: Vec<u8>,
    },
}

impl AuthV3Op {
    /// What the log shows of it: never a password hash or a token.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthV3Op::Enable => "enable",
            AuthV3Op::Disable => "disable",
            AuthV3Op::Authenticate { .. } => "authenticate",
            AuthV3Op::Refresh { .. } => "refresh token",
            AuthV3Op::UserAdd { .. } => "user add",
            AuthV3Op::UserDelete { .. } => "user delete",
            AuthV3Op::UserChangePassword { .. } => "user change password",
            AuthV3Op::UserGrantRole { .. } => "user grant role",
            AuthV3Op::UserRevokeRole { .. } => "user revoke role",
            AuthV3Op::RoleAdd { .. } => "role add",
            AuthV3Op::RoleDelete { .. } => "role delete",
            AuthV3Op::RoleGrantPermission { .. } => "role grant permission",
            AuthV3Op::RoleRevokePermission { .. } => "role revoke permission",
        }
    }
}

impl AuthV3 {
    /// Applies `op` at `now_ms` (the proposer's clock); answers the token of an
    /// Authenticate, else an empty string.
    pub fn apply(&mut self, op: &AuthV3Op, now_ms: u64) -> Result<String> {
        // Tokens past their end go whenever the auth state is written.
        self.tokens.retain(|_, t| t.expires_ms > now_ms);
        if self.revision == 0 {
            self.revision = 1;
        }
        match self.apply_op(op, now_ms)? {
            Applied::Changed => self.revision += 1,
            Applied::Unchanged => {}
            Applied::Token(token) => return Ok(token),
        }
        Ok(String::new())
    }

    fn apply_op(&mut self, op: &AuthV3Op, now_ms: u64) -> Result<Applied> {
        match op {
            AuthV3Op::Enable => {
                if self.enabled {
                    return Ok(Applied::Unchanged);
                }
                let root = self.users.get(ROOT).ok_or(AuthV3Error::RootUserMissing)?;
                if !root.roles.contains(ROOT) {
                    return Err(AuthV3Error::RootRoleMissing);
                }
                self.enabled = true;
            }
            AuthV3Op::Disable => {
                if !self.enabled {
                    return Ok(Applied::Unchanged);
                }
                self.enabled = false;
                self.tokens.clear();
            }
            AuthV3Op::Authenticate {
                name,
                prefix,
                ttl_ms,
            } => {
                if !self.enabled {
                    return Err(AuthV3Error::NotEnabled);
                }
                if !self.users.contains_key(name) {
                    return Err(AuthV3Error::AuthFailed);
                }
                self.issued += 1;
                let token = format!("{prefix}.{}", self.issued);
                self.tokens.insert(
                    token.clone(),
                    Token {
                        user: name.clone(),
                        expires_ms: now_ms.saturating_add(*ttl_ms),
                        ttl_ms: *ttl_ms,
                    },
                );
                return Ok(Applied::Token(token));
            }
            AuthV3Op::Refresh { token } => {
                if let Some(t) = self.tokens.get_mut(token) {
                    t.expires_ms = now_ms.saturating_add(t.ttl_ms);
                }
                return Ok(Applied::Unchanged);
            }
            AuthV3Op::UserAdd { name, hash } => {
                if name.is_empty() {
                    return Err(AuthV3Error::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(AuthV3Error::UserExists);
                }
                let user = UserV3 {
                    password: hash.clone(),
                    roles: BTreeSet::new(),
                };
                self.users.insert(name.clone(), user);
            }
            AuthV3Op::UserDelete { name } => {
                if self.enabled && name == ROOT {
                    return Err(AuthV3Error::InvalidManagement);
                }
                self.users.remove(name).ok_or(AuthV3Error::UserNotFound)?;
                self.drop_tokens_of(name);
            }
            AuthV3Op::UserChangePassword { name, hash } => {
                let user = self.users.get_mut(name).ok_or(AuthV3Error::UserNotFound)?;
                user.password = hash.clone();
                self.drop_tokens_of(name);
            }
            AuthV3Op::UserGrantRole { user, role } => {
                if !self.users.contains_key(user) {
                    return Err(AuthV3Error::UserNotFound);
                }
                if role != ROOT && !self.roles.contains_key(role) {
                    return Err(AuthV3Error::RoleNotFound);
                }
                // Granting a role held already changes nothing (etcd ignores it).
                let u = self.users.get_mut(user).expect("checked");
                if !u.roles.insert(role.clone()) {
                    return Ok(Applied::Unchanged);
                }
            }
            AuthV3Op::UserRevokeRole { name, role } => {
                if self.enabled && name == ROOT && role == ROOT {
                    return Err(AuthV3Error::InvalidManagement);
                }
                let user = self.users.get_mut(name).ok_or(AuthV3Error::UserNotFound)?;
                if !user.roles.remove(role) {
                    return Err(AuthV3Error::RoleNotGranted);
                }
            }
            AuthV3Op::RoleAdd { name } => {
                if name.is_empty() {
                    return Err(AuthV3Error::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(AuthV3Error::RoleExists);
                }
                self.roles.insert(name.clone(), RoleV3::default());
            }
            AuthV3Op::RoleDelete { role } => {
                if self.enabled && role == ROOT {
                    return Err(AuthV3Error::InvalidManagement);
                }
                self.roles.remove(role).ok_or(AuthV3Error::RoleNotFound)?;
                for user in self.users.values_mut() {
                    user.roles.remove(role);
                }
            }
            AuthV3Op::RoleGrantPermission { name, perm } => {
                let role = self.roles.get_mut(name).ok_or(AuthV3Error::RoleNotFound)?;
                let same = |p: &Permission| p.key == perm.key && p.range_end == perm.range_end;
                match role.perms.iter_mut().find(|p| same(p)) {
                    Some(p) => p.perm_type = perm.perm_type,
                    None => {
                        let at = role.perms.partition_point(|p| p.key <= perm.key);
                        role.perms.insert(at, perm.clone());
                    }
                }
            }
            AuthV3Op::RoleRevokePermission {
                role,
                key,
                range_end,
            } => {
                let role = self.roles.get_mut(role).ok_or(AuthV3Error::RoleNotFound)?;
                let at = role
                    .perms
                    .iter()
                    .position(|p| &p.key == key && &p.range_end == range_end)
                    .ok_or(AuthV3Error::PermissionNotGranted)?;
                role.perms.remove(at);
            }
        }
        Ok(Applied::Changed)
    }

    fn drop_tokens_of(&mut self, name: &str) {
        self.tokens.retain(|_, t| t.user != name);
    }

    pub fn revision(&self) -> u64 {
        self.revision.max(1)
    }

    pub fn user(&self, name: &str) -> Option<&UserV3> {
        self.users.get(name)
    }

    pub fn role(&self, name: &str) -> Option<&RoleV3> {
        self.roles.get(name)
    }

    /// User names, sorted.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Role names, sorted.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    /// The token's entry if it is good at `now_ms`.
    pub fn token(&self, token: &str, now_ms: u64) -> Option<&Token> {
        self.tokens.get(token).filter(|t| t.expires_ms > now_ms)
    }

    fn is_root(&self, user: &UserV3) -> bool {
        user.roles.contains(ROOT)
    }

    /// Whether rights checked at auth revision `seen` still hold: auth is off, or nothing
    /// of it changed since (etcd refuses the request otherwise, and Go's client retries).
    pub fn check_revision(&self, seen: u64) -> Result<()> {
        if self.enabled && seen < self.revision() {
            return Err(AuthV3Error::OldRevision);
        }
        Ok(())
    }

    /// etcd's IsAdminPermitted: anything goes while auth is off; else the caller (`None`:
    /// no token) must hold the `root` role.
    pub fn check_admin(&self, caller: Option<&str>) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let name = caller
            .filter(|n| !n.is_empty())
            .ok_or(AuthV3Error::UserEmpty)?;
        let user = self.users.get(name).ok_or(AuthV3Error::UserNotFound)?;
        if self.is_root(user) {
            Ok(())
        } else {
            Err(AuthV3Error::PermissionDenied)
        }
    }

    /// etcd's isOpPermitted: may `caller` read or write `[key, range_end)` (etcd's
    /// range_end conventions: empty is the one key, `"\0"` every key from `key` on)?
    pub fn check(
        &self,
        caller: Option<&str>,
        access: Access,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let name = caller
            .filter(|n| !n.is_empty())
            .ok_or(AuthV3Error::UserEmpty)?;
        let user = self.users.get(name).ok_or(AuthV3Error::PermissionDenied)?;
        if self.is_root(user) {
            return Ok(());
        }
        let granted = user
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| &r.perms)
            .filter(|p| access.granted_by(p.perm_type()));
        if perms::covers(granted, key, range_end) {
            Ok(())
        } else {
            Err(AuthV3Error::PermissionDenied)
        }
    }

    /// Whether `caller` holds `role` (a non-root user may read its own roles).
    pub fn has_role(&self, caller: &str, role: &str) -> bool {
        self.users
            .get(caller)
            .is_some_and(|u| u.roles.contains(role))
    }
}

impl Access {
    fn granted_by(self, kind: PermType) -> bool {
        kind == PermType::Readwrite
            || matches!(
                (self, kind),
                (Access::Read, PermType::Read) | (Access::Write, PermType::Write)
            )
    }
}

#[cfg(test)]
mod tests;

impl crate::StateMachine {
    /// Applies an auth change at the proposer's clock; its header shows the KV revision,
    /// which it leaves alone.
    pub(crate) fn apply_auth_v3(
        &mut self,
        op: &AuthV3Op,
    ) -> std::result::Result<super::V3Response, super::V3Error> {
        let token = self.auth_v3.apply(op, self.now_ms)?;
        Ok(super::V3Response::Auth(
            musubi_proto::etcdserverpb::AuthenticateResponse {
                header: super::header(self.keyspace.revision()),
                token,
            },
        ))
    }

    /// v3 users, roles, tokens and whether v3 auth is on.
    pub fn auth_v3(&self) -> &AuthV3 {
        &self.auth_v3
    }
}
