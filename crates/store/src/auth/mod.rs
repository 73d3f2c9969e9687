//! etcd v2 auth: users, roles and the `enabled` switch, with etcd 3.4's rules and messages
//! (`etcdserver/api/v2auth/auth.go`).
//!
//! Passwords arrive already hashed: the proposer picks the salt, so applying stays
//! deterministic. `root` is a built-in role that is never stored; `guest` is an ordinary
//! role that enabling auth creates when it is missing and that unauthenticated requests use.

use crate::{ErrorCode, V2Error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const ROOT: &str = "root";
pub const GUEST: &str = "guest";

/// etcd keeps auth data in its v2 store, so each auth write advances the store index; its
/// first auth write also creates the `/2/...` directories, which costs this many more.
const BOOTSTRAP_WRITES: u64 = 4;

mod model;

pub use model::{AuthOp, PasswordHash, Permissions, Role, User};

/// An auth API failure: etcd's HTTP status and `auth: ...` message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthError {
    pub status: u16,
    pub message: String,
}

fn err(status: u16, message: String) -> AuthError {
    AuthError {
        status,
        message: format!("auth: {message}"),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthOutcome {
    /// A user as etcd echoes it after a PUT: roles by name, no password.
    User {
        name: String,
        roles: Option<Vec<String>>,
        created: bool,
    },
    Role {
        role: Role,
        created: bool,
    },
    Done,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    pub enabled: bool,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Whether etcd would already have created its auth directories.
    bootstrapped: bool,
}

impl AuthState {
    /// Applies one op; on success also says by how much the store index advances.
    pub fn apply(&mut self, op: &AuthOp) -> Result<(AuthOutcome, u64), AuthError> {
        let (outcome, writes) = self.apply_op(op)?;
        let extra = if self.bootstrapped {
            0
        } else {
            BOOTSTRAP_WRITES
        };
        self.bootstrapped = true;
        Ok((outcome, writes + extra))
    }

    fn apply_op(&mut self, op: &AuthOp) -> Result<(AuthOutcome, u64), AuthError> {
        match op {
            AuthOp::CreateUser {
                name,
                password,
                roles,
            } => self.create_user(name, password, roles, false),
            AuthOp::CreateOrUpdateUser {
                name,
                password,
                roles,
            } => match self.users.contains_key(name) {
                true => self.update_user(name, password, &[], &[]),
                false => self.create_user(name, password, roles, true),
            },
            AuthOp::UpdateUser {
                name,
                password,
                grant,
                revoke,
            } => self.update_user(name, password, grant, revoke),
            AuthOp::DeleteUser { name } => {
                if self.enabled && name == ROOT {
                    return Err(err(
                        403,
                        "Cannot delete root user while auth is enabled.".into(),
                    ));
                }
                self.users
                    .remove(name)
                    .ok_or_else(|| err(404, format!("User {name} does not exist")))?;
                Ok((AuthOutcome::Done, 1))
            }
            AuthOp::CreateRole { role } => {
                self.create_role(role)?;
                Ok((
                    AuthOutcome::Role {
                        role: role.clone(),
                        created: true,
                    },
                    1,
                ))
            }
            AuthOp::UpdateRole {
                name,
                grant,
                revoke,
            } => self.update_role(name, grant.as_ref(), revoke.as_ref()),
            AuthOp::DeleteRole { name } => {
                if name == ROOT {
                    return Err(err(
                        403,
                        format!("Cannot modify role {name}: is root role."),
                    ));
                }
                self.roles
                    .remove(name)
                    .ok_or_else(|| err(404, format!("Role {name} doesn't exist.")))?;
                Ok((AuthOutcome::Done, 1))
            }
            AuthOp::Enable => {
                if self.enabled {
                    return Err(err(409, "already enabled".into()));
                }
                if !self.users.contains_key(ROOT) {
                    return Err(err(409, "No root user available, please create one".into()));
                }
                let mut writes = 1;
                if !self.roles.contains_key(GUEST) {
                    self.roles.insert(
                        GUEST.into(),
                        Role {
                            name: GUEST.into(),
                            kv: Permissions::everything(),
                        },
                    );
                    writes += 1;
                }
                self.enabled = true;
                Ok((AuthOutcome::Done, writes))
            }
            AuthOp::Disable => {
                if !self.enabled {
                    return Err(err(409, "already disabled".into()));
                }
                self.enabled = false;
                Ok((AuthOutcome::Done, 1))
            }
        }
    }

    fn create_user(
        &mut self,
        name: &str,
        password: &Option<PasswordHash>,
        roles: &Option<Vec<String>>,
        created: bool,
    ) -> Result<(AuthOutcome, u64), AuthError> {
        let Some(password) = password else {
            return Err(err(
                400,
                format!("Cannot create user {name} with an empty password"),
            ));
        };
        if self.users.contains_key(name) {
            return Err(err(409, format!("User {name} already exists.")));
        }
        let mut roles = roles.clone();
        if name == ROOT {
            attach_root(&mut roles);
        }
        self.users.insert(
            name.into(),
            User {
                name: name.into(),
                password: password.clone(),
                roles: roles.clone(),
            },
        );
        Ok((
            AuthOutcome::User {
                name: name.into(),
                roles,
                created,
            },
            1,
        ))
    }

    fn update_user(
        &mut self,
        name: &str,
        password: &Option<PasswordHash>,
        grant: &[String],
        revoke: &[String],
    ) -> Result<(AuthOutcome, u64), AuthError> {
        let old = self.user(name)?;
        let mut roles = old.roles.clone().unwrap_or_default();
        for g in grant {
            if roles.contains(g) {
                return Err(err(
                    409,
                    format!("Granting duplicate role {g} for user {name}"),
                ));
            }
            roles.push(g.clone());
        }
        for r in revoke {
            let Some(at) = roles.iter().position(|x| x == r) else {
                return Err(err(
                    409,
                    format!("Revoking ungranted role {r} for user {name}"),
                ));
            };
            roles.remove(at);
        }
        roles.sort();
        let new = User {
            name: name.into(),
            password: password.clone().unwrap_or_else(|| old.password.clone()),
            roles: Some(roles),
        };
        if new == old {
            return Err(err(
                400,
                "User not updated. Use grant/revoke/password to update the user.".into(),
            ));
        }
        let roles = new.roles.clone();
        self.users.insert(name.into(), new);
        Ok((
            AuthOutcome::User {
                name: name.into(),
                roles,
                created: false,
            },
            1,
        ))
    }

    fn create_role(&mut self, role: &Role) -> Result<(), AuthError> {
        if role.name == ROOT {
            return Err(err(
                403,
                format!("Cannot modify role {}: is root role.", role.name),
            ));
        }
        if self.roles.contains_key(&role.name) {
            return Err(err(409, format!("Role {} already exists.", role.name)));
        }
        self.roles.insert(role.name.clone(), role.clone());
        Ok(())
    }

    fn update_role(
        &mut self,
        name: &str,
        grant: Option<&Permissions>,
        revoke: Option<&Permissions>,
    ) -> Result<(AuthOutcome, u64), AuthError> {
        if name == ROOT {
            return Err(err(
                403,
                format!("Cannot modify role {name}: is root role."),
            ));
        }
        let old = self.role(name)?;
        let mut kv = old.kv.clone();
        if let Some(g) = grant {
            kv = Permissions {
                read: Some(granted(&kv.read, &g.read, "read")?),
                write: Some(granted(&kv.write, &g.write, "write")?),
            };
        }
        if let Some(r) = revoke {
            kv = Permissions {
                read: Some(revoked(&kv.read, &r.read)),
                write: Some(revoked(&kv.write, &r.write)),
            };
        }
        let new = Role {
            name: name.into(),
            kv,
        };
        if new == old {
            return Err(err(
                400,
                "Role not updated. Use grant/revoke to update the role.".into(),
            ));
        }
        self.roles.insert(name.into(), new.clone());
        Ok((
            AuthOutcome::Role {
                role: new,
                created: false,
            },
            1,
        ))
    }

    /// A user as etcd reads it back: the root user always holds the root role.
    pub fn user(&self, name: &str) -> Result<User, AuthError> {
        let mut user = self
            .users
            .get(name)
            .cloned()
            .ok_or_else(|| err(404, format!("User {name} does not exist.")))?;
        if name == ROOT {
            attach_root(&mut user.roles);
        }
        Ok(user)
    }

    pub fn role(&self, name: &str) -> Result<Role, AuthError> {
        if name == ROOT {
            return Ok(Role::root());
        }
        self.roles
            .get(name)
            .cloned()
            .ok_or_else(|| err(404, format!("Role {name} does not exist.")))
    }

    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// Every role name, the built-in root included, sorted.
    pub fn role_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.roles.keys().cloned().collect();
        names.push(ROOT.into());
        names.sort();
        names
    }

    fn login(&self, name: &str, password: &str) -> Option<User> {
        self.user(name).ok().filter(|u| u.password.verify(password))
    }

    /// etcd's hasRootAccess: anyone while auth is off, else a user holding the root role.
    pub fn is_root(&self, user: Option<(&str, &str)>) -> bool {
        if !self.enabled {
            return true;
        }
        let Some((name, password)) = user else {
            return false;
        };
        self.login(name, password)
            .is_some_and(|u| u.roles.unwrap_or_default().iter().any(|r| r == ROOT))
    }

    /// etcd's hasKeyPrefixAccess. `user == None` means no Authorization header: the guest
    /// role decides, and (as in etcd) always with the non-recursive rule.
    pub fn authorize(
        &self,
        user: Option<(&str, &str)>,
        key: &str,
        recursive: bool,
        write: bool,
    ) -> Result<(), V2Error> {
        if !self.enabled {
            return Ok(());
        }
        let allowed = match user {
            None => self.role(GUEST).is_ok_and(|g| g.allows(key, false, write)),
            Some((name, password)) => self.login(name, password).is_some_and(|u| {
                u.roles
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|r| self.role(r).ok())
                    .any(|role| role.allows(key, recursive, write))
            }),
        };
        if allowed { Ok(()) } else { Err(unauthorized()) }
    }
}

/// etcd's 401 for the keys API.
pub fn unauthorized() -> V2Error {
    V2Error::new(ErrorCode::Unauthorized, "Insufficient credentials", 0)
}

fn attach_root(roles: &mut Option<Vec<String>>) {
    let list = roles.get_or_insert_with(Vec::new);
    if !list.iter().any(|r| r == ROOT) {
        list.push(ROOT.into());
    }
}

fn granted(
    current: &Option<Vec<String>>,
    add: &Option<Vec<String>>,
    kind: &str,
) -> Result<Vec<String>, AuthError> {
    let mut out = current.clone().unwrap_or_default();
    for p in add.iter().flatten() {
        if out.contains(p) {
            return Err(err(
                409,
                format!("Granting duplicate {kind} permission {p}"),
            ));
        }
        out.push(p.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Revoking a pattern that was never granted is ignored, as in etcd.
fn revoked(current: &Option<Vec<String>>, remove: &Option<Vec<String>>) -> Vec<String> {
    let remove = remove.as_deref().unwrap_or_default();
    let mut out: Vec<String> = current
        .iter()
        .flatten()
        .filter(|p| !remove.contains(p))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(p: &str) -> Option<PasswordHash> {
        Some(PasswordHash::new(p, "salt"))
    }

    fn with_root() -> AuthState {
        let mut a = AuthState::default();
        a.apply(&AuthOp::CreateOrUpdateUser {
            name: ROOT.into(),
            password: pw("pw"),
            roles: None,
        })
        .unwrap();
        a
    }

    fn list(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn glob_rule_is_prefix_with_star_else_exact() {
        let p = Permissions {
            read: list(&["/foo/*", "/a"]),
            write: None,
        };
        assert!(p.has_access("/foo/bar", false));
        assert!(!p.has_access("/foo", false));
        assert!(p.has_access("/a", false));
        assert!(!p.has_access("/ab", false));
        assert!(!p.has_access("/a", true));
        assert!(p.has_recursive_access("/foo/", false));
        assert!(!p.has_recursive_access("/a", false));
    }

    #[test]
    fn enable_needs_root_and_creates_guest_once() {
        let mut a = AuthState::default();
        assert_eq!(a.apply(&AuthOp::Enable).unwrap_err().status, 409);
        let mut a = with_root();
        assert_eq!(a.apply(&AuthOp::Enable).unwrap().1, 2);
        assert_eq!(a.role(GUEST).unwrap().kv, Permissions::everything());
        assert_eq!(
            a.apply(&AuthOp::Enable).unwrap_err().message,
            "auth: already enabled"
        );
        a.apply(&AuthOp::Disable).unwrap();
        assert_eq!(a.apply(&AuthOp::Enable).unwrap().1, 1);
        assert_eq!(a.role_names(), vec!["guest", "root"]);
    }

    #[test]
    fn first_auth_write_pays_for_etcds_directories() {
        let mut a = AuthState::default();
        let (outcome, writes) = a
            .apply(&AuthOp::CreateOrUpdateUser {
                name: ROOT.into(),
                password: pw("pw"),
                roles: None,
            })
            .unwrap();
        assert_eq!(writes, 5);
        assert_eq!(
            outcome,
            AuthOutcome::User {
                name: ROOT.into(),
                roles: list(&["root"]),
                created: true
            }
        );
    }

    #[test]
    fn user_grant_revoke_and_password() {
        let mut a = with_root();
        a.apply(&AuthOp::CreateOrUpdateUser {
            name: "u".into(),
            password: pw("p"),
            roles: None,
        })
        .unwrap();
        let up = |g: &[&str], r: &[&str]| AuthOp::UpdateUser {
            name: "u".into(),
            password: None,
            grant: list(g).unwrap(),
            revoke: list(r).unwrap(),
        };
        let (out, _) = a.apply(&up(&["b", "a"], &[])).unwrap();
        assert_eq!(
            out,
            AuthOutcome::User {
                name: "u".into(),
                roles: list(&["a", "b"]),
                created: false
            }
        );
        assert_eq!(
            a.apply(&up(&["a"], &[])).unwrap_err().message,
            "auth: Granting duplicate role a for user u"
        );
        assert_eq!(a.apply(&up(&[], &["z"])).unwrap_err().status, 409);
        assert_eq!(a.apply(&up(&[], &[])).unwrap_err().status, 400);
        let same = AuthOp::CreateOrUpdateUser {
            name: "u".into(),
            password: Some(PasswordHash::new("new", "s2")),
            roles: None,
        };
        a.apply(&same).unwrap();
        assert!(a.user("u").unwrap().password.verify("new"));
        assert!(!a.user("u").unwrap().password.verify("p"));
    }

    #[test]
    fn root_user_keeps_root_role_and_cannot_go_while_enabled() {
        let mut a = with_root();
        a.apply(&AuthOp::Enable).unwrap();
        assert!(a.is_root(Some(("root", "pw"))));
        assert!(!a.is_root(Some(("root", "bad"))));
        assert!(!a.is_root(None));
        assert_eq!(
            a.apply(&AuthOp::DeleteUser { name: ROOT.into() })
                .unwrap_err()
                .status,
            403
        );
        a.apply(&AuthOp::Disable).unwrap();
        assert!(a.is_root(None));
        a.apply(&AuthOp::DeleteUser { name: ROOT.into() }).unwrap();
        assert_eq!(
            a.apply(&AuthOp::DeleteUser { name: ROOT.into() })
                .unwrap_err()
                .message,
            "auth: User root does not exist"
        );
    }

    #[test]
    fn roles_create_update_delete() {
        let mut a = with_root();
        let r1 = Role {
            name: "r1".into(),
            kv: Permissions {
                read: list(&["/b", "/a"]),
                write: None,
            },
        };
        a.apply(&AuthOp::CreateRole { role: r1.clone() }).unwrap();
        assert_eq!(
            a.apply(&AuthOp::CreateRole { role: r1 })
                .unwrap_err()
                .status,
            409
        );
        let root = Role {
            name: ROOT.into(),
            kv: Permissions::default(),
        };
        assert_eq!(
            a.apply(&AuthOp::CreateRole { role: root })
                .unwrap_err()
                .status,
            403
        );
        let grant = Some(Permissions {
            read: None,
            write: list(&["/w/*"]),
        });
        let (out, _) = a
            .apply(&AuthOp::UpdateRole {
                name: "r1".into(),
                grant: grant.clone(),
                revoke: None,
            })
            .unwrap();
        assert_eq!(
            out,
            AuthOutcome::Role {
                role: Role {
                    name: "r1".into(),
                    kv: Permissions {
                        read: list(&["/a", "/b"]),
                        write: list(&["/w/*"])
                    }
                },
                created: false
            }
        );
        assert_eq!(
            a.apply(&AuthOp::UpdateRole {
                name: "r1".into(),
                grant,
                revoke: None
            })
            .unwrap_err()
            .message,
            "auth: Granting duplicate write permission /w/*"
        );
        let revoke = Some(Permissions {
            read: list(&["/zz"]),
            write: None,
        });
        assert_eq!(
            a.apply(&AuthOp::UpdateRole {
                name: "r1".into(),
                grant: None,
                revoke
            })
            .unwrap_err()
            .status,
            400
        );
        a.apply(&AuthOp::DeleteRole { name: "r1".into() }).unwrap();
        assert_eq!(
            a.apply(&AuthOp::DeleteRole { name: "r1".into() })
                .unwrap_err()
                .message,
            "auth: Role r1 doesn't exist."
        );
    }

    #[test]
    fn authorize_follows_users_roles_and_guest() {
        let mut a = with_root();
        assert!(
            a.authorize(None, "/x", false, true).is_ok(),
            "auth off: anything goes"
        );
        let r = Role {
            name: "r".into(),
            kv: Permissions {
                read: list(&["/foo/*"]),
                write: list(&["/foo/w"]),
            },
        };
        a.apply(&AuthOp::CreateRole { role: r }).unwrap();
        a.apply(&AuthOp::CreateUser {
            name: "u".into(),
            password: pw("p"),
            roles: list(&["r", "missing"]),
        })
        .unwrap();
        a.apply(&AuthOp::Enable).unwrap();
        let u = Some(("u", "p"));
        assert!(a.authorize(u, "/foo/a", false, false).is_ok());
        assert!(a.authorize(u, "/foo/a", false, true).is_err());
        assert!(a.authorize(u, "/foo/w", false, true).is_ok());
        assert!(a.authorize(u, "/foo", true, false).is_err());
        assert!(a.authorize(u, "/foo/", true, false).is_ok());
        assert_eq!(
            a.authorize(Some(("u", "bad")), "/foo/a", false, false),
            Err(unauthorized())
        );
        assert!(
            a.authorize(Some(("root", "pw")), "/anything", true, true)
                .is_ok()
        );
        assert!(
            a.authorize(None, "/x", false, true).is_ok(),
            "default guest may do everything"
        );
        assert!(
            a.authorize(None, "", false, false).is_err(),
            "but not the bare /v2/keys path"
        );
        a.apply(&AuthOp::DeleteRole { name: GUEST.into() }).unwrap();
        assert!(a.authorize(None, "/x", false, false).is_err());
    }
}
