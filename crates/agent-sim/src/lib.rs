//! A seeded in-process simulation of a musubi agent cluster of any size (1,000 members
//! in the tests), to show what the agent's membership does at a scale no machine runs
//! as processes.
//!
//! Every member is foca with the agent's own identity ([`musubi_gossip::identity`]), LAN
//! config, broadcast handler ([`musubi_gossip::broadcasts`]), failure detector (Lifeguard's
//! health multiplier and dynamic suspicion, [`musubi_gossip::lifeguard`]) and member table
//! ([`musubi_gossip::membership`]), fed foca's output as the node task feeds it ([`member`],
//! [`cluster`]), exchanging the agent's real datagrams ([`musubi_gossip::wire`]) over a
//! simulated network on a virtual clock ([`network`]): loss, latency with spikes,
//! partitions that heal, paused members, crashes. [`cluster`] starts, crashes, restarts,
//! cuts off and pauses members and tells how far their views are from the truth;
//! [`checks`] counts what reached each member, for the exactly-once checks.
//!
//! A run replays exactly from its seed: every random choice (the weather, who crashes,
//! each member's RNG) comes from it, and [`network::World::history`] sums up what
//! happened, so a test can compare two runs (`tests/sim.rs` prints the seed; set
//! `MUSUBI_SIM_SEED` to it to replay a failure).

pub mod checks;
pub mod cluster;
pub mod member;
pub mod network;
