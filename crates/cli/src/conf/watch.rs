//! `musubi conf watch PREFIX`: render, install, then wait for the next change after the
//! rendered index and render again, forever.
//!
//! 1. Read the prefix at one index I and render it (a schema error keeps the file).
//! 2. Install it if its bytes changed (check, rename, then one reload or one signal to the
//!    `--exec` child); report `(I, sha256, ok)` with `--report`.
//! 3. Wait for the first change after I (v2 `waitIndex=I+1`, v3 watch from I+1), so no
//!    change between the read and the wait is lost. Then, with `--wait MIN:MAX`, wait
//!    until the prefix was quiet for MIN (at most MAX after the first change): a burst is
//!    one render and one reload. v2 401 (history cleared) or v3 compaction: read again.
//! 4. Store unreachable: the file (and the child) stay as they are; retry forever.

use super::hook::Hook;
use super::install::{Installed, Installer};
use super::render::document;
use super::report::{Report, Reporter, TTL, now};
use super::source::{Change, Source};
use super::{InstallArgs, TreeArgs, summary};
use crate::supervise::Guarded;
use crate::toolkit::{OutputFormat, Store, ToolError, ToolExit};
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{Instant, sleep};

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    tree: TreeArgs,
    #[command(flatten)]
    install: InstallArgs,
    /// Run CMD as a child once the first render is in place, and send it --reload-signal
    /// on each change (the file is $MUSUBI_CONF_FILE: --out, or a private file).
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// The signal --exec's child gets when the file changed (name or number).
    #[arg(long, default_value = "HUP", value_parser = parse_signal)]
    reload_signal: i32,
    /// MIN[:MAX]: after a change, wait until the prefix was quiet for MIN, but no longer
    /// than MAX (default 4×MIN), so a burst is one render and one reload.
    #[arg(long, default_value = "0s", value_parser = parse_wait)]
    wait: (Duration, Duration),
    /// Report the rendered index under /_musubi/conf/consumers/<host>/<file> (see `conf consumers`).
    #[arg(long)]
    report: bool,
    /// A missing prefix renders as `{}` (otherwise the file is left until the prefix exists).
    #[arg(long)]
    allow_missing: bool,
}

fn parse_wait(text: &str) -> Result<(Duration, Duration), String> {
    let parse = crate::duration::parse_or_seconds;
    match text.split_once(':') {
        Some((min, max)) => {
            let (min, max) = (parse(min)?, parse(max)?);
            if max < min {
                return Err(format!("{text}: MAX is less than MIN"));
            }
            Ok((min, max))
        }
        None => parse(text).map(|min| (min, min * 4)),
    }
}

fn parse_signal(text: &str) -> Result<i32, String> {
    let name = text.trim_start_matches("SIG");
    let number = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "TERM" => libc::SIGTERM,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "QUIT" => libc::SIGQUIT,
        other => other
            .parse()
            .map_err(|_| format!("'{text}' is not a signal"))?,
    };
    Ok(number)
}

/// How long to sleep after the store failed us, growing to 5 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis((200u64 << failures.min(5)).min(5_000))
}

struct Watcher<'a> {
    source: Source<'a>,
    store: &'a Store,
    args: &'a WatchArgs,
    installer: Installer,
    format: OutputFormat,
    reporter: Option<Reporter>,
    /// The last render installed (or found already in place): its index and hash.
    good: Option<(u64, String)>,
    /// The last render attempt failed (schema, check, reload).
    failing: bool,
    child: Option<Guarded>,
}

pub async fn run(
    store: Store,
    format: OutputFormat,
    args: WatchArgs,
) -> Result<ExitCode, ToolError> {
    let out = match (&args.install.out, &args.exec) {
        (Some(out), _) => out.clone(),
        (None, Some(_)) => {
            std::env::temp_dir().join(format!("musubi-conf-{}.json", std::process::id()))
        }
        (None, None) => {
            return Err(ToolError::usage(
                "conf watch needs --out FILE or --exec CMD",
            ));
        }
    };
    // `--exec` without `--out`: a private file, removed when the watch ends.
    let private = args.install.out.is_none().then(|| out.clone());
    let reporter = args
        .report
        .then(|| Reporter::new(&out.display().to_string()));
    let mut watcher = Watcher {
        source: Source::new(&store, args.tree.prefix()),
        store: &store,
        args: &args,
        installer: Installer::new(out, &args.install),
        format,
        reporter,
        good: None,
        failing: false,
        child: None,
    };
    let ended = watcher.run().await;
    if let Some(private) = private {
        let _ = std::fs::remove_file(private);
    }
    ended
}

impl Watcher<'_> {
    /// Follow the prefix until a signal (also while the store is down and the watcher is
    /// retrying) or the `--exec` child's exit.
    async fn run(&mut self) -> Result<ExitCode, ToolError> {
        let mut terminate = signal(SignalKind::terminate()).map_err(io)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(io)?;
        let signal = tokio::select! {
            ended = self.follow() => return ended,
            _ = terminate.recv() => libc::SIGTERM,
            _ = interrupt.recv() => libc::SIGINT,
        };
        self.stop(signal).await
    }

    async fn follow(&mut self) -> Result<ExitCode, ToolError> {
        let mut failures = 0u32;
        let mut index: Option<u64> = None;
        loop {
            let Some(at) = index else {
                match self.render().await {
                    Ok(read) => {
                        failures = 0;
                        index = Some(read);
                    }
                    Err(e) => {
                        if failures == 0 {
                            eprintln!("musubi conf: {e}; the file stays, retrying");
                        }
                        failures += 1;
                        sleep(backoff(failures)).await;
                    }
                }
                continue;
            };
            let child = async {
                match self.child.as_mut() {
                    Some(child) => child.wait().await,
                    None => std::future::pending().await,
                }
            };
            let waited = tokio::select! {
                waited = self.source.wait(at, TTL / 3) => waited,
                code = child => return Ok(ExitCode::from(code)),
            };
            match waited {
                Ok(Change::At(first)) => {
                    self.settle(first).await;
                    index = None;
                }
                Ok(Change::Reread) => {
                    history_gone(at);
                    index = None;
                }
                Ok(Change::Quiet) => self.report().await,
                Err(e) => {
                    if failures == 0 {
                        eprintln!("musubi conf: {e}; the file stays, retrying");
                    }
                    failures += 1;
                    sleep(backoff(failures)).await;
                    index = None;
                }
            }
        }
    }

    /// `--wait MIN:MAX`: after a change at `first`, wait for a quiet MIN, at most MAX.
    async fn settle(&mut self, first: u64) {
        let (min, max) = self.args.wait;
        let until = Instant::now() + max;
        let mut last = first;
        loop {
            let left = until.saturating_duration_since(Instant::now()).min(min);
            if left.is_zero() {
                return;
            }
            match self.source.wait(last, left).await {
                Ok(Change::At(next)) => last = next,
                Ok(Change::Reread) => return history_gone(last),
                // Quiet: settled. Unreachable: the read that follows finds out.
                _ => return,
            }
        }
    }

    /// Read, render and install once; the index read, or why not (the store's failure).
    async fn render(&mut self) -> Result<u64, ToolError> {
        let snapshot = self.source.read().await?;
        let prefix = self.source.prefix.clone();
        // A missing prefix is an error like a schema error: the file stays, and the watch
        // below the prefix sees it appear.
        let outcome = match document(
            &snapshot,
            &prefix,
            &self.args.tree.options(),
            self.args.allow_missing,
        ) {
            Err(e) => Err(e),
            Ok(document) => match self.installer.install(&document.bytes).await {
                Ok(installed) => {
                    if installed == Installed::Written
                        && let Some(child) = self.child.as_mut()
                    {
                        child.signal(self.args.reload_signal);
                    }
                    self.good = Some((snapshot.index, document.sha256.clone()));
                    if self.format == OutputFormat::Json {
                        println!("{}", summary(&prefix, snapshot.index, &document));
                    }
                    eprintln!(
                        "musubi conf: {prefix} at index {} {} {}",
                        snapshot.index,
                        match installed {
                            Installed::Written => "installed as",
                            Installed::Unchanged => "unchanged in",
                        },
                        self.installer.out.display()
                    );
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        self.failing = outcome.is_err();
        if let Err(e) = outcome {
            eprintln!("musubi conf: {e}; the file stays as it was");
        }
        if self.child.is_none() && self.good.is_some() {
            self.start_child()?;
        }
        self.report().await;
        Ok(snapshot.index)
    }

    fn start_child(&mut self) -> Result<(), ToolError> {
        let Some(line) = &self.args.exec else {
            return Ok(());
        };
        let hook = Hook::new(line, self.args.install.shell);
        let env = vec![(
            "MUSUBI_CONF_FILE".to_string(),
            self.installer.out.display().to_string(),
        )];
        let child = hook
            .start(env)
            .map_err(|e| ToolError::new(ToolExit::Usage, format!("--exec '{line}': {e}")))?;
        self.child = Some(child);
        Ok(())
    }

    async fn report(&mut self) {
        let (Some(reporter), Some((index, sha256))) = (self.reporter.as_mut(), &self.good) else {
            return;
        };
        let report = Report {
            prefix: self.source.prefix.clone(),
            index: *index,
            sha256: sha256.clone(),
            ok: !self.failing,
            time: now(),
        };
        if let Err(e) = reporter.report(self.store, &report).await {
            eprintln!("musubi conf: report: {e}");
        }
    }

    /// A signal to `conf watch`: passed to the child, whose exit is ours; without one, 0.
    async fn stop(&mut self, signal: i32) -> Result<ExitCode, ToolError> {
        match self.child.as_mut() {
            Some(child) => {
                child.signal(signal);
                Ok(ExitCode::from(child.wait().await))
            }
            None => Ok(ToolExit::Ok.into()),
        }
    }
}

/// Said once per occurrence, so an operator sees why a whole re-read happened.
fn history_gone(index: u64) {
    eprintln!(
        "musubi conf: the changes after index {index} are gone from the store's history \
         (v2 401 event index cleared, or v3 compacted): reading the whole tree again"
    );
}

fn io(e: std::io::Error) -> ToolError {
    ToolError::new(ToolExit::Usage, e.to_string())
}
