//! `musubi conf import PREFIX < doc.json`: the keys that render as the document, written
//! over what is there. Every write compares what it replaces with the read it was planned
//! from (v2 per key: `prevIndex` / `prevExist=false`; v3 one Txn of compares and writes),
//! so an import racing another writer stops with exit 3 instead of mixing the two.

use super::source::Source;
use super::{TreeArgs, data_error};
use crate::toolkit::{OutputFormat, Store, ToolError, ToolExit};
use clap::Args;
use musubi_client::{DeleteOptions, Error as V2Error, PrevExist, SetOptions};
use musubi_conf::{Delete, Expect, Plan, Put, Tree};
use musubi_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use musubi_proto::etcdserverpb::request_op::Request as Op;
use musubi_proto::etcdserverpb::{Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest};
use musubi_proto::prefix_end;
use serde_json::json;
use std::io::Read;
use std::process::ExitCode;

/// etcd's default `--max-txn-ops`: a Txn holds at most this many compares and operations.
const MAX_TXN_OPS: usize = 128;

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    tree: TreeArgs,
    /// Also delete the keys under PREFIX that the document does not name (hidden ones only
    /// with --hidden). Without it they stay; strays inside the document's arrays always go.
    #[arg(long)]
    prune: bool,
    /// Print what would be written and deleted; change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(
    store: &Store,
    format: OutputFormat,
    args: ImportArgs,
) -> Result<ExitCode, ToolError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| ToolError::data(format!("stdin: {e}")))?;
    let document: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ToolError::data(format!("stdin: {e}")))?;
    let options = args.tree.options();
    let desired = musubi_conf::import(&document, &options).map_err(data_error)?;
    let source = Source::new(store, args.tree.prefix());
    let snapshot = source.read().await?;
    let current = snapshot.tree.unwrap_or_else(Tree::empty);
    let plan = musubi_conf::plan(&current, &desired, &options, args.prune);
    let key = |path: &str| match source.prefix.as_str() {
        "/" => format!("/{path}"),
        prefix => format!("{prefix}/{path}"),
    };
    if !args.dry_run && !plan.is_empty() {
        if store.v3().is_some() {
            apply_v3(store, &current, &plan, &key).await?
        } else {
            apply_v2(store, &plan, &key).await?
        }
    }
    match format {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "prefix": source.prefix,
                "index": snapshot.index,
                "dry_run": args.dry_run,
                "put": plan.puts.iter().map(|p| key(&p.path)).collect::<Vec<_>>(),
                "deleted": plan.deletes.iter().map(|d| key(&d.path)).collect::<Vec<_>>(),
            })
        ),
        OutputFormat::Text => {
            let verb = if args.dry_run { "would " } else { "" };
            for delete in &plan.deletes {
                println!("{verb}delete {}", key(&delete.path));
            }
            for put in &plan.puts {
                println!("{verb}put {}", key(&put.path));
            }
        }
    }
    Ok(ToolExit::Ok.into())
}

/// v2: one request per key, each compared with the read.
async fn apply_v2(
    store: &Store,
    plan: &Plan,
    key: &dyn Fn(&str) -> String,
) -> Result<(), ToolError> {
    for Delete {
        path,
        dir,
        modified,
    } in &plan.deletes
    {
        let options = if *dir {
            DeleteOptions {
                dir: true,
                recursive: true,
                ..Default::default()
            }
        } else {
            DeleteOptions {
                prev_index: Some(*modified),
                ..Default::default()
            }
        };
        store.v2.delete(&key(path), &options).await.map_err(lost)?;
    }
    for Put {
        path,
        value,
        expect,
    } in &plan.puts
    {
        let options = match (value, expect) {
            (None, _) => SetOptions::dir(None, PrevExist::NoExist),
            (Some(_), Expect::Absent) => SetOptions::create(None),
            (Some(_), Expect::Modified(index)) => SetOptions {
                prev_index: Some(*index),
                ..Default::default()
            },
        };
        let value = value.as_deref().unwrap_or_default();
        store
            .v2
            .set(&key(path), value, &options)
            .await
            .map_err(lost)?;
    }
    Ok(())
}

/// A v2 refusal that means someone changed the key since the read: exit 3.
fn lost(error: V2Error) -> ToolError {
    match &error {
        // 100 Key not found, 101 Compare failed, 105 Key already exists.
        V2Error::Etcd(e) if matches!(e.code, 100 | 101 | 105) => {
            ToolError::conflict(format!("changed since it was read: {error}"))
        }
        _ => error.into(),
    }
}

/// v3: Txns of compares (every key replaced or deleted is as read; every new key absent)
/// and writes. One Txn when it fits etcd's `--max-txn-ops` (128), else several, each still
/// compared, but the whole import is then no longer atomic.
async fn apply_v3(
    store: &Store,
    current: &Tree,
    plan: &Plan,
    key: &dyn Fn(&str) -> String,
) -> Result<(), ToolError> {
    let mut steps: Vec<(Vec<Compare>, RequestOp)> = Vec::new();
    for delete in &plan.deletes {
        let target = key(&delete.path);
        let (op, leaves) = if delete.dir {
            let below = format!("{target}/");
            let leaves = current
                .at(&delete.path)
                .map(|dir| {
                    dir.walk()
                        .into_iter()
                        .filter_map(|(path, node)| match node {
                            Tree::Leaf { modified, .. } => {
                                Some((format!("{below}{path}"), *modified))
                            }
                            Tree::Dir { .. } => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let op = DeleteRangeRequest {
                key: below.as_bytes().to_vec(),
                range_end: prefix_end(below.as_bytes()),
                ..Default::default()
            };
            (op, leaves)
        } else {
            let op = DeleteRangeRequest {
                key: target.as_bytes().to_vec(),
                ..Default::default()
            };
            (op, vec![(target, delete.modified)])
        };
        let compares = leaves
            .into_iter()
            .map(|(key, modified)| compare(&key, Expect::Modified(modified)))
            .collect();
        steps.push((
            compares,
            RequestOp {
                request: Some(Op::RequestDeleteRange(op)),
            },
        ));
    }
    // v3 has no directories: an empty one is nothing to write.
    for put in plan.puts.iter().filter(|p| p.value.is_some()) {
        let target = key(&put.path);
        steps.push((
            vec![compare(&target, put.expect)],
            RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: target.into_bytes(),
                    value: put.value.clone().unwrap_or_default().into_bytes(),
                    ..Default::default()
                })),
            },
        ));
    }
    let mut txn = TxnRequest::default();
    for (compares, op) in steps {
        if txn.compare.len() + compares.len() > MAX_TXN_OPS || txn.success.len() == MAX_TXN_OPS {
            commit(store, std::mem::take(&mut txn)).await?;
        }
        txn.compare.extend(compares);
        txn.success.push(op);
    }
    commit(store, txn).await
}

fn compare(key: &str, expect: Expect) -> Compare {
    let (target, union) = match expect {
        Expect::Absent => (CompareTarget::Create, TargetUnion::CreateRevision(0)),
        Expect::Modified(revision) => (
            CompareTarget::Mod,
            TargetUnion::ModRevision(revision as i64),
        ),
    };
    Compare {
        result: CompareResult::Equal as i32,
        target: target as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(union),
        ..Default::default()
    }
}

async fn commit(store: &Store, txn: TxnRequest) -> Result<(), ToolError> {
    if txn.success.is_empty() {
        return Ok(());
    }
    // Sent once: a repeat of an applied step would fail its compares and read as a conflict.
    if store.txn(store.call_once(), txn).await?.succeeded {
        Ok(())
    } else {
        Err(ToolError::conflict(
            "a key under the prefix changed since it was read; nothing of this step was written",
        ))
    }
}
