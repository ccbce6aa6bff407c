//! What the tests and the bench stand up on the loopback in place of AWS and to watch
//! PostgreSQL, written once for both:
//!
//! - [`runtime_api`]: the Lambda Runtime API, to run the real binary as Lambda does;
//! - [`put_events`]: EventBridge's PutEvents, accepting every entry;
//! - [`wire`]: a TCP proxy in front of PostgreSQL that counts round trips and statements;
//! - [`sqs`]: SQS events, as the queued intake receives them.
//!
//! The two HTTP stubs are hyper servers that answer every request in one write on a
//! `TCP_NODELAY` socket (see [`loopback`]). Everything stops when its handle is dropped.

mod loopback;
pub mod put_events;
pub mod runtime_api;
pub mod sqs;
pub mod wire;

use std::time::Duration;

/// What can go wrong in a stub; every message names what was waited for.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on a loopback port")]
    Listen(#[source] std::io::Error),
    #[error("no answer to invocation {request_id} within {waited:?}")]
    NoAnswer {
        request_id: String,
        waited: Duration,
    },
    #[error("the Runtime API stopped before invocation {request_id} was answered")]
    Abandoned { request_id: String },
    #[error("fewer than {wanted} GET /runtime/invocation/next within {within:?}")]
    TooFewPolls { wanted: usize, within: Duration },
}

/// A client for the stubs' own tests: one request per connection, with hyper.
#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::header::HeaderMap;
    use hyper::{Method, Request, StatusCode};
    use hyper_util::rt::TokioIo;
    use serde_json::Value;
    use tokio::net::TcpStream;

    /// Bound on every wait for something that should happen at once.
    pub const SOON: Duration = Duration::from_secs(5);

    pub struct Exchange {
        method: Method,
        path: String,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    }

    impl Exchange {
        pub fn get(path: impl Into<String>) -> Self {
            Self {
                method: Method::GET,
                path: path.into(),
                headers: Vec::new(),
                body: Bytes::new(),
            }
        }

        pub fn post(path: impl Into<String>, body: Value) -> Self {
            Self {
                method: Method::POST,
                body: Bytes::from(body.to_string()),
                ..Self::get(path)
            }
        }

        pub fn header(mut self, name: &'static str, value: &str) -> Self {
            self.headers.push((name, value.to_owned()));
            self
        }
    }

    pub struct Answer {
        pub status: StatusCode,
        pub headers: HeaderMap,
        /// The body as JSON, `null` if it is not.
        pub body: Value,
    }

    impl Answer {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|value| value.to_str().ok())
        }
    }

    /// Sends the request on a connection of its own and reads the whole answer.
    pub async fn send(address: &SocketAddr, exchange: Exchange) -> Answer {
        let stream = TcpStream::connect(address).await.expect("the stub accepts");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("an HTTP/1.1 connection");
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(exchange.method)
            .uri(exchange.path)
            .header("host", address.to_string());
        for (name, value) in &exchange.headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(exchange.body))
            .expect("a well-formed request");
        let response = sender.send_request(request).await.expect("an answer");
        let (head, body) = response.into_parts();
        let body = body.collect().await.expect("the whole body").to_bytes();
        Answer {
            status: head.status,
            headers: head.headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }

    /// Polls `check` until it holds; panics after [`SOON`].
    pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + SOON;
        while !check() {
            assert!(Instant::now() < deadline, "not within {SOON:?}: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
