//! The HTTP peer transport against a live member: replies, and the error kinds openraft
//! relies on to choose between backing off and retrying.

use crate::util::{NODE_ID, open};
use musubi_consensus::network::PeerNetwork;
use musubi_consensus::{Member, Snapshot, Vote};
use openraft::errors::RPCError;
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::VoteRequest;
use std::time::Duration;

fn peer(url: String) -> Member {
    Member {
        name: "peer".into(),
        peer_urls: vec![url],
        client_urls: vec![],
        is_learner: false,
    }
}

fn option() -> RPCOption {
    RPCOption::new(Duration::from_secs(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_vote_request_is_answered_and_refused_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), 1000).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, node.consensus.peer_router()).into_future());

    let mut client = PeerNetwork::new(None).new_client(NODE_ID, &peer(url)).await;
    let stale = VoteRequest::new(Vote::new(0, 2), None);
    let reply = client
        .vote(stale.clone(), option())
        .await
        .expect("the member answers");
    assert!(
        !reply.vote_granted,
        "a leader in a later term refuses a term-0 candidate"
    );
    assert!(reply.vote > stale.vote);
    let reply = client
        .pre_vote(stale, option())
        .await
        .expect("the member answers");
    assert!(!reply.vote_granted);

    server.abort();
    node.consensus.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_from_a_stale_leader_travels_and_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), 1000).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, node.consensus.peer_router()).into_future());

    let mut client = PeerNetwork::new(None).new_client(NODE_ID, &peer(url)).await;
    let snapshot = Snapshot {
        meta: Default::default(),
        snapshot: musubi_store::StateMachine::new().to_snapshot(),
    };
    let stale = Vote::new_committed(0, 2);
    let reply = client
        .full_snapshot(stale, snapshot, std::future::pending(), option())
        .await
        .expect("the member answers");
    assert!(
        reply.vote > stale,
        "the member's own, later vote comes back"
    );

    server.abort();
    node.consensus.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_refuses_connections_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut client = PeerNetwork::new(None).new_client(2, &peer(url)).await;
    let err = client
        .vote(VoteRequest::new(Vote::new(1, 1), None), option())
        .await
        .unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "got {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_a_raft_member_is_a_network_error() {
    // Something listens, but answers 404: transport trouble, not an unreachable host.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, axum::Router::new()).into_future());
    let mut client = PeerNetwork::new(None).new_client(2, &peer(url)).await;
    let err = client
        .vote(VoteRequest::new(Vote::new(1, 1), None), option())
        .await
        .unwrap_err();
    assert!(matches!(err, RPCError::Network(_)), "got {err:?}");
    server.abort();
}
