//! RPC `stream` subscribers: every event the agent reports is offered to each of them.
//! Like Serf, each subscriber buffers at most 512 events; a client that falls further
//! behind loses the newer ones (with a warning) rather than slowing the agent down.

use crate::events::AgentEvent;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tracing::warn;

/// Serf's per-stream event buffer.
const STREAM_BUFFER: usize = 512;

#[derive(Clone, Default)]
pub struct EventStreams {
    subscribers: Arc<Mutex<Vec<mpsc::Sender<AgentEvent>>>>,
}

impl EventStreams {
    /// Events from now on; dropping the receiver unsubscribes.
    pub fn subscribe(&self) -> mpsc::Receiver<AgentEvent> {
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        self.lock().push(sender);
        receiver
    }

    pub fn publish(&self, event: &AgentEvent) {
        self.lock()
            .retain(|subscriber| match subscriber.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!("agent.ipc: Dropping event to a stream that is {STREAM_BUFFER} behind");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::Sender<AgentEvent>>> {
        // A panic while holding this lock leaves the list intact; keep using it.
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use musubi_gossip::user_events::UserEvent;

    fn event(n: u64) -> AgentEvent {
        AgentEvent::User(UserEvent {
            ltime: n,
            name: "e".into(),
            payload: vec![],
            coalesce: false,
        })
    }

    #[test]
    fn each_subscriber_gets_every_event_up_to_its_buffer() {
        let streams = EventStreams::default();
        let mut first = streams.subscribe();
        let mut second = streams.subscribe();
        for n in 0..(STREAM_BUFFER as u64 + 10) {
            streams.publish(&event(n));
        }
        for n in 0..STREAM_BUFFER as u64 {
            assert_eq!(first.try_recv().unwrap(), event(n));
        }
        assert!(first.try_recv().is_err());
        assert_eq!(second.try_recv().unwrap(), event(0));
    }

    #[test]
    fn a_dropped_subscriber_is_forgotten() {
        let streams = EventStreams::default();
        drop(streams.subscribe());
        streams.publish(&event(1));
        assert!(streams.lock().is_empty());
    }
}
