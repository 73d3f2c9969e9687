//! The auth data model: key permissions, roles, password hashes, users, and the operations
//! that change them (one `AuthOp` per Raft entry).

use super::ROOT;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Key patterns a role may read and write. `None` and `Some(vec![])` are both kept because
/// etcd shows them differently (`null` vs `[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub read: Option<Vec<String>>,
    pub write: Option<Vec<String>>,
}

impl Permissions {
    pub(super) fn everything() -> Self {
        Permissions {
            read: Some(vec!["/*".into()]),
            write: Some(vec!["/*".into()]),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.read.as_ref().is_none_or(Vec::is_empty)
            && self.write.as_ref().is_none_or(Vec::is_empty)
    }

    pub(super) fn list(&self, write: bool) -> &[String] {
        let list = if write { &self.write } else { &self.read };
        list.as_deref().unwrap_or_default()
    }

    /// etcd's simpleMatch: `/foo/*` covers every key starting with `/foo/`, else exact.
    pub fn has_access(&self, key: &str, write: bool) -> bool {
        self.list(write)
            .iter()
            .any(|pat| match pat.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => key == pat,
            })
    }

    /// etcd's prefixMatch: a recursive request needs a `*` pattern covering the key.
    pub fn has_recursive_access(&self, key: &str, write: bool) -> bool {
        self.list(write).iter().any(|pat| {
            pat.strip_suffix('*')
                .is_some_and(|prefix| key.starts_with(prefix))
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub kv: Permissions,
}

impl Role {
    pub(super) fn root() -> Role {
        Role {
            name: ROOT.into(),
            kv: Permissions::everything(),
        }
    }

    pub(super) fn allows(&self, key: &str, recursive: bool, write: bool) -> bool {
        self.name == ROOT
            || if recursive {
                self.kv.has_recursive_access(key, write)
            } else {
                self.kv.has_access(key, write)
            }
    }
}

/// A salted, iterated SHA-256 of a password (hex). etcd uses bcrypt; only verification
/// has to work, and a fresh salt per write keeps etcd's "a new password always updates".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordHash {
    pub salt: String,
    pub hash: String,
}

const HASH_ROUNDS: usize = 1024;

impl PasswordHash {
    pub fn new(password: &str, salt: &str) -> Self {
        PasswordHash {
            salt: salt.to_string(),
            hash: digest(password, salt),
        }
    }

    pub fn verify(&self, password: &str) -> bool {
        let got = digest(password, &self.salt);
        // Constant-time compare: the hash is secret-derived.
        got.len() == self.hash.len()
            && got
                .bytes()
                .zip(self.hash.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

pub(super) fn digest(password: &str, salt: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    let mut out = h.finalize();
    for _ in 1..HASH_ROUNDS {
        out = Sha256::digest(out);
    }
    out.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub password: PasswordHash,
    pub roles: Option<Vec<String>>,
}

/// One replicated auth mutation, split the way etcd's HTTP handler decides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthOp {
    /// PUT user with `roles`: create only (etcd answers 200, not 201).
    CreateUser {
        name: String,
        password: Option<PasswordHash>,
        roles: Option<Vec<String>>,
    },
    /// PUT user with neither roles nor grant/revoke: create (201) or change the password.
    CreateOrUpdateUser {
        name: String,
        password: Option<PasswordHash>,
        roles: Option<Vec<String>>,
    },
    /// PUT user with grant/revoke (and maybe a password).
    UpdateUser {
        name: String,
        password: Option<PasswordHash>,
        grant: Vec<String>,
        revoke: Vec<String>,
    },
    DeleteUser {
        name: String,
    },
    CreateRole {
        role: Role,
    },
    UpdateRole {
        name: String,
        grant: Option<Permissions>,
        revoke: Option<Permissions>,
    },
    DeleteRole {
        name: String,
    },
    Enable,
    Disable,
}

impl AuthOp {
    pub fn kind(&self) -> &'static str {
        match self {
            AuthOp::CreateUser { .. } => "create user",
            AuthOp::CreateOrUpdateUser { .. } => "create or update user",
            AuthOp::UpdateUser { .. } => "update user",
            AuthOp::DeleteUser { .. } => "delete user",
            AuthOp::CreateRole { .. } => "create role",
            AuthOp::UpdateRole { .. } => "update role",
            AuthOp::DeleteRole { .. } => "delete role",
            AuthOp::Enable => "enable",
            AuthOp::Disable => "disable",
        }
    }
}
