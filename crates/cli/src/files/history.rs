//! `log` lists the published revisions; `gc` forgets all but the last few.
//!
//! `gc` removes history entries older than the kept revisions, and the manifests and
//! blobs no kept revision references, but only those last written before the `HEAD` it
//! read, each by a delete that succeeds only if the key is unchanged. A push in flight
//! either builds on that `HEAD` (its new blobs are written after it, its reused ones are
//! `HEAD`'s, which are kept) or will lose its compare-and-swap anyway, so `gc` never takes
//! a blob from under a push that can still publish.

use super::ToolError;
use super::layout::{Head, Kind};
use super::remote::Listed;
use super::report;
use super::session::Session;
use clap::Args;
use serde_json::json;
use std::collections::HashSet;

#[derive(Args, Clone, Debug)]
pub struct GcArgs {
    /// How many of the last revisions to keep (with their manifests and blobs).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: u64,
}

/// Every revision in `history/`, newest first, with `HEAD` itself even if a v2 pusher
/// died before writing its history entry.
async fn revisions(session: &Session) -> Result<(Option<Head>, Vec<(Head, Listed)>), ToolError> {
    let head = session.remote.head().await?.map(|h| h.value);
    let mut revisions = Vec::new();
    for listed in session.remote.list(Kind::History, true).await? {
        let text =
            String::from_utf8_lossy(listed.value.as_deref().unwrap_or_default()).into_owned();
        match Head::parse(&text) {
            Ok(parsed) => revisions.push((parsed, listed)),
            Err(e) => eprintln!("musubi files: history/{}: {e}", listed.name),
        }
    }
    revisions.sort_by_key(|(head, _)| std::cmp::Reverse(head.rev));
    Ok((head, revisions))
}

pub async fn log(session: &Session) -> Result<(), ToolError> {
    let (head, revisions) = revisions(session).await?;
    let mut heads: Vec<Head> = revisions.into_iter().map(|(h, _)| h).collect();
    if let Some(head) = head
        && heads.first().is_none_or(|h| h.rev < head.rev)
    {
        heads.insert(0, head);
    }
    if session.json() {
        report::print_json(&json!({"share": session.share, "revisions": heads}));
        return Ok(());
    }
    for (i, head) in heads.iter().enumerate() {
        let tag = if i == 0 { " (HEAD)" } else { "" };
        println!("rev {}{tag}", head.rev);
        println!("    root:   {}", head.root);
        println!("    by:     {}", head.by);
        println!("    time:   {}", head.time);
        if !head.msg.is_empty() {
            println!("    msg:    {}", head.msg);
        }
    }
    Ok(())
}

pub async fn gc(session: &Session, args: &GcArgs) -> Result<(), ToolError> {
    let Some(head) = session.remote.head().await? else {
        return Err(ToolError::data(format!(
            "share {:?} is empty: nothing was pushed to it",
            session.share
        )));
    };
    let sweep_before = head.version;
    let oldest_kept = head.value.rev.saturating_sub(args.keep - 1);
    let (_, revisions) = revisions(session).await?;

    let mut kept_roots: HashSet<String> = HashSet::from([head.value.root_hex().to_string()]);
    let mut deleted_history = 0;
    for (rev, listed) in &revisions {
        if rev.rev >= oldest_kept {
            kept_roots.insert(rev.root_hex().to_string());
        } else if listed.version < sweep_before {
            let key = session.remote.keys.key(Kind::History, &listed.name);
            deleted_history += session.remote.delete_if(&key, listed.version).await? as u64;
        }
    }
    let mut kept_blobs: HashSet<String> = HashSet::new();
    for root in &kept_roots {
        let manifest = session.manifest(root).await?;
        kept_blobs.extend(manifest.blobs().map(str::to_string));
    }
    let deleted_manifests = sweep(session, Kind::Manifests, &kept_roots, sweep_before).await?;
    let deleted_blobs = sweep(session, Kind::Blobs, &kept_blobs, sweep_before).await?;

    if session.json() {
        report::print_json(&json!({
            "share": session.share,
            "kept": {"from_rev": oldest_kept.max(1), "to_rev": head.value.rev},
            "deleted": {
                "history": deleted_history,
                "manifests": deleted_manifests,
                "blobs": deleted_blobs,
            },
        }));
    } else {
        println!(
            "kept revs {}..{}; deleted {deleted_history} history entries, {deleted_manifests} manifests, {deleted_blobs} blobs",
            oldest_kept.max(1),
            head.value.rev
        );
    }
    Ok(())
}

/// Delete the keys of `kind` that are not `kept` and were last written before the sweep.
async fn sweep(
    session: &Session,
    kind: Kind,
    kept: &HashSet<String>,
    sweep_before: u64,
) -> Result<u64, ToolError> {
    let mut deleted = 0;
    for listed in session.remote.list(kind, false).await? {
        if kept.contains(&listed.name) || listed.version >= sweep_before {
            continue;
        }
        let key = session.remote.keys.key(kind, &listed.name);
        deleted += session.remote.delete_if(&key, listed.version).await? as u64;
    }
    Ok(deleted)
}
