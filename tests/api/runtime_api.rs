//! A small Lambda Runtime API for tests: enough HTTP/1.1 for the `lambda_runtime` client
//! (keep-alive, Content-Length or chunked bodies) to run the real binary locally.
//!
//! `invoke` queues an event, a held `GET …/invocation/next` hands it to the binary, and its
//! `POST …/response` or `…/error` completes the invocation. Every `/next` is timestamped,
//! so a benchmark can time a cold start.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long the binary gets for one invocation; also its deadline header.
pub const INVOCATION_TIMEOUT: Duration = Duration::from_secs(30);

const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:aeronode-inventory";

/// How an invocation ended, as the binary reported it.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    Response(Value),
    Error {
        error_type: String,
        error_message: String,
    },
}

/// The emulator. The server stops when this is dropped.
pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// An invocation handed to the emulator, not yet answered.
pub struct Pending {
    request_id: String,
    outcome: oneshot::Receiver<Invocation>,
}

struct Shared {
    queue: mpsc::UnboundedSender<Queued>,
    /// Taken by one held `/next` at a time.
    queued: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Invocation>>>,
    /// When each `/next` request arrived.
    polls: watch::Sender<Vec<Instant>>,
}

struct Queued {
    request_id: String,
    event: Value,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the Runtime API");
        let address = listener.local_addr().expect("the listener has an address");
        let (queue, queued) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue,
            queued: tokio::sync::Mutex::new(queued),
            waiting: Mutex::new(HashMap::new()),
            polls: watch::Sender::new(Vec::new()),
        });
        let server = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Self {
            address,
            shared,
            server,
        }
    }

    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Delivers the event and waits for the binary's answer.
    pub async fn invoke(&self, event: Value) -> Invocation {
        self.submit(event).outcome().await
    }

    /// Queues the event for the next `/next`, without waiting for the answer.
    pub fn submit(&self, event: Value) -> Pending {
        let request_id = Uuid::new_v4().to_string();
        let (done, outcome) = oneshot::channel();
        lock(&self.shared.waiting).insert(request_id.clone(), done);
        let queued = Queued {
            request_id: request_id.clone(),
            event,
        };
        // The receiver lives in `shared`, as long as `self`.
        let _ = self.shared.queue.send(queued);
        Pending {
            request_id,
            outcome,
        }
    }

    /// When each `/next` request arrived, once there are at least `count` of them.
    /// The first is the end of the cold start. Panics after `within`.
    pub async fn next_requests(&self, count: usize, within: Duration) -> Vec<Instant> {
        let mut polls = self.shared.polls.subscribe();
        match tokio::time::timeout(within, polls.wait_for(|polls| polls.len() >= count)).await {
            Ok(Ok(polls)) => polls.clone(),
            _ => panic!("fewer than {count} /next requests within {within:?}"),
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Pending {
    /// The binary's answer; panics if none comes within [`INVOCATION_TIMEOUT`].
    pub async fn outcome(self) -> Invocation {
        match tokio::time::timeout(INVOCATION_TIMEOUT, self.outcome).await {
            Ok(Ok(invocation)) => invocation,
            Ok(Err(_)) => panic!(
                "the Runtime API stopped before request {} was answered",
                self.request_id
            ),
            Err(_) => panic!(
                "no answer to request {} within {INVOCATION_TIMEOUT:?}",
                self.request_id
            ),
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((stream, _)) = listener.accept().await {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            // A connection that breaks only ends itself; the client opens another.
            let _ = serve(stream, &shared).await;
        });
    }
}

/// One keep-alive connection: requests in order, each answered before the next is read.
async fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    while let Some(request) = read_request(&mut reader).await? {
        match (request.method.as_str(), Route::of(&request.path)) {
            ("GET", Route::Next) => {
                shared.polls.send_modify(|polls| polls.push(Instant::now()));
                let queued = tokio::select! {
                    queued = async { shared.queued.lock().await.recv().await } => queued,
                    // The client went away while waiting: leave the event for the next one.
                    _ = reader.fill_buf() => return Ok(()),
                };
                let Some(Queued { request_id, event }) = queued else {
                    return Ok(());
                };
                let deadline = SystemTime::now() + INVOCATION_TIMEOUT;
                let deadline_ms = deadline
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
                respond(&mut writer, "200 OK", &headers, &body).await?;
            }
            ("POST", Route::Response(request_id)) => {
                let response = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                shared.complete(request_id, Invocation::Response(response));
                accepted(&mut writer).await?;
            }
            ("POST", Route::Error(request_id)) => {
                shared.complete(request_id, diagnostic(&request.body));
                accepted(&mut writer).await?;
            }
            ("POST", Route::InitError) => {
                eprintln!(
                    "runtime_api: init error: {}",
                    String::from_utf8_lossy(&request.body)
                );
                accepted(&mut writer).await?;
            }
            _ => respond(&mut writer, "404 Not Found", &[], b"{}").await?,
        }
        if request.close {
            break;
        }
    }
    Ok(())
}

impl Shared {
    fn complete(&self, request_id: &str, invocation: Invocation) {
        if let Some(waiter) = lock(&self.waiting).remove(request_id) {
            // Nobody may be waiting any more (a submitted, abandoned invocation).
            let _ = waiter.send(invocation);
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

/// The body of `/error`: `{"errorType": …, "errorMessage": …}`.
fn diagnostic(body: &[u8]) -> Invocation {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
    Invocation::Error {
        error_type: text("errorType"),
        error_message: text("errorMessage"),
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

#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    /// The client asked to close the connection after this request.
    close: bool,
}

fn bad_request(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one request; `None` if the connection closed cleanly before it.
async fn read_request(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let (Some(method), Some(path)) = (words.next(), words.next()) else {
        return Err(bad_request("malformed request line"));
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let (mut length, mut chunked, mut close) = (0, false, false);
    loop {
        let line = read_line(reader).await?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad_request("malformed header"))?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().map_err(|_| bad_request("bad length"))?,
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let body = if chunked {
        read_chunked(reader).await?
    } else {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        body
    };
    Ok(Some(Request {
        method,
        path,
        body,
        close,
    }))
}

/// A chunked body: hex size lines, each followed by that many bytes; a zero size, then
/// optional trailers and an empty line, ends it.
async fn read_chunked(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader).await?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad_request("bad chunk size"))?;
        if size == 0 {
            while !read_line(reader).await?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        if !read_line(reader).await?.is_empty() {
            return Err(bad_request("chunk longer than its size"));
        }
    }
}

/// One line without its line ending; the connection closing mid-request is an error.
async fn read_line(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn accepted(writer: &mut (impl AsyncWrite + Unpin)) -> io::Result<()> {
    respond(writer, "202 Accepted", &[], br#"{"status":"OK"}"#).await
}

async fn respond(
    writer: &mut (impl AsyncWrite + Unpin),
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    writer.write_all(head.as_bytes()).await?;
    writer.write_all(body).await?;
    writer.flush().await
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &str) -> io::Result<Option<Request>> {
        read_request(&mut raw.as_bytes()).await
    }

    #[tokio::test]
    async fn a_request_with_a_content_length_body_is_read_whole() {
        let raw = "POST /2018-06-01/runtime/invocation/abc/response HTTP/1.1\r\n\
                   host: 127.0.0.1\r\ncontent-length: 4\r\n\r\nnullGET";
        let request = parse(raw).await.ok().flatten();
        assert_eq!(
            request,
            Some(Request {
                method: "POST".into(),
                path: "/2018-06-01/runtime/invocation/abc/response".into(),
                body: b"null".to_vec(),
                close: false,
            })
        );
    }

    #[tokio::test]
    async fn a_chunked_body_is_joined_and_its_trailers_skipped() {
        let raw = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                   4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\nLambda-Runtime-Function-Error-Type: x\r\n\r\n";
        let request = parse(raw).await.ok().flatten();
        assert_eq!(
            request.as_ref().map(|r| r.body.as_slice()),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(request.map(|r| r.close), Some(true));
    }

    #[tokio::test]
    async fn a_closed_connection_is_no_request_but_a_cut_one_is_an_error() {
        assert!(matches!(parse("").await, Ok(None)));
        assert!(parse("GET /x HTTP/1.1\r\nhost: a\r\n").await.is_err());
        assert!(
            parse("POST /x HTTP/1.1\r\ncontent-length: 9\r\n\r\nabc")
                .await
                .is_err()
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
}
