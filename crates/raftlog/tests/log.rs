//! The log's promises, checked against real files in a temporary directory.

use musubi_raftlog::{Log, Options, WriteBatch, durable};
use proptest::prelude::*;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

fn small_segments() -> Options {
    Options { segment_bytes: 256 }
}

fn payload(index: u64) -> Vec<u8> {
    format!("entry-{index}-{}", "x".repeat((index % 7) as usize)).into_bytes()
}

/// Appends `range` in batches of up to four records and waits until they are durable.
fn append(log: &Log, range: std::ops::Range<u64>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut batch = WriteBatch::new();
    for i in range {
        batch.push(i, &payload(i));
        if batch.len() == 4 {
            log.append(&batch, Box::new(|_| {})).unwrap();
            batch.clear();
        }
    }
    // Completions run in order, so the last one vouches for the whole range.
    log.append(&batch, Box::new(move |r| tx.send(r).unwrap()))
        .unwrap();
    rx.recv().unwrap().unwrap();
}

fn read_all(log: &Log) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    log.read(0..u64::MAX, |i, p| {
        out.push((i, p.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

fn expected(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
    range.map(|i| (i, payload(i))).collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    out.sort();
    out
}

#[test]
fn appended_records_read_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), small_segments()).unwrap();
        append(&log, 1..20);
        append(&log, 20..41);
        assert_eq!(read_all(&log), expected(1..41));
    }
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert!(segments(dir.path()).len() > 1, "small segments roll over");
    assert_eq!((log.first_index(), log.last_index()), (Some(1), Some(40)));
    assert_eq!(read_all(&log), expected(1..41));
}

#[test]
fn reads_are_clamped_to_the_records_held() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    append(&log, 5..30);
    let mut seen = Vec::new();
    log.read(10..15, |i, _| {
        seen.push(i);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, [10, 11, 12, 13, 14]);
    let mut none = 0;
    log.read(30..40, |_, _| {
        none += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(none, 0);
}

#[test]
fn an_append_that_skips_an_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap();
    append(&log, 1..5);
    let mut batch = WriteBatch::new();
    batch.push(7, b"gap");
    let err = log.append(&batch, Box::new(|_| {})).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(log.last_index(), Some(4));
}

#[test]
fn truncate_from_drops_the_suffix_durably_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), small_segments()).unwrap();
        append(&log, 1..40);
        log.truncate_from(13).unwrap();
        assert_eq!(log.last_index(), Some(12));
        append(&log, 13..16);
    }
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(read_all(&log), expected(1..16));
}

#[test]
fn purge_hides_the_prefix_and_deletes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    append(&log, 1..40);
    let before = segments(dir.path()).len();
    log.purge_upto(25).unwrap();
    assert_eq!(log.first_index(), Some(26));
    assert_eq!(read_all(&log), expected(26..40));
    assert!(segments(dir.path()).len() < before);
}

#[test]
fn after_purging_everything_the_log_restarts_at_any_later_index() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), small_segments()).unwrap();
        append(&log, 1..10);
        log.purge_upto(100).unwrap();
        assert_eq!(log.first_index(), None);
        append(&log, 101..105);
    }
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(read_all(&log), expected(101..105));
}

/// A segment's records without the zero-filled space preallocated after them (the test
/// payloads never end in a zero byte).
fn records_only(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

#[test]
fn preallocated_space_is_not_mistaken_for_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), Options::default()).unwrap();
        append(&log, 1..11);
    }
    let seg = segments(dir.path()).pop().unwrap();
    let allocated = std::fs::metadata(&seg).unwrap().len();
    assert!(allocated > records_only(std::fs::read(&seg).unwrap()).len() as u64);
    let log = Log::open(dir.path(), Options::default()).unwrap();
    assert_eq!(read_all(&log), expected(1..11));
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        allocated,
        "nothing was cut"
    );
    append(&log, 11..12);
    assert_eq!(read_all(&log), expected(1..12));
}

#[test]
fn a_log_with_a_torn_tail_keeps_every_whole_record() {
    // Cut the last segment at every byte position inside its last two records.
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), Options::default()).unwrap();
        append(&log, 1..11);
    }
    let seg = segments(dir.path()).pop().unwrap();
    let full = records_only(std::fs::read(&seg).unwrap());
    let record = |i: u64| 16 + payload(i).len();
    let end_of_8 = full.len() - record(10) - record(9);
    for cut in end_of_8..full.len() {
        std::fs::write(&seg, &full[..cut]).unwrap();
        let log = Log::open(dir.path(), Options::default()).unwrap();
        let keep = if cut < end_of_8 + record(9) { 9 } else { 10 };
        assert_eq!(read_all(&log), expected(1..keep), "cut at {cut}");
        let whole = if keep == 9 {
            end_of_8
        } else {
            end_of_8 + record(9)
        };
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len() as usize,
            whole,
            "the torn bytes are cut off"
        );
        append(&log, keep..keep + 1);
        drop(log);
        std::fs::write(&seg, &full).unwrap();
    }
}

#[test]
fn a_corrupt_byte_in_the_tail_cuts_the_log_before_that_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), Options::default()).unwrap();
        append(&log, 1..11);
    }
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = records_only(std::fs::read(&seg).unwrap());
    let len = bytes.len();
    bytes[len - 3] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap();
    assert_eq!(read_all(&log), expected(1..10));
    append(&log, 10..12);
    assert_eq!(read_all(&log), expected(1..12));
}

#[test]
fn a_damaged_segment_drops_the_segments_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), small_segments()).unwrap();
        append(&log, 1..60);
    }
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    let len = records_only(std::fs::read(&segs[1]).unwrap()).len() as u64;
    let f = OpenOptions::new().write(true).open(&segs[1]).unwrap();
    f.set_len(len - 1).unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    let last = log.last_index().unwrap();
    assert_eq!(read_all(&log), expected(1..last + 1));
    assert_eq!(segments(dir.path()).len(), 2);
}

#[test]
fn records_at_the_top_of_the_index_space_are_cut_not_a_panic() {
    // Found with fuzz/wal_records: a segment holding an intact record with index u64::MAX
    // made `Segment::next()` overflow (a panic in debug builds, an "empty" log in release).
    use musubi_raftlog::fuzzing::{encode_record, segment_file_name};
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join(segment_file_name(u64::MAX));
    std::fs::write(&seg, encode_record(u64::MAX, b"x")).unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap();
    assert_eq!((log.first_index(), log.last_index()), (None, None));
    drop(log);

    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join(segment_file_name(u64::MAX - 1));
    let mut bytes = encode_record(u64::MAX - 1, b"kept");
    bytes.extend(encode_record(u64::MAX, b"cut"));
    std::fs::write(&seg, bytes).unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap();
    assert_eq!(
        (log.first_index(), log.last_index()),
        (Some(u64::MAX - 1), Some(u64::MAX - 1))
    );
    let mut seen = Vec::new();
    log.read(0..u64::MAX, |i, p| {
        seen.push((i, p.to_vec()));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, [(u64::MAX - 1, b"kept".to_vec())]);
}

#[test]
fn durable_files_round_trip_and_report_damage() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(durable::read(dir.path(), "vote").unwrap(), None);
    durable::write_atomic(dir.path(), "vote", &[b"meta", b"body"]).unwrap();
    durable::write_atomic(dir.path(), "vote", &[b"meta2", b""]).unwrap();
    assert_eq!(
        durable::read(dir.path(), "vote").unwrap(),
        Some(vec![b"meta2".to_vec(), Vec::new()])
    );
    let path = dir.path().join("vote");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[18] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(
        durable::read(dir.path(), "vote").unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
    durable::remove(dir.path(), "vote").unwrap();
    assert_eq!(durable::read(dir.path(), "vote").unwrap(), None);
}

#[derive(Clone, Debug)]
enum Op {
    Append(u8),
    TruncateFrom(u8),
    Purge(u8),
    Reopen,
    TearTail(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..20).prop_map(Op::Append),
        1 => any::<u8>().prop_map(Op::TruncateFrom),
        1 => any::<u8>().prop_map(Op::Purge),
        1 => Just(Op::Reopen),
        1 => (1u8..40).prop_map(Op::TearTail),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The log behaves like a vector of records, across reopens and torn tails.
    #[test]
    fn the_log_matches_a_simple_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Some(Log::open(dir.path(), small_segments()).unwrap());
        // The model: the records held, as a range of indexes, and the purge point.
        let (mut first, mut next, mut purged) = (1u64, 1u64, 0u64);
        for op in ops {
            let l = log.as_ref().unwrap();
            match op {
                Op::Append(n) => {
                    let start = next.max(purged + 1);
                    if next <= purged { first = start; }
                    append(l, start..start + n as u64);
                    next = start + n as u64;
                }
                Op::TruncateFrom(k) => {
                    let at = first + k as u64 % (next - first + 1);
                    if at > first && at > purged {
                        l.truncate_from(at).unwrap();
                        next = next.min(at);
                    }
                }
                Op::Purge(k) => {
                    if next > first {
                        let upto = first + k as u64 % (next - first);
                        l.purge_upto(upto).unwrap();
                        purged = purged.max(upto);
                    }
                }
                Op::Reopen => {
                    drop(log.take());
                    log = Some(Log::open(dir.path(), small_segments()).unwrap());
                    // The purge point is the owner's to remember and re-apply.
                    log.as_ref().unwrap().purge_upto(purged).unwrap();
                }
                Op::TearTail(n) => {
                    drop(log.take());
                    if let Some(seg) = segments(dir.path()).pop() {
                        let f = OpenOptions::new().write(true).open(&seg).unwrap();
                        let len = f.metadata().unwrap().len();
                        f.set_len(len.saturating_sub(n as u64)).unwrap();
                    }
                    let l = Log::open(dir.path(), small_segments()).unwrap();
                    l.purge_upto(purged).unwrap();
                    next = l.last_index().map_or(next.min(purged + 1).max(first.min(purged + 1)), |i| i + 1);
                    log = Some(l);
                }
            }
            let l = log.as_ref().unwrap();
            let lo = first.max(purged + 1);
            prop_assert_eq!(read_all(l), expected(lo..next.max(lo)));
        }
    }
}
