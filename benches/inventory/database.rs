//! The run's own database: created fresh, migrated with the service's migrator, loaded with
//! one flight per phase, and checked at the end of each phase for seats held twice.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use aeronode_inventory::db;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::Result;

/// `DATABASE_URL`, else what `scripts/postgres.sh` finds or starts (its last stdout line).
pub fn server_url() -> Result<String> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.trim().is_empty()
    {
        return Ok(url);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh");
    let output = std::process::Command::new("bash")
        .arg(script)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    match line.strip_prefix("DATABASE_URL=") {
        Some(url) if output.status.success() => Ok(url.to_owned()),
        _ => Err(format!("scripts/postgres.sh found no server ({})", output.status).into()),
    }
}

/// The URL with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{server}/{database}{query}")
}

/// The URL with TLS turned off (`sslmode=disable`), whatever it said before.
pub fn without_tls(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut parameters: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("sslmode="))
        .collect();
    parameters.push("sslmode=disable");
    format!("{base}?{}", parameters.join("&"))
}

/// `url`'s database and user, reached through the pooler at `pooler`
/// (`postgres://user@host:port`), without TLS: PgBouncer's local listener is plain TCP.
pub fn through(pooler: &str, url: &str) -> String {
    let database = url
        .split_once('?')
        .map_or(url, |(base, _)| base)
        .rsplit_once('/')
        .map_or("", |(_, name)| name);
    format!(
        "{}/{database}?sslmode=disable",
        pooler.trim_end_matches('/')
    )
}

/// The URL with the `sslmode` it names, else `sslmode=prefer`: sqlx's default, which the
/// in-process instances use and BENCHMARKS.md measured. Without a mode in the URL the
/// binary would verify the certificate, and a local server's is self-signed, if any.
pub fn tls_as_measured(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut parameters: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if !parameters.iter().any(|p| p.starts_with("sslmode=")) {
        parameters.push("sslmode=prefer");
    }
    format!("{base}?{}", parameters.join("&"))
}

pub struct BenchDb {
    /// What every simulated instance connects with (as `DATABASE_URL` says).
    pub options: PgConnectOptions,
    /// The URL of the bench database, for the binary.
    pub url: String,
    /// The bench's own session, for loading and checking; never an instance's.
    pub admin: PgPool,
    server: PgConnectOptions,
    name: String,
}

impl BenchDb {
    /// Drops `name` if it exists, creates it, applies the migrations.
    pub async fn fresh(server_url: &str, name: &str) -> Result<Self> {
        let server = PgConnectOptions::from_str(server_url)?;
        let mut maintenance =
            PgConnection::connect_with(&server.clone().database("postgres")).await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut maintenance)
        .await?;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut maintenance)
            .await?;
        maintenance.close().await?;
        let options = server.clone().database(name);
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await?;
        db::MIGRATOR.run(&admin).await?;
        Ok(Self {
            options,
            url: tls_as_measured(&with_database(server_url, name)),
            admin,
            server,
            name: name.to_owned(),
        })
    }

    /// Drops the database, once nothing needs it any more.
    pub async fn drop_database(self) -> Result<()> {
        self.admin.close().await;
        let mut maintenance = PgConnection::connect_with(&self.server.database("postgres")).await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut maintenance)
        .await?;
        maintenance.close().await?;
        Ok(())
    }

    /// A new flight departing in 30 days, rows 1-30, seats A-F, all free.
    pub async fn flight(&self) -> Result<Uuid> {
        self.flight_of_rows(30).await
    }

    /// A new flight departing in 30 days, rows 1 to `rows`, seats A-F, all free.
    pub async fn flight_of_rows(&self, rows: i32) -> Result<Uuid> {
        static NUMBER: AtomicU32 = AtomicU32::new(1);
        let flight_id = Uuid::new_v4();
        let code = format!("BN{}", NUMBER.fetch_add(1, Ordering::Relaxed));
        sqlx::query(
            "INSERT INTO flights (flight_id, flight_code, origin_iata, destination_iata,
                                  departure_utc, arrival_utc)
             VALUES ($1, $2, 'DEL', 'LHR', now() + interval '30 days',
                     now() + interval '30 days 9 hours')",
        )
        .bind(flight_id)
        .bind(code)
        .execute(&self.admin)
        .await?;
        sqlx::query(
            "INSERT INTO flight_seats (seat_id, flight_id, seat_number)
             SELECT gen_random_uuid(), $1, seat_row || seat_letter
             FROM generate_series(1, $2) AS seat_row,
                  unnest(ARRAY['A', 'B', 'C', 'D', 'E', 'F']) AS seat_letter",
        )
        .bind(flight_id)
        .bind(rows)
        .execute(&self.admin)
        .await?;
        Ok(flight_id)
    }

    /// Seat ids of these seat numbers of the flight, in the same order.
    pub async fn seat_ids(&self, flight_id: Uuid, numbers: &[String]) -> Result<Vec<Uuid>> {
        let mut ids = Vec::with_capacity(numbers.len());
        for number in numbers {
            let id: Uuid = sqlx::query_scalar(
                "SELECT seat_id FROM flight_seats WHERE flight_id = $1 AND seat_number = $2",
            )
            .bind(flight_id)
            .bind(number)
            .fetch_one(&self.admin)
            .await?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// The flight after a run through the handler, which never sells: no seat held twice.
    ///
    /// Each seat's holds, ordered by the seat version they took it at, must be at versions
    /// 2, 4, 6…: every hold took the seat from the release of the one before, so no two
    /// holds ever overlapped. The seat's version must count exactly those takes and
    /// releases, a LOCKED seat must have exactly one active hold and a free one none, and
    /// the number of holds must be the number of seats the answers said were reserved.
    pub async fn check_holds(&self, flight_id: Uuid, seats_reserved: u64) -> Result<Consistency> {
        let problems: Vec<String> = sqlx::query_scalar(
            "WITH holds AS (
                 SELECT seat_id, status, seat_version,
                        row_number() OVER (PARTITION BY seat_id ORDER BY seat_version, lock_id) AS nth
                 FROM inventory_locks
                 WHERE flight_id = $1
             )
             SELECT seat.seat_number || ' ' || seat.status::text || ' v' || seat.version
                    || ', holds at versions '
                    || coalesce(string_agg(holds.seat_version::text, ',' ORDER BY holds.nth), '-')
             FROM flight_seats AS seat
             LEFT JOIN holds USING (seat_id)
             WHERE seat.flight_id = $1
             GROUP BY seat.seat_id, seat.seat_number, seat.status, seat.version
             HAVING count(holds.seat_id) FILTER (WHERE holds.status = 'ACTIVE')
                        <> CASE WHEN seat.status = 'LOCKED' THEN 1 ELSE 0 END
                 OR count(holds.seat_id) FILTER (WHERE holds.status = 'CONFIRMED')
                        <> CASE WHEN seat.status = 'BOOKED' THEN 1 ELSE 0 END
                 OR NOT coalesce(bool_and(holds.seat_version = 2 * holds.nth), true)
                 OR seat.version <> 1 + 2 * count(holds.seat_id)
                        - CASE WHEN seat.status = 'LOCKED' THEN 1 ELSE 0 END
             ORDER BY 1
             LIMIT 20",
        )
        .bind(flight_id)
        .fetch_all(&self.admin)
        .await?;
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM flight_seats WHERE flight_id = $1) AS seats,
                    (SELECT count(*) FROM inventory_locks WHERE flight_id = $1) AS holds",
        )
        .bind(flight_id)
        .fetch_one(&self.admin)
        .await?;
        let holds: i64 = row.get("holds");
        let mut consistency = Consistency {
            seats: row.get("seats"),
            holds,
            problems,
        };
        if u64::try_from(holds).ok() != Some(seats_reserved) {
            consistency.problems.push(format!(
                "{holds} holds recorded but the answers reserved {seats_reserved} seats"
            ));
        }
        Ok(consistency)
    }

    /// The flight after a flash sale through the ceiling: `taken` seats are LOCKED, each
    /// taken once (version 2), the rest free and untouched, and no hold anywhere.
    pub async fn check_sold_by_ceiling(&self, flight_id: Uuid, taken: u64) -> Result<Consistency> {
        let row = sqlx::query(
            "SELECT count(*) AS seats,
                    count(*) FILTER (WHERE status = 'LOCKED' AND version = 2) AS sold_once,
                    count(*) FILTER (WHERE NOT (status = 'LOCKED' AND version = 2)
                                       AND NOT (status = 'AVAILABLE' AND version = 1)) AS odd,
                    (SELECT count(*) FROM inventory_locks WHERE flight_id = $1) AS holds
             FROM flight_seats
             WHERE flight_id = $1",
        )
        .bind(flight_id)
        .fetch_one(&self.admin)
        .await?;
        let (sold_once, odd): (i64, i64) = (row.get("sold_once"), row.get("odd"));
        let mut problems = Vec::new();
        if u64::try_from(sold_once).ok() != Some(taken) {
            problems.push(format!(
                "{sold_once} seats taken once, but {taken} takes counted"
            ));
        }
        if odd != 0 {
            problems.push(format!("{odd} seats changed other than by one take"));
        }
        Ok(Consistency {
            seats: row.get("seats"),
            holds: row.get("holds"),
            problems,
        })
    }

    /// The flight after a ceiling run: every take was released, nothing else touched it,
    /// so every seat is free and the versions add up to two per take.
    pub async fn check_ceiling(&self, flight_id: Uuid, taken: u64) -> Result<Consistency> {
        let row = sqlx::query(
            "SELECT count(*) AS seats,
                    count(*) FILTER (WHERE status <> 'AVAILABLE') AS not_free,
                    coalesce(sum(version - 1), 0)::int8 AS changes,
                    (SELECT count(*) FROM inventory_locks WHERE flight_id = $1) AS holds
             FROM flight_seats
             WHERE flight_id = $1",
        )
        .bind(flight_id)
        .fetch_one(&self.admin)
        .await?;
        let (not_free, changes): (i64, i64) = (row.get("not_free"), row.get("changes"));
        let mut problems = Vec::new();
        if not_free != 0 {
            problems.push(format!("{not_free} seats are not free after the run"));
        }
        if u64::try_from(changes).ok() != Some(2 * taken) {
            problems.push(format!(
                "seat versions moved {changes} times for {taken} takes and their releases"
            ));
        }
        Ok(Consistency {
            seats: row.get("seats"),
            holds: row.get("holds"),
            problems,
        })
    }
}

/// What a consistency check found.
#[derive(Clone, Debug)]
pub struct Consistency {
    pub seats: i64,
    pub holds: i64,
    /// Empty when every check passed.
    pub problems: Vec<String>,
}

impl Consistency {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": self.is_ok(),
            "seats": self.seats,
            "holds": self.holds,
            "problems": self.problems,
        })
    }

    /// Reports problems on stderr as soon as they are found.
    pub fn report(self, what: &str) -> Self {
        for problem in &self.problems {
            eprintln!("bench: {what}: INCONSISTENT: {problem}");
        }
        self
    }
}
