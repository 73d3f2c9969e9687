//! `move-leader`, `alarm list|disarm` and `defrag [--cluster]` over the Maintenance
//! service, as etcdctl 3.4 runs and prints them.

use super::Ctx;
use super::endpoint::{endpoints, status_of};
use super::failure::{EXIT_ERROR, Failure};
use super::fields;
use super::member::parse_uint_hex;
use super::output::{Obj, print_json};
use clap::{Args, Subcommand};
use musubi_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use musubi_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmType, DefragmentRequest, MoveLeaderRequest,
    alarm_request::AlarmAction,
};

#[derive(Args)]
pub struct MoveLeaderArgs {
    /// The hex ID of the member to hand the leadership to.
    args: Vec<String>,
}

impl MoveLeaderArgs {
    /// Find the leader among the endpoints (the request must be sent to it), then ask it.
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let [target] = self.args.as_slice() else {
            return Err(Failure::bad_args("move-leader command needs 1 argument"));
        };
        let target_id = parse_uint_hex(target).map_err(Failure::bad_args)?;
        let mut leader = None;
        for (_, conn) in ctx.conn.each()? {
            let status = status_of(&conn).await?;
            if status.header.unwrap_or_default().member_id == status.leader {
                leader = Some((conn, status.leader));
                break;
            }
        }
        let Some((conn, leader_id)) = leader else {
            return Err(Failure::bad_args(format!(
                "no leader endpoint given at [{}]",
                ctx.conn.endpoints.join(" ")
            )));
        };
        let reply = conn
            .unary(|ch, conn| {
                let request = conn.request(MoveLeaderRequest { target_id });
                async move { MaintenanceClient::new(ch).move_leader(request).await }
            })
            .await?;
        ctx.out.simple_or_json()?;
        if ctx.out.json() {
            print_json(Obj::new().header(&reply.header).value());
        } else {
            println!("Leadership transferred from {leader_id:x} to {target_id:x}");
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum AlarmVerb {
    /// The alarms raised.
    List,
    /// Clear every alarm raised.
    Disarm,
}

impl AlarmVerb {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let listed = alarm(ctx, AlarmAction::Get, AlarmMember::default()).await?;
        let alarms = match self {
            AlarmVerb::List => listed,
            // etcd's client disarms them one by one, and shows what each call returned.
            AlarmVerb::Disarm => {
                let mut disarmed = Vec::new();
                for member in listed {
                    disarmed.extend(alarm(ctx, AlarmAction::Deactivate, member).await?);
                }
                disarmed
            }
        };
        // etcdctl 3.4's fields printer crashes on the header-less reply; this prints what it
        // would print with one.
        if ctx.out.fields(|| {
            fields::header(&None);
            for a in &alarms {
                println!("\"MemberID\" : {}", a.member_id);
                println!("\"AlarmType\" : {}", alarm_name(a.alarm));
                println!();
            }
        })? {
            return Ok(());
        }
        if ctx.out.json() {
            let list = alarms
                .iter()
                .map(|a| {
                    Obj::new()
                        .int("memberID", a.member_id)
                        .int("alarm", a.alarm)
                        .value()
                })
                .collect();
            // The list comes without a header: etcd's server sends none with it.
            print_json(Obj::new().list("alarms", list).value());
            return Ok(());
        }
        for a in &alarms {
            // gogoproto's compact text form, which etcdctl prints with `%+v`.
            let name = alarm_name(a.alarm);
            let mut line = String::new();
            if a.member_id != 0 {
                line.push_str(&format!("memberID:{} ", a.member_id));
            }
            if a.alarm != 0 {
                line.push_str(&format!("alarm:{name} "));
            }
            println!("{line}");
        }
        Ok(())
    }
}

fn alarm_name(alarm: i32) -> String {
    AlarmType::try_from(alarm)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| alarm.to_string())
}

async fn alarm(
    ctx: &Ctx,
    action: AlarmAction,
    member: AlarmMember,
) -> Result<Vec<AlarmMember>, Failure> {
    let reply = ctx
        .conn
        .unary(|ch, conn| {
            let request = conn.request(AlarmRequest {
                action: action as i32,
                member_id: member.member_id,
                alarm: member.alarm,
            });
            async move { MaintenanceClient::new(ch).alarm(request).await }
        })
        .await?;
    Ok(reply.alarms)
}

#[derive(Args)]
pub struct DefragArgs {
    /// Every member's client URLs instead of --endpoints.
    #[arg(long)]
    cluster: bool,
}

impl DefragArgs {
    /// etcdctl prints text here whatever the output format.
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let mut failures = 0;
        for (endpoint, conn) in endpoints(ctx, self.cluster).await? {
            let reply = conn
                .unary(|ch, conn| {
                    let request = conn.request(DefragmentRequest {});
                    async move { MaintenanceClient::new(ch).defragment(request).await }
                })
                .await;
            match reply {
                Ok(_) => println!("Finished defragmenting etcd member[{endpoint}]"),
                Err(f) => {
                    eprintln!(
                        "Failed to defragment etcd member[{endpoint}] ({})",
                        f.message
                    );
                    failures += 1;
                }
            }
        }
        if failures > 0 {
            return Err(Failure::silent(EXIT_ERROR));
        }
        Ok(())
    }
}
