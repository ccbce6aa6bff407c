//! Hostile text in any string of any incoming event: a NUL (which PostgreSQL cannot
//! store), a lone surrogate escaped in the JSON, 100 kB, control and right-to-left
//! characters. Every event is answered, or refused as invalid input; none fails as a
//! database refusal, none panics, and an invalid one holds nothing.
//!
//! Each sample under `events/` is sent once per string in it (envelope and detail, found
//! by walking the JSON) and per hostile value, as raw JSON text read the way the Lambda
//! adapter reads it. Besides a fixed list, a seeded generator mixes hostile pieces; set
//! `HOSTILE_TEXT_SEED` to replay a run it prints.

use std::fmt;

use aeronode_inventory::domain::{DetailType, OutgoingEvent};
use aeronode_inventory::handler::{Handled, HandlerError};
use aeronode_inventory::inbound::read_payload;
use aeronode_testkit::put_events::PutEvents;
use aeronode_testkit::runtime_api::Invocation;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::binary::Binary;
use crate::helpers::{TestApp, detail_of, order_created, sample};

/// What each incoming sample asks for, so its outcome can be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Order,
    Payment,
    Release,
    Housekeeping,
    Schedule,
    Cancel,
    /// A request by its own id: a block, an unblock, a seat change.
    Operation,
    /// An aircraft change.
    Aircraft,
    Http,
}

/// One sample of every kind of incoming event.
const SAMPLES: &[(&str, Kind)] = &[
    ("order-created.json", Kind::Order),
    ("order-created-any-seat.json", Kind::Order),
    ("payment-succeeded.json", Kind::Payment),
    ("payment-failed.json", Kind::Release),
    ("order-cancelled.json", Kind::Release),
    ("scheduled.json", Kind::Housekeeping),
    ("flight-scheduled.json", Kind::Schedule),
    ("flight-cancelled.json", Kind::Cancel),
    ("seat-block-requested.json", Kind::Operation),
    ("seat-unblock-requested.json", Kind::Operation),
    ("seat-change-requested.json", Kind::Operation),
    ("aircraft-changed.json", Kind::Aircraft),
    ("get-seats-request.json", Kind::Http),
];

/// Stands for the string under test until the event is written out as JSON text.
const MARKER: &str = "@@hostile@@";

/// A hostile string, as the inside of a JSON string literal (escapes and all), made from
/// the literal of the value it replaces.
struct Hostile {
    name: String,
    literal: Box<dyn Fn(&str) -> String>,
}

fn fixed_hostile_values() -> Vec<Hostile> {
    fn hostile(name: &str, literal: impl Fn(&str) -> String + 'static) -> Hostile {
        Hostile {
            name: name.to_owned(),
            literal: Box::new(literal),
        }
    }
    vec![
        hostile("a NUL after the value", |value| format!("{value}\\u0000")),
        hostile("only a NUL", |_| "\\u0000".into()),
        hostile("a lone leading surrogate", |value| {
            format!("{value}\\ud800")
        }),
        hostile("a lone trailing surrogate", |value| {
            format!("\\udc00{value}")
        }),
        hostile("100 kB", |value| format!("{value}{}", "x".repeat(100_000))),
        hostile("a right-to-left override", |value| {
            format!("\\u202e{value}")
        }),
        hostile("a bell", |value| format!("{value}\\u0007")),
        hostile("a CR LF", |value| format!("{value}\\r\\n")),
    ]
}

/// Pieces the generator strings together; each value has at least one hostile one.
const HOSTILE_PIECES: &[&str] = &[
    "\\u0000",
    "\\ud800",
    "\\udfff",
    "\\udbff\\u0000",
    "\\u202e",
    "\\u2066",
    "\\u0007",
    "\\u001b[31m",
    "\\u0085",
    "\\u007f",
    "\\r\\n",
    "\\t",
];
const HARMLESS_PIECES: &[&str] = &["é", "12A", "\\ud83d\\ude00", " ", "\\\"", "\\\\u0000"];

/// A small seeded generator (splitmix64): the same seed, the same values.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// 1 to 5 pieces around the original value, one of them hostile for sure.
    fn hostile(&mut self, index: usize) -> Hostile {
        let mut pieces: Vec<String> = vec![HOSTILE_PIECES[self.below(HOSTILE_PIECES.len())].into()];
        for _ in 0..self.below(5) {
            let piece = match self.below(4) {
                0 => HARMLESS_PIECES[self.below(HARMLESS_PIECES.len())].to_owned(),
                1 => "{value}".to_owned(),
                2 if self.below(10) == 0 => "y".repeat(70_000),
                _ => HOSTILE_PIECES[self.below(HOSTILE_PIECES.len())].to_owned(),
            };
            let at = self.below(pieces.len() + 1);
            pieces.insert(at, piece);
        }
        let template = pieces.concat();
        Hostile {
            name: format!("generated #{index}: {}", shorten(&template)),
            literal: Box::new(move |value| template.replace("{value}", value)),
        }
    }
}

const GENERATED_PER_STRING: usize = 3;
const DEFAULT_SEED: u64 = 20_261_202;

/// Where a string sits in an event, as a JSON pointer, with its value.
fn strings(value: &Value, pointer: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) => out.push((pointer, text.clone())),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                strings(item, format!("{pointer}/{index}"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                strings(item, format!("{pointer}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// The sample with fresh ids, so every case starts from nothing: a new envelope id, order
/// and (for the schedule's events) flight.
fn fresh(name: &str, kind: Kind) -> Value {
    let mut event = sample(name);
    match kind {
        Kind::Http => {
            // A conditional request, so the header is sent hostile too.
            event["headers"]["if-none-match"] = json!("\"2f1c-0\"");
        }
        _ => event["id"] = json!(Uuid::new_v4()),
    }
    if event["detail"].get("orderId").is_some() {
        event["detail"]["orderId"] = json!(Uuid::new_v4());
    }
    for id in ["requestId", "changeId"] {
        if event["detail"].get(id).is_some() {
            event["detail"][id] = json!(Uuid::new_v4());
        }
    }
    if matches!(kind, Kind::Schedule | Kind::Cancel | Kind::Aircraft) {
        event["detail"]["flightId"] = json!(Uuid::new_v4());
    }
    event
}

/// The event as raw JSON text with the string at `pointer` replaced by `literal`.
fn raw_with(event: &Value, pointer: &str, literal: &str) -> String {
    let mut event = event.clone();
    *event
        .pointer_mut(pointer)
        .expect("the pointer was taken from this event") = json!(MARKER);
    let text = serde_json::to_string(&event).expect("an event serializes");
    text.replacen(&format!("\"{MARKER}\""), &format!("\"{literal}\""), 1)
}

/// The literal of a string as it sits inside JSON quotes.
fn literal_of(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_owned()
}

fn shorten(text: &str) -> String {
    let short: String = text.chars().take(48).collect();
    if short.len() < text.len() {
        format!("{short}… ({} bytes)", text.len())
    } else {
        short
    }
}

/// One event sent: which sample, which string, which hostile value.
struct Case<'a> {
    sample: &'a str,
    pointer: &'a str,
    value: &'a str,
}

impl fmt::Display for Case<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} = {}", self.sample, self.pointer, self.value)
    }
}

/// Characters no published text should carry: controls (NUL among them) and the
/// bidirectional overrides.
fn has_unsafe_text(value: &Value) -> bool {
    let mut found = Vec::new();
    strings(value, String::new(), &mut found);
    found.iter().any(|(_, text)| {
        text.chars().any(|c| {
            c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
    })
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn hostile_text_in_any_string_of_any_event_is_answered_or_refused_never_a_database_refusal(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let seed = std::env::var("HOSTILE_TEXT_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let mut generator = Seeded(seed);
    let mut failures: Vec<String> = Vec::new();
    let mut cases = 0;

    for &(name, kind) in SAMPLES {
        let mut found = Vec::new();
        strings(&fresh(name, kind), String::new(), &mut found);
        for (pointer, original) in found {
            let mut values = fixed_hostile_values();
            values.extend((0..GENERATED_PER_STRING).map(|i| generator.hostile(cases + i)));
            for hostile in values {
                cases += 1;
                let event = fresh(name, kind);
                let case = Case {
                    sample: name,
                    pointer: &pointer,
                    value: &hostile.name,
                };
                if kind == Kind::Cancel {
                    open_flight(&app, &event["detail"]["flightId"]).await;
                }
                let raw = raw_with(&event, &pointer, &(hostile.literal)(&literal_of(&original)));

                // As the Lambda adapter reads it before the handler sees it.
                let payload = match read_payload(&raw) {
                    Ok(payload) => payload,
                    Err(error) => {
                        failures.push(format!("{case}: the payload cannot be read: {error}"));
                        continue;
                    }
                };
                let handler = std::sync::Arc::clone(&app.app);
                let outcome = tokio::spawn(async move { handler.handle(payload).await }).await;

                let outcome = match outcome {
                    Ok(outcome) => outcome,
                    Err(panic) => {
                        failures.push(format!("{case}: the handler panicked: {panic}"));
                        continue;
                    }
                };
                if let Err(problem) = check(&app, kind, &event, &pointer, &outcome).await {
                    failures.push(format!("{case}: {problem}"));
                }
            }
        }
    }

    let published = app.published();
    let unsafe_events: Vec<&OutgoingEvent> = published
        .iter()
        .filter(|event| has_unsafe_text(&detail_of(event)))
        .collect();
    if let Some(first) = unsafe_events.first() {
        failures.push(format!(
            "{} published events carry control characters, such as {}",
            unsafe_events.len(),
            first.detail
        ));
    }
    app.assert_consistent().await;
    assert!(
        failures.is_empty(),
        "{} of {cases} hostile events failed (HOSTILE_TEXT_SEED={seed}):\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .map(|failure| shorten_line(failure))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// What Lambda hands over is raw text, and the binary reads it at the edge: a lone
/// surrogate in a seat makes the request invalid, not the whole event unreadable.
#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_real_binary_answers_an_order_whose_seat_holds_a_lone_surrogate(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = TestApp::spawn(options.clone()).await;
    let bus = PutEvents::start().await.expect("the PutEvents stub starts");
    let mut binary = Binary::start(&options, &bus.endpoint(), &[]).await;
    let order = Uuid::new_v4();
    let raw = raw_with(
        &order_created(order, &["12A", "12B"]),
        "/detail/seats/1",
        "12B\\ud800",
    );

    let pending = binary.runtime.submit_raw(&raw);
    let outcome = binary.outcome(pending).await;

    assert!(matches!(outcome, Invocation::Response(_)), "{outcome:?}");
    assert_eq!(bus.published("SeatReservationFailed"), 1);
    let reason: String =
        sqlx::query_scalar("SELECT detail::jsonb ->> 'reason' FROM outbox WHERE order_id = $1")
            .bind(order)
            .fetch_one(&db.db)
            .await
            .expect("the answer is in the outbox");
    assert_eq!(reason, "INVALID_REQUEST");
    assert_eq!(db.active_holds(order).await, Vec::<String>::new());
}

fn shorten_line(line: &str) -> String {
    line.chars().take(400).collect()
}

/// Opens the flight a `FlightCancelled` case cancels, from the schedule's sample.
async fn open_flight(app: &TestApp, flight_id: &Value) {
    let mut event = sample("flight-scheduled.json");
    event["id"] = json!(Uuid::new_v4());
    event["detail"]["flightId"] = flight_id.clone();
    match app.handle(event).await {
        Ok(Handled::Scheduled(opened))
            if opened.detail_type == DetailType::FlightInventoryOpened => {}
        other => panic!("the flight to cancel opens, got {other:?}"),
    }
}

/// A payment id longer than 128 characters is refused like an empty one, as unreadable (to
/// the on-failure destination); one with control characters is cleaned and answered.
const UNANSWERED: &[&str] = &["/detail/paymentId"];

/// The outcome is an answer or a refusal of invalid input; when the hostile string is in
/// a field the event's kind reads, the answer is the invalid-input one and nothing is held.
async fn check(
    app: &TestApp,
    kind: Kind,
    event: &Value,
    pointer: &str,
    outcome: &Result<Handled, HandlerError>,
) -> Result<(), String> {
    let in_detail = pointer.starts_with("/detail/");
    let names_the_subject = match kind {
        Kind::Schedule | Kind::Cancel => pointer == "/detail/flightId",
        Kind::Operation => matches!(pointer, "/detail/requestId" | "/detail/changeId"),
        Kind::Aircraft => matches!(pointer, "/detail/changeId" | "/detail/flightId"),
        _ => pointer == "/detail/orderId",
    };
    // What the event is about can still be read, so it must be answered.
    let must_answer =
        kind == Kind::Http || (in_detail && !names_the_subject && !UNANSWERED.contains(&pointer));
    let handled = match outcome {
        Err(error) if error.kind().starts_with("DatabaseRefused") => {
            return Err(format!(
                "failed as a database refusal: {}: {error}",
                error.kind()
            ));
        }
        Err(error) if error.kind() != "UnreadableEvent" => {
            return Err(format!(
                "failed, not as invalid input: {}: {error}",
                error.kind()
            ));
        }
        Err(error) if must_answer => {
            return Err(format!(
                "refused as unreadable, though it can be answered: {error}"
            ));
        }
        Err(_) => None,
        Ok(handled) => Some(handled),
    };
    match kind {
        Kind::Order => {
            let order: Uuid = serde_json::from_value(event["detail"]["orderId"].clone())
                .expect("the case's order id");
            let held = app.active_holds(order).await;
            match handled {
                Some(Handled::Answered(answer)) if in_detail => {
                    let detail = detail_of(answer);
                    if answer.detail_type != DetailType::SeatReservationFailed
                        || detail["reason"] != "INVALID_REQUEST"
                    {
                        return Err(format!("not refused as invalid: {detail}"));
                    }
                }
                Some(Handled::Answered(_)) => {}
                Some(other) => return Err(format!("an order answered as {other:?}")),
                None => {}
            }
            let reserved = matches!(handled, Some(Handled::Answered(a)) if a.detail_type == DetailType::SeatReserved);
            if !reserved && !held.is_empty() {
                return Err(format!("refused, yet holds {held:?}"));
            }
        }
        Kind::Schedule if in_detail && pointer != "/detail/flightId" => {
            let flight: Uuid = serde_json::from_value(event["detail"]["flightId"].clone())
                .expect("the case's flight id");
            match handled {
                Some(Handled::Scheduled(answer))
                    if answer.detail_type == DetailType::FlightScheduleRejected => {}
                other => return Err(format!("a bad schedule not rejected: {other:?}")),
            }
            let flights =
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM flights WHERE flight_id = $1")
                    .bind(flight)
                    .fetch_one(&app.db)
                    .await
                    .expect("flights can be counted");
            if flights != 0 {
                return Err("a rejected schedule opened its flight".into());
            }
        }
        Kind::Cancel if pointer == "/detail/reason" => {
            let flight: Uuid = serde_json::from_value(event["detail"]["flightId"].clone())
                .expect("the case's flight id");
            if !matches!(handled, Some(Handled::FlightCancelled { .. })) {
                return Err(format!(
                    "a cancellation with a bad reason not applied: {handled:?}"
                ));
            }
            let (state, reason): (String, Option<String>) = sqlx::query_as(
                "SELECT state::text, cancel_reason FROM flights WHERE flight_id = $1",
            )
            .bind(flight)
            .fetch_one(&app.db)
            .await
            .expect("the flight exists");
            let reason = reason.unwrap_or_default();
            if state != "CANCELLED"
                || has_unsafe_text(&json!(reason))
                || reason.chars().count() > 500
            {
                return Err(format!(
                    "the flight is {state}, its reason {:?}",
                    shorten(&reason)
                ));
            }
        }
        Kind::Operation if in_detail => {
            let blocked: i64 = match event["detail"]["requestId"].as_str() {
                Some(request) => {
                    sqlx::query_scalar("SELECT count(*) FROM flight_seats WHERE blocked_by = $1")
                        .bind(Uuid::parse_str(request).expect("the case's request id"))
                        .fetch_one(&app.db)
                        .await
                        .expect("seats can be counted")
                }
                None => 0,
            };
            let answer = match handled {
                Some(Handled::Answered(answer)) => answer,
                // Refused as unreadable (its request id is what is hostile): nothing to check.
                None => return Ok(()),
                other => return Err(format!("a request of operations answered {other:?}")),
            };
            let detail = detail_of(answer);
            // A note is cleaned, not refused; anything else hostile is an invalid request.
            let invalid = detail["reason"] == "INVALID_REQUEST";
            if pointer != "/detail/note" && !invalid {
                return Err(format!("not refused as invalid: {detail}"));
            }
            if answer.detail_type != DetailType::SeatsBlocked && blocked != 0 {
                return Err(format!("refused, yet blocks {blocked} seats"));
            }
            if answer.detail_type == DetailType::SeatsChanged {
                return Err(format!("a hostile change moved seats: {detail}"));
            }
        }
        Kind::Aircraft if in_detail && !names_the_subject => match handled {
            Some(Handled::Scheduled(answer))
                if answer.detail_type == DetailType::AircraftChangeRejected
                    && detail_of(answer)["reason"] == "INVALID_REQUEST" => {}
            other => return Err(format!("a bad layout not rejected: {other:?}")),
        },
        Kind::Http => match handled {
            Some(Handled::Http(response)) if response.status_code < 500 => {}
            None => {}
            other => return Err(format!("an HTTP request answered {other:?}")),
        },
        _ => {}
    }
    Ok(())
}
