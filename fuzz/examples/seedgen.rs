//! Writes the generated part of the seed corpora: real values, serialized the way musubi
//! puts them on the wire or on disk. Run from `fuzz/`:
//!
//! ```text
//! cargo +nightly run --example seedgen        # writes corpus/<target>/gen-*
//! ```
//!
//! The seeds taken from a running server (`corpus/*/server-*`) are made by
//! `seeds-from-server.sh` instead.

use musubi_consensus::{
    Entry, LogId, Member, MembershipChange, Snapshot, SnapshotMeta, StoredMembership, TypeConfig,
    Vote,
};
use musubi_fuzz::{base_requests, base_state_machine, join_segments, payload_of, scratch_dir};
use musubi_raftlog::{Log, Options, WriteBatch, durable};
use musubi_store::{AuthOp, Compare, Expiry, PasswordHash, Permissions, Request, Role, V2Op};
use openraft::Membership;
use openraft::entry::RaftEntry;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::type_config::alias::LeaderIdOf;
use openraft::vote::RaftLeaderIdExt;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("gen-{name}")), bytes).unwrap();
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn member(name: &str, port: u16) -> Member {
    Member {
        name: name.into(),
        peer_urls: vec![format!("http://127.0.0.1:{port}")],
        client_urls: vec![format!("http://127.0.0.1:{}", port - 1)],
        is_learner: false,
    }
}

fn log_id(term: u64, node: u64, index: u64) -> LogId {
    LogId::new(
        <LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(term, node),
        index,
    )
}

fn membership() -> Membership<u64, Member> {
    let members = BTreeMap::from([(1, member("m1", 2380)), (2, member("m2", 2382))]);
    Membership::new(vec![BTreeSet::from([1, 2])], members).unwrap()
}

fn requests() -> Vec<Request> {
    let mut out = base_requests();
    out.extend([
        Request::V2 {
            op: V2Op::Update {
                key: "/dir".into(),
                value: None,
                expiry: Expiry::At(60_000),
                refresh: true,
            },
            now_ms: 2_000,
        },
        Request::V2 {
            op: V2Op::Delete {
                key: "/dir".into(),
                dir: true,
                recursive: true,
            },
            now_ms: 2_000,
        },
        Request::V2 {
            op: V2Op::CompareAndDelete {
                key: "/a".into(),
                compare: Compare {
                    prev_value: None,
                    prev_index: Some(7),
                },
            },
            now_ms: 2_000,
        },
        Request::Expire { now_ms: 6_000 },
        Request::Auth(AuthOp::CreateRole {
            role: Role {
                name: "reader".into(),
                kv: Permissions {
                    read: Some(vec!["/dir/*".into()]),
                    write: None,
                },
            },
        }),
        Request::Auth(AuthOp::CreateUser {
            name: "root".into(),
            password: Some(PasswordHash::new("secret", "salt")),
            roles: Some(vec!["root".into()]),
        }),
        Request::Auth(AuthOp::UpdateUser {
            name: "alice".into(),
            password: None,
            grant: vec!["reader".into()],
            revoke: vec![],
        }),
        Request::Auth(AuthOp::Enable),
    ]);
    out
}

fn entries() -> Vec<Entry> {
    let mut out = vec![
        Entry::new_blank(log_id(1, 1, 1)),
        Entry::new_membership(log_id(1, 1, 2), membership()),
    ];
    for (i, r) in requests().into_iter().enumerate() {
        out.push(Entry::new_normal(
            log_id(1, 1, 3 + i as u64),
            payload_of(&r),
        ));
    }
    out
}

fn snapshot_meta() -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(log_id(2, 1, 40)),
        last_membership: StoredMembership::new(Some(log_id(1, 1, 2)), membership()),
    }
}

fn v2_query() {
    // flags: 1 = query string, 2 = form body, 4 = GET; query, NUL, body.
    let cases: &[(&str, u8, &str, &str)] = &[
        ("get-plain", 5, "", ""),
        ("get-recursive-sorted", 5, "recursive=true&sorted=true", ""),
        ("get-quorum", 5, "quorum=true", ""),
        ("watch", 5, "wait=true&waitIndex=7", ""),
        (
            "watch-stream",
            5,
            "wait=true&recursive=true&stream=true",
            "",
        ),
        ("put-value", 1, "value=bar", ""),
        ("put-ttl", 1, "value=bar&ttl=5", ""),
        ("put-dir", 1, "dir=true", ""),
        ("put-dir-ttl-update", 1, "ttl=&prevExist=true&dir=true", ""),
        ("put-create", 1, "prevExist=false&value=x", ""),
        ("put-cas-value", 1, "prevValue=bar&value=baz", ""),
        ("put-cas-index", 1, "prevIndex=3&value=x", ""),
        ("put-refresh", 1, "refresh=true&ttl=10&prevExist=true", ""),
        (
            "put-no-value-on-success",
            1,
            "noValueOnSuccess=true&value=1",
            "",
        ),
        ("put-form", 2, "", "value=hello+world%21&ttl=30"),
        (
            "put-form-and-query",
            3,
            "value=q&ttl=1",
            "value=body%2Fslash",
        ),
        ("post-queue", 2, "", "value=job1"),
        ("delete-dir", 1, "dir=true", ""),
        ("delete-recursive", 1, "recursive=true", ""),
        ("delete-cad-value", 1, "prevValue=x", ""),
        ("delete-cad-index", 1, "prevIndex=4", ""),
        ("bad-escape", 1, "value=%zz", ""),
        ("bad-short-escape", 1, "value=%4", ""),
        ("bad-ttl", 1, "ttl=abc", ""),
        ("bad-semicolon", 1, "a;b=c", ""),
        ("bad-wait-on-put", 1, "wait=true", ""),
        ("bad-refresh-value", 1, "refresh=true&value=1&ttl=1", ""),
        ("path-like", 5, "//a/../b/./c/", ""),
        ("utf8-value", 1, "value=%E3%81%82%E3%81%84", ""),
    ];
    for (name, flags, query, body) in cases {
        let mut input = vec![*flags];
        input.extend_from_slice(query.as_bytes());
        input.push(0);
        input.extend_from_slice(body.as_bytes());
        write("v2_query", name, &input);
    }
}

fn peer_rpc() {
    let vote = Vote::new_committed(2, 1);
    let all = entries();
    write(
        "peer_rpc",
        "append-heartbeat",
        &json(&AppendEntriesRequest::<TypeConfig> {
            vote,
            prev_log_id: Some(log_id(1, 1, 9)),
            entries: vec![],
            leader_commit: Some(log_id(1, 1, 9)),
        }),
    );
    write(
        "peer_rpc",
        "append-entries",
        &json(&AppendEntriesRequest::<TypeConfig> {
            vote,
            prev_log_id: None,
            entries: all.clone(),
            leader_commit: Some(log_id(1, 1, 2)),
        }),
    );
    write(
        "peer_rpc",
        "vote",
        &json(&VoteRequest::<TypeConfig>::new(
            Vote::new(3, 2),
            Some(log_id(2, 1, 40)),
        )),
    );
    write(
        "peer_rpc",
        "vote-empty-log",
        &json(&VoteRequest::<TypeConfig>::new(Vote::new(1, 1), None)),
    );
    write(
        "peer_rpc",
        "transfer-leader",
        &json(&TransferLeaderRequest::<TypeConfig>::new(
            vote,
            2,
            Some(log_id(2, 1, 40)),
        )),
    );
    // /raft/snapshot: 4-byte big-endian head length, JSON {vote, meta}, snapshot bytes.
    let head = serde_json::json!({ "vote": vote, "meta": snapshot_meta() });
    let head = serde_json::to_vec(&head).unwrap();
    let mut body = (head.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(&head);
    body.extend_from_slice(&base_state_machine().to_snapshot());
    write("peer_rpc", "snapshot", &body);
    let proposals: Vec<<TypeConfig as openraft::RaftTypeConfig>::D> =
        requests().iter().map(payload_of).collect();
    for (i, proposal) in proposals.iter().enumerate() {
        write("peer_rpc", &format!("propose-{i:02}"), &json(proposal));
    }
    write("peer_rpc", "propose-batch", &json(&proposals));
    write(
        "peer_rpc",
        "publish",
        &json(&(0x8e9e05c52164694du64, member("m1", 2380))),
    );
    let changes = [
        MembershipChange::Add {
            name: String::new(),
            peer_urls: vec!["http://127.0.0.1:2480".into()],
            client_urls: vec![],
            is_learner: true,
        },
        MembershipChange::Remove { id: 2 },
        MembershipChange::UpdatePeerUrls {
            id: 2,
            peer_urls: vec!["https://10.0.0.2:2380".into()],
        },
        MembershipChange::Promote { id: 3 },
    ];
    for (i, c) in changes.iter().enumerate() {
        write("peer_rpc", &format!("membership-{i}"), &json(c));
    }
    write("peer_rpc", "join", &json(&member("m3", 2384)));
}

fn wal_records() {
    // Real segments, written by the log itself: small segment size, so several files.
    let dir = scratch_dir();
    let log = Log::open(dir.path(), Options { segment_bytes: 600 }).unwrap();
    for entry in entries() {
        let mut batch = WriteBatch::new();
        batch.push(entry.log_id.index, &json(&entry));
        let (tx, rx) = std::sync::mpsc::channel();
        log.append(&batch, Box::new(move |r| tx.send(r).unwrap()))
            .unwrap();
        rx.recv().unwrap().unwrap();
    }
    drop(log);
    let mut files: Vec<(u64, Vec<u8>)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let first = name.strip_suffix(".wal")?.parse().ok()?;
            let mut bytes = std::fs::read(&p).ok()?;
            // Segments are preallocated with zeros: keep a few, not megabytes.
            let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            bytes.truncate(end + 8);
            Some((first, bytes))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected several segments");
    let all: Vec<(u64, &[u8])> = files.iter().map(|(f, b)| (*f, &b[..])).collect();
    write("wal_records", "segments", &join_segments(&all));
    write("wal_records", "one-segment", &join_segments(&all[..1]));
    // A torn tail: the last segment cut in the middle of its last record.
    let (first, last) = &files[files.len() - 1];
    let mut torn = all.clone();
    let cut = last.len() - 20;
    torn.pop();
    torn.push((*first, &last[..cut]));
    write("wal_records", "torn-tail", &join_segments(&torn));
    // A gap: the second segment announces the wrong first index.
    let mut gap = all.clone();
    gap[1].0 += 1;
    write("wal_records", "gap", &join_segments(&gap));
}

fn snapshot() {
    write(
        "snapshot",
        "store-empty",
        &musubi_store::StateMachine::new().to_snapshot(),
    );
    let mut sm = base_state_machine();
    for r in requests() {
        sm.apply(&r);
    }
    let store = sm.to_snapshot();
    write("snapshot", "store", &store);
    // current.snap as the consensus layer writes it: framed meta and store snapshot.
    let dir = scratch_dir();
    let snap = Snapshot {
        meta: snapshot_meta(),
        snapshot: store,
    };
    let meta = json(&snap.meta);
    durable::write_atomic(dir.path(), "current.snap", &[&meta, &snap.snapshot]).unwrap();
    write(
        "snapshot",
        "current-snap",
        &std::fs::read(dir.path().join("current.snap")).unwrap(),
    );
    // The vote file is the same framing with one part.
    durable::write_atomic(dir.path(), "vote", &[&json(&Vote::new_committed(2, 1))]).unwrap();
    write(
        "snapshot",
        "vote-file",
        &std::fs::read(dir.path().join("vote")).unwrap(),
    );
}

fn main() {
    v2_query();
    peer_rpc();
    wal_records();
    snapshot();
    println!("seeds written under corpus/");
}
