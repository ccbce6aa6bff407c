//! EventBridge's PutEvents on the loopback: accepts every entry (or rejects the ones a
//! test names, inside a 200 as EventBridge does) and counts them by detail-type, so the
//! binary publishes for real without an emulator's cost. Point `AWS_ENDPOINT_URL` at
//! [`PutEvents::endpoint`].

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Error;
use crate::loopback::{self, Body, Loopback, read_body, respond};

/// The content type of the AWS JSON 1.1 protocol EventBridge speaks.
const AWS_JSON: &str = "application/x-amz-json-1.1";
const OPERATION: &str = "AWSEvents.PutEvents";

/// The stub; its port and every connection close when this is dropped.
pub struct PutEvents {
    server: Loopback,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Default)]
struct Counts {
    calls: u64,
    by_detail_type: BTreeMap<String, u64>,
    /// The `detail.eventId` of every entry accepted, in order.
    accepted: Vec<String>,
    /// Entries with these `detail.eventId` are rejected, every time.
    rejecting: HashSet<String>,
    rejected: u64,
}

impl PutEvents {
    pub async fn start() -> Result<Self, Error> {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let counting = Arc::clone(&counts);
        let server =
            loopback::http(move |request| put_events(request, Arc::clone(&counting))).await?;
        Ok(Self { server, counts })
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.address())
    }

    /// PutEvents calls answered so far.
    pub fn calls(&self) -> u64 {
        lock(&self.counts).calls
    }

    /// Entries accepted so far, of every detail-type.
    pub fn entries(&self) -> u64 {
        lock(&self.counts).by_detail_type.values().sum()
    }

    /// Rejects every entry whose `detail.eventId` is one of these, on every call, with
    /// `InternalFailure` (a code worth retrying).
    pub fn reject(&self, event_ids: impl IntoIterator<Item = Uuid>) {
        lock(&self.counts)
            .rejecting
            .extend(event_ids.into_iter().map(|id| id.to_string()));
    }

    /// Accepts every entry again.
    pub fn stop_rejecting(&self) {
        lock(&self.counts).rejecting.clear();
    }

    /// The `detail.eventId` of every entry accepted so far, in order.
    pub fn accepted_event_ids(&self) -> Vec<String> {
        lock(&self.counts).accepted.clone()
    }

    /// Entries rejected so far.
    pub fn rejected(&self) -> u64 {
        lock(&self.counts).rejected
    }

    /// Entries of this detail-type accepted so far.
    pub fn published(&self, detail_type: &str) -> u64 {
        let counts = lock(&self.counts);
        counts.by_detail_type.get(detail_type).copied().unwrap_or(0)
    }
}

/// One call: an event id for every entry accepted, an error code for every one rejected.
async fn put_events(request: Request<Incoming>, counts: Arc<Mutex<Counts>>) -> Response<Body> {
    let (head, body) = request.into_parts();
    let operation = head
        .headers
        .get("x-amz-target")
        .map(|value| value.as_bytes());
    if operation != Some(OPERATION.as_bytes()) {
        let refusal = json!({
            "__type": "UnknownOperationException",
            "message": format!("this stub answers {OPERATION} only"),
        });
        return respond(StatusCode::BAD_REQUEST, AWS_JSON, &[], refusal.to_string());
    }
    let body: Value = match read_body(body)
        .await
        .map(|body| serde_json::from_slice(&body))
    {
        Ok(Ok(body)) => body,
        _ => {
            let refusal = json!({"__type": "SerializationException", "message": "not JSON"});
            return respond(StatusCode::BAD_REQUEST, AWS_JSON, &[], refusal.to_string());
        }
    };
    let entries = body["Entries"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut failed = 0;
    let results: Vec<Value> = {
        let mut counts = lock(&counts);
        counts.calls += 1;
        entries
            .iter()
            .map(|entry| {
                let event_id = entry["Detail"]
                    .as_str()
                    .and_then(|detail| serde_json::from_str::<Value>(detail).ok())
                    .and_then(|detail| detail["eventId"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                if counts.rejecting.contains(&event_id) {
                    failed += 1;
                    counts.rejected += 1;
                    return json!({"ErrorCode": "InternalFailure", "ErrorMessage": "rejected by the test"});
                }
                let detail_type = entry["DetailType"].as_str().unwrap_or("?").to_owned();
                *counts.by_detail_type.entry(detail_type).or_default() += 1;
                counts.accepted.push(event_id);
                json!({"EventId": Uuid::new_v4().to_string()})
            })
            .collect()
    };
    let answer = json!({"FailedEntryCount": failed, "Entries": results});
    let request_id = Uuid::new_v4().to_string();
    respond(
        StatusCode::OK,
        AWS_JSON,
        &[("x-amzn-RequestId", &request_id)],
        answer.to_string(),
    )
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    counts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{Exchange, send};

    fn put(entries: &[&str]) -> Exchange {
        let entries: Vec<Value> = entries
            .iter()
            .map(|detail_type| {
                json!({"Source": "skyledger.inventory", "DetailType": detail_type, "Detail": "{}"})
            })
            .collect();
        Exchange::post("/", json!({"Entries": entries}))
            .header("content-type", AWS_JSON)
            .header("x-amz-target", OPERATION)
    }

    #[tokio::test]
    async fn every_entry_is_accepted_with_its_own_event_id_and_counted_by_detail_type() {
        let stub = PutEvents::start().await.expect("the stub starts");

        let answer = send(
            &stub.server.address(),
            put(&["SeatReserved", "SeatReleased", "SeatReserved"]),
        )
        .await;

        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("content-type"), Some(AWS_JSON));
        assert_eq!(answer.body["FailedEntryCount"], 0);
        let ids: Vec<&str> = answer.body["Entries"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|entry| entry["EventId"].as_str())
            .collect();
        assert_eq!(ids.len(), 3, "{}", answer.body);
        assert!(
            ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
            "{ids:?}"
        );
        assert_eq!(stub.calls(), 1);
        assert_eq!(stub.entries(), 3);
        assert_eq!(stub.published("SeatReserved"), 2);
        assert_eq!(stub.published("SeatReleased"), 1);
        assert_eq!(stub.published("SeatBooked"), 0);
    }

    #[tokio::test]
    async fn an_entry_named_for_rejection_fails_inside_a_200_every_time() {
        let stub = PutEvents::start().await.expect("the stub starts");
        let refused = Uuid::new_v4();
        stub.reject([refused]);
        let entry = |event_id: Uuid| {
            json!({"Source": "s", "DetailType": "SeatReserved",
                   "Detail": json!({"eventId": event_id.to_string()}).to_string()})
        };
        let accepted = Uuid::new_v4();
        let call = || {
            Exchange::post("/", json!({"Entries": [entry(refused), entry(accepted)]}))
                .header("content-type", AWS_JSON)
                .header("x-amz-target", OPERATION)
        };

        let first = send(&stub.server.address(), call()).await;
        let second = send(&stub.server.address(), call()).await;

        for answer in [&first, &second] {
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(answer.body["FailedEntryCount"], 1);
            assert_eq!(answer.body["Entries"][0]["ErrorCode"], "InternalFailure");
            assert!(answer.body["Entries"][1]["EventId"].is_string());
        }
        assert_eq!(stub.rejected(), 2);
        assert_eq!(
            stub.accepted_event_ids(),
            vec![accepted.to_string(), accepted.to_string()]
        );
    }

    #[tokio::test]
    async fn another_operation_is_refused_and_not_counted() {
        let stub = PutEvents::start().await.expect("the stub starts");

        let answer = send(
            &stub.server.address(),
            Exchange::post("/", json!({})).header("x-amz-target", "AWSEvents.ListRules"),
        )
        .await;

        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.body["__type"], "UnknownOperationException");
        assert_eq!(stub.calls(), 0);
    }
}
