//! A seeded in-process simulation of a musubi agent cluster of any size (1,000 members
//! in the tests), to show what the agent's membership does at a scale no machine runs
//! as processes.
//!
//! Every member is foca with the agent's own identity ([`musubi_gossip::identity`]), LAN
//! config, broadcast handler ([`musubi_gossip::broadcasts`]), failure detector (Lifeguard's
//! health multiplier and dynamic suspicion, [`musubi_gossip::lifeguard`]) and member table
//! ([`musubi_gossip::membership`]), fed foca's output as the node task feeds it ([`member`],
//! [`cluster`]), exchanging the agent's real datagrams
//! ([`musubi_gossip::wire`]) over a simulated network with loss and latency and a virtual
//! clock ([`network`]). [`cluster`] starts, crashes and restarts members and tells how far
//! their views are from the truth. A run replays exactly from its seed.

pub mod cluster;
pub mod member;
pub mod network;
