//! Keeping a place in a queue alive, and running a child only while it lives. **Shared with
//! `reconcile`** (through [`Leadership`](super::election::Leadership)).
//!
//! A task renews the key (v3 lease keep-alive, v2 `refresh=true`) every third of its TTL.
//! After each renewal that succeeded, the deadline moves to the renewal's *send* time plus
//! the TTL granted, less a margin ([`Deadline::after_renewal`]): the store cannot have
//! expired the key before then, whatever happened on the way back. Renewals that fail are
//! retried until that deadline; the store saying the key or lease is gone, or the deadline
//! passing, is the loss.

use super::queue::{Queue, Renewal, Ticket};
use crate::supervise::{self, Deadline, Spec, spawn_guarded};
use crate::toolkit::child;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A place in a queue, kept alive until dropped or [`Session::close`]d.
pub struct Session {
    pub queue: Queue,
    pub ticket: Ticket,
    deadlines: watch::Receiver<Deadline>,
    /// Why the key was lost, once it is.
    lost: watch::Receiver<Option<String>>,
    renewer: JoinHandle<()>,
}

impl Session {
    /// Start renewing `ticket`. `grace` is the time the child gets between SIGTERM and
    /// SIGKILL, which [`Session::deadline`] leaves before the kill.
    pub fn keep(queue: Queue, ticket: Ticket, grace: Duration) -> Session {
        let first = Deadline::after_renewal(ticket.sent, ticket.ttl, grace);
        let (deadline_tx, deadlines) = watch::channel(first);
        let (lost_tx, lost) = watch::channel(None);
        let renewer = tokio::spawn(renew(
            queue.clone(),
            ticket.clone(),
            grace,
            deadline_tx,
            lost_tx,
        ));
        Session {
            queue,
            ticket,
            deadlines,
            lost,
            renewer,
        }
    }

    /// The latest deadline: the child must be gone by its `kill`.
    pub fn deadline(&self) -> Deadline {
        *self.deadlines.borrow()
    }

    /// Every new deadline, as renewals succeed.
    pub fn deadlines(&self) -> watch::Receiver<Deadline> {
        self.deadlines.clone()
    }

    pub fn is_lost(&self) -> bool {
        self.lost.borrow().is_some()
    }

    /// Why the key was lost, once it is.
    pub fn lost_because(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Resolves once the key is lost (at once if it already is).
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(Option::is_some).await;
    }

    /// Stop renewing and delete our key if it is still ours (also after a loss: a deadline
    /// that passed while renewals went unanswered leaves the key in the store).
    pub async fn close(self) -> Result<(), crate::toolkit::ToolError> {
        self.renewer.abort();
        self.queue.release(&self.ticket).await
    }

    /// Run `spec` under a guardian fed this session's deadlines; signals sent to us go to
    /// the child. Returns the child's exit code, [`child::LOST`] if the key was lost while it
    /// ran, or 126/127 if it could not be run.
    pub async fn run_guarded(&self, spec: &Spec) -> u8 {
        let mut guarded = match spawn_guarded(spec, self.deadline()) {
            Ok(guarded) => guarded,
            Err(e) => {
                eprintln!("musubi: cannot start the guardian: {e}");
                return child::ERROR;
            }
        };
        let mut deadlines = self.deadlines();
        let mut signals = [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
            SignalKind::quit(),
        ]
        .map(|kind| (kind.as_raw_value(), signal(kind).ok()));
        let mut told_lost = false;
        loop {
            let [(int, a), (term, b), (hup, c), (quit, d)] = &mut signals;
            tokio::select! {
                code = guarded.wait() => return code,
                changed = deadlines.changed() => {
                    if changed.is_ok() {
                        guarded.extend(*deadlines.borrow_and_update());
                    }
                }
                _ = self.lost(), if !told_lost => {
                    told_lost = true;
                    guarded.lost();
                }
                _ = recv(a) => guarded.signal(*int),
                _ = recv(b) => guarded.signal(*term),
                _ = recv(c) => guarded.signal(*hup),
                _ = recv(d) => guarded.signal(*quit),
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.renewer.abort();
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

async fn renew(
    queue: Queue,
    ticket: Ticket,
    grace: Duration,
    deadline_tx: watch::Sender<Deadline>,
    lost_tx: watch::Sender<Option<String>>,
) {
    let mut granted = ticket.ttl;
    let mut last_sent = ticket.sent;
    let timeout = queue.request_timeout(ticket.ttl);
    loop {
        let next = last_sent + (granted / 3).as_nanos() as u64;
        tokio::time::sleep(Duration::from_nanos(next.saturating_sub(supervise::now()))).await;
        loop {
            let sent = supervise::now();
            match tokio::time::timeout(timeout, queue.renew(&ticket)).await {
                Ok(Ok(Renewal::Granted(ttl))) => {
                    granted = ttl;
                    last_sent = sent;
                    let _ = deadline_tx.send(Deadline::after_renewal(sent, ttl, grace));
                    break;
                }
                Ok(Ok(Renewal::Gone)) => {
                    let _ =
                        lost_tx.send(Some("the store says the key or its lease is gone".into()));
                    return;
                }
                // Unanswered: try again (the calls fail over) until the deadline says the
                // store may have expired the key by now.
                failed => {
                    if supervise::now() >= deadline_tx.borrow().kill {
                        let why = match failed {
                            Ok(Err(e)) => format!("no renewal succeeded before the deadline: {e}"),
                            _ => "no renewal answered before the deadline".to_string(),
                        };
                        let _ = lost_tx.send(Some(why));
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
