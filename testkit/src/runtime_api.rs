//! The Lambda Runtime API on the loopback, enough to run the real binary as Lambda does.
//!
//! [`RuntimeApi::submit`] queues an event with a new request id and X-Ray trace id. A held
//! `GET …/invocation/next` hands it out (several may be held at once, as a runtime with
//! `AWS_LAMBDA_MAX_CONCURRENCY` above 1 keeps them: events go first in, first out, to the
//! poll waiting longest), and the binary's `POST …/{id}/response` or `…/{id}/error` comes
//! back to that invocation's [`Pending`]. Every `/next` is timestamped, so a bench can time
//! a cold start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::Error;
use crate::loopback::{self, Body, Loopback, read_body, respond};

/// The function the binary is told it is, in `AWS_LAMBDA_FUNCTION_NAME` and the ARN.
pub const FUNCTION_NAME: &str = "aeronode-inventory";
pub const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:aeronode-inventory";
/// An invocation's time unless [`RuntimeApi::submit_with_deadline`] gives another, as
/// `Lambda-Runtime-Deadline-Ms`: counted from when a `/next` hands the event out.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// How much longer than its deadline [`Pending::outcome`] waits: the event may first wait
/// for a poll, and a runtime reports its timeout after the deadline has passed.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);

const JSON: &str = "application/json";

/// How an invocation ended, as the binary reported it.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    /// `POST …/{id}/response`: the handler's answer (a string if it was not JSON).
    Response(Value),
    /// `POST …/{id}/error`: the runtime's `{"errorType": …, "errorMessage": …}`.
    Error {
        error_type: String,
        error_message: String,
    },
}

/// The Runtime API; its port and every connection close when this is dropped.
pub struct RuntimeApi {
    server: Loopback,
    shared: Arc<Shared>,
}

/// An invocation handed to the API, not yet answered.
#[derive(Debug)]
pub struct Pending {
    request_id: String,
    trace_id: String,
    patience: Duration,
    outcome: oneshot::Receiver<Invocation>,
}

struct Shared {
    queue: mpsc::UnboundedSender<Queued>,
    /// Held by the oldest waiting `/next` (tokio's mutex is fair), so queued events go out
    /// in order, each to one poll, in the order the polls arrived.
    queued: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    /// By request id, until the binary answers.
    answers: Mutex<HashMap<String, oneshot::Sender<Invocation>>>,
    /// When each `/next` arrived.
    polls: watch::Sender<Vec<Instant>>,
    /// `/next` requests held open now, waiting for an event.
    waiting_polls: AtomicUsize,
    init_errors: Mutex<Vec<Value>>,
}

struct Queued {
    request_id: String,
    trace_id: String,
    deadline: Duration,
    /// The event as the body of `/next`: JSON text, as Lambda sends it.
    body: Vec<u8>,
}

impl RuntimeApi {
    pub async fn start() -> Result<Self, Error> {
        let (queue, queued) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue,
            queued: tokio::sync::Mutex::new(queued),
            answers: Mutex::new(HashMap::new()),
            polls: watch::Sender::new(Vec::new()),
            waiting_polls: AtomicUsize::new(0),
            init_errors: Mutex::new(Vec::new()),
        });
        let serving = Arc::clone(&shared);
        let server = loopback::http(move |request| Arc::clone(&serving).handle(request)).await?;
        Ok(Self { server, shared })
    }

    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.server.address().to_string()
    }

    /// The `AWS_LAMBDA_*` variables Lambda sets for a function served by this API.
    pub fn environment(&self) -> [(&'static str, String); 4] {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ]
    }

    /// Queues the event, with [`DEFAULT_DEADLINE`], without waiting for the answer.
    pub fn submit(&self, event: Value) -> Pending {
        self.submit_with_deadline(event, DEFAULT_DEADLINE)
    }

    /// Queues the event; the binary gets `deadline` from when a `/next` hands it out.
    pub fn submit_with_deadline(&self, event: Value, deadline: Duration) -> Pending {
        let body = serde_json::to_vec(&event).unwrap_or_default();
        self.queue(body, deadline)
    }

    /// Queues an event given as raw JSON text, sent exactly so: text that no `Value` can
    /// hold, such as a lone surrogate escape (`"\ud800"`), reaches the function as it would
    /// from Lambda.
    pub fn submit_raw(&self, body: &str) -> Pending {
        self.queue(body.as_bytes().to_vec(), DEFAULT_DEADLINE)
    }

    fn queue(&self, body: Vec<u8>, deadline: Duration) -> Pending {
        let request_id = Uuid::new_v4().to_string();
        let trace_id = trace_id(SystemTime::now());
        let (answer, outcome) = oneshot::channel();
        lock(&self.shared.answers).insert(request_id.clone(), answer);
        // The receiver lives in `shared`, as long as `self`.
        let _ = self.shared.queue.send(Queued {
            request_id: request_id.clone(),
            trace_id: trace_id.clone(),
            deadline,
            body,
        });
        Pending {
            request_id,
            trace_id,
            patience: deadline + ANSWER_MARGIN,
            outcome,
        }
    }

    /// Delivers the event and waits for the binary's answer.
    pub async fn invoke(&self, event: Value) -> Result<Invocation, Error> {
        self.submit(event).outcome().await
    }

    /// When each `/next` arrived, once at least `count` have; an error after `within`.
    pub async fn next_requests(
        &self,
        count: usize,
        within: Duration,
    ) -> Result<Vec<Instant>, Error> {
        let mut polls = self.shared.polls.subscribe();
        match tokio::time::timeout(within, polls.wait_for(|polls| polls.len() >= count)).await {
            Ok(Ok(polls)) => Ok(polls.clone()),
            _ => Err(Error::TooFewPolls {
                wanted: count,
                within,
            }),
        }
    }

    /// When the first `/next` arrived: the end of the binary's cold start.
    pub async fn first_poll(&self, within: Duration) -> Result<Instant, Error> {
        let polls = self.next_requests(1, within).await?;
        polls
            .first()
            .copied()
            .ok_or(Error::TooFewPolls { wanted: 1, within })
    }

    /// How many `/next` requests are held open now, waiting for an event.
    pub fn waiting_polls(&self) -> usize {
        self.shared.waiting_polls.load(Ordering::SeqCst)
    }

    /// The bodies of every `POST …/init/error` so far.
    pub fn init_errors(&self) -> Vec<Value> {
        lock(&self.shared.init_errors).clone()
    }
}

impl Pending {
    /// `Lambda-Runtime-Aws-Request-Id` of this invocation.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// `Lambda-Runtime-Trace-Id` of this invocation, as the binary receives it.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The binary's answer; an error if none comes within the deadline and a margin.
    pub async fn outcome(self) -> Result<Invocation, Error> {
        match tokio::time::timeout(self.patience, self.outcome).await {
            Ok(Ok(invocation)) => Ok(invocation),
            Ok(Err(_)) => Err(Error::Abandoned {
                request_id: self.request_id,
            }),
            Err(_) => Err(Error::NoAnswer {
                request_id: self.request_id,
                waited: self.patience,
            }),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Next,
    Response(&'a str),
    Error(&'a str),
    InitError,
    Unknown,
}

impl<'a> Route<'a> {
    fn of(path: &'a str) -> Self {
        let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
            return Self::Unknown;
        };
        match rest.split('/').collect::<Vec<_>>()[..] {
            ["invocation", "next"] => Self::Next,
            ["invocation", id, "response"] => Self::Response(id),
            ["invocation", id, "error"] => Self::Error(id),
            ["init", "error"] => Self::InitError,
            _ => Self::Unknown,
        }
    }
}

impl Shared {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let (head, body) = request.into_parts();
        let body = match read_body(body).await {
            Ok(body) => body,
            Err(error) => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    &[],
                    error.to_string(),
                );
            }
        };
        match (head.method, Route::of(head.uri.path())) {
            (Method::GET, Route::Next) => self.next().await,
            (Method::POST, Route::Response(request_id)) => {
                self.complete(request_id, Invocation::Response(json_or_text(&body)))
            }
            (Method::POST, Route::Error(request_id)) => {
                self.complete(request_id, diagnostic(&body))
            }
            (Method::POST, Route::InitError) => {
                let error = json_or_text(&body);
                eprintln!("runtime_api: the binary reported an init error: {error}");
                lock(&self.init_errors).push(error);
                accepted()
            }
            _ => respond(StatusCode::NOT_FOUND, JSON, &[], "{}"),
        }
    }

    /// A held `/next`: waits its turn for an event, then hands it out with its headers.
    async fn next(&self) -> Response<Body> {
        self.polls.send_modify(|polls| polls.push(Instant::now()));
        let waiting = Waiting::start(&self.waiting_polls);
        // Cancel-safe: a poll whose client goes away is dropped here and takes no event.
        let queued = self.queued.lock().await.recv().await;
        drop(waiting);
        // Never: the sender lives in `self` too.
        let Some(queued) = queued else {
            return respond(StatusCode::INTERNAL_SERVER_ERROR, JSON, &[], "{}");
        };
        let deadline_ms = (SystemTime::now() + queued.deadline)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            .to_string();
        let headers = [
            ("Lambda-Runtime-Aws-Request-Id", queued.request_id.as_str()),
            ("Lambda-Runtime-Deadline-Ms", deadline_ms.as_str()),
            ("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN),
            ("Lambda-Runtime-Trace-Id", queued.trace_id.as_str()),
        ];
        respond(StatusCode::OK, JSON, &headers, queued.body)
    }

    /// Routes the answer to its invocation; Lambda refuses an id it is not waiting on.
    fn complete(&self, request_id: &str, invocation: Invocation) -> Response<Body> {
        let Some(waiter) = lock(&self.answers).remove(request_id) else {
            let refusal = json!({
                "errorType": "InvalidRequestID",
                "errorMessage": format!("no invocation {request_id} is waiting for an answer"),
            });
            return respond(StatusCode::BAD_REQUEST, JSON, &[], refusal.to_string());
        };
        // Nobody may be waiting any more: a submitted, abandoned invocation.
        let _ = waiter.send(invocation);
        accepted()
    }
}

fn accepted() -> Response<Body> {
    respond(StatusCode::ACCEPTED, JSON, &[], r#"{"status":"OK"}"#)
}

/// Counts a `/next` as waiting for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn json_or_text(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// The body of `/error`: `{"errorType": …, "errorMessage": …}`.
fn diagnostic(body: &[u8]) -> Invocation {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
    Invocation::Error {
        error_type: text("errorType"),
        error_message: text("errorMessage"),
    }
}

/// An X-Ray trace header as Lambda sends it: the root is the epoch seconds and 96 random
/// bits, the parent a random segment id.
fn trace_id(now: SystemTime) -> String {
    let epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=1",
        epoch,
        fastrand::u128(..) >> 32,
        fastrand::u64(..)
    )
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
