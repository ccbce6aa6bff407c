//! Round trips per reservation: the handler's connection goes through a counting proxy on
//! the loopback (`aeronode_testkit::wire`), which reads the frontend protocol messages and
//! counts each time the conversation turns from client → server to server → client.

use std::time::Instant;

use aeronode_inventory::db::Database;
use aeronode_inventory::deadline::{self, Deadline};
use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::{App, Handled, Settings};
use aeronode_inventory::outbound::RecordingBus;
use aeronode_testkit::wire::{Proxy, Traffic};
use serde_json::{Value, json};
use sqlx::postgres::PgSslMode;
use uuid::Uuid;

use crate::Result;
use crate::database::{BenchDb, Consistency};
use crate::events::{Events, seat_number};

/// Reservations and releases before counting, so the session is in its steady state.
const WARM_UP_ORDERS: usize = 3;

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
        .port(proxy.port())
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
