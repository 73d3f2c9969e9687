//! Property tests of the v2 state machine over random operation sequences.

use musubi_store::{
    Compare, Expiry, Outcome, Proposal, Request, RequestId, Response, StateMachine, V2Op,
};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "_h", "c"]), 1..4)
        .prop_map(|parts| format!("/{}", parts.join("/")))
}

fn expiry() -> impl Strategy<Value = Expiry> {
    prop_oneof![Just(Expiry::Permanent), (0u64..20).prop_map(Expiry::At)]
}

fn op() -> impl Strategy<Value = Request> {
    let value = prop::option::of(prop::sample::select(vec![
        "x".to_string(),
        "y".to_string(),
        String::new(),
    ]));
    prop_oneof![
        (key(), value.clone(), expiry(), any::<bool>()).prop_map(
            |(key, value, expiry, refresh)| V2Op::Set {
                key,
                value,
                expiry,
                refresh
            }
        ),
        (key(), value.clone(), expiry(), any::<bool>()).prop_map(
            |(key, value, expiry, in_order)| V2Op::Create {
                key,
                value,
                expiry,
                in_order
            }
        ),
        (key(), value, expiry(), any::<bool>()).prop_map(|(key, value, expiry, refresh)| {
            V2Op::Update {
                key,
                value,
                expiry,
                refresh,
            }
        }),
        (key(), prop::option::of(0u64..10)).prop_map(|(key, prev_index)| V2Op::CompareAndSwap {
            key,
            value: "z".into(),
            expiry: Expiry::Permanent,
            refresh: false,
            compare: Compare {
                prev_value: Some("x".into()),
                prev_index
            }
        }),
        (key(), any::<bool>(), any::<bool>()).prop_map(|(key, dir, recursive)| V2Op::Delete {
            key,
            dir,
            recursive
        }),
        (key(), prop::option::of(0u64..10)).prop_map(|(key, prev_index)| V2Op::CompareAndDelete {
            key,
            compare: Compare {
                prev_value: None,
                prev_index
            }
        }),
    ]
    .prop_map(|op| Request::V2 { op, now_ms: 0 })
    .boxed()
    .prop_union(
        (0u64..25)
            .prop_map(|now_ms| Request::Expire { now_ms })
            .boxed(),
    )
}

/// A proposal can come from the peer port, uncleaned: `//x` once made an entry named `/`
/// in the root, and a recursive listing of the root then recursed until the stack overflowed
/// (found by fuzz/peer_rpc). The store cleans keys as etcd's does.
#[test]
fn keys_are_made_canonical_on_apply_and_snapshots_with_others_are_refused() {
    let mut sm = StateMachine::new();
    let set = |key: &str| Request::V2 {
        now_ms: 0,
        op: V2Op::Set {
            key: key.into(),
            value: Some("v".into()),
            expiry: Expiry::Permanent,
            refresh: false,
        },
    };
    for key in ["//x", "/a/./b/../c//", "y"] {
        assert!(matches!(sm.apply(&set(key)), Response::V2(Ok(_))), "{key}");
    }
    let root = sm.get("/", true, 0).unwrap().node;
    let keys: Vec<String> = root.nodes.unwrap().into_iter().map(|n| n.key).collect();
    assert_eq!(keys, ["/a", "/x", "/y"]);
    let restored = StateMachine::from_snapshot(&sm.to_snapshot()).unwrap();
    assert_eq!(
        restored
            .get("/a/c", false, 0)
            .unwrap()
            .node
            .value
            .as_deref(),
        Some("v")
    );

    // The directory `/a` renamed `/` (keys are base64 in snapshots).
    let forged = String::from_utf8(sm.to_snapshot())
        .unwrap()
        .replace("\"L2E=\"", "\"Lw==\"");
    assert!(StateMachine::from_snapshot(forged.as_bytes()).is_err());
}

fn successes(response: &Response) -> u64 {
    match response {
        Response::V2(r) => u64::from(r.is_ok()),
        Response::Expired(events) => events.len() as u64,
        // op() generates no auth or v3 requests, and `apply` refuses nothing.
        Response::Auth(_) | Response::V3 { .. } | Response::Refused => 0,
    }
}

proptest! {
    #[test]
    fn the_index_grows_by_one_per_successful_change_and_failures_change_nothing(ops in prop::collection::vec(op(), 1..60)) {
        let mut sm = StateMachine::new();
        for op in &ops {
            let before_index = sm.index();
            let before = sm.to_snapshot();
            let response = sm.apply(op);
            let ok = successes(&response);
            prop_assert_eq!(sm.index(), before_index + ok);
            if ok == 0 {
                // Failed writes leave the keyspace as it was (stats aside).
                let restored = StateMachine::from_snapshot(&before).unwrap();
                prop_assert_eq!(restored.get("/", true, 0).unwrap().node, sm.get("/", true, 0).unwrap().node);
            }
        }
    }

    #[test]
    fn a_snapshot_restores_the_same_keyspace_and_the_same_future(ops in prop::collection::vec(op(), 1..60), tail in prop::collection::vec(op(), 1..20)) {
        let mut sm = StateMachine::new();
        for op in &ops {
            sm.apply(op);
        }
        let mut copy = StateMachine::from_snapshot(&sm.to_snapshot()).unwrap();
        for op in &tail {
            prop_assert_eq!(sm.apply(op), copy.apply(op));
        }
        prop_assert_eq!(sm.to_snapshot(), copy.to_snapshot());
    }

    #[test]
    fn every_key_has_a_directory_for_a_parent(ops in prop::collection::vec(op(), 1..80)) {
        let mut sm = StateMachine::new();
        for op in &ops {
            sm.apply(op);
        }
        fn walk(sm: &StateMachine, key: &str) -> Result<(), TestCaseError> {
            let node = sm.get(key, false, 0).unwrap().node;
            for child in node.nodes.unwrap_or_default() {
                prop_assert!(child.key.starts_with(key));
                if child.dir { walk(sm, &child.key)?; }
            }
            Ok(())
        }
        walk(&sm, "/")?;
    }

    #[test]
    fn a_retried_request_is_applied_once_and_answered_as_the_first_time(
        ops in prop::collection::vec(op(), 1..40),
        retries in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..20),
        snapshot_at in any::<prop::sample::Index>(),
    ) {
        // Each op gets an ID; some are proposed again later (a retry after a lost reply),
        // with a snapshot and restore somewhere in between. Half say where they land,
        // half are entries from before the fence.
        let mut log: Vec<Proposal> = ops.iter().enumerate().map(|(n, op)| Proposal {
            id: Some(RequestId { member: 7, nonce: n as u64 }),
            lands_above: (n % 2 == 0).then_some(0),
            request: op.clone(),
        }).collect();
        for (which, at) in &retries {
            let retry = log.iter().find(|p| p.id.unwrap().nonce == which.index(ops.len()) as u64).unwrap().clone();
            // Anywhere after the first attempt.
            let first_at = log.iter().position(|p| p.id == retry.id).unwrap();
            let at = first_at + 1 + at.index(log.len() - first_at);
            log.insert(at, retry);
        }
        let mut plain = StateMachine::new();
        let first: Vec<Response> = ops.iter().map(|op| plain.apply(op)).collect();

        let cut = snapshot_at.index(log.len() + 1);
        let mut sm = StateMachine::new();
        for (i, proposal) in log.iter().enumerate() {
            if i == cut {
                sm = StateMachine::from_snapshot(&sm.to_snapshot()).unwrap();
            }
            let nonce = proposal.id.unwrap().nonce as usize;
            match sm.apply_proposal(proposal, i as u64 + 1) {
                Outcome::Applied(r) => prop_assert_eq!(&r, &first[nonce]),
                Outcome::Repeated(r) => prop_assert_eq!(&r, &first[nonce]),
                // Nothing is forgotten in a window this short.
                Outcome::Refused => prop_assert!(false, "refused {:?}", proposal),
            }
        }
        prop_assert_eq!(sm.get("/", true, 0).unwrap().node, plain.get("/", true, 0).unwrap().node);
        prop_assert_eq!(sm.index(), plain.index());
    }
}
