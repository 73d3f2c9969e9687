//! The request window's fence as a proposer meets it (`Consensus::write`): a write refused
//! for landing at or below an index whose ID the window forgot, with no earlier attempt
//! that could have been applied, is sent again above the refusal and applied once; one
//! refused every time is reported as of unknown outcome, having changed nothing.

use crate::util::{Node, open, set, value};
use musubi_consensus::ConsensusError;
use musubi_store::StateMachine;
use std::sync::atomic::Ordering;

/// Puts the window's fence at `fence`, as if it had forgotten an ID applied there.
fn fence_at(node: &Node, fence: u64) {
    let mut sm = node.sm.write();
    let now = String::from_utf8(sm.to_snapshot()).unwrap();
    let forged = now.replace(
        r#""request_fence":0"#,
        &format!(r#""request_fence":{fence}"#),
    );
    assert_ne!(forged, now);
    *sm = StateMachine::from_snapshot(forged.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_proposed_below_the_fence_is_sent_again_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), 1000).await;
    let before = node.consensus.write(set("/a", "1")).await.unwrap();
    // The next write says it lands above `before`: a fence just past that refuses it once.
    fence_at(&node, before.log_index + 1);
    let applied = node.consensus.write(set("/a", "2")).await.unwrap();
    assert_eq!(
        applied.log_index,
        before.log_index + 2,
        "one refused entry, then the write"
    );
    assert_eq!(value(&node, "/a").as_deref(), Some("2"));
    assert_eq!(
        node.applied.load(Ordering::Relaxed),
        2,
        "the hook saw no refusal"
    );
    node.consensus.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_every_time_has_an_unknown_outcome_and_changed_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), 1000).await;
    node.consensus.write(set("/a", "1")).await.unwrap();
    fence_at(&node, u64::MAX);
    let index = node.sm.read().index();
    let refused = node.consensus.write(set("/a", "2")).await.unwrap_err();
    assert!(
        matches!(refused, ConsensusError::OutcomeUnknown),
        "{refused}"
    );
    assert_eq!(value(&node, "/a").as_deref(), Some("1"));
    assert_eq!(node.sm.read().index(), index, "no revision was spent");
    node.consensus.shutdown().await;
}
