//! Maintenance.Snapshot: this member's whole state at one applied index, streamed as a
//! musubi backup file (`musubi_store::backup`) in etcd's chunks.
//!
//! 1. The state machine and the log position applied to it are copied under the read lock
//!    (`Consensus::freeze`, O(1)), so writes go on at once and the copy is one applied index;
//! 2. the copy is serialised into a backup file on a blocking thread;
//! 3. the file is sent in 32 KiB `blob`s, each with the bytes still to come in
//!    `remaining_bytes`, and last its SHA-256 alone with `remaining_bytes` 0, as etcd sends
//!    its database and then its digest. A client that hangs up just drops the stream.
//!
//! Like etcd's, the snapshot is this member's own (serializable): a follower's may trail
//! the leader by what it has not applied yet.

use super::V3;
use musubi_proto::etcdserverpb as pb;
use musubi_store::backup::{self, Origin};
use std::pin::Pin;
use tonic::Status;

/// etcd's chunk size.
const CHUNK: usize = 32 * 1024;

pub type SnapshotStream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

/// The stream of this member's snapshot, taken now.
pub async fn stream(v3: &V3) -> Result<SnapshotStream, Status> {
    let (raft_index, raft_term, frozen) = v3.app.raft.freeze();
    let origin = Origin {
        raft_index,
        raft_term,
        cluster_id: v3.app.identity.cluster_id,
        member_id: v3.app.identity.member_id,
    };
    let (header, file) = tokio::task::spawn_blocking(move || backup::encode(&frozen, origin))
        .await
        .map_err(|e| Status::internal(format!("snapshot: {e}")))?;
    let revision = header.revision;
    tracing::info!(
        bytes = file.len(),
        revision,
        raft_index,
        "sending a snapshot"
    );
    Ok(Box::pin(futures::stream::iter(chunks(
        file,
        v3.header(revision),
    ))))
}

/// `file` as etcd's responses: the body in chunks counting down, then the digest.
fn chunks(
    file: Vec<u8>,
    header: pb::ResponseHeader,
) -> impl Iterator<Item = Result<pb::SnapshotResponse, Status>> + Send {
    let body_len = file.len() - backup::DIGEST;
    let starts = (0..body_len).step_by(CHUNK).chain([body_len]);
    starts.map(move |start| {
        let end = if start == body_len {
            file.len()
        } else {
            (start + CHUNK).min(body_len)
        };
        let remaining = if start == body_len { 0 } else { body_len - end };
        Ok(pb::SnapshotResponse {
            header: Some(header),
            remaining_bytes: remaining as u64,
            blob: file[start..end].to_vec(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_count_down_to_the_digest_which_comes_alone() {
        let body = 2 * CHUNK + 512;
        let file: Vec<u8> = (0..body + backup::DIGEST).map(|i| i as u8).collect();
        let sent: Vec<_> = chunks(file.clone(), pb::ResponseHeader::default())
            .map(Result::unwrap)
            .collect();
        let sizes: Vec<_> = sent
            .iter()
            .map(|r| (r.blob.len(), r.remaining_bytes))
            .collect();
        assert_eq!(
            sizes,
            [
                (CHUNK, (CHUNK + 512) as u64),
                (CHUNK, 512),
                (512, 0),
                (backup::DIGEST, 0)
            ]
        );
        let received: Vec<u8> = sent.iter().flat_map(|r| r.blob.clone()).collect();
        assert_eq!(received, file);
    }
}
