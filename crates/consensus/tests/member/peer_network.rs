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

    let mut client = PeerNetwork::new(None, 1)
        .new_client(NODE_ID, &peer(url))
        .await;
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

    let mut client = PeerNetwork::new(None, 1)
        .new_client(NODE_ID, &peer(url))
        .await;
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
    let mut client = PeerNetwork::new(None, 1).new_client(2, &peer(url)).await;
    let err = client
        .vote(VoteRequest::new(Vote::new(1, 1), None), option())
        .await
        .unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "got {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_names_no_cluster_is_unreachable() {
    // Something listens and answers, but it is no member of ours (a stray process on a
    // member's peer URL): as far as this cluster is concerned, nothing was delivered.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, axum::Router::new()).into_future());
    let mut client = PeerNetwork::new(None, 1).new_client(2, &peer(url)).await;
    let err = client
        .vote(VoteRequest::new(Vote::new(1, 1), None), option())
        .await
        .unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "got {err:?}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_cluster_neither_answers_nor_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), 1000).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, node.consensus.peer_router()).into_future());

    // Our Raft client, stamped with cluster 2, takes the reply of cluster 1 for no reply;
    // a later vote from another cluster must never reach openraft.
    let mut client = PeerNetwork::new(None, 2)
        .new_client(NODE_ID, &peer(format!("http://{addr}")))
        .await;
    let err = client
        .vote(VoteRequest::new(Vote::new(0, 2), None), option())
        .await
        .unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "got {err:?}");

    // The member refuses requests naming another cluster, or none, with etcd's 412.
    let vote = serde_json::to_vec(&VoteRequest::<musubi_consensus::TypeConfig>::new(
        Vote::new(9, 2),
        None,
    ))
    .unwrap();
    for header in [Some("2"), None] {
        let (status, cluster, body) = post(addr, "/raft/vote", header, &vote).await;
        assert_eq!(status, 412, "{header:?}: {body}");
        assert!(body.contains("cluster ID mismatch"), "{body}");
        assert_eq!(
            cluster.as_deref(),
            Some("1"),
            "the refusal names the member's cluster"
        );
    }
    let (status, _, _) = post(addr, "/raft/vote", Some("1"), &vote).await;
    assert_eq!(status, 200, "its own cluster is served");
    // A member that does not know its cluster yet may still look it up.
    let (status, cluster, body) = post(addr, "/raft/members", None, b"").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(cluster.as_deref(), Some("1"));
    let term = node.consensus.status().term;
    assert!(term < 9, "the foreign vote did not raise the term: {term}");

    server.abort();
    node.consensus.shutdown().await;
}

/// One POST; returns the status, the `X-Etcd-Cluster-ID` reply header and the body.
async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    cluster: Option<&str>,
    body: &[u8],
) -> (u16, Option<String>, String) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut request = hyper::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json");
    if let Some(id) = cluster {
        request = request.header("x-etcd-cluster-id", id);
    }
    let request = request
        .body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(
            body,
        )))
        .unwrap();
    let response = client.request(request).await.expect("the member answers");
    let status = response.status().as_u16();
    let cluster = response
        .headers()
        .get("x-etcd-cluster-id")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, cluster, String::from_utf8_lossy(&body).into_owned())
}
