//! Streams on one RPC connection: a command (`query`, `stream`, `monitor`) answers its
//! request, then keeps sending records under that request's Seq while the connection goes
//! on serving other requests. Everything written to the socket goes through one writer
//! task, so replies and records never interleave mid-object.
//!
//! A stream ends when its task returns (a query's `done`), on `stop {Stop: seq}`, or when
//! the connection closes (every stream of the connection is then aborted).

use musubi_serf_rpc::codec::encode_response;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::debug;

/// What the writer task is asked to do.
pub enum Outgoing {
    Bytes(Vec<u8>),
    /// Hang up our side once everything before it is written (the agent is leaving).
    Close,
}

/// The sending side of a connection's writer task.
pub type ConnectionWriter = mpsc::UnboundedSender<Outgoing>;

/// Write what the connection's commands and streams queue, in order, until the
/// connection breaks, a `Close` arrives, or nothing can queue anymore.
pub async fn write_queued(
    mut socket: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(outgoing) = queue.recv().await {
        match outgoing {
            Outgoing::Bytes(bytes) => {
                if let Err(e) = socket.write_all(&bytes).await {
                    debug!("rpc write: {e}");
                    return;
                }
            }
            Outgoing::Close => {
                let _ = socket.shutdown().await;
                return;
            }
        }
    }
}

/// Where one stream's records go: a response header with the opening request's Seq and
/// no error, then the record.
#[derive(Clone)]
pub struct RecordSink {
    seq: u64,
    writer: ConnectionWriter,
}

impl RecordSink {
    /// False once the connection is gone: the stream should end.
    pub fn send<R: Serialize>(&self, record: &R) -> bool {
        self.writer
            .send(Outgoing::Bytes(encode_response(self.seq, "", Some(record))))
            .is_ok()
    }
}

/// The work of one stream, started once its opening reply is queued.
pub type StreamTask = Pin<Box<dyn Future<Output = ()> + Send>>;
/// How a command asks for a stream: given the sink, the task that feeds it.
pub type OpenStream = Box<dyn FnOnce(RecordSink) -> StreamTask + Send>;

/// The streams open on one connection, by the Seq that opened them.
pub struct Streams {
    writer: ConnectionWriter,
    open: HashMap<u64, AbortHandle>,
}

impl Streams {
    pub fn new(writer: ConnectionWriter) -> Self {
        Streams {
            writer,
            open: HashMap::new(),
        }
    }

    /// Whether a stream opened by `seq` is still running (Serf refuses a second one).
    pub fn is_open(&self, seq: u64) -> bool {
        self.open.get(&seq).is_some_and(|task| !task.is_finished())
    }

    /// Start a stream; call only after its opening reply is queued, so the client reads
    /// the reply before the first record.
    pub fn open(&mut self, seq: u64, open: OpenStream) {
        self.open.retain(|_, task| !task.is_finished());
        let sink = RecordSink {
            seq,
            writer: self.writer.clone(),
        };
        let task = tokio::spawn(open(sink));
        self.open.insert(seq, task.abort_handle());
    }

    /// `stop {Stop: seq}`: end that stream if there is one (Serf always succeeds).
    pub fn stop(&mut self, seq: u64) {
        if let Some(task) = self.open.remove(&seq) {
            task.abort();
        }
    }
}

/// A closed connection ends all of its streams.
impl Drop for Streams {
    fn drop(&mut self) {
        for task in self.open.values() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn bytes_of(outgoing: Outgoing) -> Vec<u8> {
        match outgoing {
            Outgoing::Bytes(bytes) => bytes,
            Outgoing::Close => panic!("unexpected close"),
        }
    }

    /// A stream that sends `n` then waits forever.
    fn counting(n: u8) -> OpenStream {
        Box::new(move |sink: RecordSink| {
            Box::pin(async move {
                sink.send(&n);
                std::future::pending::<()>().await;
            }) as StreamTask
        })
    }

    #[tokio::test]
    async fn records_carry_the_opening_seq_and_stop_ends_the_stream() {
        let (writer, mut queue) = mpsc::unbounded_channel();
        let mut streams = Streams::new(writer);
        streams.open(7, counting(1));
        let record = bytes_of(queue.recv().await.unwrap());
        assert_eq!(record, encode_response(7, "", Some(&1u8)));
        assert!(streams.is_open(7));
        streams.stop(7);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!streams.is_open(7));
    }

    #[tokio::test]
    async fn dropping_the_streams_aborts_them_all() {
        let (writer, mut queue) = mpsc::unbounded_channel();
        let mut streams = Streams::new(writer.clone());
        streams.open(1, counting(1));
        streams.open(2, counting(2));
        let _ = queue.recv().await;
        let _ = queue.recv().await;
        drop(streams);
        drop(writer);
        // Every sender (the aborted tasks' sinks included) is gone: the queue ends.
        assert!(
            tokio::time::timeout(Duration::from_secs(1), queue.recv())
                .await
                .unwrap()
                .is_none()
        );
    }
}
