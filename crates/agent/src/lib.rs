//! musubi's gossip agent: cluster membership that HashiCorp Serf's tools can drive.
//!
//! Promises: the membership protocol is foca's SWIM (sans-IO, no runtime crashes on bad
//! input); a member is alive, leaving, left or failed exactly when Serf would say so; the
//! RPC port speaks Serf's protocol byte for byte, so the real `serf` CLI works against it.
//!
//! How it runs: [`node`] owns foca and the UDP socket in one task; each datagram, timer or
//! command is handed to foca, then its output is drained: sends, timers ([`timers`]),
//! notifications into the [`membership`] table. Leaving tells every member first ([`wire`]).
//! [`rpc`] serves Serf's RPC clients and asks the node through a `NodeHandle`.

pub mod address;
pub mod identity;
pub mod join;
pub mod membership;
pub mod node;
pub mod rpc;
mod timers;
pub mod wire;
