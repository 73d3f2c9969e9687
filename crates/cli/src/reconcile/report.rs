//! `reconcile status|diff|actions|retry NAME`: what the leader last reported, the differences
//! now, the action records, and an operator's release of a parked action.

use super::DiffArgs;
use super::IdArgs;
use super::core::{self, Matching, Policy, State, Stored};
use super::records::{self, Layout};
use super::run::{Status, now_ms};
use super::source::Reader;
use crate::toolkit::{OutputFormat, Store, StoreArgs, ToolError, ToolExit};
use serde_json::json;

/// The leader's last status; a reconciler that never ran is missing data.
async fn read_status(store: &Store, layout: &Layout, name: &str) -> Result<Status, ToolError> {
    let value = records::get(store, &layout.status())
        .await?
        .ok_or_else(|| ToolError::data(format!("no reconciler has reported on {name}")))?;
    serde_json::from_str(&value).map_err(|e| ToolError::data(format!("{}: {e}", layout.status())))
}

fn policy_of(status: &Status) -> Policy {
    Policy {
        idempotent: status.idempotent,
        max_attempts: status.max_attempts.max(1),
        grace_ms: 0,
        retry_backoff_ms: 0,
    }
}

/// 0 converged, 2 differences, 3 something parked.
fn exit_for(differences: usize, parked: usize) -> ToolExit {
    if parked > 0 {
        ToolExit::Conflict
    } else if differences > 0 {
        ToolExit::Differences
    } else {
        ToolExit::Ok
    }
}

pub async fn status(args: &StoreArgs, name: &str) -> Result<ToolExit, ToolError> {
    let store = Store::connect(args).await?;
    let layout = Layout::new(name);
    let status = read_status(&store, &layout, name).await?;
    let age_ms = now_ms().saturating_sub(status.time_ms);
    match args.format {
        OutputFormat::Json => {
            let mut value = serde_json::to_value(&status).expect("a status serialises");
            value["age_ms"] = json!(age_ms);
            println!("{value}");
        }
        OutputFormat::Text => {
            println!(
                "leader={} token={} rev={} converged={} differences={} pending={} started={} parked={} done_unconverged={} fresh={} views={} age={}s",
                status.leader,
                status.token,
                status.rev,
                if status.converged { "yes" } else { "no" },
                status.differences,
                status.summary.pending,
                status.summary.started,
                status.summary.parked,
                status.summary.done_unconverged,
                if status.fresh { "yes" } else { "no" },
                if status.views.is_empty() {
                    "-"
                } else {
                    &status.views
                },
                age_ms / 1000,
            );
            println!("guarantee: {}", status.guarantee);
        }
    }
    Ok(exit_for(status.differences, status.summary.parked))
}

pub async fn diff(args: &StoreArgs, diff: &DiffArgs) -> Result<ToolExit, ToolError> {
    let store = Store::connect(args).await?;
    let layout = Layout::new(&diff.name);
    let status = read_status(&store, &layout, &diff.name).await?;
    let desired = records::read_tree(&store, &status.desired).await?;
    let mut reader = Reader::new(&status.actual, &diff.rpc_addr, &diff.rpc_auth);
    let actual = reader.read(&store).await?;
    let stored = records::read_records(&store, &layout).await?;
    let matching = status.matching.unwrap_or(Matching::Exact);
    let diffs = core::differences(&desired.entries, &actual, matching);
    let latest = core::latest_by_key(&stored);
    let policy = policy_of(&status);
    let mut parked = 0;
    let rows: Vec<serde_json::Value> = diffs
        .iter()
        .map(|d| {
            let record = latest.get(&d.key).map(|s| &s.record);
            if record.is_some_and(|r| r.parked(&policy)) {
                parked += 1;
            }
            json!({
                "verb": d.key.verb,
                "target": d.key.target,
                "desired": d.desired,
                "actual": d.actual,
                "action_id": record.map(|r| r.id.clone()).unwrap_or_else(|| d.key.action_id(1, 1)),
                "state": record.map(|r| r.state),
                "parked": record.is_some_and(|r| r.parked(&policy)),
            })
        })
        .collect();
    match args.format {
        OutputFormat::Json => println!(
            "{}",
            json!({"name": diff.name, "rev": desired.revision, "differences": rows})
        ),
        OutputFormat::Text => {
            for row in &rows {
                println!(
                    "{} {} desired={} actual={} action={} state={}",
                    row["verb"].as_str().unwrap_or_default(),
                    row["target"].as_str().unwrap_or_default(),
                    row["desired"],
                    row["actual"],
                    row["action_id"].as_str().unwrap_or_default(),
                    row["state"].as_str().unwrap_or("none"),
                );
            }
        }
    }
    Ok(exit_for(diffs.len(), parked))
}

pub async fn actions(args: &StoreArgs, name: &str) -> Result<ToolExit, ToolError> {
    let store = Store::connect(args).await?;
    let layout = Layout::new(name);
    let status = read_status(&store, &layout, name).await.ok();
    let policy = status.as_ref().map(policy_of).unwrap_or(Policy {
        idempotent: false,
        max_attempts: 1,
        grace_ms: 0,
        retry_backoff_ms: 0,
    });
    let mut stored: Vec<Stored> = records::read_records(&store, &layout).await?;
    stored.sort_by_key(|s| s.mod_rev);
    let parked = stored.iter().filter(|s| s.record.parked(&policy)).count();
    match args.format {
        OutputFormat::Json => {
            let rows: Vec<serde_json::Value> = stored
                .iter()
                .map(|s| {
                    let mut value = serde_json::to_value(&s.record).expect("a record serialises");
                    value["parked"] = json!(s.record.parked(&policy));
                    value["mod_rev"] = json!(s.mod_rev);
                    value
                })
                .collect();
            println!("{}", json!({"name": name, "actions": rows}));
        }
        OutputFormat::Text => {
            for s in &stored {
                let r = &s.record;
                println!(
                    "{} {}{} token={} attempt={} exit={} by={}{}",
                    r.id,
                    serde_json::to_value(r.state)
                        .expect("a state serialises")
                        .as_str()
                        .unwrap_or_default(),
                    if r.parked(&policy) { " (parked)" } else { "" },
                    r.token,
                    r.attempt,
                    r.exit
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "-".to_string()),
                    r.instance,
                    if r.note.is_empty() {
                        String::new()
                    } else {
                        format!(" note={:?}", r.note)
                    },
                );
            }
        }
    }
    Ok(if parked > 0 {
        ToolExit::Conflict
    } else {
        ToolExit::Ok
    })
}

/// `retry NAME ID`: an operator accepts that a parked action's outcome is settled; the record
/// is marked resolved (compare-and-swap on its revision), so if its difference is still there
/// the leader starts it again as a new action with a new ID: the old ID never runs twice.
pub async fn retry(args: &StoreArgs, id: &IdArgs) -> Result<ToolExit, ToolError> {
    let store = Store::connect(args).await?;
    let layout = Layout::new(&id.name);
    let stored = records::read_records(&store, &layout).await?;
    let Some(found) = stored.into_iter().find(|s| s.record.id == id.id) else {
        return Err(ToolError::data(format!(
            "no action {} in {}",
            id.id, id.name
        )));
    };
    if found.record.state == State::Started {
        return Err(ToolError::conflict(format!(
            "action {} is started: only a parked or finished action can be retried",
            id.id
        )));
    }
    let mut record = found.record;
    record.state = State::Resolved;
    record.note = "released by an operator (reconcile retry)".to_string();
    record.time_ms = now_ms();
    if records::replace_record(&store, &layout, &record, found.mod_rev).await? {
        println!("{} released", record.id);
        Ok(ToolExit::Ok)
    } else {
        Err(ToolError::conflict(format!(
            "action {} changed meanwhile",
            record.id
        )))
    }
}
