//! The v2 auth API's JSON: request bodies as etcd's Go structs decode them (unknown fields
//! ignored, missing ones empty), and replies written by hand in Go's field order.

pub use super::json::message;
use super::json::{array, string, string_array};
use musubi_store::{AuthError, Permissions, Role};
use serde::Deserialize;
use std::fmt::Write;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserBody {
    pub user: String,
    pub password: String,
    pub roles: Option<Vec<String>>,
    pub grant: Option<Vec<String>>,
    pub revoke: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PermsBody {
    pub kv: KvBody,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KvBody {
    pub read: Option<Vec<String>>,
    pub write: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoleBody {
    pub role: String,
    pub permissions: PermsBody,
    pub grant: Option<PermsBody>,
    pub revoke: Option<PermsBody>,
}

impl PermsBody {
    pub fn into_permissions(self) -> Permissions {
        Permissions {
            read: self.kv.read,
            write: self.kv.write,
        }
    }
}

pub fn error(e: &AuthError) -> String {
    message(&e.message)
}

fn names(out: &mut String, list: Option<&[String]>) {
    match list {
        Some(list) => string_array(out, list),
        None => out.push_str("null"),
    }
}

pub fn role(out: &mut String, r: &Role) {
    out.push_str("{\"role\":");
    string(out, &r.name);
    out.push_str(",\"permissions\":{\"kv\":{\"read\":");
    names(out, r.kv.read.as_deref());
    out.push_str(",\"write\":");
    names(out, r.kv.write.as_deref());
    out.push_str("}}}");
}

/// A user as a PUT echoes it: role names, `null` when it never had any.
pub fn user_names(name: &str, roles: Option<&[String]>) -> String {
    let mut out = String::from("{\"user\":");
    string(&mut out, name);
    out.push_str(",\"roles\":");
    names(&mut out, roles);
    out.push_str("}\n");
    out
}

/// A user as GET shows it: full role objects, `roles` omitted when empty.
pub fn user_with_roles(out: &mut String, name: &str, roles: &[Role]) {
    out.push_str("{\"user\":");
    string(out, name);
    if !roles.is_empty() {
        out.push_str(",\"roles\":[");
        for (i, r) in roles.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            role(out, r);
        }
        out.push(']');
    }
    out.push('}');
}

/// `{"<key>":[items]}` or `{"<key>":null}` for an empty list, as Go encodes a nil slice.
pub fn collection<T>(key: &str, items: &[T], item: impl FnMut(&mut String, &T)) -> String {
    let mut out = String::new();
    let _ = write!(out, "{{\"{key}\":");
    if items.is_empty() {
        out.push_str("null");
    } else {
        array(&mut out, items, item);
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_etcd() {
        let r = Role {
            name: "r2".into(),
            kv: Permissions {
                read: None,
                write: Some(vec![]),
            },
        };
        let mut out = String::new();
        role(&mut out, &r);
        assert_eq!(
            out,
            r#"{"role":"r2","permissions":{"kv":{"read":null,"write":[]}}}"#
        );
        assert_eq!(user_names("u1", None), "{\"user\":\"u1\",\"roles\":null}\n");
        assert_eq!(collection::<Role>("users", &[], role), "{\"users\":null}\n");
        assert_eq!(message("auth: x"), r#"{"message":"auth: x"}"#);
        let mut out = String::new();
        user_with_roles(&mut out, "u", &[]);
        assert_eq!(out, r#"{"user":"u"}"#);
    }

    #[test]
    fn bodies_decode_leniently() {
        let u: UserBody = serde_json::from_str(r#"{"user":"u","extra":1,"grant":["a"]}"#).unwrap();
        assert_eq!(
            (u.user.as_str(), u.password.as_str(), u.roles, u.grant),
            ("u", "", None, Some(vec!["a".to_string()]))
        );
        let r: RoleBody =
            serde_json::from_str(r#"{"role":"r","permissions":{"kv":{"read":["/a"]}}}"#).unwrap();
        assert_eq!(
            r.permissions.into_permissions(),
            Permissions {
                read: Some(vec!["/a".into()]),
                write: None
            }
        );
    }
}
