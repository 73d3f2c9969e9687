//! watch and exec-watch: long polls that print, or run a command, for each event.

use super::output::print_response;
use super::{Ctx, failure::Failure, require_key};
use clap::Args;
use musubi_client::{Response, WatchOptions};
use tokio::process::Command;

#[derive(Args)]
pub struct WatchArgs {
    key: Option<String>,
    /// Keep watching until Ctrl-C instead of stopping after one event.
    #[arg(long, short = 'f')]
    forever: bool,
    /// Watch after the given index.
    #[arg(long, default_value_t = 0)]
    after_index: u64,
    /// Watch the key and all keys under it.
    #[arg(long, short = 'r')]
    recursive: bool,
}

impl WatchArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let key = require_key(&self.key)?;
        let opts = WatchOptions {
            after_index: self.after_index,
            recursive: self.recursive,
        };
        let mut watcher = ctx.client.watcher(key, opts);
        loop {
            let resp = watcher.next().await.map_err(Failure::Server)?;
            // Directory events do not count as the event being waited for.
            if resp.node.dir {
                continue;
            }
            if self.recursive {
                println!("[{}] {}", resp.action, resp.node.key);
            }
            print_response(&resp, ctx.format);
            if !self.forever {
                return Ok(());
            }
        }
    }
}

#[derive(Args)]
pub struct ExecWatchArgs {
    /// Watch after the given index.
    #[arg(long, default_value_t = 0)]
    after_index: u64,
    /// Watch the key and all keys under it.
    #[arg(long, short = 'r')]
    recursive: bool,
    key: Option<String>,
    /// The command and its arguments, after `--` if they start with '-'.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

impl ExecWatchArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let (Some(key), Some((program, args))) = (&self.key, self.command.split_first()) else {
            return Err(Failure::BadArgs(
                "key and command to exec required".to_string(),
            ));
        };
        let opts = WatchOptions {
            after_index: self.after_index,
            recursive: self.recursive,
        };
        let mut watcher = ctx.client.watcher(key, opts);
        loop {
            let resp = watcher.next().await.map_err(Failure::Server)?;
            if resp.node.dir {
                eprintln!("Ignored dir {} change", resp.node.key);
                continue;
            }
            // Like etcdctl, commands run concurrently: a slow one does not delay the next
            // event. Each is reaped by its own task.
            let mut child = command(program, args, &resp)
                .spawn()
                .map_err(|e| Failure::Exec(e.to_string()))?;
            tokio::spawn(async move { child.wait().await });
        }
    }
}

/// The command with etcdctl's `ETCD_WATCH_*` environment describing the event.
fn command(program: &str, args: &[String], resp: &Response) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("ETCD_WATCH_ACTION", &resp.action)
        .env(
            "ETCD_WATCH_MODIFIED_INDEX",
            resp.node.modified_index.to_string(),
        )
        .env("ETCD_WATCH_KEY", &resp.node.key)
        .env("ETCD_WATCH_VALUE", &resp.node.value);
    cmd
}
