//! Every retention, cancellation and expiry query finds its rows through an index: run on
//! tables of a realistic size, with every statement inside the server-side functions
//! explained (auto_explain), none reads `inventory_locks`, `outbox` or `reservations`
//! from end to end.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

/// 300 flights a day apart (the first 100 departed, 70 of them past a 30-day retention),
/// 150 seats each, one order per seat with its hold and two outbox entries; some holds
/// live, some flights cancelled and not closed, some orders quarantined, some answers
/// undelivered. Triggers and foreign keys are off while it loads (replica role).
const REALISTIC_INVENTORY: &str = r#"
SET session_replication_role = replica;
INSERT INTO flights (flight_id, flight_code, origin_iata, destination_iata, departure_utc,
                     arrival_utc, state, cancelled_at)
SELECT md5('f' || i)::uuid, 'AI' || i, 'DEL', 'LHR',
       now() + (i - 100) * interval '1 day', now() + (i - 100) * interval '1 day' + interval '9 hours',
       CASE WHEN i % 15 = 0 THEN 'CANCELLED'::flight_state ELSE 'SCHEDULED' END,
       CASE WHEN i % 15 = 0 THEN now() END
FROM generate_series(1, 300) AS i;
INSERT INTO flight_seats (seat_id, flight_id, seat_number, status)
SELECT md5('s' || i || '-' || r || l)::uuid, md5('f' || i)::uuid, r || l,
       CASE (r * 6 + ascii(l)) % 3 WHEN 0 THEN 'BOOKED'::seat_status
                                   WHEN 1 THEN 'AVAILABLE' ELSE 'LOCKED' END
FROM generate_series(1, 300) AS i, generate_series(1, 25) AS r,
     unnest(ARRAY['A', 'B', 'C', 'D', 'E', 'F']) AS l;
INSERT INTO reservations (order_id, flight_id, request_fingerprint, outcome_event_id,
                          outcome_detail_type, outcome_detail, quarantined_at, quarantine_reason)
SELECT md5('o' || i || '-' || r || l)::uuid, md5('f' || i)::uuid, 'fingerprint',
       md5('e' || i || '-' || r || l)::uuid, 'SeatReserved', '{}',
       CASE WHEN r = 1 AND l = 'A' AND i % 10 = 0 THEN now() END,
       CASE WHEN r = 1 AND l = 'A' AND i % 10 = 0 THEN 'loaded' END
FROM generate_series(1, 300) AS i, generate_series(1, 25) AS r,
     unnest(ARRAY['A', 'B', 'C', 'D', 'E', 'F']) AS l;
INSERT INTO inventory_locks (order_id, seat_id, flight_id, seat_version, status, created_at,
                             expires_at, closed_at)
SELECT md5('o' || i || '-' || r || l)::uuid, md5('s' || i || '-' || r || l)::uuid,
       md5('f' || i)::uuid, 2,
       CASE (r * 6 + ascii(l)) % 3 WHEN 0 THEN 'CONFIRMED'::hold_status
                                   WHEN 1 THEN 'RELEASED'::hold_status
                                   ELSE CASE WHEN i < 100 THEN 'EXPIRED'::hold_status
                                             ELSE 'ACTIVE'::hold_status END END,
       now() - interval '1 hour', now() + (i - 150) * interval '1 minute' + interval '2 hours', now()
FROM generate_series(1, 300) AS i, generate_series(1, 25) AS r,
     unnest(ARRAY['A', 'B', 'C', 'D', 'E', 'F']) AS l;
INSERT INTO outbox (event_id, order_id, detail_type, detail, state, published_at, created_at)
SELECT md5('x' || n || i || '-' || r || l)::uuid, md5('o' || i || '-' || r || l)::uuid,
       'SeatReserved', '{}',
       CASE WHEN r = 2 AND l = 'B' AND i % 7 = 0 THEN 'PENDING'::outbox_state ELSE 'PUBLISHED' END,
       CASE WHEN r = 2 AND l = 'B' AND i % 7 = 0 THEN NULL
            ELSE now() - (i % 10) * interval '1 day' END,
       now() - (i % 10) * interval '1 day'
FROM generate_series(1, 300) AS i, generate_series(1, 25) AS r,
     unnest(ARRAY['A', 'B', 'C', 'D', 'E', 'F']) AS l, generate_series(1, 2) AS n;
INSERT INTO outbox (event_id, flight_id, detail_type, detail, state, published_at)
SELECT md5('fo' || i)::uuid, md5('f' || i)::uuid, 'FlightInventoryOpened', '{}', 'PUBLISHED', now()
FROM generate_series(1, 300) AS i;
SET session_replication_role = DEFAULT;
ANALYZE;
"#;

/// Each retention, cancellation and expiry call once, explained statement by statement,
/// and rolled back.
const EXPLAINED_CALLS: &str = r#"
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
BEGIN;
SELECT inventory_cancel_flight(jsonb_build_object('flightId', md5('f200')::uuid, 'reason', 'weather'));
SELECT inventory_read_flight_orders(jsonb_build_object('flightId', md5('f150')::uuid, 'limit', 50));
SELECT inventory_cancelled_open_flights('{"limit": 100}');
SELECT inventory_cancellations_held('{}');
SELECT inventory_close_flight(jsonb_build_object('flightId', md5('f150')::uuid,
    'event', jsonb_build_object('eventId', gen_random_uuid(), 'detail', '{}')));
SELECT inventory_read_lapsed('{"limit": 100}');
SELECT inventory_retire('{"retentionDays": 30, "limit": 1000}');
SELECT inventory_retire('{"retentionDays": 30, "limit": 1000}');
SELECT inventory_outbox_prune('{"retentionDays": 7, "limit": 1000}');
SELECT inventory_quarantined('{}');
ROLLBACK;
"#;

#[sqlx::test(migrator = "aeronode_inventory::db::MIGRATOR")]
async fn retention_cancellation_and_expiry_read_the_big_tables_only_through_indexes(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options.clone()).await;
    sqlx::raw_sql(REALISTIC_INVENTORY)
        .execute(&app.db)
        .await
        .expect("the inventory loads");

    let plans = explain(&options, EXPLAINED_CALLS).await;

    let explained = plans.matches("Query Text:").count();
    assert!(
        explained >= 20,
        "too few statements explained ({explained}):\n{plans}"
    );
    let scanned: Vec<&str> = plans
        .lines()
        .filter(|line| {
            line.contains("Seq Scan on inventory_locks")
                || line.contains("Seq Scan on outbox")
                || line.contains("Seq Scan on reservations")
        })
        .collect();
    assert!(
        scanned.is_empty(),
        "sequential scans of a big table: {scanned:?}\n{plans}"
    );
}

/// Runs `script` with psql on the test's database and returns what the server said
/// (auto_explain's plans arrive as notices on stderr).
async fn explain(options: &PgConnectOptions, script: &str) -> String {
    use tokio::io::AsyncWriteExt;

    let mut psql = tokio::process::Command::new("psql")
        .args(["--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .arg("-h")
        .arg(options.get_host())
        .arg("-p")
        .arg(options.get_port().to_string())
        .arg("-U")
        .arg(options.get_username())
        .arg("-d")
        .arg(
            options
                .get_database()
                .expect("the test database has a name"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql runs");
    let mut stdin = psql.stdin.take().expect("psql's stdin");
    stdin
        .write_all(script.as_bytes())
        .await
        .expect("the script is sent");
    drop(stdin);
    let output = psql.wait_with_output().await.expect("psql finishes");
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "psql failed:\n{said}");
    said
}
