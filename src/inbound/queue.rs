//! The queued intake: an SQS batch whose messages are EventBridge events. With the
//! template's `OrderIntake=queue`, the order and payment rules send their events to a
//! queue, and the function reads it through an event source mapping, a batch at a time.

use aws_lambda_events::sqs::SqsEvent;
use serde_json::Value;

use super::{Command, UnreadableEvent, parse, read_payload};

/// One message of the batch: its id, to name it among the batch's failures, and the event
/// it carries, read as a direct invocation's would be.
#[derive(Debug)]
pub struct Queued {
    pub message_id: String,
    pub command: Result<Command, UnreadableEvent>,
}

/// The messages of an SQS batch, or `None` when the payload is not one (every record of an
/// SQS event names `aws:sqs` as its source).
pub fn read_batch(payload: &Value) -> Option<Vec<Queued>> {
    let records = payload.get("Records")?.as_array()?;
    let from_sqs =
        |record: &Value| record.get("eventSource").and_then(Value::as_str) == Some("aws:sqs");
    if records.is_empty() || !records.iter().all(from_sqs) {
        return None;
    }
    let event: SqsEvent = serde_json::from_value(payload.clone()).ok()?;
    Some(
        event
            .records
            .into_iter()
            .map(|message| Queued {
                message_id: message.message_id.unwrap_or_default(),
                command: match message.body {
                    Some(body) => read_payload(&body)
                        .map_err(UnreadableEvent::NotAnEnvelope)
                        .and_then(parse),
                    None => Err(UnreadableEvent::EmptyMessage),
                },
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn batch(bodies: &[Option<&str>]) -> Value {
        let records: Vec<Value> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                json!({"messageId": format!("m{i}"), "eventSource": "aws:sqs", "body": body})
            })
            .collect();
        json!({ "Records": records })
    }

    #[test]
    fn each_message_is_read_as_the_event_it_carries_and_keeps_its_id() {
        let order = json!({
            "version": "0", "id": "e1", "detail-type": "OrderCreated",
            "source": "skyledger.orders", "account": "1", "time": "2026-12-02T00:00:00Z",
            "region": "eu-west-1", "resources": [],
            "detail": {"orderId": "5d2e8f14-7a3b-4c6d-9e0f-1a2b3c4d5e6f",
                       "flightId": "3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10", "seats": ["1A"]}
        })
        .to_string();

        let read = read_batch(&batch(&[Some(&order), Some("not json"), None]));

        let read = read.unwrap_or_default();
        let ids: Vec<&str> = read.iter().map(|q| q.message_id.as_str()).collect();
        assert_eq!(ids, ["m0", "m1", "m2"]);
        assert!(matches!(read[0].command, Ok(Command::Reserve(Ok(_)))));
        assert!(matches!(
            read[1].command,
            Err(UnreadableEvent::NotAnEnvelope(_))
        ));
        assert!(matches!(
            read[2].command,
            Err(UnreadableEvent::EmptyMessage)
        ));
    }

    #[test]
    fn an_eventbridge_event_or_an_empty_record_list_is_not_a_batch() {
        assert!(read_batch(&json!({"id": "e1", "detail-type": "OrderCreated"})).is_none());
        assert!(read_batch(&json!({"Records": []})).is_none());
        assert!(read_batch(&json!({"Records": [{"eventSource": "aws:s3"}]})).is_none());
    }
}
