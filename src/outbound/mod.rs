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
}

#[derive(Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub event_id: Uuid,
    #[serde(rename = "error")]
    pub reason: String,
    /// The bus said this entry can never be accepted as it is: it is parked at once.
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
