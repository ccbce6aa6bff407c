use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::tests::{Answer, Exchange, SOON, eventually, send};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

async fn start() -> (RuntimeApi, SocketAddr) {
    let api = RuntimeApi::start().await.expect("the Runtime API starts");
    let address = api.server.address();
    (api, address)
}

/// A `GET …/next` written by hand on a connection of its own, to read or drop raw.
async fn raw_poll(address: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.expect("connects");
    stream
        .write_all(format!("GET {NEXT} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .expect("the request is sent");
    stream
}

fn response_path(request_id: &str) -> String {
    format!("/2018-06-01/runtime/invocation/{request_id}/response")
}

fn error_path(request_id: &str) -> String {
    format!("/2018-06-01/runtime/invocation/{request_id}/error")
}

fn request_id_of(answer: &Answer) -> &str {
    answer
        .header("lambda-runtime-aws-request-id")
        .unwrap_or_default()
}

/// Milliseconds from now to the invocation's `Lambda-Runtime-Deadline-Ms`.
fn deadline_in(answer: &Answer) -> i128 {
    let deadline: i128 = answer
        .header("lambda-runtime-deadline-ms")
        .and_then(|ms| ms.parse().ok())
        .expect("a deadline in epoch milliseconds");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i128;
    deadline - now
}

/// `Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled=1`, the root's time within a minute of now.
fn assert_xray_format(trace_id: &str) {
    let hex = |part: &str, len: usize| {
        part.len() == len
            && part
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    };
    let parts: Vec<&str> = trace_id.split(';').collect();
    let [root, parent, sampled] = parts[..] else {
        panic!("three fields: {trace_id}");
    };
    let root: Vec<&str> = root
        .strip_prefix("Root=")
        .unwrap_or_default()
        .split('-')
        .collect();
    assert!(
        matches!(root[..], ["1", time, random] if hex(time, 8) && hex(random, 24)),
        "{trace_id}"
    );
    let seconds = u64::from_str_radix(root[1], 16).unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    assert!(now.abs_diff(seconds) < 60, "{trace_id}");
    assert!(
        parent.strip_prefix("Parent=").is_some_and(|id| hex(id, 16)),
        "{trace_id}"
    );
    assert_eq!(sampled, "Sampled=1", "{trace_id}");
}

#[tokio::test]
async fn two_polls_held_at_once_get_one_event_each_in_order_and_answers_go_back_by_request_id() {
    let (api, address) = start().await;
    let first_poll = tokio::spawn(async move { send(&address, Exchange::get(NEXT)).await });
    eventually("the first poll waits", || api.waiting_polls() == 1).await;
    let second_poll = tokio::spawn(async move { send(&address, Exchange::get(NEXT)).await });
    eventually("both polls wait", || api.waiting_polls() == 2).await;

    let one = api.submit(json!({"order": 1}));
    let two = api.submit(json!({"order": 2}));
    let first = first_poll.await.expect("the first poll is answered");
    let second = second_poll.await.expect("the second poll is answered");

    assert_eq!(first.body, json!({"order": 1}));
    assert_eq!(second.body, json!({"order": 2}));
    assert_eq!(request_id_of(&first), one.request_id());
    assert_eq!(request_id_of(&second), two.request_id());
    assert_eq!(api.waiting_polls(), 0);
    // Answered in the other order: each reaches its own invocation.
    let answered = send(
        &address,
        Exchange::post(response_path(two.request_id()), json!("two")),
    )
    .await;
    assert_eq!(answered.status, StatusCode::ACCEPTED);
    send(
        &address,
        Exchange::post(response_path(one.request_id()), json!("one")),
    )
    .await;
    assert_eq!(
        two.outcome().await.ok(),
        Some(Invocation::Response(json!("two")))
    );
    assert_eq!(
        one.outcome().await.ok(),
        Some(Invocation::Response(json!("one")))
    );
    assert_eq!(
        api.next_requests(2, SOON)
            .await
            .map(|polls| polls.len())
            .ok(),
        Some(2)
    );
}

#[tokio::test]
async fn every_invocation_gets_its_own_request_id_and_trace_id_and_the_function_arn() {
    let (api, address) = start().await;
    let one = api.submit(json!({}));
    let two = api.submit(json!({}));

    let first = send(&address, Exchange::get(NEXT)).await;
    let second = send(&address, Exchange::get(NEXT)).await;

    assert_eq!(request_id_of(&first), one.request_id());
    assert_eq!(request_id_of(&second), two.request_id());
    assert_ne!(one.request_id(), two.request_id());
    assert_eq!(
        first.header("lambda-runtime-trace-id"),
        Some(one.trace_id())
    );
    assert_eq!(
        second.header("lambda-runtime-trace-id"),
        Some(two.trace_id())
    );
    assert_ne!(one.trace_id(), two.trace_id());
    assert_xray_format(one.trace_id());
    assert_xray_format(two.trace_id());
    for answer in [&first, &second] {
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.header("lambda-runtime-invoked-function-arn"),
            Some(FUNCTION_ARN)
        );
        assert_eq!(answer.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn the_deadline_is_thirty_seconds_unless_the_invocation_sets_its_own() {
    let (api, address) = start().await;
    let _default = api.submit(json!({}));
    let _short = api.submit_with_deadline(json!({}), Duration::from_secs(2));

    let default = deadline_in(&send(&address, Exchange::get(NEXT)).await);
    let short = deadline_in(&send(&address, Exchange::get(NEXT)).await);

    assert!((29_000..=30_000).contains(&default), "{default} ms");
    assert!((1_000..=2_000).contains(&short), "{short} ms");
}

#[tokio::test]
async fn an_error_post_is_reported_as_an_error_with_its_type_and_message() {
    let (api, address) = start().await;
    let pending = api.submit(json!({}));
    send(&address, Exchange::get(NEXT)).await;

    let body = json!({"errorType": "Retryable.PublishFailed", "errorMessage": "PutEvents failed"});
    let answered = send(
        &address,
        Exchange::post(error_path(pending.request_id()), body),
    )
    .await;

    assert_eq!(answered.status, StatusCode::ACCEPTED);
    assert_eq!(
        pending.outcome().await.ok(),
        Some(Invocation::Error {
            error_type: "Retryable.PublishFailed".into(),
            error_message: "PutEvents failed".into(),
        })
    );
}

#[tokio::test]
async fn an_answer_for_an_invocation_nobody_waits_for_is_refused() {
    let (api, address) = start().await;
    let pending = api.submit(json!({}));
    send(&address, Exchange::get(NEXT)).await;
    send(
        &address,
        Exchange::post(response_path(pending.request_id()), json!(1)),
    )
    .await;

    let again = send(
        &address,
        Exchange::post(response_path(pending.request_id()), json!(2)),
    )
    .await;
    let unknown = send(
        &address,
        Exchange::post(error_path("no-such-id"), json!({})),
    )
    .await;

    for refused in [again, unknown] {
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.body["errorType"], "InvalidRequestID");
    }
    assert_eq!(
        pending.outcome().await.ok(),
        Some(Invocation::Response(json!(1)))
    );
}

#[tokio::test]
async fn an_event_queued_before_the_first_poll_waits_for_it_and_the_poll_is_timed() {
    let (api, address) = start().await;
    let pending = api.submit(json!({"cold": true}));
    let before = Instant::now();

    let delivered = send(&address, Exchange::get(NEXT)).await;

    let first_poll = api.first_poll(SOON).await.expect("a poll arrived");
    assert!(first_poll >= before && first_poll <= Instant::now());
    assert_eq!(delivered.body, json!({"cold": true}));
    send(
        &address,
        Exchange::post(response_path(pending.request_id()), json!(null)),
    )
    .await;
    assert_eq!(
        pending.outcome().await.ok(),
        Some(Invocation::Response(Value::Null))
    );
}

#[tokio::test]
async fn waiting_for_more_polls_than_arrive_is_an_error_that_says_so() {
    let (api, _) = start().await;

    let waited = api.next_requests(1, Duration::from_millis(50)).await;

    assert!(
        matches!(waited, Err(Error::TooFewPolls { wanted: 1, .. })),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_poll_whose_client_hangs_up_leaves_the_event_for_the_next_poll() {
    let (api, address) = start().await;
    let gone = raw_poll(address).await;
    eventually("the poll waits", || api.waiting_polls() == 1).await;
    drop(gone);
    eventually("the poll is given up", || api.waiting_polls() == 0).await;

    let pending = api.submit(json!({"kept": true}));
    let delivered = send(&address, Exchange::get(NEXT)).await;

    assert_eq!(delivered.body, json!({"kept": true}));
    assert_eq!(request_id_of(&delivered), pending.request_id());
}

#[tokio::test]
async fn an_answer_arrives_in_one_piece() {
    let (api, address) = start().await;
    // Larger than a TCP segment's worth of headers, smaller than the socket buffer.
    let event = json!({"padding": "x".repeat(8_000)});
    let expected = event.to_string();
    let _pending = api.submit(event);
    let mut stream = raw_poll(address).await;

    // A head and a body written apart would leave the body behind for the client's
    // delayed ACK: the first read would end at the head.
    let mut buffer = vec![0; 64 * 1024];
    let read = tokio::time::timeout(SOON, stream.read(&mut buffer))
        .await
        .expect("an answer in time")
        .expect("readable");

    let answer = String::from_utf8_lossy(&buffer[..read]);
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole head");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, expected, "the whole body in the same read");
}

#[tokio::test]
async fn a_chunked_answer_is_read_whole_and_connection_close_is_honoured() {
    let (api, address) = start().await;
    let pending = api.submit(json!({}));
    send(&address, Exchange::get(NEXT)).await;
    let mut stream = TcpStream::connect(address).await.expect("connects");
    let request = format!(
        "POST {} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
         4\r\n{{\"a\"\r\n3;ext=1\r\n:1}}\r\n0\r\nLambda-Runtime-Function-Error-Type: x\r\n\r\n",
        response_path(pending.request_id())
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");

    let mut answer = String::new();
    tokio::time::timeout(SOON, stream.read_to_string(&mut answer))
        .await
        .expect("the server closes the connection")
        .expect("readable");

    assert!(answer.starts_with("HTTP/1.1 202 Accepted"), "{answer}");
    assert_eq!(
        pending.outcome().await.ok(),
        Some(Invocation::Response(json!({"a": 1})))
    );
}

#[tokio::test]
async fn an_init_error_is_recorded() {
    let (api, address) = start().await;
    let error = json!({"errorType": "Rejected.Config", "errorMessage": "EVENT_BUS_NAME is empty"});

    let answered = send(
        &address,
        Exchange::post("/2018-06-01/runtime/init/error", error.clone()),
    )
    .await;

    assert_eq!(answered.status, StatusCode::ACCEPTED);
    assert_eq!(api.init_errors(), [error]);
}

#[tokio::test]
async fn dropping_the_api_closes_its_connections_and_abandons_what_is_pending() {
    let (api, address) = start().await;
    let mut held = raw_poll(address).await;
    eventually("the poll waits", || api.waiting_polls() == 1).await;
    let (other, _) = start().await;
    let pending = other.submit(json!({}));

    drop(api);
    drop(other);

    let mut buffer = [0; 64];
    let read = tokio::time::timeout(SOON, held.read(&mut buffer))
        .await
        .expect("the held poll ends");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(matches!(
        pending.outcome().await,
        Err(Error::Abandoned { .. })
    ));
    assert!(
        TcpStream::connect(address).await.is_err(),
        "the port is closed"
    );
}

#[test]
fn runtime_paths_are_routed_with_their_request_id() {
    assert_eq!(
        Route::of("/2018-06-01/runtime/invocation/next"),
        Route::Next
    );
    assert_eq!(
        Route::of("/2018-06-01/runtime/invocation/r-1/response"),
        Route::Response("r-1")
    );
    assert_eq!(
        Route::of("/2018-06-01/runtime/invocation/r-1/error"),
        Route::Error("r-1")
    );
    assert_eq!(
        Route::of("/2018-06-01/runtime/init/error"),
        Route::InitError
    );
    assert_eq!(
        Route::of("/2018-06-01/runtime/invocation/r-1"),
        Route::Unknown
    );
}

#[test]
fn an_error_body_becomes_its_type_and_message() {
    let body = br#"{"errorType":"Retryable.PublishFailed","errorMessage":"down"}"#;
    assert_eq!(
        diagnostic(body),
        Invocation::Error {
            error_type: "Retryable.PublishFailed".into(),
            error_message: "down".into()
        }
    );
}
