//! The core's part in queries: sending one, acting on one foca delivered (filter, ack,
//! deliver or answer internally), answering, relaying, and collecting the answers to our
//! own. Every ack, response and relay leaves through [`Core::send_query_reply`].

use super::{CommandError, Core, Event, Output, telemetry};
use crate::broadcasts::{self, GOSSIP_QUERY_MAX};
use crate::membership::MemberStatus;
use crate::query::message::{self, FLAG_ACK, QueryMessage, QueryResponseMessage, Reply};
use crate::query::{self, INTERNAL_PREFIX, QueryEvent, QueryParams, filters};
use crate::wire;
use rand_foca::seq::IndexedRandom;
use std::net::SocketAddr;
use std::time::Instant;
use tracing::{debug, warn};

impl Core {
    /// Send a query to every member (this one included); its answers come as
    /// [`Event::QueryRecord`]s under the Lamport time returned, ending with `Done` at
    /// the timeout. As Serf: stamp the query with the query clock and a random ID, hand
    /// it to foca, which delivers it here too (so this member acks and answers like any
    /// other) and gossips it, then open it here to collect the answers. A query too big
    /// for foca's packets is delivered here the same way and sent directly to every
    /// member.
    pub fn send_query(&mut self, params: QueryParams, now: Instant) -> Result<u64, CommandError> {
        self.now = now;
        let local = self.foca.identity().clone();
        let timeout = params
            .timeout
            .unwrap_or_else(|| query::default_timeout(self.table.alive_count()));
        let query = QueryMessage {
            ltime: self.query_clock.time(),
            id: self.random(),
            addr: message::address_bytes(local.addr),
            port: local.addr.port(),
            source_node: local.name,
            filters: filters::encode(&params.filter_nodes, &params.filter_tags),
            flags: if params.request_ack { FLAG_ACK } else { 0 },
            relay_factor: params.relay_factor,
            timeout: i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX),
            name: params.name,
            payload: params.payload,
        };
        let encoded = query.encode();
        let limit = self.settings.query_limits.query_size;
        if query.serf_encoded_len(encoded.len()) > limit {
            return Err(CommandError::QueryTooLarge { limit });
        }
        // Every query gets a time of its own, even one foca refuses: open queries are
        // keyed by it.
        self.query_clock.increment();
        self.disseminate(&broadcasts::query(&encoded), GOSSIP_QUERY_MAX)
            .map_err(CommandError::Query)?;
        // The answers come back in datagrams, handled after this.
        let ltime = query.ltime;
        let outputs = self.outputs.clone();
        let records = Box::new(move |record| {
            outputs.push(Output::Event(Event::QueryRecord { ltime, record }));
        });
        self.open_queries
            .open(ltime, query.id, params.request_ack, records);
        self.schedule
            .query_timeouts
            .insert((now + timeout, ltime), ());
        self.settle();
        Ok(ltime)
    }

    /// A query seen for the first time: if it is for this member, ack it when asked,
    /// then answer it ourselves (`_serf_*`) or deliver it to handlers and RPC streams.
    pub(super) fn on_query(&mut self, query: QueryMessage) {
        telemetry::query_received(&query.name);
        let local = self.foca.identity().clone();
        if !filters::accepts(&query.filters, &local) {
            return;
        }
        let Some(origin) = query.origin() else {
            warn!(
                "query {} from {} has no usable address",
                query.name, query.source_node
            );
            return;
        };
        if query.wants_ack() {
            let ack = QueryResponseMessage {
                ltime: query.ltime,
                id: query.id,
                from: local.name.clone(),
                flags: FLAG_ACK,
                payload: Vec::new(),
            };
            self.reply_to_origin(
                &ack.encode(),
                origin,
                &query.source_node,
                query.relay_factor,
            );
        }
        let now = self.now;
        let event = QueryEvent {
            ltime: query.ltime,
            id: query.id,
            deadline: now + query.timeout(),
            name: query.name,
            payload: query.payload,
            origin,
            source_node: query.source_node,
            relay_factor: query.relay_factor,
        };
        self.answerable.delivered(&event, now);
        if event.name.starts_with(INTERNAL_PREFIX) {
            let internal = &self.settings.internal_queries;
            match internal.answer(&event.name, &event.payload, now) {
                None => warn!("Unhandled internal query '{}'", event.name),
                Some(None) => {}
                Some(Some(response)) => {
                    if let Err(e) = self.answer(&event, response) {
                        warn!("internal query '{}': {e}", event.name);
                    }
                }
            }
            return;
        }
        self.report(Event::Query(event));
    }

    /// Answer a query delivered here ([`Event::Query`]), once, before its deadline;
    /// Serf's refusal otherwise (answered already, past its deadline, over
    /// `query_response_size_limit`).
    pub fn respond(
        &mut self,
        event: &QueryEvent,
        payload: Vec<u8>,
        now: Instant,
    ) -> Result<(), CommandError> {
        self.now = now;
        let answered = self.answer(event, payload);
        self.settle();
        answered
    }

    fn answer(&mut self, event: &QueryEvent, payload: Vec<u8>) -> Result<(), CommandError> {
        let name = self.foca.identity().name.clone();
        let limit = self.settings.query_limits.response_size;
        let response = self
            .answerable
            .answer(event, &name, payload, limit, self.now)?;
        self.reply_to_origin(
            &response,
            event.origin,
            &event.source_node,
            event.relay_factor,
        );
        Ok(())
    }

    /// Send an ack or response to the query's origin, and the same through `relay_factor`
    /// other live members (Serf's relays, for when the direct path loses it).
    fn reply_to_origin(
        &mut self,
        reply: &[u8],
        origin: SocketAddr,
        origin_name: &str,
        relay_factor: u8,
    ) {
        self.send_query_reply(reply, origin);
        let relay_factor = usize::from(relay_factor);
        // Serf relays only when the cluster has that many members besides this one.
        if relay_factor == 0 || self.table.records().count() < relay_factor + 1 {
            return;
        }
        let relay = message::encode_relay(origin, origin_name, reply);
        let limit = self.settings.query_limits.response_size;
        if relay.len() > limit {
            warn!("failed to relay response: relayed response exceeds limit of {limit} bytes");
            return;
        }
        let local = self.foca.identity().name.clone();
        let others: Vec<SocketAddr> = self
            .table
            .records()
            .filter(|m| m.status == MemberStatus::Alive && m.id.name != local)
            .map(|m| m.id.addr)
            .collect();
        let relays: Vec<SocketAddr> = others
            .sample(&mut self.rng, relay_factor)
            .copied()
            .collect();
        for relay_member in relays {
            self.send_query_reply(&relay, relay_member);
        }
    }

    /// An ack or response for one of our queries, or one to relay to its origin.
    pub(super) fn on_query_reply(&mut self, body: &[u8], from: SocketAddr) {
        match message::decode_reply(body) {
            Ok(Reply::Response(reply)) => self.open_queries.receive(reply),
            // Only a response is forwarded: a relay of a relay could bounce forever.
            Ok(Reply::Relay { dest, inner }) => match message::decode_reply(inner) {
                Ok(Reply::Response(_)) => {
                    debug!("relaying response to addr: {dest}");
                    self.send_query_reply(inner, dest);
                }
                _ => debug!("dropped a relay from {from} that carries no response"),
            },
            Err(e) => debug!("dropped query reply from {from}: {e}"),
        }
    }

    /// Every query ack, response and relay leaves through here: over UDP when it fits a
    /// datagram, else (a raised `query_response_size_limit`) over the stream transport.
    fn send_query_reply(&self, body: &[u8], to: SocketAddr) {
        self.send_fitting(&wire::query_reply_datagram(body), to);
    }
}
