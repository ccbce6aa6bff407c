//! What happens to an order after its seats are held: `PaymentSucceeded` (source
//! `skyledger.payments`, `{ "orderId", "paymentId" }`) sells them; `PaymentFailed`
//! (`skyledger.payments`) and `OrderCancelled` (`skyledger.orders`), `{ "orderId", "reason" }`,
//! give them back.

use serde_json::Value;

use super::UnreadableEvent;
use crate::domain::text;
use crate::domain::{OrderId, ReleaseReason};

/// Sell the seats the order holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmOrder {
    pub order_id: OrderId,
    pub payment_id: String,
    pub causation_id: String,
}

/// Give back what the order holds (and, when cancelled, what it bought).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseOrder {
    pub order_id: OrderId,
    pub reason: ReleaseReason,
    pub causation_id: String,
}

const MAX_PAYMENT_ID_LEN: usize = 128;

pub(super) fn confirm(
    detail: &Value,
    causation_id: String,
) -> Result<ConfirmOrder, UnreadableEvent> {
    const DETAIL_TYPE: &str = "PaymentSucceeded";
    let order_id = order_id(detail, DETAIL_TYPE)?;
    // Only logged, never stored or echoed: a control character in it is cleaned, so a
    // paid order is still sold.
    let payment_id = detail
        .get("paymentId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.chars().count() <= MAX_PAYMENT_ID_LEN)
        .ok_or(UnreadableEvent::InvalidDetail {
            detail_type: DETAIL_TYPE,
            problem: "paymentId must be 1 to 128 characters",
        })?;
    Ok(ConfirmOrder {
        order_id,
        payment_id: text::FreeText::clean(payment_id, MAX_PAYMENT_ID_LEN).into(),
        causation_id,
    })
}

pub(super) fn release(
    detail: &Value,
    reason: ReleaseReason,
    causation_id: String,
) -> Result<ReleaseOrder, UnreadableEvent> {
    let detail_type = match reason {
        ReleaseReason::OrderCancelled => "OrderCancelled",
        _ => "PaymentFailed",
    };
    Ok(ReleaseOrder {
        order_id: order_id(detail, detail_type)?,
        reason,
        causation_id,
    })
}

fn order_id(detail: &Value, detail_type: &'static str) -> Result<OrderId, UnreadableEvent> {
    detail
        .get("orderId")
        .and_then(Value::as_str)
        .and_then(OrderId::parse)
        .ok_or(UnreadableEvent::NoOrderId { detail_type })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ORDER: &str = "b6f7c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d";

    #[test]
    fn a_payment_needs_an_order_and_a_payment_id() {
        let ok = confirm(&json!({"orderId": ORDER, "paymentId": "pay_1"}), "e".into());
        assert_eq!(ok.map(|c| c.payment_id).ok().as_deref(), Some("pay_1"));
        for detail in [
            json!({"orderId": ORDER}),
            json!({"orderId": ORDER, "paymentId": ""}),
            json!({"orderId": ORDER, "paymentId": "p".repeat(129)}),
            json!({"paymentId": "pay_1"}),
        ] {
            assert!(confirm(&detail, "e".into()).is_err(), "{detail}");
        }
        for (sent, read) in [
            ("pay\u{0}1", "pay\u{fffd}1"),
            ("pay_1\r\nforged log line", "pay_1  forged log line"),
        ] {
            let cleaned = confirm(&json!({"orderId": ORDER, "paymentId": sent}), "e".into());
            assert_eq!(cleaned.map(|c| c.payment_id).ok().as_deref(), Some(read));
        }
    }

    #[test]
    fn a_release_needs_only_the_order() {
        let cancelled = release(
            &json!({"orderId": ORDER}),
            ReleaseReason::OrderCancelled,
            "e".into(),
        );
        assert_eq!(
            cancelled.map(|r| r.reason).ok(),
            Some(ReleaseReason::OrderCancelled)
        );
        assert!(
            release(
                &json!({"reason": "x"}),
                ReleaseReason::PaymentFailed,
                "e".into()
            )
            .is_err()
        );
    }
}
