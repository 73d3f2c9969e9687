//! A batch of records encoded into one buffer, so one `append` is one write and one fsync.

use crate::record;
use std::io::Write;

/// Records with consecutive indexes, framed and ready to be written.
///
/// Payloads are encoded straight into the batch's buffer ([`WriteBatch::push_with`]), so
/// appending an entry costs no allocation of its own. A batch can be [`clear`](Self::clear)ed
/// and reused.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub(crate) buf: Vec<u8>,
    /// Where each record starts in `buf`.
    pub(crate) starts: Vec<usize>,
    pub(crate) first_index: u64,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a record with a ready-made payload.
    pub fn push(&mut self, index: u64, payload: &[u8]) {
        self.push_with(index, |w| w.write_all(payload))
            .expect("writing to a Vec never fails");
    }

    /// Appends a record whose payload `encode` writes into the batch's buffer.
    ///
    /// Indexes must be consecutive. If `encode` fails the batch is left as it was.
    pub fn push_with<E>(
        &mut self,
        index: u64,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(last) = self.last_index() {
            assert_eq!(index, last + 1, "a batch holds consecutive indexes");
        } else {
            self.first_index = index;
        }
        let start = record::begin(&mut self.buf);
        if let Err(e) = encode(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        record::finish(&mut self.buf, start, index);
        self.starts.push(start);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Encoded size in bytes, headers included.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    pub fn first_index(&self) -> Option<u64> {
        (!self.is_empty()).then_some(self.first_index)
    }

    pub fn last_index(&self) -> Option<u64> {
        (!self.is_empty()).then(|| self.first_index + self.starts.len() as u64 - 1)
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.starts.clear();
    }
}
