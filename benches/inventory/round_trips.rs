//! Round trips per reservation: the handler's connection goes through a counting proxy on
//! the loopback, which reads the frontend protocol messages and counts each time the
//! conversation turns from client → server to server → client.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aeronode_inventory::db::Database;
use aeronode_inventory::deadline::{self, Deadline};
use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::{App, Handled, Settings};
use aeronode_inventory::outbound::RecordingBus;
use serde_json::{Value, json};
use sqlx::postgres::PgSslMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::Result;
use crate::database::{BenchDb, Consistency};
use crate::events::{Events, seat_number};

/// Reservations and releases before counting, so the session is in its steady state.
const WARM_UP_ORDERS: usize = 3;

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
    fn count(&self, kind: char) -> u64 {
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

    fn since(&self, earlier: &Self) -> Self {
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

pub struct RoundTrips {
    /// A single-seat `OrderCreated` on a free seat, in steady state.
    pub reservation: Traffic,
    /// A single-seat `OrderCreated` for a seat another order holds.
    pub refusal: Traffic,
    /// `PaymentFailed` releasing a single-seat hold.
    pub release: Traffic,
    /// Rows of `pg_prepared_statements` on the handler's own session at the end.
    pub prepared_statements: i64,
    pub consistency: Consistency,
}

impl RoundTrips {
    pub fn json(&self) -> Value {
        json!({
            "reservation": self.reservation.json(),
            "refusal": self.refusal.json(),
            "release": self.release.json(),
            "preparedStatementsOnSession": self.prepared_statements,
            "consistency": self.consistency.json(),
        })
    }
}

pub async fn run(db: &BenchDb, events: &Events) -> Result<RoundTrips> {
    let upstream = db.options.get_host().to_owned();
    if upstream.starts_with('/') {
        return Err("the round-trip proxy needs a TCP DATABASE_URL, not a Unix socket".into());
    }
    let proxy = Proxy::start(format!("{upstream}:{}", db.options.get_port())).await?;
    // Plain text, so the proxy can read the messages; TLS changes no message and no turn.
    let options = db
        .options
        .clone()
        .host("127.0.0.1")
        .port(proxy.port)
        .ssl_mode(PgSslMode::Disable);
    let settings = Settings::default();
    let app = App::new(Database::new(options, 1), RecordingBus::new(), settings);
    let flight = db.flight().await?;
    let mut seats_reserved = 0;

    for n in 0..WARM_UP_ORDERS {
        let order = Uuid::new_v4();
        reserve(&app, events, order, flight, &seat_number(n)).await?;
        release(&app, events, order).await?;
        seats_reserved += 1;
    }

    let before = proxy.traffic().await;
    let started = Instant::now();
    let order = Uuid::new_v4();
    reserve(&app, events, order, flight, &seat_number(10)).await?;
    let wall = started.elapsed();
    let mut reservation = proxy.traffic().await.since(&before);
    reservation.wall = wall;
    seats_reserved += 1;

    let before = proxy.traffic().await;
    let rival = events.order_created(Uuid::new_v4(), flight, &[seat_number(10)]);
    let started = Instant::now();
    match app.handle(rival).await {
        Ok(Handled::Answered(answer))
            if answer.detail_type == DetailType::SeatReservationFailed => {}
        other => return Err(format!("an order for a held seat was not refused: {other:?}").into()),
    }
    let wall = started.elapsed();
    let mut refusal = proxy.traffic().await.since(&before);
    refusal.wall = wall;

    let before = proxy.traffic().await;
    let started = Instant::now();
    release(&app, events, order).await?;
    let wall = started.elapsed();
    let mut release = proxy.traffic().await.since(&before);
    release.wall = wall;

    // pg_prepared_statements is per session: ask on the handler's own connection.
    let prepared_statements: i64 = {
        let mut session = app
            .database()
            .session(Deadline::after(deadline::UNBOUNDED))
            .await?;
        sqlx::query_scalar("SELECT count(*) AS prepared FROM pg_prepared_statements")
            .persistent(false)
            .fetch_one(session.connection().await?)
            .await?
    };
    let consistency = db
        .check_holds(flight, seats_reserved)
        .await?
        .report("round trips");
    eprintln!(
        "bench: round trips: reservation {} ({} statements), refusal {}, release {}; {} prepared statements on the session",
        reservation.round_trips,
        reservation.statements(),
        refusal.round_trips,
        release.round_trips,
        prepared_statements
    );
    Ok(RoundTrips {
        reservation,
        refusal,
        release,
        prepared_statements,
        consistency,
    })
}

async fn reserve(
    app: &App<RecordingBus>,
    events: &Events,
    order: Uuid,
    flight: Uuid,
    seat: &str,
) -> Result<()> {
    let event = events.order_created(order, flight, &[seat.to_owned()]);
    match app.handle(event).await {
        Ok(Handled::Answered(answer)) if answer.detail_type == DetailType::SeatReserved => Ok(()),
        other => Err(format!("seat {seat} was free but not reserved: {other:?}").into()),
    }
}

async fn release(app: &App<RecordingBus>, events: &Events, order: Uuid) -> Result<()> {
    match app.handle(events.payment_failed(order)).await {
        Ok(Handled::Released(released)) if !released.is_empty() => Ok(()),
        other => Err(format!("order {order} was not released: {other:?}").into()),
    }
}

/// A TCP proxy in front of PostgreSQL that counts, over all its connections.
struct Proxy {
    port: u16,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
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

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Proxy {
    async fn start(upstream: String) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let server = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, Arc::clone(&shared)));
            }
        });
        Ok(Self {
            port,
            state,
            server,
        })
    }

    /// What went through so far, once the connection is quiet: the pool's ping after a
    /// call (sent by a background task) is counted with the call that caused it.
    async fn traffic(&self) -> Traffic {
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
