//! `user add|delete|get|list|passwd|grant-role|revoke-role`, as etcdctl 3.4.

use super::Ctx;
use super::auth::{call, one_name, print_header_or, print_names, strings, two_names};
use super::failure::Failure;
use super::output::{Obj, print_json};
use super::role::{print_role, role_get};
use clap::Subcommand;
use musubi_proto::etcdserverpb::{
    AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserDeleteRequest, AuthUserGetRequest,
    AuthUserGrantRoleRequest, AuthUserListRequest, AuthUserRevokeRoleRequest,
};

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
