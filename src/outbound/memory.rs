use std::sync::Mutex;

use uuid::Uuid;

use super::{EventBus, PublishReport, Rejection};
use crate::domain::OutgoingEvent;

/// An in-memory bus for tests and benchmarks: records what was published and can be
/// told to refuse some events.
#[derive(Debug, Default)]
pub struct RecordingBus {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    published: Vec<OutgoingEvent>,
    refuse_all: bool,
    refuse: Vec<Uuid>,
    refuse_always: Vec<Uuid>,
    refuse_permanently: Vec<Uuid>,
    time_out: Vec<Uuid>,
}

impl RecordingBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything accepted so far, in order.
    pub fn published(&self) -> Vec<OutgoingEvent> {
        self.lock().published.clone()
    }

    /// Refuse every event until told otherwise, as an unreachable endpoint would.
    pub fn refuse_everything(&self, refuse: bool) {
        self.lock().refuse_all = refuse;
    }

    /// Refuse these events once each, as a partial PutEvents failure would.
    pub fn refuse_once(&self, event_ids: impl IntoIterator<Item = Uuid>) {
        self.lock().refuse.extend(event_ids);
    }

    /// Refuse these events every time, as a bus would an entry it can never accept.
    pub fn refuse_always(&self, event_ids: impl IntoIterator<Item = Uuid>) {
        self.lock().refuse_always.extend(event_ids);
    }

    /// Stop refusing the events of [`RecordingBus::refuse_always`].
    pub fn refuse_always_clear(&self) {
        self.lock().refuse_always.clear();
    }

    /// Refuse these events with a code that says no retry can help (say MalformedDetail).
    pub fn refuse_permanently(&self, event_ids: impl IntoIterator<Item = Uuid>) {
        self.lock().refuse_permanently.extend(event_ids);
    }

    /// Take these events but answer too late, once each, as a timed-out PutEvents would:
    /// the caller cannot know they were accepted.
    pub fn time_out_once(&self, event_ids: impl IntoIterator<Item = Uuid>) {
        self.lock().time_out.extend(event_ids);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock can only come from a test; keep recording.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl EventBus for RecordingBus {
    async fn publish(&self, events: &[OutgoingEvent]) -> PublishReport {
        let mut state = self.lock();
        if state.refuse_all {
            return PublishReport {
                rejected: PublishReport::reject_all(events, "endpoint unreachable"),
                ..PublishReport::default()
            };
        }
        let mut report = PublishReport::default();
        for event in events {
            if state.refuse_permanently.contains(&event.event_id) {
                report.rejected.push(Rejection {
                    event_id: event.event_id,
                    reason: "MalformedDetail: never".into(),
                    permanent: true,
                });
            } else if state.refuse_always.contains(&event.event_id) {
                report.rejected.push(Rejection {
                    event_id: event.event_id,
                    reason: "InternalFailure: always".into(),
                    permanent: false,
                });
            } else if let Some(at) = state.refuse.iter().position(|id| *id == event.event_id) {
                state.refuse.remove(at);
                report.rejected.push(Rejection {
                    event_id: event.event_id,
                    reason: "InternalFailure".into(),
                    permanent: false,
                });
            } else if let Some(at) = state.time_out.iter().position(|id| *id == event.event_id) {
                state.time_out.remove(at);
                state.published.push(event.clone());
                report.ambiguous.push(event.event_id);
            } else {
                state.published.push(event.clone());
                report.accepted.push(event.event_id);
            }
        }
        report
    }
}
