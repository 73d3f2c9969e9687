//! `member list|add|remove|update|promote` over the Cluster service, as etcdctl 3.4 prints
//! them (IDs in hex; `add` also prints the environment to start the new member with).

use super::Ctx;
use super::failure::Failure;
use super::output::{Format, Obj, print_json};
use super::{fields, table};
use clap::Subcommand;
use musubi_proto::etcdserverpb::cluster_client::ClusterClient;
use musubi_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MemberUpdateRequest, ResponseHeader,
};
use serde_json::Value;

#[derive(Subcommand)]
pub enum Verb {
    /// The members: ID, status, name, peer URLs, client URLs, learner.
    List,
    /// Add a member by name.
    Add {
        args: Vec<String>,
        /// Its peer URLs, comma-separated.
        #[arg(long, default_value = "")]
        peer_urls: String,
        /// As a non-voting learner.
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member by hex ID.
    Remove { args: Vec<String> },
    /// Change a member's peer URLs.
    Update {
        args: Vec<String>,
        /// The new peer URLs, comma-separated.
        #[arg(long, default_value = "")]
        peer_urls: String,
    },
    /// Make a learner a voting member.
    Promote { args: Vec<String> },
}

impl Verb {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        match self {
            Verb::List => list(ctx).await,
            Verb::Add {
                args,
                peer_urls,
                learner,
            } => add(ctx, args, peer_urls, *learner).await,
            Verb::Remove { args } => {
                let id = member_id(args)?;
                let request = MemberRemoveRequest { id };
                let reply = ctx
                    .conn
                    .unary(|ch, conn| {
                        let request = conn.request(request);
                        async move { ClusterClient::new(ch).member_remove(request).await }
                    })
                    .await?;
                changed(ctx, "removed from", id, &reply.header, &reply.members)
            }
            Verb::Update { args, peer_urls } => {
                let id = member_id(args)?;
                let peer_ur_ls = peer_url_list(peer_urls)?;
                let request = MemberUpdateRequest { id, peer_ur_ls };
                let reply = ctx
                    .conn
                    .unary(|ch, conn| {
                        let request = conn.request(request.clone());
                        async move { ClusterClient::new(ch).member_update(request).await }
                    })
                    .await?;
                changed(ctx, "updated in", id, &reply.header, &reply.members)
            }
            Verb::Promote { args } => {
                let id = member_id(args)?;
                let request = MemberPromoteRequest { id };
                let reply = ctx
                    .conn
                    .unary(|ch, conn| {
                        let request = conn.request(request);
                        async move { ClusterClient::new(ch).member_promote(request).await }
                    })
                    .await?;
                changed(ctx, "promoted in", id, &reply.header, &reply.members)
            }
        }
    }
}

/// The members, from whichever endpoint answers (`endpoint --cluster` uses it too).
pub async fn members(ctx: &Ctx) -> Result<(Option<ResponseHeader>, Vec<Member>), Failure> {
    let reply = ctx
        .conn
        .read(|ch, conn| {
            let request = conn.request(MemberListRequest::default());
            async move { ClusterClient::new(ch).member_list(request).await }
        })
        .await?;
    Ok((reply.header, reply.members))
}

async fn list(ctx: &Ctx) -> Result<(), Failure> {
    let (header, members) = members(ctx).await?;
    match ctx.out.format {
        Format::Json => print_json(
            Obj::new()
                .header(&header)
                .list("members", members.iter().map(member_json).collect())
                .value(),
        ),
        Format::Simple => {
            for m in &members {
                println!("{}", member_row(m).join(", "));
            }
        }
        Format::Fields => fields::members(&header, &members),
        Format::Table => {
            let header = [
                "ID",
                "STATUS",
                "NAME",
                "PEER ADDRS",
                "CLIENT ADDRS",
                "IS LEARNER",
            ];
            let rows: Vec<_> = members.iter().map(member_row).collect();
            print!("{}", table::render(&header, &rows));
        }
        Format::Protobuf => return Err(ctx.out.unsupported()),
    }
    Ok(())
}

/// A member as etcdctl's simple and table printers show it.
fn member_row(m: &Member) -> Vec<String> {
    let status = if m.name.is_empty() {
        "unstarted"
    } else {
        "started"
    };
    vec![
        format!("{:x}", m.id),
        status.to_string(),
        m.name.clone(),
        m.peer_ur_ls.join(","),
        m.client_ur_ls.join(","),
        m.is_learner.to_string(),
    ]
}

async fn add(ctx: &Ctx, args: &[String], peer_urls: &str, learner: bool) -> Result<(), Failure> {
    let [name] = args else {
        return Err(Failure::bad_args("member name not provided"));
    };
    let peer_ur_ls = peer_url_list(peer_urls)?;
    let request = MemberAddRequest {
        peer_ur_ls,
        is_learner: learner,
    };
    let reply = ctx
        .conn
        .unary(|ch, conn| {
            let request = conn.request(request.clone());
            async move { ClusterClient::new(ch).member_add(request).await }
        })
        .await?;
    let member = reply.member.clone().unwrap_or_default();
    ctx.out.simple_or_json()?;
    if ctx.out.json() {
        print_json(
            Obj::new()
                .header(&reply.header)
                .opt("member", reply.member.as_ref().map(member_json))
                .list("members", reply.members.iter().map(member_json).collect())
                .value(),
        );
        return Ok(());
    }
    // etcdctl 3.4 says nothing of a learner here (3.5 adds "as learner").
    println!(
        "Member {:16x} added to cluster {:16x}",
        member.id,
        reply.header.unwrap_or_default().cluster_id
    );
    let initial_cluster: Vec<String> = reply
        .members
        .iter()
        .flat_map(|m| {
            let n = if m.id == member.id { name } else { &m.name };
            m.peer_ur_ls.iter().map(move |u| format!("{n}={u}"))
        })
        .collect();
    println!();
    println!("ETCD_NAME={}", super::kv::go_quote(name));
    println!(
        "ETCD_INITIAL_CLUSTER={}",
        super::kv::go_quote(&initial_cluster.join(","))
    );
    println!(
        "ETCD_INITIAL_ADVERTISE_PEER_URLS={}",
        super::kv::go_quote(&member.peer_ur_ls.join(","))
    );
    println!("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
    Ok(())
}

/// The reply of remove, update and promote: one line, or the members as JSON.
fn changed(
    ctx: &Ctx,
    what: &str,
    id: u64,
    header: &Option<ResponseHeader>,
    members: &[Member],
) -> Result<(), Failure> {
    ctx.out.simple_or_json()?;
    if ctx.out.json() {
        print_json(
            Obj::new()
                .header(header)
                .list("members", members.iter().map(member_json).collect())
                .value(),
        );
        return Ok(());
    }
    let cluster = (*header).unwrap_or_default().cluster_id;
    println!("Member {id:16x} {what} cluster {cluster:16x}");
    Ok(())
}

pub fn member_json(m: &Member) -> Value {
    let urls = |u: &[String]| u.iter().map(|s| Value::from(s.as_str())).collect();
    Obj::new()
        .int("ID", m.id)
        .string("name", &m.name)
        .list("peerURLs", urls(&m.peer_ur_ls))
        .list("clientURLs", urls(&m.client_ur_ls))
        .boolean("isLearner", m.is_learner)
        .value()
}

fn member_id(args: &[String]) -> Result<u64, Failure> {
    let [id] = args else {
        return Err(Failure::bad_args("member ID is not provided"));
    };
    parse_uint_hex(id)
        .map_err(|e| Failure::bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

fn peer_url_list(peer_urls: &str) -> Result<Vec<String>, Failure> {
    if peer_urls.is_empty() {
        return Err(Failure::bad_args("member peer urls not provided"));
    }
    Ok(peer_urls.split(',').map(str::to_string).collect())
}

/// Go's `strconv.ParseUint(text, 16, 64)`, with its error text.
pub fn parse_uint_hex(text: &str) -> Result<u64, String> {
    let quoted = super::kv::go_quote(text);
    if text.is_empty() || text.starts_with('+') {
        return Err(format!(
            "strconv.ParseUint: parsing {quoted}: invalid syntax"
        ));
    }
    u64::from_str_radix(text, 16).map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => {
            format!("strconv.ParseUint: parsing {quoted}: value out of range")
        }
        _ => format!("strconv.ParseUint: parsing {quoted}: invalid syntax"),
    })
}
