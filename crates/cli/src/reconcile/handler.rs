//! Running one action's handler under the lock's guardian (`crate::supervise`): in its own
//! process group, with the action as JSON on stdin and its ID and the leader's token in the
//! environment, terminated at the leadership's deadline (moved on by each lease renewal) or
//! at the action's own timeout, whichever comes first, even if this process is stopped or
//! killed meanwhile.

use super::core::Record;
use super::run::stopped;
use crate::lock::election::Leadership;
use crate::supervise::{Deadline, Spec, now, spawn_guarded};
use crate::toolkit::child;
use serde_json::json;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

pub struct Handler {
    pub argv: Vec<String>,
    pub shell: bool,
    pub timeout: Duration,
    /// How long the group has between SIGTERM and SIGKILL.
    pub grace: Duration,
    pub name: String,
}

impl Handler {
    /// Run the handler for `record`; its exit code (the guardian's reserved codes included:
    /// 120 when the leadership was lost, 126/127 when it could not be run).
    /// A stop (`stop` turning true) terminates the handler as a loss does, and waits for it.
    pub async fn run(
        &self,
        record: &Record,
        leadership: &Leadership,
        stop: watch::Receiver<bool>,
    ) -> i32 {
        let input = json!({
            "name": self.name,
            "action_id": record.id,
            "verb": record.verb,
            "target": record.target,
            "desired": record.desired,
            "actual": record.actual,
            "token": record.token,
            "attempt": record.attempt,
        });
        let spec = Spec {
            argv: self.argv.clone(),
            shell: self.shell,
            env: vec![
                ("MUSUBI_ACTION_ID".to_string(), record.id.clone()),
                ("MUSUBI_FENCE_TOKEN".to_string(), record.token.to_string()),
                ("MUSUBI_RECONCILE_NAME".to_string(), self.name.clone()),
            ],
            grace: self.grace,
            piped_stdin: true,
        };
        let timeout_kill = now() + self.timeout.as_nanos() as u64;
        let bound = |lease: Deadline| Deadline {
            term: lease
                .term
                .min(timeout_kill.saturating_sub(self.grace.as_nanos() as u64)),
            kill: lease.kill.min(timeout_kill),
        };
        if leadership.is_lost() {
            return child::LOST as i32;
        }
        let mut deadlines = leadership.deadlines();
        let first = *deadlines.borrow_and_update();
        let mut guarded = match spawn_guarded(&spec, bound(first)) {
            Ok(guarded) => guarded,
            Err(e) => {
                eprintln!("reconcile: cannot start the handler's guardian: {e}");
                return child::ERROR as i32;
            }
        };
        if let Some(mut stdin) = guarded.take_stdin() {
            let mut bytes = input.to_string().into_bytes();
            bytes.push(b'\n');
            // A handler that does not read its stdin is its business, not a failure.
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let mut told_lost = false;
        loop {
            tokio::select! {
                code = guarded.wait() => return code as i32,
                changed = deadlines.changed() => {
                    if changed.is_ok() {
                        guarded.extend(bound(*deadlines.borrow_and_update()));
                    }
                }
                _ = leadership.lost(), if !told_lost => {
                    told_lost = true;
                    guarded.lost();
                }
                _ = stopped(stop.clone()), if !told_lost => {
                    told_lost = true;
                    guarded.lost();
                }
            }
        }
    }
}
