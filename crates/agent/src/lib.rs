//! musubi's gossip agent: cluster membership that HashiCorp Serf's tools can drive.
//!
//! Promises: the membership protocol is foca's SWIM (sans-IO, no runtime crashes on bad
//! input); a member is alive, leaving, left or failed exactly when Serf would say so.
//!
//! How it runs: [`node`] owns foca and the UDP socket in one task; each datagram, timer or
//! command is handed to foca, then its output is drained: sends, timers ([`timers`]),
//! notifications into the [`membership`] table. Leaving tells every member first ([`wire`]).

pub mod identity;
pub mod membership;
pub mod node;
mod timers;
pub mod wire;
