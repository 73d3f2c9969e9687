//! The node task's part in queries: sending one, acting on one foca delivered (filter,
//! ack, deliver or answer internally), answering, relaying, and collecting the answers to
//! our own. Every ack, response and relay leaves through [`Node::send_query_reply`].

use super::{Node, QueryStart};
use crate::events::AgentEvent;
use musubi_gossip::broadcasts::{self, GOSSIP_QUERY_MAX};
use musubi_gossip::membership::MemberStatus;
use musubi_gossip::query::message::{self, FLAG_ACK, QueryMessage, QueryResponseMessage, Reply};
use musubi_gossip::query::{self, INTERNAL_PREFIX, QueryEvent, QueryParams, filters};
use musubi_gossip::wire;
use rand_foca::RngExt;
use rand_foca::seq::IndexedRandom;
use std::net::SocketAddr;
use tokio::sync::mpsc;
use tracing::{debug, warn};

impl Node {
    /// As Serf: stamp the query with the query clock and a random ID, hand it to foca,
    /// which delivers it here too (so this member acks and answers like any other) and
    /// gossips it, then open it here to collect the answers. A query too big for foca's
    /// packets is delivered here the same way and sent directly to every member.
    pub(super) fn send_query(&mut self, params: QueryParams) -> QueryStart {
        let local = self.foca.identity().clone();
        let timeout = params
            .timeout
            .unwrap_or_else(|| query::default_timeout(self.table.alive_count()));
        let query = QueryMessage {
            ltime: self.query_clock.time(),
            id: self.rng.random(),
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
        let limit = self.query_settings.limits.query_size;
        if query.serf_encoded_len(encoded.len()) > limit {
            return Err(format!("query exceeds limit of {limit} bytes"));
        }
        // Every query gets a time of its own, even one foca refuses: open queries are
        // keyed by it.
        self.query_clock.increment();
        self.disseminate(&broadcasts::query(&encoded), GOSSIP_QUERY_MAX)
            .map_err(|e| format!("Failed to send query: {e}"))?;
        // The answers come back in datagrams, which the node task reads after this.
        let (records, receiver) = mpsc::unbounded_channel();
        let records = Box::new(move |record| {
            // The asker may have gone (an RPC client hung up); the query runs out anyway.
            let _ = records.send(record);
        });
        self.open_queries
            .open(query.ltime, query.id, params.request_ack, records);
        let expired = self.query_deadlines.clone();
        let ltime = query.ltime;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            // The node task only stops with the process.
            let _ = expired.send(ltime);
        });
        Ok(receiver)
    }

    /// A query seen for the first time: if it is for this member, ack it when asked,
    /// then answer it ourselves (`_serf_*`) or deliver it to handlers and RPC streams.
    pub(super) async fn on_query(&mut self, query: QueryMessage) {
        crate::telemetry::query_received(&query.name);
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
            )
            .await;
        }
        let now = tokio::time::Instant::now().into_std();
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
            let internal = &self.query_settings.internal;
            match internal.answer(&event.name, &event.payload, now) {
                None => warn!("Unhandled internal query '{}'", event.name),
                Some(None) => {}
                Some(Some(response)) => {
                    if let Err(e) = self.respond(&event, response).await {
                        warn!("internal query '{}': {e}", event.name);
                    }
                }
            }
            return;
        }
        // The event loop only stops with the process.
        let _ = self.events.send(AgentEvent::Query(event));
    }

    /// Answer a query delivered here, once, before its deadline.
    pub(super) async fn respond(
        &mut self,
        event: &QueryEvent,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        let name = self.foca.identity().name.clone();
        let limit = self.query_settings.limits.response_size;
        let now = tokio::time::Instant::now().into_std();
        let response = self
            .answerable
            .answer(event, &name, payload, limit, now)
            .map_err(|refused| refused.to_string())?;
        self.reply_to_origin(
            &response,
            event.origin,
            &event.source_node,
            event.relay_factor,
        )
        .await;
        Ok(())
    }

    /// Send an ack or response to the query's origin, and the same through `relay_factor`
    /// other live members (Serf's relays, for when the direct path loses it).
    async fn reply_to_origin(
        &mut self,
        reply: &[u8],
        origin: SocketAddr,
        origin_name: &str,
        relay_factor: u8,
    ) {
        self.send_query_reply(reply, origin).await;
        let relay_factor = usize::from(relay_factor);
        // Serf relays only when the cluster has that many members besides this one.
        if relay_factor == 0 || self.table.records().count() < relay_factor + 1 {
            return;
        }
        let relay = message::encode_relay(origin, origin_name, reply);
        let limit = self.query_settings.limits.response_size;
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
            self.send_query_reply(&relay, relay_member).await;
        }
    }

    /// An ack or response for one of our queries, or one to relay to its origin.
    pub(super) async fn on_query_reply(&mut self, body: &[u8], from: SocketAddr) {
        match message::decode_reply(body) {
            Ok(Reply::Response(reply)) => self.open_queries.receive(reply),
            // Only a response is forwarded: a relay of a relay could bounce forever.
            Ok(Reply::Relay { dest, inner }) => match message::decode_reply(inner) {
                Ok(Reply::Response(_)) => {
                    debug!("relaying response to addr: {dest}");
                    self.send_query_reply(inner, dest).await;
                }
                _ => debug!("dropped a relay from {from} that carries no response"),
            },
            Err(e) => debug!("dropped query reply from {from}: {e}"),
        }
    }

    /// Every query ack, response and relay leaves through here: over UDP when it fits a
    /// datagram, else (a raised `query_response_size_limit`) over the stream transport.
    async fn send_query_reply(&self, body: &[u8], to: SocketAddr) {
        self.send_fitting(&wire::query_reply_datagram(body), to)
            .await;
    }
}
