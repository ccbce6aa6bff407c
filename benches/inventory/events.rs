//! Incoming events as Lambda delivers them, built from the samples under `events/`.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::Result;

#[derive(Clone)]
pub struct Events {
    order_created: Value,
    payment_failed: Value,
}

fn sample(name: &str) -> Result<Value> {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?)
}

impl Events {
    pub fn load() -> Result<Self> {
        Ok(Self {
            order_created: sample("order-created.json")?,
            payment_failed: sample("payment-failed.json")?,
        })
    }

    /// `OrderCreated` for these seats, with a fresh envelope id.
    pub fn order_created(&self, order_id: Uuid, flight_id: Uuid, seats: &[String]) -> Value {
        let mut event = self.order_created.clone();
        event["id"] = json!(Uuid::new_v4());
        event["detail"] = json!({"orderId": order_id, "flightId": flight_id, "seats": seats});
        event
    }

    /// `PaymentFailed` for the order: its holds go back on sale.
    pub fn payment_failed(&self, order_id: Uuid) -> Value {
        let mut event = self.payment_failed.clone();
        event["id"] = json!(Uuid::new_v4());
        event["detail"]["orderId"] = json!(order_id);
        event
    }
}

/// A seat number of the bench flights (rows 1-30, seats A-F), counting from 0.
pub fn seat_number(index: usize) -> String {
    const LETTERS: [char; 6] = ['A', 'B', 'C', 'D', 'E', 'F'];
    format!("{}{}", index / 6 + 1, LETTERS[index % 6])
}
