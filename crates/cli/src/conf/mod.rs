//! `musubi conf`: a key tree rendered as one JSON config file and kept current
//! (docs/conf.md). The rules live in the pure crate `musubi-conf`; this is the rim:
//!
//! - `source.rs`: one consistent read of the prefix at one index, and waiting for the next
//!   change after an index (v3 Range/Watch where served, else v2 GET/`waitIndex`);
//! - `install.rs`: the file written atomically, checked and reloaded, rolled back;
//! - `hook.rs`: check, reload and `--exec` commands, each under a guardian;
//! - `render.rs`, `watch.rs`, `import.rs`, `consumers.rs`: the four verbs;
//! - `report.rs`: what a watcher reports under `/_musubi/conf/consumers/`.

mod consumers;
mod hook;
mod import;
mod install;
mod render;
mod report;
mod source;
mod watch;

use crate::toolkit::{self, OutputFormat, Store, StoreArgs, ToolError};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes:
  0  done, or already in sync
  1  usage: the command line is wrong
  2  --check: the file would change (nothing was written)
  3  conflict: an import lost a compare-and-swap (someone wrote meanwhile)
  4  the store is unreachable, timed out or has no leader (one-shot commands; watch retries)
  5  data: the prefix is missing, the tree breaks the schema, the document cannot be
     imported, or the file cannot be written
  6  a hook failed: --check-cmd (the old file is kept) or --reload-cmd (with --backup, rolled back)
  conf watch --exec: the child's exit code (128+N for signal N; 126/127 if it cannot be run)";

#[derive(Args)]
#[command(after_help = EXIT_CODES)]
pub struct ConfArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Render PREFIX's key tree as one JSON document (to stdout, or installed as --out).
    #[command(after_help = EXIT_CODES)]
    Render(render::RenderArgs),
    /// Render PREFIX again on every change; install and reload once per batch.
    #[command(after_help = EXIT_CODES)]
    Watch(watch::WatchArgs),
    /// Write a JSON document (stdin) as PREFIX's key tree: the inverse of render.
    #[command(after_help = EXIT_CODES)]
    Import(import::ImportArgs),
    /// List the watchers that rendered PREFIX, their index and their lag.
    #[command(after_help = EXIT_CODES)]
    Consumers(consumers::ConsumersArgs),
}

/// How the tree is read as a document; the same for render, watch and import.
#[derive(Args, Clone, Debug)]
pub struct TreeArgs {
    /// The key tree's prefix (a v2 directory, or a v3 key prefix ending before `/`).
    prefix: String,
    /// Type leaves and lists by a schema: `serf` (the agent's config keys).
    #[arg(long, value_enum, default_value = "none")]
    schema: SchemaName,
    /// A directory (path below PREFIX) rendered as an array, in creation order (repeatable).
    #[arg(long = "array", value_name = "PATH")]
    arrays: Vec<String>,
    /// `string`: every value is a string; `json`: whole JSON literals are that JSON.
    #[arg(long, value_enum, default_value = "string")]
    values: ValuesArg,
    /// Include names beginning with `_` (hidden from v2 listings).
    #[arg(long)]
    hidden: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SchemaName {
    None,
    Serf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ValuesArg {
    String,
    Json,
}

impl TreeArgs {
    fn prefix(&self) -> String {
        normalize_prefix(&self.prefix)
    }

    fn options(&self) -> musubi_conf::Options {
        let mut options = musubi_conf::Options::default()
            .with_hidden(self.hidden)
            .with_values(match self.values {
                ValuesArg::String => musubi_conf::Values::String,
                ValuesArg::Json => musubi_conf::Values::Json,
            });
        if self.schema == SchemaName::Serf {
            // The agent's own table of Serf's keys, so `conf` and the agent never disagree.
            options = options.schema(musubi_agent::serf_shapes());
        }
        for path in &self.arrays {
            options = options.declare(path, musubi_conf::Shape::List);
        }
        options
    }
}

/// The prefix without its trailing `/` (`/` for the whole keyspace).
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Where a render goes and how it is put in place; render and watch.
#[derive(Args, Clone, Debug, Default)]
pub struct InstallArgs {
    /// Write the document to FILE (atomically: temp file in its directory, fsync, rename).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The file's mode, in octal (default: the existing file's, else 0644).
    #[arg(long, value_parser = parse_mode)]
    mode: Option<u32>,
    /// Run before installing, `{}` replaced by the new file's temporary path; failing keeps the old file (exit 6).
    #[arg(long, value_name = "CMD")]
    check_cmd: Option<String>,
    /// Run after installing a changed file.
    #[arg(long, value_name = "CMD")]
    reload_cmd: Option<String>,
    /// Keep the old file until the reload succeeded; a failed reload puts it back (exit 6).
    #[arg(long)]
    backup: bool,
    /// Run the commands with /bin/sh -c (otherwise: split on spaces, no shell).
    #[arg(long)]
    shell: bool,
    /// How long a check or reload command may run before its group is killed.
    #[arg(long, default_value = "60s", value_parser = crate::duration::parse_or_seconds)]
    hook_timeout: Duration,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| format!("'{text}' is not an octal file mode"))
}

pub fn run(args: ConfArgs) -> ExitCode {
    let runtime = match toolkit::runtime("conf") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let format = args.store.format;
        let result = match Store::connect(&args.store).await {
            Ok(store) => match args.verb {
                Verb::Render(verb) => render::run(&store, format, verb).await,
                Verb::Watch(verb) => watch::run(store, format, verb).await,
                Verb::Import(verb) => import::run(&store, format, verb).await,
                Verb::Consumers(verb) => consumers::run(&store, format, verb).await,
            },
            Err(e) => Err(e),
        };
        toolkit::exit("conf", result)
    })
}

/// `--format json`'s answer of render and watch: what was rendered, from where, at which index.
fn summary(prefix: &str, index: u64, document: &musubi_conf::Document) -> serde_json::Value {
    serde_json::json!({
        "prefix": prefix,
        "index": index,
        "sha256": document.sha256,
        "document": document.value,
    })
}

fn print_summary(format: OutputFormat, prefix: &str, index: u64, document: &musubi_conf::Document) {
    match format {
        OutputFormat::Json => println!("{}", summary(prefix, index, document)),
        OutputFormat::Text => {}
    }
}

/// A document the core could not make: the tree or the document breaks the rules.
fn data_error(error: impl std::fmt::Display) -> ToolError {
    ToolError::data(error.to_string())
}
