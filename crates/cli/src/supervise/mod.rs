//! Running a child under a guardian. **Shared with `reconcile`** (its handlers run here).
//!
//! A child that acts on behalf of a lock or a leadership must stop when that lock is lost,
//! even if the process holding the lock is stopped (SIGSTOP, a long GC-like pause) or killed
//! with `kill -9`. So the child is not our child: [`spawn_guarded`] re-executes `musubi` as a
//! small guardian process (`guardian.rs`), which starts the child in a process group of its
//! own and terminates that whole group
//!
//! - at the lease deadline: SIGTERM at [`Deadline::term`], SIGKILL at [`Deadline::kill`];
//!   the holder moves the deadline on after each successful renewal ([`Guarded::extend`]),
//!   so a holder that stops renewing (stopped, hung, partitioned) stops extending it;
//! - when the holder dies: the guardian reads the deadlines from a pipe whose only writer is
//!   the holder, so its death is end-of-file there;
//! - when told: [`Guarded::lost`] (the store said the lease is gone) or a signal forwarded
//!   with [`Guarded::signal`].
//!
//! Deadlines are instants of `CLOCK_MONOTONIC`, which the holder and the guardian share (one
//! host): a deadline computed before a pause stays where it was, however late it is written.
//!
//! The guardian exits with the child's exit code (128+N when a signal N killed it), or with
//! [`child::LOST`](crate::toolkit::child) when it terminated the child for a loss, and with
//! 126/127 when the program could not be run (as `env(1)`).

mod guardian;

pub use guardian::{GuardianArgs, main as guardian_main};

use crate::toolkit::child;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, ChildStdin};

/// The hidden subcommand the guardian runs as (`musubi __guardian ...`).
pub const GUARDIAN_COMMAND: &str = "__guardian";

/// The file descriptor on which the guardian reads its control lines.
const CONTROL_FD: i32 = 3;

/// Now, on `CLOCK_MONOTONIC`, in nanoseconds: the clock deadlines are written in.
pub fn now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// When the guardian terminates the child group: SIGTERM at `term`, SIGKILL at `kill`
/// (monotonic nanoseconds, [`now`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    pub term: u64,
    pub kill: u64,
}

impl Deadline {
    /// The deadline after a renewal sent at `sent` (monotonic ns) that the store granted
    /// `ttl` for: the server cannot expire the lease before `sent + ttl`, so the child is
    /// killed a margin before (max(1 s, ttl/10), for scheduling and clock-rate slack) and
    /// terminated `grace` before that.
    pub fn after_renewal(sent: u64, ttl: Duration, grace: Duration) -> Deadline {
        let margin = (ttl / 10).max(Duration::from_secs(1));
        let kill = sent + ttl.saturating_sub(margin).as_nanos() as u64;
        let term = kill.saturating_sub(grace.as_nanos() as u64).max(sent);
        Deadline { term, kill }
    }
}

/// What to run and how.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The program and its arguments; with `shell`, one command line for `/bin/sh -c`.
    pub argv: Vec<String>,
    pub shell: bool,
    /// Added to the environment the child inherits.
    pub env: Vec<(String, String)>,
    /// Between SIGTERM and SIGKILL when the guardian terminates the group on its own
    /// (holder dead, lock lost, child exited leaving others in its group).
    pub grace: Duration,
    /// A pipe to the child's stdin (reconcile writes its action there); else inherited.
    pub piped_stdin: bool,
}

/// A running guardian and, under it, the child.
pub struct Guarded {
    guardian: Child,
    control: std::fs::File,
}

/// Start `spec` under a guardian that terminates it at `first` unless extended.
pub fn spawn_guarded(spec: &Spec, first: Deadline) -> io::Result<Guarded> {
    let (read, write) = control_pipe()?;
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command
        .arg(GUARDIAN_COMMAND)
        .arg("--grace-ms")
        .arg(spec.grace.as_millis().to_string())
        .arg("--term-ns")
        .arg(first.term.to_string())
        .arg("--kill-ns")
        .arg(first.kill.to_string());
    if spec.shell {
        command.arg("--shell");
    }
    command.arg("--").args(&spec.argv);
    command.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if spec.piped_stdin {
        command.stdin(Stdio::piped());
    }
    let read_fd = read.as_raw_fd();
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if read_fd == CONTROL_FD {
                // dup2 onto itself keeps close-on-exec: clear it instead.
                if libc::fcntl(CONTROL_FD, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(read_fd, CONTROL_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let guardian = command.spawn()?;
    drop(read);
    Ok(Guarded {
        guardian,
        control: std::fs::File::from(write),
    })
}

/// A close-on-exec pipe (so no other child inherits the write end and hides our death),
/// with a non-blocking write end (a stopped guardian must not stop us).
fn control_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors from pipe2, owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: F_SETFL on a descriptor we own.
    if unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((read, write))
}

impl Guarded {
    /// Move the deadline on (after a successful renewal).
    pub fn extend(&mut self, deadline: Deadline) {
        self.send(&format!("deadline {} {}\n", deadline.term, deadline.kill));
    }

    /// Forward signal `signal` to the child's group.
    pub fn signal(&mut self, signal: i32) {
        self.send(&format!("signal {signal}\n"));
    }

    /// The lock is gone: terminate the group now (the guardian then exits [`child::LOST`]).
    pub fn lost(&mut self) {
        self.send("lost\n");
    }

    /// The pipe to the child's stdin, once, when [`Spec::piped_stdin`] asked for one.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.guardian.stdin.take()
    }

    /// Wait for the guardian: the child's exit code, or one of [`child`]'s.
    pub async fn wait(&mut self) -> u8 {
        match self.guardian.wait().await {
            Ok(status) => exit_code(status),
            Err(_) => child::ERROR,
        }
    }

    /// A lost control line only costs an extension (the next one carries a later deadline)
    /// or a message the guardian acts on anyway at the deadline, so writes never wait.
    fn send(&mut self, line: &str) {
        let _ = self.control.write_all(line.as_bytes());
    }
}

/// A process's exit status as a shell reports it: its code, or 128+N for signal N.
pub fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => (128 + signal) as u8,
        (None, None) => child::ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_leaves_margin_and_grace() {
        let s = 1_000_000_000_000;
        let d = Deadline::after_renewal(s, Duration::from_secs(10), Duration::from_secs(2));
        assert_eq!(d.kill, s + 9_000_000_000);
        assert_eq!(d.term, s + 7_000_000_000);
        // A short TTL: the margin is at least a second, and TERM never precedes the renewal.
        let d = Deadline::after_renewal(s, Duration::from_secs(2), Duration::from_secs(2));
        assert_eq!(d.kill, s + 1_000_000_000);
        assert_eq!(d.term, s);
    }
}
