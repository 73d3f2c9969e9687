//! Lets etcdctl's per-endpoint calls through: `etcdctl endpoint status|hashkv|health
//! --cluster`, `move-leader` and `defrag --cluster` dial each member by the client URL it
//! advertises and send that whole URL as HTTP/2's `:authority`
//! (`http://127.0.0.1:2379`). etcd's grpc-go server accepts it; the h2 crate under hyper
//! refuses the stream as malformed (its maintainers chose that: hyperium/h2#525), and
//! offers no setting to relax it.
//!
//! So the bytes a client sends pass through [`AuthorityFix`] before hyper reads them. It
//! follows the HTTP/2 frames and decodes each header block with its own HPACK decoder
//! (kept in step with the client's encoder). A block is passed on untouched until one
//! carries an `:authority` with a scheme; that one, and every block after it on the
//! connection, is re-encoded with the scheme and any path removed, as HPACK literals
//! that never touch hyper's dynamic table (which then only ever holds what untouched
//! blocks put there, and nothing re-encoded refers to it). HTTP/1 connections and every
//! other frame pass through as they are; a block this decoder cannot read is passed on
//! as it is, for hyper to refuse as it would have.

use bytes::{Buf, BufMut, BytesMut};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What an HTTP/2 client sends first (RFC 9113, 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame payload a peer accepts before it says otherwise (hyper never does).
const MAX_FRAME: usize = 16_384;
/// HTTP/2's default header table size, which hyper keeps.
const TABLE_SIZE: usize = 4096;

enum Mode {
    /// Reading the first bytes: HTTP/2 with prior knowledge, or HTTP/1?
    Preface,
    /// HTTP/2 frames, header blocks watched.
    Frames,
    /// HTTP/1 (or a connection that stopped being readable as HTTP/2): bytes as they come.
    Through,
}

/// The client-to-server half of a connection, with `:authority` URLs made authorities.
pub struct AuthorityFix<IO> {
    io: IO,
    mode: Mode,
    decoder: fluke_hpack::Decoder<'static>,
    /// Whether a block has been re-encoded: from then on every block is.
    rewriting: bool,
    /// Bytes read from the client and not yet looked at.
    raw: BytesMut,
    /// Bytes ready for hyper.
    ready: BytesMut,
    /// A HEADERS frame waiting for its CONTINUATION frames: its frames as received, and
    /// its flags, priority fields and header block so far.
    pending: Option<Pending>,
    /// The last header block as re-encoded, its buffer kept for the next.
    reencoded: BytesMut,
}

struct Pending {
    frames: BytesMut,
    stream: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    block: BytesMut,
}

impl<IO> AuthorityFix<IO> {
    pub fn new(io: IO) -> Self {
        let mut decoder = fluke_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(TABLE_SIZE);
        AuthorityFix {
            io,
            mode: Mode::Preface,
            decoder,
            rewriting: false,
            raw: BytesMut::new(),
            ready: BytesMut::new(),
            pending: None,
            reencoded: BytesMut::new(),
        }
    }

    /// Moves what can be decided from `raw` to `ready`.
    fn process(&mut self) {
        loop {
            match self.mode {
                Mode::Through => {
                    let all = self.raw.split();
                    self.ready.unsplit(all);
                    return;
                }
                Mode::Preface => {
                    let n = self.raw.len().min(PREFACE.len());
                    if self.raw[..n] != PREFACE[..n] {
                        self.mode = Mode::Through;
                    } else if n == PREFACE.len() {
                        let preface = self.raw.split_to(n);
                        self.ready.unsplit(preface);
                        self.mode = Mode::Frames;
                    } else {
                        return;
                    }
                }
                Mode::Frames => {
                    if self.raw.len() < FRAME_HEADER {
                        return;
                    }
                    let length = u32::from_be_bytes([0, self.raw[0], self.raw[1], self.raw[2]]);
                    let total = FRAME_HEADER + length as usize;
                    if self.raw.len() < total {
                        self.raw.reserve(total - self.raw.len());
                        return;
                    }
                    let frame = self.raw.split_to(total);
                    self.frame(frame);
                }
            }
        }
    }

    /// One whole frame.
    fn frame(&mut self, frame: BytesMut) {
        let (kind, flags) = (frame[3], frame[4]);
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        match (kind, self.pending.as_mut()) {
            (HEADERS, None) => {
                let Some((priority, fragment)) = headers_payload(flags, &frame[FRAME_HEADER..])
                else {
                    return self.give_up(frame);
                };
                let block = BytesMut::from(fragment);
                let pending = Pending {
                    frames: frame,
                    stream,
                    flags,
                    priority,
                    block,
                };
                if flags & END_HEADERS != 0 {
                    self.block(pending);
                } else {
                    self.pending = Some(pending);
                }
            }
            (CONTINUATION, Some(pending)) if pending.stream == stream => {
                pending.block.extend_from_slice(&frame[FRAME_HEADER..]);
                pending.frames.unsplit(frame);
                if flags & END_HEADERS != 0 {
                    let pending = self.pending.take().expect("matched above");
                    self.block(pending);
                }
            }
            // Anything else inside a header block is a protocol error hyper reports.
            (_, Some(_)) => self.give_up(frame),
            _ => self.ready.unsplit(frame),
        }
    }

    /// A complete header block: passed on as received, or re-encoded. Decoded header by
    /// header into a reused buffer, re-encoded as it goes (most blocks are then dropped
    /// unused): a block decoded into owned pairs cost every gRPC call two allocations a
    /// header.
    fn block(&mut self, pending: Pending) {
        let mut block = std::mem::take(&mut self.reencoded);
        block.clear();
        let mut needs_fix = false;
        let decoded = self.decoder.decode_with_cb(&pending.block, |name, value| {
            let authority = match name.as_ref() {
                b":authority" => url_authority(&value),
                _ => None,
            };
            needs_fix |= authority.is_some();
            encode_literal(&mut block, &name, authority.unwrap_or(&value));
        });
        if decoded.is_err() {
            self.reencoded = block;
            return self.give_up(pending.frames);
        }
        self.rewriting |= needs_fix;
        if self.rewriting {
            write_header_frames(&mut self.ready, &pending, &block);
        } else {
            self.ready.unsplit(pending.frames);
        }
        self.reencoded = block;
    }

    /// Hands everything on unread from here: hyper sees what the client sent and answers
    /// it as it would have without this layer.
    fn give_up(&mut self, frame: BytesMut) {
        if let Some(pending) = self.pending.take() {
            self.ready.unsplit(pending.frames);
        }
        self.ready.unsplit(frame);
        self.mode = Mode::Through;
    }
}

/// A HEADERS payload's priority fields and header block fragment, padding removed.
fn headers_payload(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut payload = payload;
    let mut pad = 0usize;
    if flags & PADDED != 0 {
        pad = *payload.first()? as usize;
        payload = &payload[1..];
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        priority = Some(payload.get(..5)?.try_into().ok()?);
        payload = &payload[5..];
    }
    let end = payload.len().checked_sub(pad)?;
    Some((priority, &payload[..end]))
}

/// The authority inside `value` when it is a URL (`http://host:port/` → `host:port`).
fn url_authority(value: &[u8]) -> Option<&[u8]> {
    let at = value.windows(3).position(|w| w == b"://")?;
    let rest = &value[at + 3..];
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    Some(&rest[..end])
}

/// "Literal Header Field without Indexing — New Name" (RFC 7541, 6.2.2): a zero octet,
/// then the name and the value, each a length with a 7-bit prefix (no Huffman) and bytes.
fn encode_literal(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_u8(0);
    for string in [name, value] {
        encode_length(out, string.len());
        out.extend_from_slice(string);
    }
}

/// An HPACK integer with a 7-bit prefix and the Huffman bit clear (RFC 7541, 5.1).
fn encode_length(out: &mut BytesMut, mut n: usize) {
    const PREFIX_MAX: usize = 0x7f;
    if n < PREFIX_MAX {
        out.put_u8(n as u8);
        return;
    }
    out.put_u8(PREFIX_MAX as u8);
    n -= PREFIX_MAX;
    while n >= 0x80 {
        out.put_u8((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

/// `block` as a HEADERS frame (and CONTINUATION frames past the frame size), with the
/// original's END_STREAM and priority; no padding.
fn write_header_frames(out: &mut BytesMut, original: &Pending, block: &[u8]) {
    let mut first = BytesMut::new();
    let mut flags = original.flags & (END_STREAM | PRIORITY);
    if let Some(priority) = original.priority {
        first.extend_from_slice(&priority);
    }
    let room = MAX_FRAME - first.len();
    let (head, mut rest) = block.split_at(block.len().min(room));
    first.extend_from_slice(head);
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    put_frame(out, HEADERS, flags, original.stream, &first);
    while !rest.is_empty() {
        let (chunk, more) = rest.split_at(rest.len().min(MAX_FRAME));
        let flags = if more.is_empty() { END_HEADERS } else { 0 };
        put_frame(out, CONTINUATION, flags, original.stream, chunk);
        rest = more;
    }
}

fn put_frame(out: &mut BytesMut, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let length = payload.len() as u32;
    out.extend_from_slice(&length.to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
    out.extend_from_slice(payload);
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFix<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let Mode::Through = this.mode
                && this.raw.is_empty()
            {
                // Nothing held back any more: read straight into hyper's buffer.
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            // Uninitialised: zeroing 16 KiB for every read was 0.7% of a v3 put's CPU. On
            // the stack, not as spare room in `raw`, which every connection would then
            // hold for its whole life, idle or HTTP/1 included.
            let mut chunk = [MaybeUninit::<u8>::uninit(); 16 * 1024];
            let mut read = ReadBuf::uninit(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The client is done: whatever is held back goes on as it is.
                this.mode = Mode::Through;
                if this.raw.is_empty() && this.pending.is_none() {
                    return Poll::Ready(Ok(()));
                }
                if let Some(pending) = this.pending.take() {
                    this.ready.unsplit(pending.frames);
                }
                let raw = this.raw.split();
                this.ready.unsplit(raw);
                continue;
            }
            this.raw.extend_from_slice(read.filled());
            this.process();
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_encode_as_hpack_integers() {
        for n in [0, 1, 126, 127, 128, 255, 16_383, 16_384, 1 << 21] {
            let mut out = BytesMut::new();
            encode_length(&mut out, n);
            assert_eq!(
                &out[..],
                &fluke_hpack::encoder::encode_integer(n, 7)[..],
                "{n}"
            );
        }
    }

    /// What the client sends: the preface, then header blocks as HEADERS frames.
    fn client_bytes(blocks: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = BytesMut::from(PREFACE);
        for (stream, block) in blocks {
            put_frame(&mut out, HEADERS, END_HEADERS, *stream, block);
        }
        out.to_vec()
    }

    /// What hyper would read, all at once.
    fn through(bytes: &[u8]) -> Vec<u8> {
        let mut fix = AuthorityFix::new(());
        // Fed in small pieces: frames and the preface split across reads.
        for piece in bytes.chunks(7) {
            fix.raw.extend_from_slice(piece);
            fix.process();
        }
        fix.ready.to_vec()
    }

    /// The header blocks in `bytes` (after the preface), decoded as hyper would.
    fn decoded(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut decoder = fluke_hpack::Decoder::new();
        let mut rest = &bytes[PREFACE.len()..];
        let mut blocks = Vec::new();
        while !rest.is_empty() {
            let length = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            let payload = &rest[FRAME_HEADER..FRAME_HEADER + length];
            blocks.push(decoder.decode(payload).unwrap());
            rest = &rest[FRAME_HEADER + length..];
        }
        blocks
    }

    fn request(authority: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/etcdserverpb.Maintenance/Status"),
            (":authority", authority),
            ("content-type", "application/grpc"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
    }

    /// Encoded as a client's encoder does: with indexing, so later blocks refer back.
    fn encode(encoder: &mut fluke_hpack::Encoder, headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        encoder.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])))
    }

    #[test]
    fn good_authorities_pass_through_byte_for_byte() {
        let mut encoder = fluke_hpack::Encoder::new();
        let bytes = client_bytes(&[
            (1, encode(&mut encoder, &request("127.0.0.1:2379"))),
            (3, encode(&mut encoder, &request("127.0.0.1:2379"))),
        ]);
        assert_eq!(through(&bytes), bytes);
    }

    #[test]
    fn a_url_authority_becomes_host_and_port_in_every_later_block() {
        let mut encoder = fluke_hpack::Encoder::new();
        let bytes = client_bytes(&[
            (1, encode(&mut encoder, &request("127.0.0.1:2379"))),
            (3, encode(&mut encoder, &request("http://127.0.0.1:2379"))),
            (5, encode(&mut encoder, &request("http://127.0.0.1:2379"))),
            (7, encode(&mut encoder, &request("127.0.0.1:2379"))),
        ]);
        let blocks = decoded(&through(&bytes));
        assert_eq!(blocks.len(), 4);
        for block in blocks {
            assert_eq!(block, request("127.0.0.1:2379"));
        }
    }

    #[test]
    fn http1_is_untouched() {
        let bytes = b"GET /v2/keys/a HTTP/1.1\r\nHost: http://x\r\n\r\n".to_vec();
        assert_eq!(through(&bytes), bytes);
    }

    #[test]
    fn an_unreadable_block_is_left_for_hyper_to_refuse() {
        let bytes = client_bytes(&[(1, vec![0xff, 0xff, 0xff, 0xff])]);
        assert_eq!(through(&bytes), bytes);
    }

    #[test]
    fn long_blocks_are_split_into_continuations() {
        let mut headers = request("http://h:1");
        headers.push((b"x-big".to_vec(), vec![b'a'; 40_000]));
        let mut encoder = fluke_hpack::Encoder::new();
        let out = through(&client_bytes(&[(1, encode(&mut encoder, &headers))]));
        // HEADERS without END_HEADERS, then CONTINUATIONs, the last with it.
        let mut rest = &out[PREFACE.len()..];
        let mut block = Vec::new();
        let mut kinds = Vec::new();
        while !rest.is_empty() {
            let length = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            assert!(length <= MAX_FRAME);
            kinds.push((rest[3], rest[4] & END_HEADERS != 0));
            block.extend_from_slice(&rest[FRAME_HEADER..FRAME_HEADER + length]);
            rest = &rest[FRAME_HEADER + length..];
        }
        assert_eq!(kinds.first(), Some(&(HEADERS, false)));
        assert_eq!(kinds.last(), Some(&(CONTINUATION, true)));
        let decoded = fluke_hpack::Decoder::new().decode(&block).unwrap();
        assert_eq!(decoded[3], (b":authority".to_vec(), b"h:1".to_vec()));
        assert_eq!(decoded.len(), headers.len());
    }
}
