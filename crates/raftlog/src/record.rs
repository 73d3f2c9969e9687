//! The on-disk record frame shared by log segments and the small durable files.
//!
//! ```text
//! | len: u32 LE | crc32: u32 LE | index: u64 LE | payload: len bytes |
//! ```
//! The CRC covers the index and the payload, so a record that a crash tore, or that a disk
//! flipped a bit in, is recognised and never handed to the caller.

/// Bytes in front of every payload.
pub(crate) const HEADER: usize = 16;

/// No single record is this large; a longer length field is garbage, not an allocation request.
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

/// Reserves a header at the end of `buf`; the caller appends the payload, then calls [`finish`].
pub(crate) fn begin(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    start
}

/// Fills in the header of the record that starts at `start` and runs to the end of `buf`.
pub(crate) fn finish(buf: &mut [u8], start: usize, index: u64) {
    let len = buf.len() - start - HEADER;
    assert!(
        len <= MAX_PAYLOAD,
        "a log record of {len} bytes exceeds the 1 GiB limit"
    );
    buf[start + 8..start + HEADER].copy_from_slice(&index.to_le_bytes());
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The header for `payload` kept apart from it, for writers that do not copy the payload.
pub(crate) fn header(index: u64, payload: &[u8]) -> [u8; HEADER] {
    let mut record = Streamed::new(index);
    record.update(payload);
    record.header().unwrap_or_else(|| {
        panic!(
            "a record of {} bytes exceeds the 1 GiB limit",
            payload.len()
        )
    })
}

/// The header of a record whose payload is written piece by piece as it is produced, so
/// it is never whole in memory: the header goes in front of it once the last piece is out.
pub(crate) struct Streamed {
    index: u64,
    crc: crc32fast::Hasher,
    len: usize,
}

impl Streamed {
    pub(crate) fn new(index: u64) -> Streamed {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&index.to_le_bytes());
        Streamed { index, crc, len: 0 }
    }

    pub(crate) fn update(&mut self, piece: &[u8]) {
        self.crc.update(piece);
        self.len += piece.len();
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The header; `None` if the payload outgrew [`MAX_PAYLOAD`].
    pub(crate) fn header(self) -> Option<[u8; HEADER]> {
        if self.len > MAX_PAYLOAD {
            return None;
        }
        let mut h = [0; HEADER];
        h[0..4].copy_from_slice(&(self.len as u32).to_le_bytes());
        h[4..8].copy_from_slice(&self.crc.finalize().to_le_bytes());
        h[8..16].copy_from_slice(&self.index.to_le_bytes());
        Some(h)
    }
}

/// What lies at one position of a buffer of records.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    Record {
        index: u64,
        payload: &'a [u8],
        next: usize,
    },
    /// The buffer ends exactly here.
    End,
    /// Something that is not a whole, intact record: a torn or corrupt tail.
    Torn(&'static str),
}

/// Decodes the record that starts at `at`.
pub(crate) fn decode(buf: &[u8], at: usize) -> Decoded<'_> {
    let rest = &buf[at..];
    if rest.is_empty() {
        return Decoded::End;
    }
    if rest.len() < HEADER {
        return Decoded::Torn("short record header");
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    if len > MAX_PAYLOAD {
        return Decoded::Torn("impossible record length");
    }
    if rest.len() < HEADER + len {
        return Decoded::Torn("short record payload");
    }
    if crc32fast::hash(&rest[8..HEADER + len]) != crc {
        return Decoded::Torn("record checksum mismatch");
    }
    let index = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
    Decoded::Record {
        index,
        payload: &rest[HEADER..HEADER + len],
        next: at + HEADER + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(index: u64, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let start = begin(&mut buf);
        buf.extend_from_slice(payload);
        finish(&mut buf, start, index);
        buf
    }

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let buf = one(42, b"hello");
        assert_eq!(
            decode(&buf, 0),
            Decoded::Record {
                index: 42,
                payload: b"hello",
                next: buf.len()
            }
        );
        assert_eq!(decode(&buf, buf.len()), Decoded::End);
    }

    #[test]
    fn a_detached_header_matches_an_inline_one() {
        let buf = one(9, b"abc");
        assert_eq!(header(9, b"abc")[..], buf[..HEADER]);
    }

    #[test]
    fn every_truncation_of_a_record_is_torn() {
        let buf = one(7, b"payload bytes");
        for cut in 1..buf.len() {
            assert!(
                matches!(decode(&buf[..cut], 0), Decoded::Torn(_)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let buf = one(7, b"payload");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    matches!(decode(&bad, 0), Decoded::Torn(_)),
                    "flip {byte}:{bit}"
                );
            }
        }
    }
}
