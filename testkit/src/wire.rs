//! A TCP proxy in front of PostgreSQL that reads the frontend protocol messages and counts
//! each time the conversation turns from client → server to server → client: the round
//! trips, statements and SQL of whatever goes through it. Give a client the proxy's port
//! with `sslmode=disable`, so the messages can be read (TLS changes no message and no turn).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;
use crate::loopback::Loopback;

/// What one piece of work cost on the wire.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traffic {
    pub round_trips: u64,
    /// Frontend messages by type: P Parse, B Bind, D Describe, E Execute, S Sync, Q Query…
    pub messages: BTreeMap<char, u64>,
    /// The SQL of each Parse and Query, first words only, in order.
    pub sql: Vec<String>,
    /// The frontend messages of each client turn, e.g. `PDS` then `BECS`.
    pub turns: Vec<String>,
    /// For each turn, from the client's first byte to the server's first byte back.
    pub waits: Vec<Duration>,
    /// The whole `handle` call, as the caller saw it (set by the caller).
    pub wall: Duration,
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
}

impl Traffic {
    /// Frontend messages of this type (`'P'`, `'E'`…).
    pub fn count(&self, kind: char) -> u64 {
        self.messages.get(&kind).copied().unwrap_or(0)
    }

    /// Statements the server executed: extended-protocol Executes and simple Queries.
    pub fn statements(&self) -> u64 {
        self.count('E') + self.count('Q')
    }

    pub fn parses(&self) -> u64 {
        self.count('P')
    }

    /// Time spent waiting on the server (through the proxy), all turns together.
    pub fn waiting(&self) -> Duration {
        self.waits.iter().sum()
    }

    /// What went through after `earlier`, a snapshot of the same proxy; `wall` is left 0.
    pub fn since(&self, earlier: &Self) -> Self {
        let mut messages = self.messages.clone();
        for (kind, count) in &earlier.messages {
            if let Some(now) = messages.get_mut(kind) {
                *now -= count;
            }
        }
        messages.retain(|_, count| *count > 0);
        Self {
            round_trips: self.round_trips - earlier.round_trips,
            messages,
            sql: self.sql[earlier.sql.len()..].to_vec(),
            turns: self.turns[earlier.turns.len()..].to_vec(),
            waits: self.waits[earlier.waits.len()..].to_vec(),
            wall: Duration::ZERO,
            bytes_to_server: self.bytes_to_server - earlier.bytes_to_server,
            bytes_to_client: self.bytes_to_client - earlier.bytes_to_client,
        }
    }

    pub fn json(&self) -> Value {
        let messages: BTreeMap<String, u64> = self
            .messages
            .iter()
            .map(|(kind, count)| (kind.to_string(), *count))
            .collect();
        json!({
            "roundTrips": self.round_trips,
            "statements": self.statements(),
            "parses": self.parses(),
            "frontendMessages": messages,
            "sql": self.sql,
            "turns": self.turns,
            "serverWaitMicros": self.waits.iter().map(Duration::as_micros).collect::<Vec<_>>(),
            "wallMicros": self.wall.as_micros(),
            "bytesToServer": self.bytes_to_server,
            "bytesToClient": self.bytes_to_client,
        })
    }
}

/// The proxy; it counts over all its connections, and closes them when dropped.
pub struct Proxy {
    server: Loopback,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    traffic: Traffic,
    /// The last bytes went client → server: the next server bytes start a round trip.
    awaiting_answer: bool,
    /// When the client started the current turn.
    turn_started: Option<Instant>,
    /// The last bytes either way.
    last_traffic: Option<Instant>,
}

impl Proxy {
    /// Listens on a loopback port and relays every connection to `upstream` (`host:port`).
    pub async fn start(upstream: impl Into<String>) -> Result<Self, Error> {
        let upstream = upstream.into();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let server = Loopback::serve(move |client| {
            let upstream = upstream.clone();
            let state = Arc::clone(&shared);
            async move {
                // Unreachable upstream: the client sees its connection closed.
                if let Ok(server) = TcpStream::connect(&upstream).await {
                    relay(client, server, state).await;
                }
            }
        })
        .await?;
        Ok(Self { server, state })
    }

    /// The loopback port to connect to instead of the upstream's.
    pub fn port(&self) -> u16 {
        self.server.address().port()
    }

    /// What went through so far, once the connection is quiet: the pool's ping after a
    /// call (sent by a background task) is counted with the call that caused it.
    pub async fn traffic(&self) -> Traffic {
        const QUIET: Duration = Duration::from_millis(50);
        let give_up = Instant::now() + Duration::from_secs(2);
        loop {
            {
                let state = lock(&self.state);
                let quiet = state.last_traffic.is_none_or(|at| at.elapsed() >= QUIET);
                if (quiet && !state.awaiting_answer) || Instant::now() > give_up {
                    return state.traffic.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Copies both ways, counting before forwarding, so an answer can never be seen before
/// the request that caused it was counted.
async fn relay(client: TcpStream, server: TcpStream, state: Arc<Mutex<State>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up_state = Arc::clone(&state);
    let up = async move {
        let mut frontend = Frontend::default();
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = client_read.read(&mut buffer).await?;
            if read == 0 {
                return server_write.shutdown().await;
            }
            {
                let mut state = lock(&up_state);
                if !state.awaiting_answer {
                    state.traffic.turns.push(String::new());
                    state.turn_started = Some(Instant::now());
                }
                state.awaiting_answer = true;
                state.last_traffic = Some(Instant::now());
                state.traffic.bytes_to_server += read as u64;
                frontend.feed(&buffer[..read], &mut state.traffic);
            }
            server_write.write_all(&buffer[..read]).await?;
        }
    };
    let down = async move {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = server_read.read(&mut buffer).await?;
            if read == 0 {
                return client_write.shutdown().await;
            }
            {
                let mut state = lock(&state);
                if state.awaiting_answer {
                    state.awaiting_answer = false;
                    state.traffic.round_trips += 1;
                    let waited = state
                        .turn_started
                        .map(|at| at.elapsed())
                        .unwrap_or_default();
                    state.traffic.waits.push(waited);
                }
                state.traffic.bytes_to_client += read as u64;
                state.last_traffic = Some(Instant::now());
            }
            client_write.write_all(&buffer[..read]).await?;
        }
    };
    let _: std::io::Result<((), ())> = tokio::try_join!(up, down);
}

/// Splits the client's byte stream into frontend messages: a startup packet first (no type
/// byte), then a type byte and a length that counts itself.
#[derive(Default)]
struct Frontend {
    pending: Vec<u8>,
    started: bool,
}

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

impl Frontend {
    fn feed(&mut self, bytes: &[u8], traffic: &mut Traffic) {
        self.pending.extend_from_slice(bytes);
        loop {
            let header = if self.started { 5 } else { 8 };
            if self.pending.len() < header {
                return;
            }
            let (kind, length_at) = if self.started {
                (self.pending[0] as char, 1)
            } else {
                ('\0', 0)
            };
            let length = u32::from_be_bytes(
                self.pending[length_at..length_at + 4]
                    .try_into()
                    .unwrap_or_default(),
            ) as usize;
            let total = length_at + length;
            if length < 4 || self.pending.len() < total {
                return;
            }
            let body = &self.pending[length_at + 4..total];
            if self.started {
                *traffic.messages.entry(kind).or_default() += 1;
                if let Some(turn) = traffic.turns.last_mut() {
                    turn.push(kind);
                }
                let sql = match kind {
                    // Parse: statement name, then the query, both NUL-terminated.
                    'P' => body.splitn(3, |b| *b == 0).nth(1),
                    'Q' => body.split(|b| *b == 0).next(),
                    _ => None,
                };
                if let Some(sql) = sql {
                    traffic.sql.push(first_words(&String::from_utf8_lossy(sql)));
                }
            } else {
                let code = body
                    .get(..4)
                    .and_then(|code| code.try_into().ok())
                    .map_or(0, u32::from_be_bytes);
                // An SSL or GSS request is answered with one byte, then a startup follows.
                self.started = code != SSL_REQUEST && code != GSSENC_REQUEST;
            }
            self.pending.drain(..total);
        }
    }
}

/// The statement's first words, whitespace collapsed, enough to recognise it.
fn first_words(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(6).collect();
    let mut text = words.join(" ");
    if sql.split_whitespace().count() > 6 {
        text.push_str(" …");
    }
    text
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A startup packet: length, protocol 3.0, `user`, then the terminating NUL.
    fn startup() -> Vec<u8> {
        let body = b"\0\x03\0\0user\0postgres\0\0";
        let mut packet = u32::try_from(4 + body.len())
            .unwrap_or(0)
            .to_be_bytes()
            .to_vec();
        packet.extend_from_slice(body);
        packet
    }

    /// A typed frontend message: its type byte, then a length that counts itself.
    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut message = vec![kind];
        message.extend_from_slice(&u32::try_from(4 + body.len()).unwrap_or(0).to_be_bytes());
        message.extend_from_slice(body);
        message
    }

    fn parse(sql: &str) -> Vec<u8> {
        message(b'P', format!("\0{sql}\0\0\0").as_bytes())
    }

    fn query(sql: &str) -> Vec<u8> {
        message(b'Q', format!("{sql}\0").as_bytes())
    }

    fn sync() -> Vec<u8> {
        message(b'S', b"")
    }

    #[test]
    fn messages_split_across_reads_are_counted_once_whole() {
        let mut frontend = Frontend::default();
        let mut traffic = Traffic::default();
        let turn = [
            parse("SELECT seat_id FROM flight_seats WHERE flight_id = $1"),
            sync(),
        ]
        .concat();

        frontend.feed(&startup(), &mut traffic);
        frontend.feed(&turn[..7], &mut traffic);
        frontend.feed(&turn[7..], &mut traffic);

        assert_eq!(traffic.messages, BTreeMap::from([('P', 1), ('S', 1)]));
        assert_eq!(
            traffic.sql,
            ["SELECT seat_id FROM flight_seats WHERE flight_id …"]
        );
        assert_eq!(traffic.statements(), 0);
        assert_eq!(traffic.parses(), 1);
    }

    #[test]
    fn an_ssl_request_is_answered_before_the_startup_packet_and_counts_no_message() {
        let mut frontend = Frontend::default();
        let mut traffic = Traffic::default();
        let ssl_request = [8u32.to_be_bytes(), SSL_REQUEST.to_be_bytes()].concat();

        frontend.feed(&ssl_request, &mut traffic);
        frontend.feed(&startup(), &mut traffic);
        frontend.feed(&query("SELECT 1"), &mut traffic);

        assert_eq!(traffic.messages, BTreeMap::from([('Q', 1)]));
        assert_eq!(traffic.sql, ["SELECT 1"]);
        assert_eq!(traffic.statements(), 1);
    }

    #[tokio::test]
    async fn the_proxy_counts_a_round_trip_per_turn_and_since_subtracts_an_earlier_count() {
        // An upstream that answers each read with a ReadyForQuery.
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let upstream_address = upstream.local_addr().expect("an address");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = upstream.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0; 1024];
                    while let Ok(read) = stream.read(&mut buffer).await {
                        if read == 0 || stream.write_all(b"Z\0\0\0\x05I").await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let proxy = Proxy::start(upstream_address.to_string())
            .await
            .expect("the proxy starts");
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .expect("connects");
        let mut turn = async |bytes: Vec<u8>| {
            client.write_all(&bytes).await.expect("sent");
            let mut answer = [0; 6];
            client.read_exact(&mut answer).await.expect("answered");
        };

        turn(startup()).await;
        turn([parse("SELECT 1"), sync()].concat()).await;
        let before = proxy.traffic().await;
        turn(query("SELECT 2")).await;
        let after = proxy.traffic().await;

        assert_eq!(before.round_trips, 2);
        assert_eq!(before.turns, ["", "PS"]);
        assert_eq!(before.bytes_to_client, 12);
        let since = after.since(&before);
        assert_eq!(since.round_trips, 1);
        assert_eq!(since.turns, ["Q"]);
        assert_eq!(since.messages, BTreeMap::from([('Q', 1)]));
        assert_eq!(since.sql, ["SELECT 2"]);
        assert_eq!(since.statements(), 1);
        assert_eq!(since.waits.len(), 1);
        assert_eq!(since.bytes_to_server, query("SELECT 2").len() as u64);
        assert_eq!(since.json()["roundTrips"], 1);
    }

    #[test]
    fn a_long_statement_is_cut_to_its_first_six_words() {
        assert_eq!(first_words("SELECT  1"), "SELECT 1");
        assert_eq!(
            first_words("UPDATE flight_seats\n   SET status = 'LOCKED', version = version + 1"),
            "UPDATE flight_seats SET status = 'LOCKED', …"
        );
    }
}
