//! Helpers shared by the fuzz targets and the seed generator.

use musubi_store::{Compare, Expiry, Outcome, Proposal, Request, StateMachine, V2Op};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where the targets that touch files make their temporary directories: a tmpfs when there
/// is one, so the fsyncs that recovery does cost nothing.
pub fn scratch_dir() -> tempfile::TempDir {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() && tempfile::tempdir_in(&shm).is_ok() {
            shm
        } else {
            std::env::temp_dir()
        }
    });
    tempfile::tempdir_in(base).expect("a scratch directory")
}

/// A value that decoded must survive an encode/decode round trip unchanged: what a member
/// decodes it may forward or store again (as JSON), and another member must read it back.
pub fn assert_json_round_trip<T: Serialize + DeserializeOwned>(value: &T) {
    let once = serde_json::to_vec(value).expect("a decoded value encodes");
    let again: T = serde_json::from_slice(&once).expect("an encoded value decodes");
    let twice = serde_json::to_vec(&again).expect("a decoded value encodes");
    assert_eq!(once, twice, "JSON round trip changed the value");
}

/// Requests that give the base keyspace some files, a directory, a TTL and an auth user.
pub fn base_requests() -> Vec<Request> {
    let set = |key: &str, value: Option<&str>, expiry| Request::V2 {
        op: V2Op::Set {
            key: key.into(),
            value: value.map(str::to_string),
            expiry,
            refresh: false,
        },
        now_ms: 1_000,
    };
    vec![
        set("/a", Some("1"), Expiry::Permanent),
        set("/dir/b", Some("2"), Expiry::Permanent),
        set("/dir/sub/c", Some("3"), Expiry::At(5_000)),
        set("/empty", None, Expiry::Permanent),
        set("/_hidden", Some("h"), Expiry::Permanent),
        Request::V2 {
            op: V2Op::Create {
                key: "/queue".into(),
                value: Some("job".into()),
                expiry: Expiry::Permanent,
                in_order: true,
            },
            now_ms: 1_000,
        },
        Request::V2 {
            op: V2Op::CompareAndSwap {
                key: "/a".into(),
                value: "4".into(),
                expiry: Expiry::Permanent,
                refresh: false,
                compare: Compare {
                    prev_value: Some("1".into()),
                    prev_index: None,
                },
            },
            now_ms: 1_000,
        },
    ]
}

/// A Raft entry payload (`TypeConfig::D`) carrying `request`, and nothing else.
pub fn payload_of<D: DeserializeOwned>(request: &Request) -> D {
    serde_json::from_value(serde_json::to_value(request).expect("a request encodes"))
        .expect("a payload decodes from its request alone")
}

/// A fresh copy of a small, consistent keyspace (restored from its snapshot each time).
pub fn base_state_machine() -> StateMachine {
    static SNAPSHOT: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = SNAPSHOT.get_or_init(|| {
        let mut sm = StateMachine::new();
        for r in base_requests() {
            sm.apply(&r);
        }
        sm.to_snapshot()
    });
    StateMachine::from_snapshot(bytes).expect("the base snapshot restores")
}

/// Applies `proposal` to the base keyspace as every member applies a committed entry, then
/// again as a retry would be (with an ID, it must change nothing and answer as the first
/// time), reads what it named, and checks that the result still snapshots and restores.
pub fn apply_to_base(proposal: &Proposal) {
    let mut sm = base_state_machine();
    // As the entry after the base, then as a retry right after it: a window that has
    // forgotten nothing refuses nothing, whatever the proposal says it lands above.
    let first = sm.apply_proposal(proposal, 1);
    if proposal.id.is_some() {
        let before = sm.to_snapshot();
        let again = sm.apply_proposal(proposal, 2);
        assert_eq!(
            again,
            Outcome::Repeated(first.into_response()),
            "a retry answered differently"
        );
        assert_eq!(sm.to_snapshot(), before, "a retry changed the keyspace");
    }
    let _ = sm.apply(&Request::Expire { now_ms: 10_000 });
    if let Request::V2 { op, now_ms } = &proposal.request {
        let _ = sm.get(op.key(), true, *now_ms);
    }
    let _ = sm.get("/", true, 0);
    let bytes = sm.to_snapshot();
    let restored = StateMachine::from_snapshot(&bytes).expect("a taken snapshot restores");
    assert_eq!(
        restored.to_snapshot(),
        bytes,
        "snapshot round trip changed the keyspace"
    );
}

// ---- Go's url.ParseQuery, the reference for the v2 form parser ----

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn hex_value(b: u8) -> u8 {
    (b as char).to_digit(16).expect("checked hex") as u8
}

/// Go's `url.QueryUnescape` on bytes: `None` where Go reports an `EscapeError`.
pub fn go_query_unescape(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                if i + 2 >= s.len() || !is_hex(s[i + 1]) || !is_hex(s[i + 2]) {
                    return None;
                }
                out.push(hex_value(s[i + 1]) << 4 | hex_value(s[i + 2]));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Go's `url.ParseQuery`: the pairs in order, or `None` if Go reports an error (it keeps
/// parsing after one, but the request is refused all the same).
pub fn go_parse_query(raw: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut pairs = Vec::new();
    let mut failed = false;
    for piece in raw.split(|b| *b == b'&') {
        if piece.contains(&b';') {
            failed = true;
            continue;
        }
        if piece.is_empty() {
            continue;
        }
        let (k, v) = match piece.iter().position(|b| *b == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &b""[..]),
        };
        match (go_query_unescape(k), go_query_unescape(v)) {
            (Some(k), Some(v)) => pairs.push((k, v)),
            _ => failed = true,
        }
    }
    (!failed).then_some(pairs)
}

// ---- The wal_records input format ----

/// Separates the segment files in a `wal_records` input.
pub const SEGMENT_SEPARATOR: &[u8] = b"\xfe\xfeSEGMENT\xfe\xfe";

/// Splits a `wal_records` input into segment files: `(first index, file bytes)`.
///
/// The input is chunks joined by [`SEGMENT_SEPARATOR`]; each chunk's first byte `s` picks
/// the segment's first index (`s < 0xf0`: the previous segment's first index plus `s`, from
/// 0 for the first chunk; otherwise `u64::MAX - (s - 0xf0)`, to probe the top of the index
/// space), and the rest of the chunk is the file's contents.
pub fn split_segments(data: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut first = 0u64;
    let mut rest = data;
    loop {
        let (chunk, next) = match find(rest, SEGMENT_SEPARATOR) {
            Some(at) => (&rest[..at], Some(&rest[at + SEGMENT_SEPARATOR.len()..])),
            None => (rest, None),
        };
        if let Some((&sel, bytes)) = chunk.split_first() {
            first = if sel < 0xf0 {
                first.saturating_add(sel as u64)
            } else {
                u64::MAX - (sel - 0xf0) as u64
            };
            out.push((first, bytes));
        }
        match next {
            Some(n) if out.len() < 8 => rest = n,
            _ => return out,
        }
    }
}

/// Joins segment files into a `wal_records` input (the inverse of [`split_segments`] for
/// increasing first indexes less than 0xf0 apart).
pub fn join_segments(segments: &[(u64, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = 0;
    for (i, (first, bytes)) in segments.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(SEGMENT_SEPARATOR);
        }
        let delta = first - prev;
        assert!(delta < 0xf0, "segments too far apart for the input format");
        out.push(delta as u8);
        out.extend_from_slice(bytes);
        prev = *first;
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
