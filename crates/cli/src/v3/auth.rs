//! `user ...`, `role ...` and `auth enable|disable` over the Auth service, with etcdctl
//! 3.4's argument checks, messages and output.

use super::Ctx;
use super::failure::Failure;
use super::fields;
use super::kv::{go_quote, prefix_end};
use super::output::{Obj, print_json};
use clap::Subcommand;
use musubi_proto::authpb::Permission;
use musubi_proto::authpb::permission::Type as PermType;
use musubi_proto::etcdserverpb::auth_client::AuthClient;
use musubi_proto::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest,
    AuthRoleGetRequest, AuthRoleGetResponse, AuthRoleGrantPermissionRequest, AuthRoleListRequest,
    AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserChangePasswordRequest,
    AuthUserDeleteRequest, AuthUserGetRequest, AuthUserGrantRoleRequest, AuthUserListRequest,
    AuthUserRevokeRoleRequest, ResponseHeader,
};
use serde_json::Value;
use tonic::transport::Channel;
use tonic::{Response, Status};

const ROOT_ROLE_NOT_EXIST: &str = "etcdserver: root user does not have root role";

#[derive(Subcommand)]
pub enum UserVerb {
    /// Add a user (`name:password`, or the password from stdin).
    Add {
        args: Vec<String>,
        /// Read the password from stdin (always so here; see docs/cli-v3.md).
        #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
        interactive: String,
        /// The new user's password.
        #[arg(long, default_value = "")]
        new_user_password: String,
    },
    /// Delete a user.
    Delete { args: Vec<String> },
    /// A user's roles (with `--detail`, their permissions).
    Get {
        args: Vec<String>,
        /// Show the roles' permissions too.
        #[arg(long)]
        detail: bool,
    },
    /// The users.
    List { args: Vec<String> },
    /// Change a user's password (read from stdin).
    Passwd {
        args: Vec<String>,
        /// Read the password from stdin (always so here).
        #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
        interactive: String,
    },
    /// Grant a role to a user.
    GrantRole { args: Vec<String> },
    /// Revoke a role from a user.
    RevokeRole { args: Vec<String> },
}

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

#[derive(Subcommand)]
pub enum AuthVerb {
    /// Turn authentication on (adding the root role to user root if it lacks it).
    Enable { args: Vec<String> },
    /// Turn authentication off.
    Disable { args: Vec<String> },
}

/// One Auth call within the command's deadline.
async fn call<Q, T, F, Fut>(ctx: &Ctx, request: Q, rpc: F) -> Result<T, Failure>
where
    Q: Clone,
    F: Fn(AuthClient<Channel>, tonic::Request<Q>) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    ctx.conn
        .unary(|ch, conn| rpc(AuthClient::new(ch), conn.request(request.clone())))
        .await
}

/// A reply that carries nothing but its header: etcdctl's sentence, or the header alone in
/// JSON and fields.
fn print_header_or(
    ctx: &Ctx,
    header: &Option<ResponseHeader>,
    line: String,
) -> Result<(), Failure> {
    if ctx.out.fields(|| fields::header(header))? {
        return Ok(());
    }
    if ctx.out.json() {
        print_json(Obj::new().header(header).value());
    } else {
        println!("{line}");
    }
    Ok(())
}

fn one_name<'a>(args: &'a [String], usage: &str) -> Result<&'a str, Failure> {
    match args {
        [name] => Ok(name),
        _ => Err(Failure::bad_args(usage)),
    }
}

fn two_names<'a>(args: &'a [String], usage: &str) -> Result<(&'a str, &'a str), Failure> {
    match args {
        [a, b] => Ok((a, b)),
        _ => Err(Failure::bad_args(usage)),
    }
}

/// etcdctl's `fmt.Scanf("%s")`: the first word on stdin.
fn password_from_stdin() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

impl UserVerb {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        match self {
            UserVerb::Add {
                args,
                new_user_password,
                ..
            } => {
                let arg = one_name(args, "user add command requires user name as its argument")?;
                let (name, password) = if !new_user_password.is_empty() {
                    (arg.to_string(), new_user_password.clone())
                } else if let Some((name, password)) = arg.split_once(':') {
                    if name.is_empty() {
                        return Err(Failure::bad_args("empty user name is not allowed"));
                    }
                    (name.to_string(), password.to_string())
                } else {
                    (arg.to_string(), password_from_stdin())
                };
                let request = AuthUserAddRequest {
                    name: name.clone(),
                    password,
                    options: None,
                };
                let reply =
                    call(ctx, request, |mut c, r| async move { c.user_add(r).await }).await?;
                print_header_or(ctx, &reply.header, format!("User {name} created"))?;
            }
            UserVerb::Delete { args } => {
                let name = one_name(
                    args,
                    "user delete command requires user name as its argument",
                )?;
                let request = AuthUserDeleteRequest { name: name.into() };
                let reply = call(
                    ctx,
                    request,
                    |mut c, r| async move { c.user_delete(r).await },
                )
                .await?;
                print_header_or(ctx, &reply.header, format!("User {name} deleted"))?;
            }
            UserVerb::Get { args, detail } => {
                let name = one_name(args, "user get command requires user name as its argument")?;
                let request = AuthUserGetRequest { name: name.into() };
                let reply =
                    call(ctx, request, |mut c, r| async move { c.user_get(r).await }).await?;
                if *detail {
                    println!("User: {name}");
                    for role in &reply.roles {
                        println!();
                        let perms = role_get(ctx, role).await?;
                        print_role(ctx, role, &perms)?;
                    }
                } else if ctx.out.simple_or_json().map(|_| ctx.out.json())? {
                    print_json(
                        Obj::new()
                            .header(&reply.header)
                            .list("roles", strings(&reply.roles))
                            .value(),
                    );
                } else {
                    println!("User: {name}");
                    let roles: String = reply.roles.iter().map(|r| format!(" {r}")).collect();
                    println!("Roles:{roles}");
                }
            }
            UserVerb::List { args } => {
                if !args.is_empty() {
                    return Err(Failure::bad_args("user list command requires no arguments"));
                }
                let reply = call(ctx, AuthUserListRequest {}, |mut c, r| async move {
                    c.user_list(r).await
                })
                .await?;
                print_names(ctx, &reply.header, "users", &reply.users)?;
            }
            UserVerb::Passwd { args, .. } => {
                let name = one_name(
                    args,
                    "user passwd command requires user name as its argument",
                )?;
                let request = AuthUserChangePasswordRequest {
                    name: name.into(),
                    password: password_from_stdin(),
                };
                let reply = call(ctx, request, |mut c, r| async move {
                    c.user_change_password(r).await
                })
                .await?;
                print_header_or(ctx, &reply.header, "Password updated".to_string())?;
            }
            UserVerb::GrantRole { args } => {
                let (user, role) = two_names(
                    args,
                    "user grant command requires user name and role name as its argument",
                )?;
                let request = AuthUserGrantRoleRequest {
                    user: user.into(),
                    role: role.into(),
                };
                let reply = call(ctx, request, |mut c, r| async move {
                    c.user_grant_role(r).await
                })
                .await?;
                print_header_or(
                    ctx,
                    &reply.header,
                    format!("Role {role} is granted to user {user}"),
                )?;
            }
            UserVerb::RevokeRole { args } => {
                let (name, role) = two_names(
                    args,
                    "user revoke-role requires user name and role name as its argument",
                )?;
                let request = AuthUserRevokeRoleRequest {
                    name: name.into(),
                    role: role.into(),
                };
                let reply = call(ctx, request, |mut c, r| async move {
                    c.user_revoke_role(r).await
                })
                .await?;
                print_header_or(
                    ctx,
                    &reply.header,
                    format!("Role {role} is revoked from user {name}"),
                )?;
            }
        }
        Ok(())
    }
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

impl AuthVerb {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        match self {
            AuthVerb::Enable { args } => {
                if !args.is_empty() {
                    return Err(Failure::bad_args(
                        "auth enable command does not accept any arguments",
                    ));
                }
                // As etcdctl: a user root without the root role gets it, then enable again.
                loop {
                    let enabled = call(ctx, AuthEnableRequest {}, |mut c, r| async move {
                        c.auth_enable(r).await
                    })
                    .await;
                    match enabled {
                        Err(f) if f.message == ROOT_ROLE_NOT_EXIST => {
                            let role = AuthRoleAddRequest {
                                name: "root".into(),
                            };
                            call(ctx, role, |mut c, r| async move { c.role_add(r).await }).await?;
                            let grant = AuthUserGrantRoleRequest {
                                user: "root".into(),
                                role: "root".into(),
                            };
                            call(
                                ctx,
                                grant,
                                |mut c, r| async move { c.user_grant_role(r).await },
                            )
                            .await?;
                        }
                        other => break other.map(|_| ())?,
                    }
                }
                // etcdctl prints this line whatever the output format.
                println!("Authentication Enabled");
            }
            AuthVerb::Disable { args } => {
                if !args.is_empty() {
                    return Err(Failure::bad_args(
                        "auth disable command does not accept any arguments",
                    ));
                }
                call(ctx, AuthDisableRequest {}, |mut c, r| async move {
                    c.auth_disable(r).await
                })
                .await?;
                println!("Authentication Disabled");
            }
        }
        Ok(())
    }
}

async fn role_get(ctx: &Ctx, role: &str) -> Result<AuthRoleGetResponse, Failure> {
    let request = AuthRoleGetRequest { role: role.into() };
    call(ctx, request, |mut c, r| async move { c.role_get(r).await }).await
}

/// etcdctl's `RoleGet`: the read, then the write permissions, a key or a range each.
fn print_role(ctx: &Ctx, role: &str, reply: &AuthRoleGetResponse) -> Result<(), Failure> {
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

/// `user list`, `role list`: a name a line. etcdctl's fields printer has the roles only,
/// on one line: `"Roles" : "r1" "r2"`.
fn print_names(
    ctx: &Ctx,
    header: &Option<ResponseHeader>,
    field: &str,
    names: &[String],
) -> Result<(), Failure> {
    if field == "roles"
        && ctx.out.fields(|| {
            fields::header(header);
            let quoted: String = names.iter().map(|n| format!(" {}", go_quote(n))).collect();
            println!("\"Roles\" :{quoted}");
        })?
    {
        return Ok(());
    }
    ctx.out.simple_or_json()?;
    if ctx.out.json() {
        print_json(
            Obj::new()
                .header(header)
                .list(field, strings(names))
                .value(),
        );
        return Ok(());
    }
    for name in names {
        println!("{name}");
    }
    Ok(())
}

fn strings(names: &[String]) -> Vec<Value> {
    names.iter().map(|n| Value::from(n.as_str())).collect()
}
