//! A Lambda Runtime API on the loopback, for timing the binary: events are queued, a held
//! `GET …/invocation/next` hands them out, `POST …/response` or `…/error` completes them,
//! and the arrival of the first `/next` is timestamped (the end of the cold start).
//!
//! Like `tests/api/runtime_api.rs`, but every answer is one write on a `TCP_NODELAY`
//! socket: a head and body written apart wait for the client's delayed ACK (40 ms), which
//! would be measured as the binary's time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::Result;
use crate::http::{read_request, respond};

/// How long the binary gets for one invocation; also its deadline header.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(30);
const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:aeronode-inventory";
const JSON: &str = "application/json";

/// How an invocation ended, as the binary reported it.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    Response(Value),
    Error {
        error_type: String,
        error_message: String,
    },
}

/// The Runtime API; its server stops when this is dropped.
pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// An invocation queued, not yet answered.
pub struct Pending {
    request_id: String,
    outcome: oneshot::Receiver<Invocation>,
}

struct Shared {
    queue: mpsc::UnboundedSender<Queued>,
    /// Taken by one held `/next` at a time.
    queued: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Invocation>>>,
    first_poll: watch::Sender<Option<Instant>>,
}

struct Queued {
    request_id: String,
    event: Value,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (queue, queued) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue,
            queued: tokio::sync::Mutex::new(queued),
            waiting: Mutex::new(HashMap::new()),
            first_poll: watch::Sender::new(None),
        });
        let serving = Arc::clone(&shared);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&serving);
                tokio::spawn(async move {
                    // A broken connection only ends itself; the client opens another.
                    let _ = serve(stream, &shared).await;
                });
            }
        });
        Ok(Self {
            address,
            shared,
            server,
        })
    }

    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Queues the event for the next `/next`.
    pub fn submit(&self, event: Value) -> Pending {
        let request_id = Uuid::new_v4().to_string();
        let (done, outcome) = oneshot::channel();
        lock(&self.shared.waiting).insert(request_id.clone(), done);
        // The receiver lives in `shared`, as long as `self`.
        let _ = self.shared.queue.send(Queued {
            request_id: request_id.clone(),
            event,
        });
        Pending {
            request_id,
            outcome,
        }
    }

    /// Delivers the event and waits for the binary's answer.
    pub async fn invoke(&self, event: Value) -> Result<Invocation> {
        self.submit(event).outcome().await
    }

    /// When the first `/next` arrived; waits for it up to `within`.
    pub async fn first_poll(&self, within: Duration) -> Result<Instant> {
        let mut first = self.shared.first_poll.subscribe();
        match tokio::time::timeout(within, first.wait_for(Option::is_some)).await {
            Ok(Ok(at)) => Ok((*at).unwrap_or_else(Instant::now)),
            _ => Err(format!("no GET /runtime/invocation/next within {within:?}").into()),
        }
    }
}

impl Pending {
    pub async fn outcome(self) -> Result<Invocation> {
        match tokio::time::timeout(INVOCATION_TIMEOUT, self.outcome).await {
            Ok(Ok(invocation)) => Ok(invocation),
            Ok(Err(_)) => Err(format!("request {} was dropped", self.request_id).into()),
            Err(_) => Err(format!(
                "no answer to request {} within {INVOCATION_TIMEOUT:?}",
                self.request_id
            )
            .into()),
        }
    }
}

/// One keep-alive connection: requests in order, each answered before the next is read.
async fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    while let Some(request) = read_request(&mut reader, &mut writer).await? {
        let route = request
            .path
            .strip_prefix("/2018-06-01/runtime/")
            .unwrap_or_default()
            .split('/')
            .collect::<Vec<_>>();
        match (request.method.as_str(), route.as_slice()) {
            ("GET", ["invocation", "next"]) => {
                shared.first_poll.send_if_modified(|first| {
                    first.get_or_insert_with(Instant::now);
                    true
                });
                let queued = tokio::select! {
                    queued = async { shared.queued.lock().await.recv().await } => queued,
                    // The client went away while waiting: leave the event for the next one.
                    _ = reader.fill_buf() => return Ok(()),
                };
                let Some(Queued { request_id, event }) = queued else {
                    return Ok(());
                };
                let deadline_ms = (SystemTime::now() + INVOCATION_TIMEOUT)
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis();
                let headers = [
                    ("Lambda-Runtime-Aws-Request-Id", request_id),
                    ("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string()),
                    (
                        "Lambda-Runtime-Invoked-Function-Arn",
                        FUNCTION_ARN.to_owned(),
                    ),
                    ("Lambda-Runtime-Trace-Id", trace_id()),
                ];
                let body = serde_json::to_vec(&event).unwrap_or_default();
                respond(&mut writer, "200 OK", JSON, &headers, &body).await?;
            }
            ("POST", ["invocation", request_id, "response"]) => {
                let response = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                shared.complete(request_id, Invocation::Response(response));
                accepted(&mut writer).await?;
            }
            ("POST", ["invocation", request_id, "error"]) => {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
                let error = Invocation::Error {
                    error_type: text("errorType"),
                    error_message: text("errorMessage"),
                };
                shared.complete(request_id, error);
                accepted(&mut writer).await?;
            }
            ("POST", ["init", "error"]) => {
                eprintln!(
                    "bench: the binary reported an init error: {}",
                    String::from_utf8_lossy(&request.body)
                );
                accepted(&mut writer).await?;
            }
            _ => respond(&mut writer, "404 Not Found", JSON, &[], b"{}").await?,
        }
        if request.close {
            break;
        }
    }
    Ok(())
}

async fn accepted(writer: &mut (impl tokio::io::AsyncWrite + Unpin)) -> std::io::Result<()> {
    respond(writer, "202 Accepted", JSON, &[], br#"{"status":"OK"}"#).await
}

impl Shared {
    fn complete(&self, request_id: &str, invocation: Invocation) {
        if let Some(waiter) = lock(&self.waiting).remove(request_id) {
            let _ = waiter.send(invocation);
        }
    }
}

fn trace_id() -> String {
    let id = Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{}-{};Parent={};Sampled=0",
        &id[..8],
        &id[8..],
        &id[..16]
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
