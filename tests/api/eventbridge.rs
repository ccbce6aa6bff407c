//! The EventBridge adapter against a real EventBridge API (moto's): batching and the
//! entries a 200 answer still rejects.

use std::time::Duration;

use aeronode_inventory::domain::{DetailType, OutgoingEvent};
use aeronode_inventory::outbound::{EventBridgeBus, EventBus};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::aws_emulator::{BUS, Moto, sdk_config};

fn event(detail: String, event_id: Uuid) -> OutgoingEvent {
    OutgoingEvent {
        event_id,
        detail_type: DetailType::SeatReleased,
        detail,
    }
}

fn well_formed() -> OutgoingEvent {
    let event_id = Uuid::new_v4();
    event(json!({"eventId": event_id}).to_string(), event_id)
}

fn event_ids(arrived: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = arrived
        .iter()
        .filter_map(|envelope| envelope["detail"]["eventId"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn any_number_of_events_is_sent_in_putevents_calls_of_at_most_ten() {
    let moto = Moto::shared();
    let queue = moto.route_inventory_events_to_queue().await;
    let bus = EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&sdk_config(&moto.endpoint())),
        queue.bus(),
    );
    let events: Vec<OutgoingEvent> = (0..25).map(|_| well_formed()).collect();

    let report = bus.publish(&events).await;

    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(
        report.accepted,
        events.iter().map(|e| e.event_id).collect::<Vec<_>>()
    );
    let arrived = queue.receive(25, Duration::from_secs(10)).await;
    let mut sent: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
    sent.sort();
    assert_eq!(event_ids(&arrived), sent);
}

#[tokio::test]
async fn an_entry_rejected_inside_a_successful_answer_is_reported_and_only_it() {
    let moto = Moto::shared();
    let queue = moto.route_inventory_events_to_queue().await;
    let bus = EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&sdk_config(&moto.endpoint())),
        queue.bus(),
    );
    let (first, second) = (well_formed(), well_formed());
    let malformed = event("this is not JSON".into(), Uuid::new_v4());

    let report = bus
        .publish(&[first.clone(), malformed.clone(), second.clone()])
        .await;

    assert_eq!(report.accepted, vec![first.event_id, second.event_id]);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].event_id, malformed.event_id);
    let arrived = queue.receive(2, Duration::from_secs(10)).await;
    let mut expected = vec![first.event_id.to_string(), second.event_id.to_string()];
    expected.sort();
    assert_eq!(event_ids(&arrived), expected);
}

#[tokio::test]
async fn an_unreachable_endpoint_rejects_every_event() {
    let port = crate::aws_emulator::free_port();
    let bus = EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&sdk_config(&format!("http://127.0.0.1:{port}"))),
        BUS,
    );
    let events = [well_formed(), well_formed()];

    let report = bus.publish(&events).await;

    assert!(report.accepted.is_empty());
    assert_eq!(report.rejected.len(), 2);
    assert!(
        report.rejected.iter().all(|r| r.reason.len() < 1_000),
        "{:?}",
        report.rejected
    );
}
