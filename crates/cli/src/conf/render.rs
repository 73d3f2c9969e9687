//! `musubi conf render PREFIX`: one read, one document; printed, checked against `--out`
//! (`--check`), or installed there.

use super::install::Installer;
use super::source::{Snapshot, Source};
use super::{InstallArgs, TreeArgs, data_error, print_summary};
use crate::toolkit::{OutputFormat, Store, ToolError, ToolExit};
use clap::Args;
use musubi_conf::{Document, Options, Tree};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    tree: TreeArgs,
    #[command(flatten)]
    install: InstallArgs,
    /// Exit 2 if --out would change (and 0 if not); write nothing.
    #[arg(long, requires = "out")]
    check: bool,
    /// A missing prefix renders as `{}` instead of failing (exit 5).
    #[arg(long)]
    allow_missing: bool,
}

/// The document of a snapshot; a missing prefix is `{}` only when allowed.
pub fn document(
    snapshot: &Snapshot,
    prefix: &str,
    options: &Options,
    allow_missing: bool,
) -> Result<Document, ToolError> {
    let empty = Tree::empty();
    let tree = match (&snapshot.tree, allow_missing) {
        (Some(tree), _) => tree,
        (None, true) => &empty,
        (None, false) => {
            return Err(ToolError::data(format!(
                "{prefix}: Key not found (--allow-missing renders it as {{}})"
            )));
        }
    };
    musubi_conf::render(tree, options)
        .map(Document::new)
        .map_err(data_error)
}

pub async fn run(
    store: &Store,
    format: OutputFormat,
    args: RenderArgs,
) -> Result<ExitCode, ToolError> {
    let source = Source::new(store, args.tree.prefix());
    let snapshot = source.read().await?;
    let document = document(
        &snapshot,
        &source.prefix,
        &args.tree.options(),
        args.allow_missing,
    )?;
    let Some(out) = args.install.out.clone() else {
        match format {
            OutputFormat::Text => print!("{}", String::from_utf8_lossy(&document.bytes)),
            OutputFormat::Json => print_summary(format, &source.prefix, snapshot.index, &document),
        }
        return Ok(ToolExit::Ok.into());
    };
    let installer = Installer::new(out, &args.install);
    if args.check {
        let same = installer.current()?.as_deref() == Some(&document.bytes[..]);
        print_summary(format, &source.prefix, snapshot.index, &document);
        if !same {
            eprintln!(
                "musubi conf: {} would change (index {})",
                installer.out.display(),
                snapshot.index
            );
            return Ok(ToolExit::Differences.into());
        }
        return Ok(ToolExit::Ok.into());
    }
    installer.install(&document.bytes).await?;
    print_summary(format, &source.prefix, snapshot.index, &document);
    Ok(ToolExit::Ok.into())
}
