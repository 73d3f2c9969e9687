//! The raft log's record decoder (`musubi_raftlog` record frames) and segment recovery
//! (`Log::open`) over arbitrary bytes.
//!
//! Input: segment files in the format of `musubi_fuzz::split_segments` (a first-index
//! byte, then the file's bytes; several files joined by a separator). The decoder is also
//! run over the whole input as one buffer.
//!
//! Each input is recovered twice: as it is, and with every record frame's checksum made
//! right (`with_valid_checksums`), so the fuzzer also reaches what lies behind the CRC:
//! index sequences, lengths, gaps between segments.
//!
//! Checks: nothing panics; the decoder only steps forward and stays in bounds; opening the
//! directory returns Ok or Err; an opened log reads back every index it claims to hold,
//! in order, each payload either a Raft entry or not (JSON decode may fail); recovery is a
//! fixpoint: opening the recovered directory again finds the same log.
#![no_main]

use libfuzzer_sys::fuzz_target;
use musubi_fuzz::{scratch_dir, split_segments};
use musubi_raftlog::fuzzing::{decode_record, encode_record, segment_file_name};
use musubi_raftlog::{Log, Options};

fn walk(buf: &[u8]) {
    let mut at = 0;
    loop {
        match decode_record(buf, at) {
            Ok(Some((_, payload, next))) => {
                assert!(
                    next > at && next <= buf.len(),
                    "decoder stepped to {next} from {at}"
                );
                assert_eq!(next - at, payload.len() + 16);
                at = next;
            }
            Ok(None) => {
                assert_eq!(at, buf.len());
                return;
            }
            Err(_) => return,
        }
    }
}

fn held(log: &Log) -> Option<(u64, u64)> {
    Some((log.first_index()?, log.last_index()?))
}

fn read_all(log: &Log) {
    let Some((first, last)) = held(log) else {
        return;
    };
    assert!(first <= last);
    let mut expected = u128::from(first);
    log.read(first..last.saturating_add(1), |index, payload| {
        assert_eq!(u128::from(index), expected, "records out of order");
        expected += 1;
        let _ = serde_json::from_slice::<musubi_consensus::Entry>(payload);
        Ok(())
    })
    .expect("a recovered log reads back");
    // A log whose last index is u64::MAX cannot say `..=last` with a Range: one short.
    let end = u128::from(last) + u128::from(last < u64::MAX);
    assert_eq!(expected, end, "the log held fewer records than it claimed");
}

/// `bytes` with each frame that fits re-encoded with a correct checksum; where the next
/// frame's length runs past the end, or only zeros (preallocated space) are left, the rest
/// is kept as it is.
fn with_valid_checksums(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while bytes.len() - at >= 16 && bytes[at..].iter().any(|b| *b != 0) {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len > bytes.len() - at - 16 {
            break;
        }
        let index = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        out.extend(encode_record(index, &bytes[at + 16..at + 16 + len]));
        at += 16 + len;
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

/// Writes the segments into a fresh directory and recovers it.
fn recover(segments: &[(u64, &[u8])]) {
    let dir = scratch_dir();
    for (first, bytes) in segments {
        std::fs::write(dir.path().join(segment_file_name(*first)), bytes).unwrap();
    }
    let Ok(log) = Log::open(dir.path(), Options::default()) else {
        return;
    };
    read_all(&log);
    let found = held(&log);
    drop(log);
    let log = Log::open(dir.path(), Options::default()).expect("a recovered log reopens");
    assert_eq!(held(&log), found, "a second recovery changed the log");
    read_all(&log);
}

fuzz_target!(|data: &[u8]| {
    walk(data);
    let segments = split_segments(data);
    for (_, bytes) in &segments {
        walk(bytes);
    }
    recover(&segments);

    let fixed: Vec<(u64, Vec<u8>)> = segments
        .iter()
        .map(|(first, bytes)| (*first, with_valid_checksums(bytes)))
        .collect();
    if fixed.iter().zip(&segments).any(|((_, f), (_, b))| f != b) {
        let fixed: Vec<(u64, &[u8])> = fixed.iter().map(|(f, b)| (*f, &b[..])).collect();
        recover(&fixed);
    }
});
