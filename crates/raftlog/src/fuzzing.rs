//! Entry points for the fuzz targets in `fuzz/`: the record decoder, which is otherwise
//! private. Not a stable API.

use crate::record::{self, Decoded};

/// What [`decode_record`] finds: `(index, payload, next)`, `None`, or why the tail is torn.
pub type DecodeStep<'a> = Result<Option<(u64, &'a [u8], usize)>, &'static str>;

/// One step of the record decoder at byte `at` (at most `buf.len()`), as segment recovery
/// and [`crate::durable::read`] take it: `Ok(Some((index, payload, next)))` for an intact
/// record, `Ok(None)` where `buf` ends, `Err(reason)` for a torn or corrupt tail.
pub fn decode_record(buf: &[u8], at: usize) -> DecodeStep<'_> {
    match record::decode(buf, at) {
        Decoded::Record {
            index,
            payload,
            next,
        } => Ok(Some((index, payload, next))),
        Decoded::End => Ok(None),
        Decoded::Torn(why) => Err(why),
    }
}

/// Frames `payload` as a record with `index`, as log segments and durable files store it.
pub fn encode_record(index: u64, payload: &[u8]) -> Vec<u8> {
    let mut buf = record::header(index, payload).to_vec();
    buf.extend_from_slice(payload);
    buf
}

/// The file name of the segment whose first record is `first`.
pub fn segment_file_name(first: u64) -> String {
    crate::segment::file_name(first)
}
