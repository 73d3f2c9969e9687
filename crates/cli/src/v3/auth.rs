//! `auth enable|disable`, and what the `user` and `role` commands share: one Auth call
//! within the deadline, the header-only replies, the name arguments, the name lists.

use super::Ctx;
use super::failure::Failure;
use super::fields;
use super::kv::go_quote;
use super::output::{Obj, print_json};
use clap::Subcommand;
use musubi_proto::etcdserverpb::auth_client::AuthClient;
use musubi_proto::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthUserGrantRoleRequest,
    ResponseHeader,
};
use serde_json::Value;
use tonic::transport::Channel;
use tonic::{Response, Status};

const ROOT_ROLE_NOT_EXIST: &str = "etcdserver: root user does not have root role";

#[derive(Subcommand)]
pub enum AuthVerb {
    /// Turn authentication on (adding the root role to user root if it lacks it).
    Enable { args: Vec<String> },
    /// Turn authentication off.
    Disable { args: Vec<String> },
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

/// One Auth call within the command's deadline.
pub(super) async fn call<Q, T, F, Fut>(ctx: &Ctx, request: Q, rpc: F) -> Result<T, Failure>
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
pub(super) fn print_header_or(
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

pub(super) fn one_name<'a>(args: &'a [String], usage: &str) -> Result<&'a str, Failure> {
    match args {
        [name] => Ok(name),
        _ => Err(Failure::bad_args(usage)),
    }
}

pub(super) fn two_names<'a>(
    args: &'a [String],
    usage: &str,
) -> Result<(&'a str, &'a str), Failure> {
    match args {
        [a, b] => Ok((a, b)),
        _ => Err(Failure::bad_args(usage)),
    }
}

/// `user list`, `role list`: a name a line. etcdctl's fields printer has the roles only,
/// on one line: `"Roles" : "r1" "r2"`.
pub(super) fn print_names(
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

pub(super) fn strings(names: &[String]) -> Vec<Value> {
    names.iter().map(|n| Value::from(n.as_str())).collect()
}
