//! `role add|delete|get|list|grant-permission|revoke-permission`, as etcdctl 3.4, and
//! its way of showing a role's key ranges.

use super::Ctx;
use super::auth::{call, one_name, print_header_or, print_names};
use super::failure::Failure;
use super::fields;
use super::kv::{go_quote, prefix_end};
use super::output::{Obj, print_json};
use clap::Subcommand;
use musubi_proto::authpb::Permission;
use musubi_proto::authpb::permission::Type as PermType;
use musubi_proto::etcdserverpb::{
    AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGetRequest, AuthRoleGetResponse,
    AuthRoleGrantPermissionRequest, AuthRoleListRequest, AuthRoleRevokePermissionRequest,
};

#[derive(Subcommand)]
pub enum RoleVerb {
    /// Add a role.
    Add { args: Vec<String> },
    /// Delete a role.
    Delete { args: Vec<String> },
    /// A role's permissions.
    Get { args: Vec<String> },
    /// The roles.
    List { args: Vec<String> },
    /// Grant ROLE read|write|readwrite on KEY [ENDKEY].
    GrantPermission {
        args: Vec<String>,
        #[command(flatten)]
        range: PermRange,
    },
    /// Revoke ROLE's permission on KEY [ENDKEY].
    RevokePermission {
        args: Vec<String>,
        #[command(flatten)]
        range: PermRange,
    },
}

#[derive(clap::Args)]
pub struct PermRange {
    /// The permission covers the keys with this prefix.
    #[arg(long)]
    prefix: bool,
    /// The permission covers the keys from KEY on.
    #[arg(long)]
    from_key: bool,
}

impl RoleVerb {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        match self {
            RoleVerb::Add { args } => {
                let name = one_name(args, "role add command requires role name as its argument")?;
                let request = AuthRoleAddRequest { name: name.into() };
                let reply =
                    call(ctx, request, |mut c, r| async move { c.role_add(r).await }).await?;
                print_header_or(ctx, &reply.header, format!("Role {name} created"))?;
            }
            RoleVerb::Delete { args } => {
                let role = one_name(
                    args,
                    "role delete command requires role name as its argument",
                )?;
                let request = AuthRoleDeleteRequest { role: role.into() };
                let reply = call(
                    ctx,
                    request,
                    |mut c, r| async move { c.role_delete(r).await },
                )
                .await?;
                print_header_or(ctx, &reply.header, format!("Role {role} deleted"))?;
            }
            RoleVerb::Get { args } => {
                let role = one_name(args, "role get command requires role name as its argument")?;
                let reply = role_get(ctx, role).await?;
                print_role(ctx, role, &reply)?;
            }
            RoleVerb::List { args } => {
                if !args.is_empty() {
                    return Err(Failure::bad_args("role list command requires no arguments"));
                }
                let reply = call(ctx, AuthRoleListRequest {}, |mut c, r| async move {
                    c.role_list(r).await
                })
                .await?;
                print_names(ctx, &reply.header, "roles", &reply.roles)?;
            }
            RoleVerb::GrantPermission { args, range } => {
                let [name, perm, keys @ ..] = args.as_slice() else {
                    return Err(Failure::bad_args(
                        "role grant command requires role name, permission type, and key [endkey] as its argument",
                    ));
                };
                if keys.is_empty() {
                    return Err(Failure::bad_args(
                        "role grant command requires role name, permission type, and key [endkey] as its argument",
                    ));
                }
                let perm_type = match perm.to_uppercase().as_str() {
                    "READ" => PermType::Read,
                    "WRITE" => PermType::Write,
                    "READWRITE" => PermType::Readwrite,
                    _ => {
                        return Err(Failure::bad_args(format!(
                            "invalid permission type: {perm}"
                        )));
                    }
                };
                let (key, range_end) = range.bounds(keys)?;
                let request = AuthRoleGrantPermissionRequest {
                    name: name.clone(),
                    perm: Some(Permission {
                        perm_type: perm_type as i32,
                        key,
                        range_end,
                    }),
                };
                let reply = call(ctx, request, |mut c, r| async move {
                    c.role_grant_permission(r).await
                })
                .await?;
                print_header_or(ctx, &reply.header, format!("Role {name} updated"))?;
            }
            RoleVerb::RevokePermission { args, range } => {
                let [role, keys @ ..] = args.as_slice() else {
                    return Err(Failure::bad_args(
                        "role revoke-permission command requires role name and key [endkey] as its argument",
                    ));
                };
                if keys.is_empty() {
                    return Err(Failure::bad_args(
                        "role revoke-permission command requires role name and key [endkey] as its argument",
                    ));
                }
                let (key, range_end) = range.bounds(keys)?;
                let request = AuthRoleRevokePermissionRequest {
                    role: role.clone(),
                    key,
                    range_end: range_end.clone(),
                };
                let reply = call(ctx, request, |mut c, r| async move {
                    c.role_revoke_permission(r).await
                })
                .await?;
                let line = match range_end.as_slice() {
                    [] => format!("Permission of key {} is revoked from role {role}", keys[0]),
                    [0] => format!(
                        "Permission of range [{}, <open ended> is revoked from role {role}",
                        keys[0]
                    ),
                    end => format!(
                        "Permission of range [{}, {}) is revoked from role {role}",
                        keys[0],
                        String::from_utf8_lossy(end)
                    ),
                };
                print_header_or(ctx, &reply.header, line)?;
            }
        }
        Ok(())
    }
}

impl PermRange {
    /// KEY [ENDKEY] with `--prefix`/`--from-key`, as etcdctl's `permRange` builds them: an
    /// empty key is `\0` (with either flag, the whole keyspace).
    fn bounds(&self, keys: &[String]) -> Result<(Vec<u8>, Vec<u8>), Failure> {
        const BOTH: &str = "--from-key and --prefix flags are mutually exclusive";
        let key = keys[0].as_bytes();
        if key.is_empty() {
            if self.prefix && self.from_key {
                return Err(Failure::bad_args(BOTH));
            }
            let end = if self.prefix || self.from_key {
                vec![0]
            } else {
                Vec::new()
            };
            return Ok((vec![0], end));
        }
        let end = match (keys.get(1), self.prefix, self.from_key) {
            (None, true, true) => return Err(Failure::bad_args(BOTH)),
            (None, true, false) => prefix_end(key),
            (None, false, true) => vec![0],
            (None, false, false) => Vec::new(),
            (Some(_), true, _) => {
                return Err(Failure::bad_args(
                    "unexpected endkey argument with --prefix flag",
                ));
            }
            (Some(_), false, true) => {
                return Err(Failure::bad_args(
                    "unexpected endkey argument with --from-key flag",
                ));
            }
            (Some(end), false, false) => end.as_bytes().to_vec(),
        };
        Ok((key.to_vec(), end))
    }
}

pub(super) async fn role_get(ctx: &Ctx, role: &str) -> Result<AuthRoleGetResponse, Failure> {
    let request = AuthRoleGetRequest { role: role.into() };
    call(ctx, request, |mut c, r| async move { c.role_get(r).await }).await
}

/// etcdctl's `RoleGet`: the read, then the write permissions, a key or a range each.
pub(super) fn print_role(
    ctx: &Ctx,
    role: &str,
    reply: &AuthRoleGetResponse,
) -> Result<(), Failure> {
    if ctx.out.fields(|| {
        fields::header(&reply.header);
        for p in &reply.perm {
            let name = PermType::try_from(p.perm_type).map_or("UNKNOWN", |t| t.as_str_name());
            println!("\"PermType\" :  {name}");
            println!("\"Key\" : {}", go_quote(&String::from_utf8_lossy(&p.key)));
            println!(
                "\"RangeEnd\" : {}",
                go_quote(&String::from_utf8_lossy(&p.range_end))
            );
        }
    })? {
        return Ok(());
    }
    if ctx.out.json() {
        let perms = reply
            .perm
            .iter()
            .map(|p| {
                Obj::new()
                    .int("permType", p.perm_type)
                    .bytes("key", &p.key)
                    .bytes("range_end", &p.range_end)
                    .value()
            })
            .collect();
        print_json(Obj::new().header(&reply.header).list("perm", perms).value());
        return Ok(());
    }
    println!("Role {role}");
    for (title, kind) in [("KV Read:", PermType::Read), ("KV Write:", PermType::Write)] {
        println!("{title}");
        for p in &reply.perm {
            if p.perm_type == kind as i32 || p.perm_type == PermType::Readwrite as i32 {
                println!("\t{}", perm_range(&p.key, &p.range_end));
            }
        }
    }
    Ok(())
}

/// `key`, `[key, end)` or `[key, <open ended>`, with ` (prefix key)` for a prefix range.
fn perm_range(key: &[u8], end: &[u8]) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if end.is_empty() {
        return text(key);
    }
    let mut line = if end == [0] {
        format!("[{}, <open ended>", text(key))
    } else {
        format!("[{}, {})", text(key), text(end))
    };
    if prefix_end(key) == end {
        line.push_str(&format!(" (prefix {})", text(key)));
    }
    line
}
