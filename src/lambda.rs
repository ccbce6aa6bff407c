//! The Lambda adapter: the runtime loop, the per-invocation span, and how errors are
//! reported to Lambda.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Diagnostic, LambdaEvent, LambdaInvocation, Runtime, service_fn};
use metrics_cloudwatch_embedded::Collector;
use serde_json::Value;
use serde_json::value::RawValue;
use tracing::Instrument;
use tracing::instrument::Instrumented;

use crate::deadline::{DEFAULT_MARGIN, Deadline};
use crate::handler::{App, Handled, HandlerError};
use crate::inbound::{self, UnreadableEvent};
use crate::outbound::EventBus;

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let class = if error.is_retryable() {
            "Retryable"
        } else {
            "Rejected"
        };
        Diagnostic {
            error_type: format!("{class}.{}", error.kind()),
            error_message: error.to_string(),
        }
    }
}

/// Runs the service until the Lambda runtime stops it. With a metrics collector, its
/// Embedded Metric Format document is flushed to stdout after every invocation.
///
/// With `AWS_LAMBDA_MAX_CONCURRENCY` above 1 (Lambda Managed Instances) the runtime polls
/// for that many invocations at once, each with its own database connection; otherwise it
/// runs one at a time. Each invocation answers before its deadline, less a margin.
pub async fn run<B: EventBus + 'static>(
    app: App<B>,
    metrics: Option<&'static Collector>,
) -> Result<(), lambda_runtime::Error> {
    let app = Arc::new(app);
    let cold = Arc::new(AtomicBool::new(true));
    // The payload is taken as raw text and read at the edge: read straight into a `Value`
    // by the runtime, one lone surrogate escape anywhere would keep the handler from
    // ever seeing the event (see src/inbound/payload.rs).
    let handler = service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let app = Arc::clone(&app);
        let cold = Arc::clone(&cold);
        async move {
            if cold.swap(false, Ordering::Relaxed) {
                crate::metrics::cold_start();
            }
            let started = Instant::now();
            let deadline = Deadline::from_epoch_millis(event.context.deadline, DEFAULT_MARGIN);
            // Boxed: the handler's state machine is deep enough to overflow the type-layout
            // recursion limit of the runtime's nested futures; one allocation per invocation.
            // An HTTP request gets its response object back; an event gets null.
            let result = match inbound::read_payload(event.payload.get()) {
                Ok(payload) => match inbound::read_batch(&payload) {
                    // An SQS batch (the queued intake) gets the messages to try again back.
                    // Never null for a batch: Lambda would read that as nothing to retry.
                    Some(batch) => Box::pin(app.handle_batch_until(batch, deadline))
                        .await
                        .and_then(|response| {
                            serde_json::to_value(response).map_err(HandlerError::from)
                        }),
                    None => Box::pin(app.handle_until(payload, deadline))
                        .await
                        .map(|handled| match handled {
                            Handled::Http(response) => {
                                serde_json::to_value(response).unwrap_or(Value::Null)
                            }
                            _ => Value::Null,
                        }),
                },
                Err(error) => {
                    tracing::error!(error = %error, "unreadable payload; failing the invocation");
                    crate::metrics::unreadable_event();
                    Err(HandlerError::from(UnreadableEvent::NotAnEnvelope(error)))
                }
            };
            crate::metrics::handler_duration(started.elapsed());
            if let Some(Err(error)) = metrics.map(|c| c.flush(std::io::stdout().lock())) {
                tracing::warn!(error = %error, "metrics could not be written");
            }
            result
        }
    });
    Runtime::new(handler)
        .layer(InvocationSpan)
        .run_concurrent()
        .await
}

/// Opens the one span of an invocation, like the runtime's own tracing layer, but with
/// the order id and incoming event id declared so the handler can fill them in.
#[derive(Clone, Copy, Debug, Default)]
pub struct InvocationSpan;

impl<S> Layer<S> for InvocationSpan {
    type Service = InvocationSpanService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InvocationSpanService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct InvocationSpanService<S> {
    inner: S,
}

impl<S> Service<LambdaInvocation> for InvocationSpanService<S>
where
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let span = tracing::info_span!(
            "invocation",
            requestId = %invocation.context.request_id,
            xrayTraceId = invocation.context.xray_trace_id.as_deref(),
            orderId = tracing::field::Empty,
            operationId = tracing::field::Empty,
            flightId = tracing::field::Empty,
            eventId = tracing::field::Empty,
        );
        let future = {
            let _entered = span.enter();
            self.inner.call(invocation)
        };
        future.instrument(span)
    }
}
