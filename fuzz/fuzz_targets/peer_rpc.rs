//! Every body the peer port decodes, through the decoders its handlers use: the Raft RPCs
//! (`/raft/append`, `/raft/vote` and `/raft/pre-vote`, `/raft/transfer-leader`), the
//! snapshot framing (`/raft/snapshot`), and the forwarded requests (`/raft/propose`,
//! `/raft/propose-batch`, `/raft/publish`, `/raft/membership`, `/raft/join`).
//!
//! Input: one body, tried against every decoder.
//!
//! Checks: nothing panics; whatever decodes survives a JSON round trip (a proposal's own,
//! not only its payload's, which writes back the bytes it was decoded from); a decoded proposal
//! (forwarded, or inside an AppendEntries entry) applies to a keyspace without panicking,
//! and applying it again with its request ID changes nothing and answers the same; the snapshot bytes of a decoded `/raft/snapshot` restore or fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use musubi_consensus::network::{decode_rpc, decode_snapshot};
use musubi_consensus::{
    TypeConfig, decode_join, decode_membership, decode_propose, decode_propose_batch,
    decode_publish,
};
use musubi_fuzz::{apply_to_base, assert_json_round_trip};
use musubi_store::{Proposal, StateMachine};
use openraft::EntryPayload;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_rpc::<AppendEntriesRequest<TypeConfig>>(data) {
        assert_json_round_trip(&req);
        for entry in &req.entries {
            if let EntryPayload::Normal(proposal) = &entry.payload {
                assert_json_round_trip::<Proposal>(proposal);
                apply_to_base(proposal);
            }
        }
    }
    if let Ok(req) = decode_rpc::<VoteRequest<TypeConfig>>(data) {
        assert_json_round_trip(&req);
    }
    if let Ok(req) = decode_rpc::<TransferLeaderRequest<TypeConfig>>(data) {
        assert_json_round_trip(&req);
    }
    if let Ok((vote, snapshot)) = decode_snapshot(data) {
        assert_json_round_trip(&vote);
        assert_json_round_trip(&snapshot.meta);
        if let Ok(sm) = StateMachine::from_snapshot(&snapshot.snapshot) {
            let _ = sm.get("/", true, 0);
        }
    }
    if let Ok(proposal) = decode_propose(data) {
        assert_json_round_trip(&proposal);
        assert_json_round_trip::<Proposal>(&proposal);
        apply_to_base(&proposal);
    }
    if let Ok(batch) = decode_propose_batch(data) {
        for proposal in &batch {
            assert_json_round_trip(proposal);
            assert_json_round_trip::<Proposal>(proposal);
            apply_to_base(proposal);
        }
    }
    if let Ok(publish) = decode_publish(data) {
        assert_json_round_trip(&publish);
    }
    if let Ok(change) = decode_membership(data) {
        assert_json_round_trip(&change);
    }
    if let Ok(member) = decode_join(data) {
        assert_json_round_trip(&member);
    }
});
