//! Many Lambda instances racing for the same seats.

use std::collections::{HashMap, HashSet};

use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::Handled;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{TestApp, detail_of, order_created};

const INSTANCES: usize = 8;
const ORDERS: usize = 200;
/// Rows 1-4, seats A-F: 24 seats for 200 orders of 1-3 seats, so most orders collide.
const HOT_SEATS: [&str; 24] = [
    "1A", "1B", "1C", "1D", "1E", "1F", "2A", "2B", "2C", "2D", "2E", "2F", "3A", "3B", "3C", "3D",
    "3E", "3F", "4A", "4B", "4C", "4D", "4E", "4F",
];

/// 1 to 3 distinct hot seats per order, from a fixed seed so a failure can be replayed.
fn seats_for(order: usize) -> Vec<&'static str> {
    let mut state = (order as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        state ^= state >> 31;
        state = state.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        (state >> 33) as usize
    };
    let count = 1 + next() % 3;
    let mut seats = Vec::new();
    while seats.len() < count {
        let seat = HOT_SEATS[next() % HOT_SEATS.len()];
        if !seats.contains(&seat) {
            seats.push(seat);
        }
    }
    seats
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn racing_orders_never_hold_a_seat_twice_and_each_gets_one_answer(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(TestApp::spawn(options.clone()).await);
    }
    let orders: Vec<(Uuid, Vec<&str>)> = (0..ORDERS)
        .map(|n| (Uuid::new_v4(), seats_for(n)))
        .collect();

    // Each instance takes every INSTANCES-th order and handles them one at a time, as a
    // Lambda instance does; the instances run at once.
    let mut tasks = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        let app = instance.app.clone();
        let mine: Vec<(Uuid, Vec<&'static str>)> = orders
            .iter()
            .skip(index)
            .step_by(INSTANCES)
            .cloned()
            .collect();
        tasks.push(tokio::spawn(async move {
            for (order_id, seats) in mine {
                let answer = app.handle(order_created(order_id, &seats)).await;
                assert!(matches!(answer, Ok(Handled::Answered(_))), "{answer:?}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("an instance task completes");
    }

    let answers: Vec<(DetailType, Value)> = instances
        .iter()
        .flat_map(|instance| instance.published())
        .map(|event| (event.detail_type, detail_of(&event)))
        .collect();
    let answered: HashSet<&str> = answers
        .iter()
        .filter_map(|(_, detail)| detail["orderId"].as_str())
        .collect();
    assert_eq!(answers.len(), ORDERS, "one answer per order");
    assert_eq!(answered.len(), ORDERS, "no order answered twice");

    let db = &instances[0];
    let mut holder_of: HashMap<String, String> = HashMap::new();
    let mut reserved = 0;
    for (detail_type, detail) in &answers {
        let order_id = detail["orderId"].as_str().unwrap_or_default().to_owned();
        let holds = db
            .active_holds(Uuid::parse_str(&order_id).unwrap_or_default())
            .await;
        match detail_type {
            DetailType::SeatReserved => {
                reserved += 1;
                let mut announced: Vec<String> = detail["seats"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|seat| seat["seatNumber"].as_str().map(str::to_owned))
                    .collect();
                announced.sort();
                assert_eq!(
                    holds, announced,
                    "order {order_id} holds exactly what it was told"
                );
                for seat in announced {
                    let earlier = holder_of.insert(seat.clone(), order_id.clone());
                    assert_eq!(earlier, None, "seat {seat} announced to two orders");
                }
            }
            _ => {
                assert_eq!(detail["reason"], "SEAT_UNAVAILABLE", "{detail}");
                assert!(holds.is_empty(), "refused order {order_id} holds {holds:?}");
            }
        }
    }
    let locked = db
        .count("SELECT count(*) FROM flight_seats WHERE status = 'LOCKED'")
        .await;
    assert_eq!(
        locked as usize,
        holder_of.len(),
        "every locked seat belongs to one answer"
    );
    assert!(db.inconsistent_seats().await.is_empty());
    assert!(
        reserved > 0 && reserved < ORDERS,
        "the race had winners and losers"
    );
    instances[0].assert_consistent().await;
}
