//! The commands `conf` runs: `--check-cmd`, `--reload-cmd` and `--exec`. Each runs under a
//! guardian (crates/cli/src/supervise) in a process group of its own, so a hung hook is
//! killed with everything it started at its deadline, and nothing outlives `conf` itself.

use crate::supervise::{self, Deadline, Guarded, Spec};
use std::path::Path;
use std::time::Duration;

/// A command line as given: split on spaces (`{}` words replaced by a path), or with
/// `shell`, one line for `/bin/sh -c`.
#[derive(Clone, Debug)]
pub struct Hook {
    pub line: String,
    pub shell: bool,
}

impl Hook {
    pub fn new(line: &str, shell: bool) -> Hook {
        Hook {
            line: line.to_string(),
            shell,
        }
    }

    fn spec(&self, file: Option<&Path>, env: Vec<(String, String)>) -> Spec {
        let path = file.map(|f| f.display().to_string()).unwrap_or_default();
        let argv = if self.shell {
            vec![self.line.replace("{}", &path)]
        } else {
            self.line
                .split_whitespace()
                .map(|word| word.replace("{}", &path))
                .collect()
        };
        Spec {
            argv,
            shell: self.shell,
            env,
            grace: Duration::from_secs(2),
            piped_stdin: false,
        }
    }

    /// Run to the end (killed with its group after `timeout`); `Err` says why it failed.
    pub async fn run(&self, file: Option<&Path>, timeout: Duration) -> Result<(), String> {
        let spec = self.spec(file, Vec::new());
        let nanos = timeout.as_nanos() as u64;
        let started = supervise::now();
        let deadline = Deadline {
            term: started + nanos,
            kill: started + nanos + spec.grace.as_nanos() as u64,
        };
        let mut guarded = supervise::spawn_guarded(&spec, deadline)
            .map_err(|e| format!("'{}' could not be started: {e}", self.line))?;
        match guarded.wait().await {
            0 => Ok(()),
            crate::toolkit::child::LOST => Err(format!(
                "'{}' ran past {:?} and was killed",
                self.line, timeout
            )),
            code => Err(format!("'{}' exited {code}", self.line)),
        }
    }

    /// Start as a long-running child (`--exec`), with `env` added; it is never killed for
    /// time, only signalled.
    pub fn start(&self, env: Vec<(String, String)>) -> std::io::Result<Guarded> {
        let spec = self.spec(None, env);
        // A deadline a century away: an `--exec` child lives as long as the watch.
        let far = supervise::now() + Duration::from_secs(100 * 365 * 86_400).as_nanos() as u64;
        supervise::spawn_guarded(
            &spec,
            Deadline {
                term: far,
                kill: far,
            },
        )
    }
}
