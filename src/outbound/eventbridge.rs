use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{EventBus, MAX_ENTRIES_PER_PUT, PublishReport, Rejection};
use crate::domain::{EVENT_SOURCE, OutgoingEvent};

/// Publishes to an EventBridge bus with PutEvents. A call can answer 200 and still
/// reject some entries; those come back as rejected, one by one.
#[derive(Clone, Debug)]
pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }

    async fn put_batch(&self, batch: &[OutgoingEvent], report: &mut PublishReport) {
        let entries = batch
            .iter()
            .map(|event| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus_name)
                    .source(EVENT_SOURCE)
                    .detail_type(event.detail_type.as_str())
                    .detail(&event.detail)
                    .build()
            })
            .collect();
        let output = match self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                // The service's own code and message when it answered; the cause chain
                // (connection refused, timeout) when it did not.
                let reason = match (error.code(), error.message()) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    _ => DisplayErrorContext(&error).to_string(),
                };
                tracing::warn!(error = %reason, entries = batch.len(), "PutEvents failed");
                if sent_without_answer(&error) {
                    report
                        .ambiguous
                        .extend(batch.iter().map(|event| event.event_id));
                } else {
                    // A whole call refused (throttled, a 5xx, access denied while a
                    // deploy changes the role, a connection error): all of it can pass.
                    report
                        .rejected
                        .extend(PublishReport::reject_all(batch, &reason));
                }
                return;
            }
        };
        // Result entries are in request order; an entry with an error code was not
        // accepted. A missing result entry counts as not accepted either.
        let results = output.entries();
        for (index, event) in batch.iter().enumerate() {
            match results.get(index) {
                Some(result) if result.error_code().is_none() && result.event_id().is_some() => {
                    report.accepted.push(event.event_id);
                }
                other => {
                    let code = other.and_then(|result| result.error_code());
                    let reason = other
                        .map(|result| {
                            format!(
                                "{}: {}",
                                result.error_code().unwrap_or("NoEventId"),
                                result.error_message().unwrap_or("")
                            )
                        })
                        .unwrap_or_else(|| "no result entry".into());
                    report.rejected.push(Rejection {
                        event_id: event.event_id,
                        reason,
                        permanent: code.is_some_and(is_permanent),
                    });
                }
            }
        }
    }
}

impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[OutgoingEvent]) -> PublishReport {
        let mut report = PublishReport::default();
        for batch in events.chunks(MAX_ENTRIES_PER_PUT) {
            self.put_batch(batch, &mut report).await;
        }
        report
    }
}

/// Per-entry error codes of PutEvents that no retry of the same entry can mend: the entry
/// itself is malformed. Entries rejected with one are parked at once. Everything else
/// (`InternalFailure`, `ThrottlingException`, and `AccessDeniedException`,
/// `NotAuthorizedFor…` or `InvalidAccountIdException`, which a deploy of the role or the
/// bus name mends) backs off and is waited out.
pub const PERMANENT_ERROR_CODES: [&str; 3] =
    ["InvalidArgument", "MalformedDetail", "RedactionFailure"];

fn is_permanent(code: &str) -> bool {
    PERMANENT_ERROR_CODES.contains(&code)
}

/// The request went out and no answer came back (a timeout, or an answer that could not
/// be read): the bus may have accepted the entries.
fn sent_without_answer<E, R>(error: &SdkError<E, R>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(failure) => failure.is_timeout(),
        _ => false,
    }
}
