//! SQS events as Lambda's event source mapping hands them to a function: the queued
//! intake's input, for the tests and the bench.

use serde_json::{Value, json};

/// An SQS event of these messages, `(message id, body)`, in this order.
pub fn batch(messages: &[(String, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(message_id, body)| {
            json!({
                "messageId": message_id,
                "receiptHandle": format!("handle-{message_id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:order-intake",
                "awsRegion": "eu-west-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The batch of these events, one message each, numbered from 0.
pub fn batch_of_events(events: &[Value]) -> Value {
    let messages: Vec<(String, String)> = events
        .iter()
        .enumerate()
        .map(|(i, event)| (format!("message-{i}"), event.to_string()))
        .collect();
    batch(&messages)
}
