//! The stub under the real client: `lambda_runtime` with `AWS_LAMBDA_MAX_CONCURRENCY=4`,
//! as Lambda Managed Instances run it, keeps four `/next` polls open and handles four
//! invocations at once.
//!
//! Its own `main` (no test harness) on a current-thread runtime: `lambda_runtime` reads its
//! settings from the environment, which is only safe to set while no other thread runs.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aeronode_testkit::runtime_api::{FUNCTION_ARN, Invocation, RuntimeApi};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};
use tokio::sync::Barrier;

const CONCURRENCY: usize = 4;
const SOON: Duration = Duration::from_secs(10);

type Outcome = Result<(), String>;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("no tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let api = RuntimeApi::start()
            .await
            .map_err(|e| format!("the stub starts: {e}"))?;
        for (name, value) in api.environment() {
            // SAFETY: this thread is the only one; the current-thread runtime has started none.
            unsafe { std::env::set_var(name, value) };
        }
        unsafe { std::env::set_var("AWS_LAMBDA_MAX_CONCURRENCY", CONCURRENCY.to_string()) };
        let all_in_flight = Arc::new(Barrier::new(CONCURRENCY));
        tokio::spawn(lambda_runtime::run_concurrent(service_fn(move |event| {
            echo(event, Arc::clone(&all_in_flight))
        })));
        four_polls_are_held_and_four_invocations_run_at_once(&api).await?;
        an_invocation_gets_its_own_deadline(&api).await?;
        a_handler_error_comes_back_as_an_error_with_its_type(&api).await
    });
    match outcome {
        Ok(()) => {
            println!("test lambda_runtime: ok");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("test lambda_runtime: FAILED: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// Answers with what the runtime saw. `{"together": true}` waits until four such
/// invocations are in flight, which only a runtime handling them at once can pass.
async fn echo(event: LambdaEvent<Value>, all_in_flight: Arc<Barrier>) -> Result<Value, Diagnostic> {
    if event.payload["fail"] == true {
        return Err(Diagnostic {
            error_type: "Test.Refused".into(),
            error_message: "asked to fail".into(),
        });
    }
    if event.payload["together"] == true {
        all_in_flight.wait().await;
    }
    Ok(json!({
        "payload": event.payload,
        "requestId": event.context.request_id,
        "traceId": event.context.xray_trace_id,
        "deadline": event.context.deadline,
        "arn": event.context.invoked_function_arn,
    }))
}

async fn four_polls_are_held_and_four_invocations_run_at_once(api: &RuntimeApi) -> Outcome {
    api.next_requests(CONCURRENCY, SOON)
        .await
        .map_err(|e| e.to_string())?;
    let pending: Vec<_> = (0..CONCURRENCY)
        .map(|n| api.submit(json!({"together": true, "n": n})))
        .collect();
    let mut trace_ids = Vec::new();
    for (n, pending) in pending.into_iter().enumerate() {
        let (request_id, trace_id) = (
            pending.request_id().to_owned(),
            pending.trace_id().to_owned(),
        );
        let answer = response(tokio::time::timeout(SOON, pending.outcome()).await)?;
        check(
            answer["payload"]["n"] == n,
            "each answer came back to its own invocation",
            &answer,
        )?;
        check(
            answer["requestId"] == request_id.as_str(),
            "the request id reached the handler",
            &answer,
        )?;
        check(
            answer["traceId"] == trace_id.as_str(),
            "the trace id reached the handler",
            &answer,
        )?;
        check(
            answer["arn"] == FUNCTION_ARN,
            "the function ARN reached the handler",
            &answer,
        )?;
        trace_ids.push(trace_id);
    }
    trace_ids.sort();
    trace_ids.dedup();
    check(
        trace_ids.len() == CONCURRENCY,
        "a trace id per invocation",
        &json!(trace_ids),
    )
}

async fn an_invocation_gets_its_own_deadline(api: &RuntimeApi) -> Outcome {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let pending = api.submit_with_deadline(json!({}), Duration::from_secs(3));

    let answer = response(tokio::time::timeout(SOON, pending.outcome()).await)?;

    let deadline = Duration::from_millis(answer["deadline"].as_u64().unwrap_or_default());
    let left = deadline.saturating_sub(now);
    check(
        left > Duration::from_secs(2) && left <= Duration::from_secs(4),
        "the deadline is about 3 s away",
        &answer,
    )
}

async fn a_handler_error_comes_back_as_an_error_with_its_type(api: &RuntimeApi) -> Outcome {
    let outcome = tokio::time::timeout(SOON, api.invoke(json!({"fail": true}))).await;

    match outcome {
        Ok(Ok(Invocation::Error {
            error_type,
            error_message,
        })) if error_type == "Test.Refused" && error_message == "asked to fail" => Ok(()),
        other => Err(format!("expected the handler's error, got {other:?}")),
    }
}

fn response<E: std::fmt::Debug>(
    outcome: Result<Result<Invocation, E>, tokio::time::error::Elapsed>,
) -> Result<Value, String> {
    match outcome {
        Ok(Ok(Invocation::Response(answer))) => Ok(answer),
        other => Err(format!("expected a response, got {other:?}")),
    }
}

fn check(holds: bool, what: &str, seen: &Value) -> Outcome {
    if holds {
        Ok(())
    } else {
        Err(format!("{what}: {seen}"))
    }
}
