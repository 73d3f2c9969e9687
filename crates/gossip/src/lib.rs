//! musubi's Serf protocol layer above foca's SWIM, without I/O.
//!
//! Promises: nothing here opens a socket, spawns a task, reads the clock or draws from the
//! thread RNG. The caller passes the time in (`now`), seeds every RNG, and carries the
//! bytes; so the same code runs in the agent and, a thousand times over, in the seeded
//! simulation (crates/agent-sim).
//!
//! [`core`] puts the parts together as one member's protocol, the one entry point; the
//! other public modules are the types it speaks in. The parts:
//! - [`identity`], [`membership`]: a member's identity (name, address, tags) and Serf's
//!   view of it (alive, leaving, left, failed); `conflict` settles two claimants of a
//!   name, [`reaper`] drops members gone too long and picks failed ones to retry.
//! - `swim` wraps foca; `broadcasts` is its custom-broadcast handler, which carries
//!   [`user_events`] (de-duplicated by `event_history`), [`query`] messages and
//!   Lifeguard's suspicion confirmations, each first sighting handed to a `deliver` sink.
//! - [`lamport`] clocks stamp members, events and queries; `lifeguard` stretches probe
//!   timing with local health and holds suspicions to their dynamic timeouts;
//!   [`coordinate`] is Serf's Vivaldi network coordinates.
//! - [`wire`] frames every datagram by kind; `compression` deflates them; [`crypto`],
//!   [`keyring`] and [`keys`] seal and open them (and catch up a member behind a key
//!   rotation); [`key_queries`] answer `serf keys` cluster-wide; `push_pull` syncs the
//!   whole state with one member at a time; [`profile`] holds the SWIM timings.
//!
//! # Driving it
//!
//! [`core::Core`] is one member's whole protocol; the driver owns the sockets and the
//! clock, and talks to it in inputs and outputs:
//!
//! 1. Build it once: [`core::Settings`] (an identity, Serf's defaults or the agent's
//!    config), an RNG the caller seeded, and the time.
//! 2. Hand it an input with the time: a datagram as it came off the wire
//!    ([`core::Core::handle_datagram`]), or a command ([`core::Core::announce`] to join,
//!    [`core::Core::send_user_event`], [`core::Core::send_query`], ...).
//! 3. Take its outputs ([`core::Core::take_outputs`]), in order: datagrams to send, over
//!    UDP or the stream transport ([`core::Transport`]), and events to report.
//! 4. Deliver the datagrams to the members they are for (their step 2).
//! 5. Sleep until [`core::Core::next_deadline`] (or the next datagram, or command), then
//!    call [`core::Core::tick`]: it fires foca's timers, held suspicions, push-pull, the
//!    reap and reconnect ticks, a name-conflict vote's end and query timeouts. Back to 3.
//!
//! ```
//! use musubi_gossip::core::{Core, Event, Output, Settings};
//! use musubi_gossip::identity::NodeId;
//! use rand_foca::SeedableRng;
//! use rand_foca::rngs::StdRng;
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//!
//! let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], 7946 + i as u16));
//! // 1. three members, each with its own seeded RNG, on one virtual clock
//! let mut now = Instant::now();
//! let mut members: Vec<Core> = (0..3)
//!     .map(|i| {
//!         let name = format!("m{i}");
//!         let id = NodeId { name, addr: addr(i), tags: Default::default(), started_ms: 1 };
//!         Core::new(Settings::new(id), StdRng::seed_from_u64(i as u64), now)
//!     })
//!     .collect();
//! let mut user_events = [0, 0, 0];
//! // 2. commands: the others join through m0
//! members[1].announce(&[addr(0)], now);
//! members[2].announce(&[addr(0)], now);
//! for round in 0..200 {
//!     // 2. another command once they know each other: a user event from m2
//!     if round == 100 {
//!         members[2].send_user_event("deploy".into(), b"v2".to_vec(), false, now).unwrap();
//!     }
//!     // 3. and 4. outputs out until no datagram is in flight (a lossless, instant network)
//!     loop {
//!         let mut in_flight = Vec::new();
//!         for (i, member) in members.iter_mut().enumerate() {
//!             for output in member.take_outputs() {
//!                 match output {
//!                     Output::Send { to, datagram, .. } => in_flight.push((i, to, datagram)),
//!                     Output::Event(Event::User(_)) => user_events[i] += 1,
//!                     Output::Event(_) => {}
//!                 }
//!             }
//!         }
//!         if in_flight.is_empty() {
//!             break;
//!         }
//!         for (from, to, datagram) in in_flight {
//!             let to = usize::from(to.port() - 7946);
//!             members[to].handle_datagram(&datagram, addr(from), now);
//!         }
//!     }
//!     // 5. the clock moves to the earliest deadline; who is due ticks
//!     now = members.iter().map(Core::next_deadline).min().unwrap().max(now);
//!     for member in &mut members {
//!         if member.next_deadline() <= now {
//!             member.tick(now);
//!         }
//!     }
//! }
//! assert!(members.iter().all(|member| member.alive_count() == 3));
//! // each member saw the event once: m2 when it sent it, the others when it arrived
//! assert_eq!(user_events, [1, 1, 1]);
//! ```

mod broadcasts;
mod compression;
mod conflict;
pub mod coordinate;
pub mod core;
pub mod crypto;
mod deliver;
mod event_history;
pub mod identity;
pub mod key_queries;
pub mod keyring;
pub mod keys;
pub mod lamport;
mod lifeguard;
pub mod membership;
pub mod profile;
mod push_pull;
pub mod query;
pub mod reaper;
mod swim;
pub mod user_events;
pub mod wire;
