//! What leaves the process: the event bus port, its adapters, and the outbox that makes
//! publishing survive a crash.

mod eventbridge;
mod memory;
pub mod outbox;

use std::future::Future;

use uuid::Uuid;

use crate::domain::OutgoingEvent;

pub use eventbridge::EventBridgeBus;
pub use memory::RecordingBus;

/// PutEvents takes at most this many entries per call.
pub const MAX_ENTRIES_PER_PUT: usize = 10;

/// Where outgoing events are published.
pub trait EventBus: Send + Sync {
    /// Publishes the events (any number; adapters batch as their API needs) and says,
    /// per event, whether the bus accepted it. A call that fails as a whole rejects
    /// every event it carried.
    fn publish(&self, events: &[OutgoingEvent]) -> impl Future<Output = PublishReport> + Send;
}

/// Which events the bus accepted and which it did not, and why.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    pub accepted: Vec<Uuid>,
    pub rejected: Vec<Rejection>,
    /// Sent, but no answer came (a timeout): the bus may have accepted them. Not a
    /// refusal: they stay pending and go again with the same event id.
    pub ambiguous: Vec<Uuid>,
}

#[derive(Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub event_id: Uuid,
    #[serde(rename = "error")]
    pub reason: String,
    /// No retry of this entry can ever succeed (it is malformed): it is parked at once.
    /// Everything else, throttling, a 5xx, a network error, an access denied during a
    /// deploy, can pass and is waited out.
    pub permanent: bool,
}

impl PublishReport {
    pub(crate) fn reject_all(events: &[OutgoingEvent], reason: &str) -> Vec<Rejection> {
        events
            .iter()
            .map(|event| Rejection {
                event_id: event.event_id,
                reason: reason.to_owned(),
                permanent: false,
            })
            .collect()
    }
}

/// Some events were not accepted; they stay pending and a retry or the relay sends them.
#[derive(Debug, thiserror::Error)]
#[error("{} of {attempted} events were not published; first: {first_reason}", rejected.len())]
pub struct PublishError {
    pub attempted: usize,
    pub rejected: Vec<Uuid>,
    pub first_reason: String,
}
