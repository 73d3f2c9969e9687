//! `musubi conf consumers PREFIX`: the watchers that reported rendering PREFIX, the index
//! each rendered, and how far behind the prefix's last change that is.

use super::report::{ROOT, Report, now, unescape};
use super::source::Source;
use crate::toolkit::{OutputFormat, Store, ToolError, ToolExit};
use clap::Args;
use musubi_conf::Tree;
use serde_json::json;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ConsumersArgs {
    /// The rendered prefix.
    prefix: String,
}

struct Consumer {
    host: String,
    file: String,
    report: Report,
}

pub async fn run(
    store: &Store,
    format: OutputFormat,
    args: ConsumersArgs,
) -> Result<ExitCode, ToolError> {
    let prefix = super::normalize_prefix(&args.prefix);
    let reports = Source::new(store, ROOT.to_string()).read().await?;
    let mut consumers = Vec::new();
    if let Some(tree) = &reports.tree {
        for (path, node) in tree.walk() {
            let (Tree::Leaf { value, .. }, Some((host, file))) = (node, path.split_once('/'))
            else {
                continue;
            };
            let Ok(report) = serde_json::from_str::<Report>(value) else {
                continue;
            };
            if report.prefix == prefix {
                consumers.push(Consumer {
                    host: unescape(host),
                    file: unescape(file),
                    report,
                });
            }
        }
    }
    consumers.sort_by(|a, b| (&a.host, &a.file).cmp(&(&b.host, &b.file)));
    // The prefix's last change: the newest creation or modification below it.
    let last_change = Source::new(store, prefix.clone())
        .read()
        .await?
        .tree
        .map(|tree| {
            tree.walk()
                .iter()
                .map(|(_, node)| match node {
                    Tree::Leaf {
                        created, modified, ..
                    } => (*created).max(*modified),
                    Tree::Dir { created, .. } => *created,
                })
                .max()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let lag = |c: &Consumer| last_change.saturating_sub(c.report.index);
    match format {
        OutputFormat::Json => {
            let list: Vec<_> = consumers
                .iter()
                .map(|c| {
                    json!({
                        "host": c.host, "file": c.file, "index": c.report.index,
                        "sha256": c.report.sha256, "ok": c.report.ok, "time": c.report.time,
                        "lag": lag(c),
                    })
                })
                .collect();
            println!(
                "{}",
                json!({"prefix": prefix, "last_change": last_change, "consumers": list})
            );
        }
        OutputFormat::Text => {
            println!("prefix {prefix}, last change at index {last_change}");
            println!(
                "{:<20} {:<32} {:>8} {:>6} {:<5} {:>5}",
                "HOST", "FILE", "INDEX", "LAG", "OK", "AGE"
            );
            for c in &consumers {
                println!(
                    "{:<20} {:<32} {:>8} {:>6} {:<5} {:>4}s",
                    c.host,
                    c.file,
                    c.report.index,
                    lag(c),
                    c.report.ok,
                    now().saturating_sub(c.report.time)
                );
            }
        }
    }
    Ok(ToolExit::Ok.into())
}
