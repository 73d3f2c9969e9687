//! The guardian process (`musubi __guardian`): runs the child in a process group of its
//! own and terminates the group at the deadline, on its holder's death (end-of-file on the
//! control pipe) or when told. Control lines, one per message:
//! `deadline TERM_NS KILL_NS`, `signal N`, `lost`.

use super::{CONTROL_FD, Deadline, exit_code, now};
use crate::toolkit::child;
use clap::Args;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Args, Debug)]
pub struct GuardianArgs {
    #[arg(long)]
    grace_ms: u64,
    #[arg(long)]
    term_ns: u64,
    #[arg(long)]
    kill_ns: u64,
    #[arg(long)]
    shell: bool,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    argv: Vec<String>,
}

pub fn main(args: GuardianArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("musubi: guardian: {e}");
            return ExitCode::from(child::ERROR);
        }
    };
    ExitCode::from(runtime.block_on(guard(args)))
}

/// Why the guardian is bringing the group down (and so what it exits with).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The holder's deadline passed, it died, or it said the lock is lost: exit 120.
    Lost,
}

async fn guard(args: GuardianArgs) -> u8 {
    // SAFETY: the holder put the control pipe's read end on this descriptor for us alone;
    // close-on-exec keeps the child from inheriting it.
    let control = unsafe {
        libc::fcntl(CONTROL_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        OwnedFd::from_raw_fd(CONTROL_FD)
    };
    let mut lines = match pipe::Receiver::from_owned_fd(control) {
        Ok(receiver) => Some(BufReader::new(receiver).lines()),
        Err(e) => {
            eprintln!("musubi: guardian: control pipe: {e}");
            return child::ERROR;
        }
    };
    let grace = Duration::from_millis(args.grace_ms);
    let mut deadline = Deadline {
        term: args.term_ns,
        kill: args.kill_ns,
    };
    let mut child = match spawn(&args) {
        Ok(child) => child,
        Err(e) => return cannot_run(&args.argv, &e),
    };
    let group = child.id().map(|pid| pid as i32).unwrap_or_default();
    // The terminal's signals reach the holder, which forwards them: ours are ignored here so
    // that the child does not get each twice. A SIGTERM sent to the guardian itself is passed
    // on, as to a shell.
    let [mut interrupt, mut quit, mut hangup] = [
        SignalKind::interrupt(),
        SignalKind::quit(),
        SignalKind::hangup(),
    ]
    .map(|kind| signal(kind).ok());
    let mut terminate = signal(SignalKind::terminate()).ok();
    let mut ending = None;
    let mut termed = false;
    loop {
        let wake = if termed { deadline.kill } else { deadline.term };
        let sleep = Duration::from_nanos(wake.saturating_sub(now()));
        tokio::select! {
            status = child.wait() => {
                let code = status.map(exit_code).unwrap_or(child::ERROR);
                sweep(group, grace).await;
                return match ending {
                    Some(Ending::Lost) => child::LOST,
                    None => code,
                };
            }
            line = next_line(&mut lines) => match parse(line.as_deref()) {
                Control::Extend(next) => {
                    if ending.is_none() {
                        deadline = next;
                    }
                }
                Control::Signal(n) => kill_group(group, n),
                control @ (Control::Lost | Control::HolderGone) => {
                    // Told the lock is gone, or the holder died: bring the group down now
                    // rather than at a deadline nobody will extend.
                    if control == Control::HolderGone {
                        lines = None;
                    }
                    ending = Some(Ending::Lost);
                    let now = now();
                    deadline = Deadline {
                        term: now.min(deadline.term),
                        kill: (now + grace.as_nanos() as u64).min(deadline.kill),
                    };
                }
                Control::Unknown => {}
            },
            _ = tokio::time::sleep(sleep) => {
                let now = now();
                if now >= deadline.kill {
                    ending = Some(Ending::Lost);
                    kill_group(group, libc::SIGKILL);
                    // Nothing more to wait for but the child's end.
                    deadline.kill = u64::MAX;
                    termed = true;
                } else if !termed && now >= deadline.term {
                    ending = Some(Ending::Lost);
                    kill_group(group, libc::SIGTERM);
                    termed = true;
                }
            }
            _ = recv(&mut terminate) => kill_group(group, libc::SIGTERM),
            _ = recv(&mut interrupt) => {}
            _ = recv(&mut quit) => {}
            _ = recv(&mut hangup) => {}
        }
    }
}

/// A control line, read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    Extend(Deadline),
    Signal(i32),
    Lost,
    /// End of file: the holder is gone.
    HolderGone,
    /// From a newer holder, perhaps: ignored.
    Unknown,
}

fn parse(line: Option<&str>) -> Control {
    let Some(line) = line else {
        return Control::HolderGone;
    };
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["deadline", term, kill] => match (term.parse(), kill.parse()) {
            (Ok(term), Ok(kill)) => Control::Extend(Deadline { term, kill }),
            _ => Control::Unknown,
        },
        ["signal", n] => n.parse().map(Control::Signal).unwrap_or(Control::Unknown),
        ["lost"] => Control::Lost,
        _ => Control::Unknown,
    }
}

fn spawn(args: &GuardianArgs) -> io::Result<tokio::process::Child> {
    let mut command = if args.shell {
        let mut command = tokio::process::Command::new("/bin/sh");
        command.arg("-c").arg(args.argv.join(" "));
        command
    } else {
        let mut command = tokio::process::Command::new(&args.argv[0]);
        command.args(&args.argv[1..]);
        command
    };
    command.process_group(0);
    command.spawn()
}

/// The next control line; `None` once the holder is gone (end of file, or a broken pipe).
/// After that the pipe is not read again.
async fn next_line(
    lines: &mut Option<tokio::io::Lines<BufReader<pipe::Receiver>>>,
) -> Option<String> {
    match lines {
        Some(reader) => reader.next_line().await.ok().flatten(),
        None => std::future::pending().await,
    }
}

async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

fn kill_group(group: i32, signal: i32) {
    if group > 0 {
        // SAFETY: kill(2) on the child's own process group; no memory is involved.
        unsafe { libc::kill(-group, signal) };
    }
}

fn group_alive(group: i32) -> bool {
    // SAFETY: signal 0 only checks that some process of the group still exists.
    group > 0 && unsafe { libc::kill(-group, 0) } == 0
}

/// The child is gone, but what it started in its group may not be: nothing it started may
/// outlive the lock, so the rest of the group gets SIGTERM, then SIGKILL after `grace`.
async fn sweep(group: i32, grace: Duration) {
    if !group_alive(group) {
        return;
    }
    kill_group(group, libc::SIGTERM);
    let until = tokio::time::Instant::now() + grace;
    while group_alive(group) && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill_group(group, libc::SIGKILL);
}

/// The program could not be started: 127 when it does not exist, 126 otherwise, with
/// `env(1)`'s message.
fn cannot_run(argv: &[String], error: &io::Error) -> u8 {
    let program = argv.first().map(String::as_str).unwrap_or_default();
    if error.kind() == io::ErrorKind::NotFound {
        eprintln!("musubi: '{program}': No such file or directory");
        child::NOT_FOUND
    } else {
        eprintln!("musubi: '{program}': {error}");
        child::CANNOT_EXECUTE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines() {
        assert_eq!(
            parse(Some("deadline 5 9")),
            Control::Extend(Deadline { term: 5, kill: 9 })
        );
        assert_eq!(parse(Some("signal 15")), Control::Signal(15));
        assert_eq!(parse(Some("lost")), Control::Lost);
        assert_eq!(parse(None), Control::HolderGone);
        assert_eq!(parse(Some("deadline x 9")), Control::Unknown);
    }
}
