//! A batch from the queued intake: its orders decided in one call and one commit, its
//! answers published together, and the messages that should be tried again reported back
//! (`batchItemFailures`) so that only those return to the queue.

use aws_lambda_events::sqs::SqsBatchResponse;

use super::{App, HandlerError, Serves, reservation_answer};
use crate::db::Session;
use crate::deadline::Deadline;
use crate::domain::OutgoingEvent;
use crate::inbound::{Command, Queued, SeatSelection};
use crate::inventory::{self, BatchOrder, Batched};
use crate::metrics;
use crate::outbound::EventBus;

/// A message of the batch to handle on its own, after the batch's orders.
struct Alone {
    message_id: String,
    command: Command,
}

impl<B: EventBus> App<B> {
    /// Handles a batch of queued events before `deadline`, and names the messages to try
    /// again: those a fault that can pass kept from an answer (a retry gives the same
    /// answer, by order id), those time ran out for, and those that cannot be answered at
    /// all (unreadable, or conflicting with an order's first request), which the queue
    /// sends to its dead-letter queue after `maxReceiveCount` receives.
    pub async fn handle_batch_until(
        &self,
        batch: Vec<Queued>,
        deadline: Deadline,
    ) -> Result<SqsBatchResponse, HandlerError> {
        if self.settings.serves == Serves::SeatMapOnly {
            let error = HandlerError::NotServedHere("an SQS batch");
            tracing::error!(error = %error, "not a seat-map request; refused");
            return Err(error);
        }
        let mut response = SqsBatchResponse::default();
        let mut alone = Vec::new();
        let mut together = Vec::new();
        for queued in batch {
            match queued.command {
                Err(error) => {
                    tracing::error!(message_id = %queued.message_id, error = %error, "unreadable queued event; it goes back to the queue");
                    metrics::unreadable_event();
                    response.add_failure(queued.message_id);
                }
                Ok(Command::Http(_)) => {
                    tracing::error!(message_id = %queued.message_id, "an HTTP request on the queue; refused");
                    metrics::unreadable_event();
                    response.add_failure(queued.message_id);
                }
                Ok(Command::Reserve(order))
                    if !order
                        .as_ref()
                        .is_ok_and(|r| matches!(r.seats, SeatSelection::Any { .. })) =>
                {
                    together.push((queued.message_id, order));
                }
                Ok(command) => alone.push(Alone {
                    message_id: queued.message_id,
                    command,
                }),
            }
        }
        let mut session = self.database.session(deadline).await?;
        if !together.is_empty() {
            let decided = self.decide_together(&mut session, together).await;
            // Orders the batch's call left to decide alone come first, in message order:
            // the batch's other events then follow its orders, whether the call decided
            // them or not.
            let mut first = Vec::new();
            for (message_id, outcome) in decided {
                match outcome {
                    Together::Failed => response.add_failure(message_id),
                    Together::Alone(command) => first.push(Alone {
                        message_id,
                        command,
                    }),
                    Together::Answered => {}
                }
            }
            first.append(&mut alone);
            alone = first;
        }
        for Alone {
            message_id,
            command,
        } in alone
        {
            if session.deadline().is_past() {
                tracing::warn!(%message_id, "no time left for the message; it goes back to the queue");
                response.add_failure(message_id);
                continue;
            }
            if let Err(error) = self.dispatch_with_retries(&mut session, command).await {
                tracing::error!(%message_id, error = %error, kind = %error.kind(), retryable = error.is_retryable(), "queued event failed; it goes back to the queue");
                response.add_failure(message_id);
            }
        }
        Ok(response)
    }

    /// The batch's orders that name their seats (and its invalid ones), decided in one call
    /// and answered in `PutEvents` calls of up to ten entries. If the call fails, each is
    /// decided alone instead.
    async fn decide_together(
        &self,
        session: &mut Session<'_>,
        orders: Vec<(
            String,
            Result<crate::inbound::ReserveSeats, crate::inbound::InvalidOrder>,
        )>,
    ) -> Vec<(String, Together)> {
        let batch: Vec<BatchOrder<'_>> = orders
            .iter()
            .map(|(_, order)| match order {
                Ok(request) => BatchOrder::Named(request),
                Err(invalid) => BatchOrder::Invalid(invalid),
            })
            .collect();
        let decided = match inventory::reserve_batch(session, &batch, self.settings.lock_ttl).await
        {
            Ok(decided) => decided,
            Err(error) => {
                let error = HandlerError::from(error);
                tracing::warn!(error = %error, kind = %error.kind(), orders = orders.len(), "the batch could not be decided together; deciding each alone");
                return orders
                    .into_iter()
                    .map(|(id, order)| (id, Together::Alone(Command::Reserve(order))))
                    .collect();
            }
        };
        let mut events: Vec<OutgoingEvent> = Vec::new();
        let mut outcomes = Vec::with_capacity(orders.len());
        for ((message_id, order), decided) in orders.into_iter().zip(decided) {
            let order_id = match &order {
                Ok(request) => request.order_id,
                Err(invalid) => invalid.order_id,
            };
            let outcome = match decided {
                Batched::Alone => Together::Alone(Command::Reserve(order)),
                Batched::Decided(reservation) => match reservation_answer(order_id, reservation) {
                    Ok((event, released)) => {
                        events.push(event);
                        events.extend(released);
                        Together::Answered
                    }
                    Err(error) => {
                        tracing::error!(%message_id, error = %error, kind = %error.kind(), "queued order not answered; it goes back to the queue");
                        Together::Failed
                    }
                },
            };
            outcomes.push((message_id, outcome));
        }
        // The same answer can be due twice (one order delivered twice in the batch).
        events.sort_by_key(|event| event.event_id);
        events.dedup_by_key(|event| event.event_id);
        if let Err(error) = self.publish(session, events).await {
            tracing::error!(error = %error, kind = %error.kind(), "the batch's answers were not all published; its orders go back to the queue");
            for (_, outcome) in &mut outcomes {
                if matches!(outcome, Together::Answered) {
                    *outcome = Together::Failed;
                }
            }
        }
        outcomes
    }
}

/// What became of a message decided with the batch.
enum Together {
    /// Answered on the bus.
    Answered,
    /// To try again.
    Failed,
    /// To handle on its own.
    Alone(Command),
}
