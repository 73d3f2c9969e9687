//! `serf keys` cluster-wide, from the asking agent: the operation goes to every member as
//! one of Serf's internal queries ([`musubi_gossip::key_queries`] builds it, answers it
//! on each member and tallies the answers); this waits for the answers through the node.

use crate::node::{NodeHandle, NodeStopped};
use musubi_gossip::key_queries::{KeyOperation, KeyTally};
use musubi_gossip::membership::MemberStatus;
use musubi_gossip::query::QueryRecord;
use tracing::info;

/// Run a key operation on every alive member and tally their answers; the error is
/// Serf's (a malformed key, or the verdict). `key` is base64, unused for a listing.
pub async fn run(
    node: &NodeHandle,
    op: KeyOperation,
    key: &str,
) -> Result<(String, KeyTally), NodeStopped> {
    let params = match op.query(key) {
        Ok(params) => params,
        Err(e) => return Ok((e.to_string(), KeyTally::new(op, 0))),
    };
    info!("Initiating key {}", op.command());
    let members = node
        .members()
        .await?
        .iter()
        .filter(|member| member.status == MemberStatus::Alive)
        .count();
    let mut tally = KeyTally::new(op, members);
    let mut records = match node.query(params).await {
        Ok(records) => records,
        Err(e) => return Ok((e, tally)),
    };
    // Every member answered: no need to wait for the query's timeout (Serf does not).
    while tally.num_resp < tally.num_nodes {
        match records.recv().await {
            Some(QueryRecord::Response { from, payload }) => tally.add(from, &payload),
            Some(QueryRecord::Ack { .. }) => {}
            Some(QueryRecord::Done) | None => break,
        }
    }
    Ok((tally.error(), tally))
}
