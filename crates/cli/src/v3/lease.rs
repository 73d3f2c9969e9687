//! `lease grant|revoke|timetolive|list|keep-alive`: etcdctl 3.4's messages, exit codes and
//! output (its JSON for leases embeds the response header's fields at the top level).

use super::Ctx;
use super::failure::{EXIT_BAD_CONNECTION, Failure};
use super::fields;
use super::kv::{go_quote, parse_int};
use super::output::{Obj, print_json};
use clap::Subcommand;
use musubi_gocompat::base64;
use musubi_proto::etcdserverpb::lease_client::LeaseClient;
use musubi_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest,
};
use serde_json::Value;
use std::time::Duration;
use tonic::codegen::tokio_stream;
use tonic::{Response, Status};

const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

#[derive(Subcommand)]
pub enum Verb {
    /// Create a lease with a TTL in seconds.
    Grant { args: Vec<String> },
    /// Revoke a lease (its keys are deleted).
    Revoke { args: Vec<String> },
    /// A lease's granted and remaining TTL.
    Timetolive {
        args: Vec<String>,
        /// The keys attached to it too.
        #[arg(long)]
        keys: bool,
    },
    /// The leases alive.
    List,
    /// Keep a lease alive, until Ctrl-C or until it is gone.
    KeepAlive {
        args: Vec<String>,
        /// One keep-alive, then exit.
        #[arg(long)]
        once: bool,
    },
}

impl Verb {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        match self {
            Verb::Grant { args } => grant(ctx, args).await,
            Verb::Revoke { args } => revoke(ctx, args).await,
            Verb::Timetolive { args, keys } => time_to_live(ctx, args, *keys).await,
            Verb::List => list(ctx).await,
            Verb::KeepAlive { args, once } => keep_alive(ctx, args, *once).await,
        }
    }
}

async fn grant(ctx: &Ctx, args: &[String]) -> Result<(), Failure> {
    let [ttl] = args else {
        return Err(Failure::bad_args("lease grant command needs TTL argument"));
    };
    let ttl = parse_int(ttl, 10).map_err(|e| Failure::bad_args(format!("bad TTL ({e})")))?;
    let request = LeaseGrantRequest { ttl, id: 0 };
    let reply = ctx
        .conn
        .unary(|ch, conn| {
            let request = conn.request(request);
            async move { LeaseClient::new(ch).lease_grant(request).await }
        })
        .await
        .map_err(|f| f.context("failed to grant lease"))?;
    if ctx
        .out
        .fields(|| fields::lease(&reply.header, reply.id, reply.ttl))?
    {
        return Ok(());
    }
    if ctx.out.json() {
        print_json(
            Obj::new()
                .flat_header(&reply.header)
                .field("ID", reply.id)
                .field("TTL", reply.ttl)
                .field("Error", reply.error)
                .value(),
        );
    } else {
        println!("lease {:016x} granted with TTL({}s)", reply.id, reply.ttl);
    }
    Ok(())
}

async fn revoke(ctx: &Ctx, args: &[String]) -> Result<(), Failure> {
    let [id] = args else {
        return Err(Failure::bad_args("lease revoke command needs 1 argument"));
    };
    let id = lease_id(id)?;
    let request = LeaseRevokeRequest { id };
    let reply = ctx
        .conn
        .unary(|ch, conn| {
            let request = conn.request(request);
            async move { LeaseClient::new(ch).lease_revoke(request).await }
        })
        .await
        .map_err(|f| f.context("failed to revoke lease"))?;
    if ctx.out.fields(|| fields::header(&reply.header))? {
        return Ok(());
    }
    if ctx.out.json() {
        print_json(Obj::new().header(&reply.header).value());
    } else {
        println!("lease {id:016x} revoked");
    }
    Ok(())
}

async fn time_to_live(ctx: &Ctx, args: &[String], keys: bool) -> Result<(), Failure> {
    let [id] = args else {
        return Err(Failure::bad_args(
            "lease timetolive command needs lease ID as argument",
        ));
    };
    let request = LeaseTimeToLiveRequest {
        id: lease_id(id)?,
        keys,
    };
    let reply = ctx
        .conn
        .read(|ch, conn| {
            let request = conn.request(request);
            async move { LeaseClient::new(ch).lease_time_to_live(request).await }
        })
        .await
        .map_err(|f| f.with_code(EXIT_BAD_CONNECTION))?;
    if ctx.out.fields(|| {
        fields::lease(&reply.header, reply.id, reply.ttl);
        println!("\"GrantedTTL\" : {}", reply.granted_ttl);
        for key in &reply.keys {
            println!("\"Key\" : {}", go_quote(&String::from_utf8_lossy(key)));
        }
    })? {
        return Ok(());
    }
    if ctx.out.json() {
        let attached: Value = if reply.keys.is_empty() {
            Value::Null
        } else {
            reply
                .keys
                .iter()
                .map(|k| Value::from(base64::encode(k)))
                .collect()
        };
        print_json(
            Obj::new()
                .flat_header(&reply.header)
                .field("id", reply.id)
                .field("ttl", reply.ttl)
                .field("granted-ttl", reply.granted_ttl)
                .field("keys", attached)
                .value(),
        );
        return Ok(());
    }
    if reply.granted_ttl == 0 && reply.ttl == -1 {
        println!("lease {:016x} already expired", reply.id);
        return Ok(());
    }
    let mut line = format!(
        "lease {:016x} granted with TTL({}s), remaining({}s)",
        reply.id, reply.granted_ttl, reply.ttl
    );
    if keys {
        // Go's `%v` of a []string: `[a b]`.
        let names: Vec<String> = reply.keys.iter().map(|k| ctx.out.bytes(k)).collect();
        line.push_str(&format!(", attached keys([{}])", names.join(" ")));
    }
    println!("{line}");
    Ok(())
}

async fn list(ctx: &Ctx) -> Result<(), Failure> {
    let reply = ctx
        .conn
        .read(|ch, conn| {
            let request = conn.request(LeaseLeasesRequest {});
            async move { LeaseClient::new(ch).lease_leases(request).await }
        })
        .await
        .map_err(|f| f.with_code(EXIT_BAD_CONNECTION))?;
    if ctx.out.fields(|| {
        fields::header(&reply.header);
        for lease in &reply.leases {
            println!("\"ID\" : {}", lease.id);
        }
    })? {
        return Ok(());
    }
    if ctx.out.json() {
        let leases: Vec<Value> = reply
            .leases
            .iter()
            .map(|l| Obj::new().field("id", l.id).value())
            .collect();
        print_json(
            Obj::new()
                .flat_header(&reply.header)
                .field("leases", leases)
                .value(),
        );
        return Ok(());
    }
    println!("found {} leases", reply.leases.len());
    for lease in &reply.leases {
        println!("{:016x}", lease.id);
    }
    Ok(())
}

async fn keep_alive(ctx: &Ctx, args: &[String], once: bool) -> Result<(), Failure> {
    let [id] = args else {
        return Err(Failure::bad_args(
            "lease keep-alive command needs lease ID as argument",
        ));
    };
    let id = lease_id(id)?;
    loop {
        let reply = keep_alive_once(ctx, id)
            .await
            .map_err(|f| f.with_code(EXIT_BAD_CONNECTION))?;
        if reply.ttl <= 0 {
            if once {
                return Err(Failure::new(EXIT_BAD_CONNECTION, LEASE_NOT_FOUND));
            }
            break;
        }
        print_keep_alive(ctx, &reply)?;
        if once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(next_keep_alive(reply.ttl)) => {}
            // Ctrl-C ends it as a success, as in etcdctl.
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
    if !ctx.out.json() {
        println!("lease {id:016x} expired or revoked.");
    }
    Ok(())
}

/// One keep-alive on a stream of its own (a new stream per keep-alive is what lets every
/// one of them fail over to another endpoint).
async fn keep_alive_once(ctx: &Ctx, id: i64) -> Result<LeaseKeepAliveResponse, Failure> {
    ctx.conn
        .unary(|ch, conn| {
            let request = conn.request(tokio_stream::iter([LeaseKeepAliveRequest { id }]));
            async move {
                let mut replies = LeaseClient::new(ch).lease_keep_alive(request).await?;
                match replies.get_mut().message().await? {
                    Some(reply) => Ok(Response::new(reply)),
                    None => Err(Status::unavailable("keep-alive stream closed")),
                }
            }
        })
        .await
}

fn print_keep_alive(ctx: &Ctx, reply: &LeaseKeepAliveResponse) -> Result<(), Failure> {
    if ctx
        .out
        .fields(|| fields::lease(&reply.header, reply.id, reply.ttl))?
    {
        return Ok(());
    }
    if ctx.out.json() {
        print_json(
            Obj::new()
                .flat_header(&reply.header)
                .field("ID", reply.id)
                .field("TTL", reply.ttl)
                .value(),
        );
    } else {
        println!("lease {:016x} keepalived with TTL({})", reply.id, reply.ttl);
    }
    Ok(())
}

/// A lease ID argument, in hex as etcdctl prints them.
fn lease_id(text: &str) -> Result<i64, Failure> {
    parse_int(text, 16)
        .map_err(|e| Failure::bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

/// The keep-alive pace of etcd's client: a third of the TTL, at least a second apart.
fn next_keep_alive(ttl: i64) -> Duration {
    Duration::from_secs((ttl / 3).max(1) as u64)
}
