//! A seeded in-process simulation of a musubi agent cluster of any size (1,000 members
//! in the tests), to show what the agent's protocol does at a scale no machine runs as
//! processes.
//!
//! Every member is the agent's own protocol, [`musubi_gossip::core::Core`] (foca's SWIM
//! with Lifeguard, the member table, push-pull, reconnects, user events, queries, the key
//! ring and its queries, the wire format with compression and encryption), built with
//! Serf's defaults ([`member`]) and driven as the agent's driver drives it ([`cluster`]):
//! each datagram handed in with the time, the outputs taken after each input (datagrams
//! to the network, events to the [`checks`]' reports, a query to a handler that answers
//! it), one wake-up at the core's next deadline. Only the network and the clock are
//! simulated ([`network`]): loss, latency with spikes, partitions that heal, paused
//! members, crashes, on a virtual clock.
//!
//! [`cluster`] starts, crashes, restarts, cuts off and pauses members, sends user events,
//! queries and key operations, and tells how far each member's view is from the truth;
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
