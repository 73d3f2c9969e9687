//! musubi's Serf protocol layer above foca's SWIM, without I/O.
//!
//! Promises: nothing here opens a socket, spawns a task, reads the clock or draws from the
//! thread RNG. The caller passes the time in (`now`), seeds every RNG, and carries the
//! bytes; so the same code runs in the agent and, a thousand times over, in the seeded
//! simulation (crates/agent-sim).
//!
//! The parts:
//! - [`identity`], [`membership`]: a member's identity (name, address, tags) and Serf's
//!   view of it (alive, leaving, left, failed); [`conflict`] settles two claimants of a
//!   name, [`reaper`] drops members gone too long and picks failed ones to retry.
//! - [`swim`] wraps foca; [`broadcasts`] is its custom-broadcast handler, which carries
//!   [`user_events`] (de-duplicated by [`event_history`]), [`query`] messages and
//!   Lifeguard's suspicion confirmations, each first sighting handed to a [`deliver`] sink.
//! - [`lamport`] clocks stamp members, events and queries; [`lifeguard`] stretches probe
//!   timing with local health and holds suspicions to their dynamic timeouts;
//!   [`coordinate`] is Serf's Vivaldi network coordinates.
//! - [`wire`] frames every datagram by kind; [`compression`] deflates them; [`crypto`],
//!   [`keyring`] and [`keys`] seal and open them (and catch up a member behind a key
//!   rotation); [`key_queries`] answer `serf keys` cluster-wide; [`push_pull`] syncs the
//!   whole state with one member at a time; [`profile`] holds the SWIM timings.
//!
//! # Driving it
//!
//! The driver owns the sockets and the clock; each member is foca (as [`swim::Swim`]) with
//! the cluster's broadcast handler. Per input:
//!
//! 1. Build the member once: an identity, the profile's SWIM config, an RNG the caller
//!    seeded, and a [`broadcasts::ClusterGossip`] whose parts hand first sightings to
//!    sinks ([`deliver::Inbox`] here; the agent forwards to its tasks).
//! 2. Hand it the input: a datagram (decoded with [`wire::decode`], a foca packet through
//!    [`swim::receive`]), a timer foca set, or a command (join: `announce`; a user event:
//!    [`swim::broadcast`]).
//! 3. Drain foca's output in order: datagrams to send (framed by [`wire`]), timers to set
//!    (fire each after its delay, late ones dropped by foca's token), notifications.
//! 4. Take what the handler saw first (user events, queries, confirmations) and act on it.
//!
//! ```
//! # use foca::{AccumulatingRuntime, Foca, PostcardCodec};
//! # use musubi_gossip::broadcasts::{self, ClusterGossip, UrgentNews};
//! # use musubi_gossip::deliver::Inbox;
//! # use musubi_gossip::identity::NodeId;
//! # use musubi_gossip::lamport::LamportClock;
//! # use musubi_gossip::lifeguard::gossip::ConfirmationGossip;
//! # use musubi_gossip::profile::Profile;
//! # use musubi_gossip::query::gossip::QueryGossip;
//! # use musubi_gossip::swim::{self, Swim};
//! # use musubi_gossip::user_events::{UserEvent, UserEventGossip};
//! # use musubi_gossip::wire::{self, Datagram};
//! # use rand_foca::SeedableRng;
//! # use rand_foca::rngs::StdRng;
//! # use std::sync::Arc;
//! // 1. two members, each with an inbox for the user events it sees first
//! fn member(name: &str, port: u16, events: &Inbox<UserEvent>) -> Swim<ClusterGossip> {
//!     let clock = Arc::new(LamportClock::default());
//!     let gossip = ClusterGossip {
//!         user_events: UserEventGossip::new(clock.clone(), events.sink()),
//!         queries: QueryGossip::new(clock, Box::new(drop)),
//!         confirmations: ConfirmationGossip::new(Box::new(drop)),
//!         urgent: UrgentNews::default(),
//!     };
//!     let id = NodeId {
//!         name: name.into(),
//!         addr: ([127, 0, 0, 1], port).into(),
//!         tags: Default::default(),
//!         started_ms: 1,
//!     };
//!     let rng = StdRng::seed_from_u64(u64::from(port));
//!     Foca::with_custom_broadcast(id, Profile::Lan.swim_config(2), rng, PostcardCodec, gossip)
//! }
//! let (a_events, b_events) = (Inbox::default(), Inbox::default());
//! let mut members = [member("a", 1, &a_events), member("b", 2, &b_events)];
//! let mut runtime = AccumulatingRuntime::new();
//! // 2. a command: a joins through b
//! let b = members[1].identity().clone();
//! members[0].announce(b, &mut runtime).unwrap();
//! for round in 0..6 {
//!     // 2. another command, once the two know each other: a user event from a
//!     if round == 2 {
//!         let event = UserEvent { ltime: 0, name: "deploy".into(), payload: vec![], coalesce: false };
//!         let item = broadcasts::user_event(&event.encode());
//!         swim::broadcast(&mut members[0], &item, &mut runtime).unwrap();
//!     }
//!     // 3. drain: each datagram goes to the member it is for (timers and notifications
//!     // would go to the scheduler and the member table)
//!     let sent: Vec<_> = std::iter::from_fn(|| runtime.to_send()).collect();
//!     while runtime.to_schedule().is_some() || runtime.to_notify().is_some() {}
//!     for (to, packet) in sent {
//!         let datagram = wire::foca_datagram(&packet);
//!         let Ok(Datagram::Foca(packet)) = wire::decode(&datagram) else { unreachable!() };
//!         let receiver = usize::from(to.addr.port() - 1);
//!         let urgent = UrgentNews::default();
//!         swim::receive(&mut members[receiver], packet, &mut runtime, &urgent).unwrap();
//!     }
//! }
//! // 4. each member saw the event once: a when it sent it, b when it arrived
//! assert_eq!(a_events.take().len(), 1);
//! assert_eq!(b_events.take().len(), 1);
//! ```

pub mod broadcasts;
pub mod compression;
pub mod conflict;
pub mod coordinate;
pub mod core;
pub mod crypto;
pub mod deliver;
pub mod event_history;
pub mod identity;
pub mod key_queries;
pub mod keyring;
pub mod keys;
pub mod lamport;
pub mod lifeguard;
pub mod membership;
pub mod profile;
pub mod push_pull;
pub mod query;
pub mod reaper;
pub mod swim;
pub mod user_events;
pub mod wire;
