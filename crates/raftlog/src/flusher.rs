//! Group commit: one thread that turns many pending appends into one `fdatasync`.
//!
//! Appenders write their batch to the segment (page cache only) and queue a job here. The
//! thread takes every job queued so far, syncs each distinct file once, then completes all of
//! them. While it is inside `fdatasync`, new jobs pile up and share the next sync, so the
//! number of syncs per second stays bounded by the disk while batches grow with the load.
//! Keeping the sync on its own thread means no async runtime worker ever blocks on the disk.

use crate::fs::FsFile;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// Called once the records of an append are durable, or with the error that prevented it.
pub type OnDurable = Box<dyn FnOnce(io::Result<()>) + Send>;

struct Job {
    file: Arc<dyn FsFile>,
    done: OnDurable,
}

pub(crate) struct Flusher {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub(crate) fn start(name: String) -> io::Result<Self> {
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(rx))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Completes `done` after the next `fdatasync` of `file` that starts after this call.
    pub(crate) fn submit(&self, file: Arc<dyn FsFile>, done: OnDurable) {
        let job = Job { file, done };
        if let Err(std::sync::mpsc::SendError(job)) =
            self.tx.as_ref().expect("flusher is running").send(job)
        {
            (job.done)(Err(io::Error::other("the log flusher thread has stopped")));
        }
    }
}

impl Drop for Flusher {
    /// Finishes the queued jobs, then stops the thread.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(rx: Receiver<Job>) {
    // etcd's name for the same thing, so its dashboards and alerts read ours.
    let fsync_seconds = metrics::histogram!("etcd_disk_wal_fsync_duration_seconds");
    let mut jobs = Vec::new();
    let mut files: Vec<Arc<dyn FsFile>> = Vec::new();
    while let Ok(first) = rx.recv() {
        jobs.push(first);
        jobs.extend(rx.try_iter());
        for job in &jobs {
            if !files
                .iter()
                .any(|f| std::ptr::addr_eq(Arc::as_ptr(f), Arc::as_ptr(&job.file)))
            {
                files.push(job.file.clone());
            }
        }
        let started = std::time::Instant::now();
        let result = files.iter().try_for_each(|f| f.sync_data());
        fsync_seconds.record(started.elapsed().as_secs_f64());
        files.clear();
        for job in jobs.drain(..) {
            let each = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(
                    e.kind(),
                    format!("fdatasync of the raft log failed: {e}"),
                )),
            };
            (job.done)(each);
        }
    }
}
