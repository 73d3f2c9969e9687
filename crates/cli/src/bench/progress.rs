//! A run's progress on stderr, drawn only when stderr is a terminal (as `musubi snapshot`
//! draws its own), so scripts and pipes see just the report. A `--total` run shows
//! requests issued of the total; a `--duration` run shows time elapsed of the duration
//! and the requests issued so far.

use super::connection::Shared;
use super::workload::Budget;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How often the bar is redrawn from the shared counter.
const TICK: Duration = Duration::from_millis(100);

pub struct Progress(Option<(ProgressBar, JoinHandle<()>)>);

impl Progress {
    /// Follows `shared`'s issued requests until [`Progress::finish`]; `what` labels the bar.
    pub fn follow(what: &'static str, shared: Arc<Shared>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let started = Instant::now();
        let (length, template) = match shared.budget {
            Budget::Requests(total) => (
                total,
                "{msg} [{bar:30}] {pos}/{len} requests ({per_sec}, {eta})",
            ),
            Budget::Until(deadline) => (
                deadline.saturating_duration_since(started).as_millis() as u64,
                "{msg} [{bar:30}] {elapsed}, {prefix} requests",
            ),
        };
        let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(what);
        let ticking = bar.clone();
        let ticker = tokio::spawn(async move {
            loop {
                let issued = shared.issued.load(Ordering::Relaxed);
                match shared.budget {
                    Budget::Requests(total) => ticking.set_position(issued.min(total)),
                    Budget::Until(_) => {
                        ticking.set_position(started.elapsed().as_millis() as u64);
                        ticking.set_prefix(issued.to_string());
                    }
                }
                tokio::time::sleep(TICK).await;
            }
        });
        Progress(Some((bar, ticker)))
    }

    /// Removes the bar, so the report follows on a clean line.
    pub fn finish(self) {
        if let Some((bar, ticker)) = self.0 {
            ticker.abort();
            bar.finish_and_clear();
        }
    }
}
