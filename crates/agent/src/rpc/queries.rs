//! RPC `query`, `stream` and `respond`: a query's acks and responses as stream records,
//! events as stream records, and the per-connection IDs by which a client answers the
//! queries its event streams showed it.

use super::members::member_wire;
use super::streams::{OpenStream, RecordSink, StreamTask};
use crate::events::{AgentEvent, MemberEventKind};
use crate::handlers::EventFilters;
use musubi_gossip::membership::{MemberRecord, MemberStatus};
use musubi_gossip::query::{INTERNAL_PREFIX, PING, QueryEvent, QueryParams, QueryRecord};
use musubi_serf_rpc::codec::{
    MemberEventRecord, QueryEventRecord, QueryRecordWire, QueryRequest, UserEventRecord,
};
use serde_bytes::ByteBuf;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Serf's refusal of internal query names (agent.go).
fn internal_prefix_refused() -> String {
    format!("Queries cannot contain the '{INTERNAL_PREFIX}' prefix")
}

/// An RPC `query` request as the node takes it; `_serf_*` names are refused except
/// `_serf_ping` with a nil payload (`serf reachability`), as Serf refuses them.
pub fn query_params(request: QueryRequest) -> Result<QueryParams, String> {
    // Go's client sends an empty payload as nil, so empty counts as nil here.
    let payload = request.payload.map(ByteBuf::into_vec).unwrap_or_default();
    if request.name.starts_with(INTERNAL_PREFIX) && (request.name != PING || !payload.is_empty()) {
        return Err(internal_prefix_refused());
    }
    let timeout = u64::try_from(request.timeout)
        .ok()
        .filter(|&nanos| nanos > 0)
        .map(Duration::from_nanos);
    Ok(QueryParams {
        name: request.name,
        payload,
        filter_nodes: request.filter_nodes,
        filter_tags: request.filter_tags,
        request_ack: request.request_ack,
        relay_factor: request.relay_factor,
        timeout,
    })
}

/// A query's records, as Serf streams them, until `done`.
pub fn query_stream(mut records: mpsc::UnboundedReceiver<QueryRecord>) -> OpenStream {
    Box::new(move |sink: RecordSink| {
        Box::pin(async move {
            while let Some(record) = records.recv().await {
                let done = record == QueryRecord::Done;
                if !sink.send(&query_record(record)) || done {
                    return;
                }
            }
        }) as StreamTask
    })
}

fn query_record(record: QueryRecord) -> QueryRecordWire {
    match record {
        QueryRecord::Ack { from } => QueryRecordWire {
            from,
            payload: None,
            kind: "ack",
        },
        QueryRecord::Response { from, payload } => QueryRecordWire {
            from,
            payload: Some(ByteBuf::from(payload)),
            kind: "response",
        },
        QueryRecord::Done => QueryRecordWire {
            from: String::new(),
            payload: None,
            kind: "done",
        },
    }
}

/// The queries a connection's event streams delivered, by the ID each was shown with,
/// until their deadlines.
#[derive(Clone, Default)]
pub struct PendingQueries {
    inner: Arc<Mutex<PendingInner>>,
}

#[derive(Default)]
struct PendingInner {
    last_id: u64,
    by_id: HashMap<u64, QueryEvent>,
}

impl PendingQueries {
    /// A fresh ID for `event` (1, 2, ... per connection, as Serf numbers them).
    pub fn register(&self, event: &QueryEvent) -> u64 {
        let mut inner = self.lock();
        let now = Instant::now().into_std();
        inner.by_id.retain(|_, pending| pending.deadline > now);
        inner.last_id += 1;
        let id = inner.last_id;
        if event.deadline > now {
            inner.by_id.insert(id, event.clone());
        }
        id
    }

    /// The query shown with `id`, if it may still be answered.
    pub fn get(&self, id: u64) -> Option<QueryEvent> {
        let inner = self.lock();
        inner
            .by_id
            .get(&id)
            .filter(|event| event.deadline > Instant::now().into_std())
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PendingInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The events `filters` wants, as Serf's stream records.
pub fn event_stream(
    filters: EventFilters,
    mut events: mpsc::Receiver<AgentEvent>,
    pending: PendingQueries,
) -> OpenStream {
    Box::new(move |sink: RecordSink| {
        Box::pin(async move {
            while let Some(event) = events.recv().await {
                if filters.wants(&event) && !send_event(&sink, event, &pending) {
                    return;
                }
            }
        }) as StreamTask
    })
}

fn send_event(sink: &RecordSink, event: AgentEvent, pending: &PendingQueries) -> bool {
    match event {
        AgentEvent::Member { kind, members } => {
            let status = match kind {
                MemberEventKind::Join | MemberEventKind::Update => MemberStatus::Alive,
                // A reaped member was left or failed; the event does not say which, and a
                // reaped member is gone for good, as a left one is.
                MemberEventKind::Leave | MemberEventKind::Reap => MemberStatus::Left,
                MemberEventKind::Failed => MemberStatus::Failed,
            };
            let members = members
                .into_iter()
                .map(|id| member_wire(&MemberRecord { id, status }))
                .collect();
            sink.send(&MemberEventRecord {
                event: kind.as_str(),
                members,
            })
        }
        AgentEvent::User(user) => sink.send(&UserEventRecord {
            coalesce: user.coalesce,
            event: "user",
            ltime: user.ltime,
            name: user.name,
            payload: ByteBuf::from(user.payload),
        }),
        AgentEvent::Query(query) => sink.send(&QueryEventRecord {
            event: "query",
            id: pending.register(&query),
            ltime: query.ltime,
            name: query.name,
            payload: ByteBuf::from(query.payload),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, payload: Option<&[u8]>) -> QueryRequest {
        QueryRequest {
            name: name.into(),
            payload: payload.map(|p| ByteBuf::from(p.to_vec())),
            ..Default::default()
        }
    }

    #[test]
    fn internal_names_are_refused_except_a_bare_ping() {
        let refused = Err("Queries cannot contain the '_serf_' prefix".to_string());
        assert_eq!(query_params(request("_serf_list-keys", None)), refused);
        assert_eq!(query_params(request("_serf_ping", Some(b"x"))), refused);
        assert!(query_params(request("_serf_ping", None)).is_ok());
        assert!(query_params(request("_serf_ping", Some(b""))).is_ok());
        assert!(query_params(request("uptime", Some(b"x"))).is_ok());
    }

    #[test]
    fn a_zero_timeout_means_the_default() {
        let mut with_timeout = request("q", None);
        with_timeout.timeout = 1_500_000_000;
        assert_eq!(
            query_params(with_timeout).unwrap().timeout,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(query_params(request("q", None)).unwrap().timeout, None);
    }

    #[test]
    fn ids_count_up_per_connection_and_expire_with_the_query() {
        let pending = PendingQueries::default();
        let live = musubi_gossip::query::QueryEvent {
            deadline: Instant::now().into_std() + Duration::from_secs(5),
            ..musubi_gossip::query::testing::event("q")
        };
        let expired = musubi_gossip::query::testing::event("late");
        assert_eq!(pending.register(&live), 1);
        assert_eq!(pending.register(&expired), 2);
        assert_eq!(pending.get(1), Some(live));
        assert_eq!(pending.get(2), None);
        assert_eq!(pending.get(3), None);
    }
}
