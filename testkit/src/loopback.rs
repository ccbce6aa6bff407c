//! Servers on a loopback port: an accept loop that gives each connection a task and stops
//! them all when dropped, and on it, HTTP/1.1 with hyper.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::Error;

pub(crate) type Body = Full<Bytes>;

/// A listening port and the task serving it; dropping it closes the port and every
/// connection still open.
pub(crate) struct Loopback {
    address: SocketAddr,
    accept: JoinHandle<()>,
}

impl Loopback {
    /// Listens on `127.0.0.1:0` and runs `connection` on each accepted stream.
    pub(crate) async fn serve<C, F>(mut connection: C) -> Result<Self, Error>
    where
        C: FnMut(TcpStream) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(Error::Listen)?;
        let address = listener.local_addr().map_err(Error::Listen)?;
        let accept = tokio::spawn(async move {
            // Owned by this task, so aborting the task ends the connections too.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            connections.spawn(connection(stream));
                        }
                        // Out of file descriptors, say: try again rather than stop serving.
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        Ok(Self { address, accept })
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// An HTTP/1.1 server (keep-alive, any body framing, `Expect: 100-continue`) that answers
/// each request with `handler`.
///
/// Each answer leaves in one write on a `TCP_NODELAY` socket: a head and a body written
/// apart, with Nagle on, wait for the client's delayed ACK (40 ms on Linux) before the body
/// goes, and that wait would be counted as the time of the binary under test.
pub(crate) async fn http<H, F>(handler: H) -> Result<Loopback, Error>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    Loopback::serve(move |stream: TcpStream| {
        let handler = handler.clone();
        async move {
            if stream.set_nodelay(true).is_err() {
                return;
            }
            let service = service_fn(move |request| {
                let answer = handler(request);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            // Flattened: head and body copied into one buffer, sent by one write.
            // A broken connection ends only itself; the client opens another.
            let _ = http1::Builder::new()
                .writev(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await
}

/// A request's body, whole.
pub(crate) async fn read_body(body: Incoming) -> Result<Bytes, hyper::Error> {
    Ok(body.collect().await?.to_bytes())
}

/// A response with a fixed-length body; an invalid header becomes a 500 that says so.
pub(crate) fn respond(
    status: StatusCode,
    content_type: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut builder = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(body.into()))
        .unwrap_or_else(|error| {
            let mut response = Response::new(Full::new(Bytes::from(error.to_string())));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        })
}
