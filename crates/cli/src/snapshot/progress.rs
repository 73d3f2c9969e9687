//! A byte-count progress bar on stderr, drawn only when stderr is a terminal, so scripts
//! and pipes see just the command's output.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar towards `total` bytes (unknown: a running count), labelled `what`.
    pub fn bytes(what: &'static str, total: Option<u64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        bar.set_style(style(total.is_some()));
        bar.set_message(what);
        Progress(Some(bar))
    }

    pub fn set_total(&self, total: u64) {
        if let Some(bar) = &self.0
            && bar.length() != Some(total)
        {
            bar.set_length(total);
            bar.set_style(style(true));
        }
    }

    pub fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }

    /// Removes the bar, so the command's own output follows on a clean line.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// A bar with a known total, or a running count.
fn style(bounded: bool) -> ProgressStyle {
    let template = if bounded {
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})"
    } else {
        "{msg} {spinner} {bytes} ({bytes_per_sec})"
    };
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ")
}
