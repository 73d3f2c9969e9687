//! Snapshots at rest: `StateMachine::from_snapshot` on arbitrary bytes, and the durable
//! file reader (`musubi_raftlog::durable::read`) on an arbitrary `current.snap`, whose two
//! parts are openraft's metadata (JSON) and the store's snapshot, as the consensus layer
//! reads them at start-up.
//!
//! Input: the bytes, used both as a store snapshot and as the file's contents.
//!
//! Checks: nothing panics; a restored keyspace can be listed and snapshots again, and that
//! snapshot restores to the same bytes (restore is a fixpoint after one round).
#![no_main]

use libfuzzer_sys::fuzz_target;
use musubi_fuzz::{assert_json_round_trip, scratch_dir};
use musubi_raftlog::durable;
use musubi_store::StateMachine;

fn restore(bytes: &[u8]) {
    let Ok(sm) = StateMachine::from_snapshot(bytes) else {
        return;
    };
    let _ = sm.get("/", true, 0);
    let _ = sm.next_expiry();
    let once = sm.to_snapshot();
    let again = StateMachine::from_snapshot(&once).expect("a taken snapshot restores");
    assert_eq!(
        again.to_snapshot(),
        once,
        "snapshot round trip changed the keyspace"
    );
}

fuzz_target!(|data: &[u8]| {
    restore(data);

    let dir = scratch_dir();
    std::fs::write(dir.path().join("current.snap"), data).unwrap();
    let Ok(Some(parts)) = durable::read(dir.path(), "current.snap") else {
        return;
    };
    if let [meta, snapshot] = &parts[..] {
        if let Ok(meta) = serde_json::from_slice::<musubi_consensus::SnapshotMeta>(meta) {
            assert_json_round_trip(&meta);
        }
        restore(snapshot);
    }
});
