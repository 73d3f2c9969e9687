//! `endpoint status|health|hashkv [--cluster]`: each endpoint asked on its own, as etcdctl
//! 3.4 does; `--cluster` asks every member's client URLs instead of `--endpoints`.

use super::Ctx;
use super::conn::Conn;
use super::failure::{EXIT_ERROR, Failure};
use super::member::members;
use super::output::{Format, Obj, print_json};
use super::{fields, table};
use clap::{Args, Subcommand};
use musubi_gocompat::duration;
use musubi_proto::etcdserverpb::kv_client::KvClient;
use musubi_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use musubi_proto::etcdserverpb::{
    AlarmRequest, AlarmType, HashKvRequest, HashKvResponse, RangeRequest, StatusRequest,
    StatusResponse, alarm_request::AlarmAction,
};
use serde_json::Value;
use std::time::Instant;

#[derive(Args)]
pub struct EndpointArgs {
    /// Every member's client URLs instead of --endpoints.
    #[arg(long, global = true)]
    cluster: bool,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Each endpoint's version, size, leader, raft term and index.
    Status,
    /// Whether each endpoint answers a read and has no alarm.
    Health,
    /// Each endpoint's hash of the keyspace at a revision.
    Hashkv {
        /// The revision (0: the latest).
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

impl EndpointArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let endpoints = endpoints(ctx, self.cluster).await?;
        match self.verb {
            Verb::Status => status(ctx, endpoints).await,
            Verb::Health => health(ctx, endpoints).await,
            Verb::Hashkv { rev } => hash_kv(ctx, endpoints, rev).await,
        }
    }
}

/// `--endpoints`, or with `--cluster` the members' client URLs, each with its connection.
pub async fn endpoints(ctx: &Ctx, cluster: bool) -> Result<Vec<(String, Conn)>, Failure> {
    if !cluster {
        return ctx.conn.each();
    }
    let (_, members) = members(ctx).await?;
    let urls: Vec<String> = members.into_iter().flat_map(|m| m.client_ur_ls).collect();
    ctx.conn.with_endpoints(urls)?.each()
}

pub async fn status_of(conn: &Conn) -> Result<StatusResponse, Failure> {
    conn.read(|ch, conn| {
        let request = conn.request(StatusRequest {});
        async move { MaintenanceClient::new(ch).status(request).await }
    })
    .await
}

async fn status(ctx: &Ctx, endpoints: Vec<(String, Conn)>) -> Result<(), Failure> {
    let mut failed = false;
    let mut statuses = Vec::new();
    for (endpoint, conn) in endpoints {
        match status_of(&conn).await {
            Ok(s) => statuses.push((endpoint, s)),
            Err(f) => {
                eprintln!(
                    "Failed to get the status of endpoint {endpoint} ({})",
                    f.message
                );
                failed = true;
            }
        }
    }
    match ctx.out.format {
        Format::Json => {
            let list: Vec<Value> = statuses
                .iter()
                .map(|(ep, s)| {
                    Obj::new()
                        .field("Endpoint", ep.as_str())
                        .field("Status", status_json(s))
                        .value()
                })
                .collect();
            print_json(Value::from(list));
        }
        Format::Simple => {
            for (ep, s) in &statuses {
                println!("{}", status_row(ep, s).join(", "));
            }
        }
        Format::Fields => {
            for (ep, s) in &statuses {
                fields::status(ep, s);
            }
        }
        Format::Table => {
            let rows: Vec<_> = statuses.iter().map(|(ep, s)| status_row(ep, s)).collect();
            print!("{}", table::render(&STATUS_HEADER, &rows));
        }
        Format::Protobuf => return Err(ctx.out.unsupported()),
    }
    if failed {
        return Err(Failure::silent(EXIT_ERROR));
    }
    Ok(())
}

const STATUS_HEADER: [&str; 10] = [
    "ENDPOINT",
    "ID",
    "VERSION",
    "DB SIZE",
    "IS LEADER",
    "IS LEARNER",
    "RAFT TERM",
    "RAFT INDEX",
    "RAFT APPLIED INDEX",
    "ERRORS",
];

/// One endpoint's status as etcdctl's simple and table printers show it.
fn status_row(endpoint: &str, s: &StatusResponse) -> Vec<String> {
    let member = s.header.unwrap_or_default().member_id;
    vec![
        endpoint.to_string(),
        format!("{member:x}"),
        s.version.clone(),
        crate::humanize::bytes(s.db_size.max(0) as u64),
        (s.leader == member).to_string(),
        s.is_learner.to_string(),
        s.raft_term.to_string(),
        s.raft_index.to_string(),
        s.raft_applied_index.to_string(),
        s.errors.join(", "),
    ]
}

fn status_json(s: &StatusResponse) -> Value {
    let errors = s.errors.iter().map(|e| Value::from(e.as_str())).collect();
    Obj::new()
        .header(&s.header)
        .string("version", &s.version)
        .int("dbSize", s.db_size)
        .int("leader", s.leader)
        .int("raftIndex", s.raft_index)
        .int("raftTerm", s.raft_term)
        .int("raftAppliedIndex", s.raft_applied_index)
        .list("errors", errors)
        .int("dbSizeInUse", s.db_size_in_use)
        .boolean("isLearner", s.is_learner)
        .value()
}

struct Health {
    endpoint: String,
    took: String,
    error: String,
}

async fn health(ctx: &Ctx, endpoints: Vec<(String, Conn)>) -> Result<(), Failure> {
    // Every endpoint at once, as etcdctl checks them; reported in the order given.
    let results =
        futures::future::join_all(endpoints.iter().map(|(ep, conn)| check_health(ep, conn))).await;
    match ctx.out.format {
        Format::Json => {
            let list: Vec<Value> = results
                .iter()
                .map(|h| {
                    Obj::new()
                        .field("endpoint", h.endpoint.as_str())
                        .field("health", h.error.is_empty())
                        .field("took", h.took.as_str())
                        .string("error", &h.error)
                        .value()
                })
                .collect();
            print_json(Value::from(list));
        }
        // etcdctl 3.4 writes these on stderr.
        Format::Simple => {
            for h in &results {
                if h.error.is_empty() {
                    eprintln!(
                        "{} is healthy: successfully committed proposal: took = {}",
                        h.endpoint, h.took
                    );
                } else {
                    eprintln!(
                        "{} is unhealthy: failed to commit proposal: {}",
                        h.endpoint, h.error
                    );
                }
            }
        }
        Format::Fields => {
            for h in &results {
                fields::health(&h.endpoint, h.error.is_empty(), &h.took, &h.error);
            }
        }
        Format::Table => {
            let rows: Vec<_> = results
                .iter()
                .map(|h| {
                    let health = h.error.is_empty().to_string();
                    vec![h.endpoint.clone(), health, h.took.clone(), h.error.clone()]
                })
                .collect();
            print!(
                "{}",
                table::render(&["ENDPOINT", "HEALTH", "TOOK", "ERROR"], &rows)
            );
        }
        Format::Protobuf => return Err(ctx.out.unsupported()),
    }
    if results.iter().any(|h| !h.error.is_empty()) {
        return Err(Failure::other("unhealthy cluster"));
    }
    Ok(())
}

/// A linearizable read of key `health` (permission denied counts as healthy: the read went
/// through consensus), then no alarm raised.
async fn check_health(endpoint: &str, conn: &Conn) -> Health {
    let started = Instant::now();
    let read = conn
        .read(|ch, conn| {
            let request = conn.request(RangeRequest {
                key: b"health".to_vec(),
                ..Default::default()
            });
            async move { KvClient::new(ch).range(request).await }
        })
        .await;
    let took = duration::format(started.elapsed());
    let mut error = match read {
        Ok(_) => String::new(),
        Err(f) if f.message == "etcdserver: permission denied" => String::new(),
        Err(f) => f.message,
    };
    if error.is_empty() {
        let alarms = conn
            .unary(|ch, conn| {
                let request = conn.request(AlarmRequest {
                    action: AlarmAction::Get as i32,
                    ..Default::default()
                });
                async move { MaintenanceClient::new(ch).alarm(request).await }
            })
            .await;
        match alarms {
            Ok(reply) if !reply.alarms.is_empty() => {
                error = "Active Alarm(s): ".to_string();
                for alarm in &reply.alarms {
                    error.push_str(match AlarmType::try_from(alarm.alarm) {
                        Ok(AlarmType::Nospace) => "NOSPACE ",
                        Ok(AlarmType::Corrupt) => "CORRUPT ",
                        _ => "UNKNOWN ",
                    });
                }
            }
            Ok(_) => {}
            Err(_) => error = "Unable to fetch the alarm list".to_string(),
        }
    }
    Health {
        endpoint: endpoint.to_string(),
        took,
        error,
    }
}

async fn hash_kv(ctx: &Ctx, endpoints: Vec<(String, Conn)>, rev: i64) -> Result<(), Failure> {
    let mut failed = false;
    let mut hashes: Vec<(String, HashKvResponse)> = Vec::new();
    for (endpoint, conn) in endpoints {
        let reply = conn
            .read(|ch, conn| {
                let request = conn.request(HashKvRequest { revision: rev });
                async move { MaintenanceClient::new(ch).hash_kv(request).await }
            })
            .await;
        match reply {
            Ok(h) => hashes.push((endpoint, h)),
            Err(f) => {
                eprintln!(
                    "Failed to get the hash of endpoint {endpoint} ({})",
                    f.message
                );
                failed = true;
            }
        }
    }
    match ctx.out.format {
        Format::Json => {
            let list: Vec<Value> = hashes
                .iter()
                .map(|(ep, h)| {
                    Obj::new()
                        .field("Endpoint", ep.as_str())
                        .field(
                            "HashKV",
                            Obj::new()
                                .header(&h.header)
                                .int("hash", h.hash)
                                .int("compact_revision", h.compact_revision)
                                .value(),
                        )
                        .value()
                })
                .collect();
            print_json(Value::from(list));
        }
        Format::Simple => {
            for (ep, h) in &hashes {
                println!("{ep}, {}", h.hash);
            }
        }
        Format::Fields => {
            for (ep, h) in &hashes {
                fields::hash_kv(ep, h);
            }
        }
        Format::Table => {
            let rows: Vec<_> = hashes
                .iter()
                .map(|(ep, h)| vec![ep.clone(), h.hash.to_string()])
                .collect();
            print!("{}", table::render(&["ENDPOINT", "HASH"], &rows));
        }
        Format::Protobuf => return Err(ctx.out.unsupported()),
    }
    if failed {
        return Err(Failure::silent(EXIT_ERROR));
    }
    Ok(())
}
