//! The text lines people read, in Fileconsul's words (seed 003) where it has them, on
//! stdout; `--format json` prints one object per command instead (docs/files.md).

use super::diff::{Change, Clash, Conflict, Diff, Op};
use serde_json::{Value, json};

const UP_TO_DATE: &str = "Already up-to-date.";

/// `status`: what travels each way and what clashes, or that nothing does.
pub fn status(diff: &Diff, base_rev: u64) {
    if diff.in_sync() {
        println!("{UP_TO_DATE}");
        return;
    }
    if !diff.push.is_empty() {
        println!("Changes to be pushed:");
        println!("  (use \"musubi files push [command options]\" to synchronize local files)");
        for change in &diff.push {
            line(push_label(change.op), &change.path);
        }
    }
    if !diff.pull.is_empty() {
        println!("Changes to be pulled:");
        println!("  (use \"musubi files pull [command options]\" to synchronize remote files)");
        for change in &diff.pull {
            line(pull_label(change.op), &change.path);
        }
    }
    conflicts(&diff.conflicts, base_rev);
}

pub fn conflicts(conflicts: &[Conflict], base_rev: u64) {
    if conflicts.is_empty() {
        return;
    }
    println!("Conflicts (changed on both sides since rev {base_rev}):");
    println!(
        "  (use \"musubi files push --force\" to keep the local side, \"musubi files pull --force\" to take the share's)"
    );
    for conflict in conflicts {
        line(clash_label(conflict.op), &conflict.path);
    }
}

/// `    add remote file:    bin/ntp`: the label in a column 20 wide, as Fileconsul's.
fn line(label: &str, path: &str) {
    println!("    {label:<20}{path}");
}

fn push_label(op: Op) -> &'static str {
    match op {
        Op::Add => "add remote file:",
        Op::Modify => "modify remote file:",
        Op::Delete => "delete remote file:",
    }
}

fn pull_label(op: Op) -> &'static str {
    match op {
        Op::Add => "add local file:",
        Op::Modify => "modify local file:",
        Op::Delete => "delete local file:",
    }
}

fn clash_label(clash: Clash) -> &'static str {
    match clash {
        Clash::BothAdded => "both added:",
        Clash::BothModified => "both modified:",
        Clash::DeletedLocally => "deleted locally:",
        Clash::DeletedRemotely => "deleted remotely:",
    }
}

/// `push new file:  bin/ntp`, one line per path published.
pub fn pushed(changes: &[Change]) {
    for change in changes {
        let label = match change.op {
            Op::Add => "push new file:",
            Op::Modify => "push modified file:",
            Op::Delete => "push deleted file:",
        };
        println!("{label:<15} {}", change.path);
    }
}

/// `Synchronize remote files:` and git's status words, then `Already up-to-date.`
pub fn pulled(changes: &[Change]) {
    if !changes.is_empty() {
        println!("Synchronize remote files:");
        for change in changes {
            let label = match change.op {
                Op::Add => "new file:",
                Op::Modify => "modified:",
                Op::Delete => "deleted:",
            };
            println!("    {label:<12}{}", change.path);
        }
    }
    println!("{UP_TO_DATE}");
}

/// `{"rev","root"}` of a revision, nulls for none.
pub fn revision(rev: u64, root: Option<&str>) -> Value {
    json!({"rev": rev, "root": root})
}

pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string(value).expect("JSON serialises"));
}
