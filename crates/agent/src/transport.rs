//! The stream transport: whole gossip datagrams over TCP, for payloads that do not fit in
//! one UDP datagram (user events past Serf's sizes; query messages and responses).
//!
//! The listener shares the gossip bind address and port (TCP beside UDP, as memberlist
//! does). A connection carries frames, each a big-endian u32 length then that many bytes:
//! one datagram, kind byte first, exactly what would have gone over UDP. Received frames
//! are handed to the node as if they had arrived as datagrams; the node decides what they
//! mean and drops what it cannot decode. A length of zero or above [`MAX_FRAME`], a frame
//! cut short, or a silent connection closes that connection with a log line; nothing a
//! peer sends here can stop the agent.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::timeout;
use tracing::{debug, warn};

use musubi_gossip::wire::MAX_FRAME;
/// A peer that does not accept within this is treated as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Writing one frame, or reading one once its length has arrived, must finish within this.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// An open connection with no frame starting within this is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections served at once; more are closed at accept (each may hold a frame buffer).
const MAX_CONNECTIONS: usize = 64;

/// Send one datagram to `addr` over a fresh connection, then close it.
pub async fn send_reliable(addr: SocketAddr, datagram: &[u8]) -> io::Result<()> {
    let length = u32::try_from(datagram.len())
        .ok()
        .filter(|&length| length as usize <= MAX_FRAME && length > 0)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a frame of {} bytes is not sendable", datagram.len()),
            )
        })?;
    let mut stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    metrics::counter!("memberlist.tcp.connect").increment(1);
    let write = async {
        stream.write_all(&length.to_be_bytes()).await?;
        stream.write_all(datagram).await?;
        metrics::counter!("memberlist.tcp.sent").increment(4 + u64::from(length));
        stream.shutdown().await
    };
    timeout(IO_TIMEOUT, write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
}

/// Accept connections until the process ends, feeding each frame to `deliver` with the
/// connection's remote address.
pub async fn serve(listener: TcpListener, deliver: mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                metrics::counter!("memberlist.tcp.accept").increment(1);
                accepted
            }
            Err(e) => {
                // Out of file descriptors, typically: retrying at once would spin.
                warn!("gossip stream accept: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            warn!("gossip stream from {peer}: closing, {MAX_CONNECTIONS} connections already open");
            continue;
        };
        let deliver = deliver.clone();
        tokio::spawn(async move {
            if let Err(reason) = read_frames(stream, peer, &deliver).await {
                warn!("gossip stream from {peer}: closing: {reason}");
            }
            drop(slot);
        });
    }
}

/// Read frames until the peer closes between two of them (Ok) or misbehaves (Err).
async fn read_frames(
    mut stream: TcpStream,
    peer: SocketAddr,
    deliver: &mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
) -> Result<(), String> {
    loop {
        let mut length = [0u8; 4];
        match timeout(IDLE_TIMEOUT, stream.read(&mut length[..1])).await {
            Err(_) => return Err("idle".into()),
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
        }
        let frame = timeout(IO_TIMEOUT, async {
            stream.read_exact(&mut length[1..]).await?;
            let length = u32::from_be_bytes(length) as usize;
            if length == 0 || length > MAX_FRAME {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("frame length {length} is outside 1..={MAX_FRAME}"),
                ));
            }
            // Read into a growing buffer: a peer that announces a large frame and sends
            // little does not get the whole length allocated up front.
            let mut frame = Vec::new();
            (&mut stream)
                .take(length as u64)
                .read_to_end(&mut frame)
                .await?;
            if frame.len() < length {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("frame cut short at {} of {length} bytes", frame.len()),
                ));
            }
            Ok(frame)
        })
        .await
        .map_err(|_| "frame not received in time".to_string())?
        .map_err(|e| e.to_string())?;
        debug!("gossip stream from {peer}: frame of {} bytes", frame.len());
        if deliver.send((frame, peer)).is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn listening() -> (SocketAddr, mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (deliver, delivered) = mpsc::unbounded_channel();
        tokio::spawn(serve(listener, deliver));
        (addr, delivered)
    }

    #[tokio::test]
    async fn a_frame_arrives_whole() {
        let (addr, mut delivered) = listening().await;
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        send_reliable(addr, &big).await.unwrap();
        send_reliable(addr, b"\x03small").await.unwrap();
        let mut got = vec![delivered.recv().await.unwrap().0];
        got.push(delivered.recv().await.unwrap().0);
        got.sort_by_key(Vec::len);
        assert_eq!(got, vec![b"\x03small".to_vec(), big]);
    }

    #[tokio::test]
    async fn oversized_frames_are_neither_sent_nor_accepted() {
        let (addr, mut delivered) = listening().await;
        assert!(send_reliable(addr, &vec![0; MAX_FRAME + 1]).await.is_err());
        assert!(send_reliable(addr, b"").await.is_err());
        // a peer announcing 2 GiB: the connection is closed, nothing is delivered
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(&0x8000_0000u32.to_be_bytes())
            .await
            .unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        // and the listener still serves others
        send_reliable(addr, b"\x01ok").await.unwrap();
        assert_eq!(delivered.recv().await.unwrap().0, b"\x01ok");
    }

    #[tokio::test]
    async fn a_frame_cut_short_is_not_delivered() {
        let (addr, mut delivered) = listening().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&10u32.to_be_bytes()).await.unwrap();
        stream.write_all(b"abc").await.unwrap();
        drop(stream);
        send_reliable(addr, b"\x01next").await.unwrap();
        assert_eq!(delivered.recv().await.unwrap().0, b"\x01next");
    }
}
