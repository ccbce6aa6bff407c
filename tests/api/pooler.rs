//! The service through PgBouncer in transaction pooling mode, the strictest stand-in for RDS
//! Proxy's multiplexing: each transaction goes to whichever server connection is free, so
//! whatever an invocation leaves on its session reaches someone else's next transaction.
//! `scripts/test.sh` runs the whole suite a second time that way (`AERONODE_VIA_POOLER`,
//! see helpers); this checks that the pooler really hands one client connection to several
//! server connections, and that a lifecycle leaves no session state on any of them. Without
//! a pooler it says so and passes.

use std::collections::BTreeSet;
use std::time::Duration;

use aeronode_inventory::deadline::Deadline;
use aeronode_inventory::domain::DetailType;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, FromRow, PgConnection, Row};
use uuid::Uuid;

use crate::helpers::{TestApp, VIA_POOLER, app_target, order_created, payment_succeeded, pooler};

/// Bound on every wait for a server connection of the pooler.
const WAIT: Duration = Duration::from_secs(10);

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_payment_runs_on_another_server_connection_than_its_reservation_and_no_session_state_is_left_on_any(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let Some(pooled) = through_the_pooler(&options) else {
        return;
    };
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();

    let (reserved, _) = app.answer(order_created(order, &["12A", "12B"])).await;
    // The server connection the app's connection was given last (the pooler hands out the
    // one released last) is taken by another client, in an open transaction...
    let reserved_on = app_backend(&app).await;
    let competitor = hold(&pooled, reserved_on).await;
    // ...so the app's same client connection must be served by another one.
    let (booked, _) = app.answer(payment_succeeded(order)).await;
    let paid_on = app_backend(&app).await;
    release(competitor).await;

    assert_eq!(reserved, DetailType::SeatReserved);
    assert_eq!(booked, DetailType::SeatBooked);
    assert_ne!(
        reserved_on, paid_on,
        "one client connection, two server connections in turn: the pooler multiplexes"
    );
    assert_eq!(app.seat("12A").await.0, "BOOKED");
    assert_eq!(app.seat("12B").await.0, "BOOKED");
    app.assert_consistent().await;

    let servers = every_server(&pooled).await;
    let used: BTreeSet<i32> = [reserved_on, paid_on].into();
    assert!(
        used.is_subset(&servers.iter().map(|server| server.pid).collect()),
        "both server connections the app used are still there to inspect: {servers:?}"
    );
    for server in &servers {
        assert!(
            server.is_clean(),
            "a session left state for the next client of its server connection \
             (RDS Proxy would pin it): {server:?}"
        );
    }
}

/// The database at `options` through the pooler of this run; none, saying why, without one.
fn through_the_pooler(options: &PgConnectOptions) -> Option<PgConnectOptions> {
    if pooler().is_none() {
        eprintln!(
            "skipped: no pooler in this run ({VIA_POOLER} is unset); \
             scripts/test.sh runs this in its PgBouncer pass"
        );
        return None;
    }
    Some(app_target(options))
}

async fn backend_pid(connection: &mut PgConnection) -> i32 {
    sqlx::raw_sql("SELECT pg_backend_pid()")
        .fetch_one(connection)
        .await
        .expect("pg_backend_pid() answers")
        .get(0)
}

/// The server connection the app's own client connection is given for its next transaction.
async fn app_backend(app: &TestApp) -> i32 {
    let mut session = app
        .app
        .database()
        .session(Deadline::after(WAIT))
        .await
        .expect("a session");
    backend_pid(session.connection().await.expect("the app's connection")).await
}

/// A client of the pooler inside a transaction: it keeps its server connection until it ends.
async fn begin(pooled: &PgConnectOptions) -> (PgConnection, i32) {
    let transaction = async {
        let mut client = PgConnection::connect_with(pooled)
            .await
            .expect("the pooler accepts a client");
        sqlx::raw_sql("BEGIN")
            .execute(&mut client)
            .await
            .expect("BEGIN");
        let pid = backend_pid(&mut client).await;
        (client, pid)
    };
    tokio::time::timeout(WAIT, transaction)
        .await
        .expect("the pooler gives a server connection in time")
}

/// Another client holding server connection `pid` in an open transaction. Each new client
/// gets a free server connection, so within the pool's size one of them gets `pid`.
async fn hold(pooled: &PgConnectOptions, pid: i32) -> PgConnection {
    let mut others = Vec::new();
    for _ in 0..pool_size(pooled).await {
        let (client, got) = begin(pooled).await;
        if got == pid {
            for other in others {
                release(other).await;
            }
            return client;
        }
        others.push(client);
    }
    panic!("no client of the pooler was given server connection {pid}");
}

async fn release(mut client: PgConnection) {
    sqlx::raw_sql("COMMIT")
        .execute(&mut client)
        .await
        .expect("COMMIT");
    client.close().await.expect("the client says goodbye");
}

/// What a session can carry from one transaction to the next, the things RDS Proxy pins a
/// connection for. The settings PgBouncer itself sets per client are not the app's.
#[derive(Debug, FromRow)]
struct Server {
    pid: i32,
    prepared_statements: i64,
    settings: i64,
    advisory_locks: i64,
    temporary_tables: i64,
    cursors: i64,
    listening: i64,
}

impl Server {
    fn is_clean(&self) -> bool {
        [
            self.prepared_statements,
            self.settings,
            self.advisory_locks,
            self.temporary_tables,
            self.cursors,
            self.listening,
        ] == [0; 6]
    }
}

const SESSION_STATE: &str = "
    SELECT pg_backend_pid() AS pid,
           (SELECT count(*) FROM pg_prepared_statements) AS prepared_statements,
           (SELECT count(*) FROM pg_settings
             WHERE source = 'session'
               AND lower(name) NOT IN ('application_name', 'client_encoding', 'datestyle',
                                       'timezone', 'standard_conforming_strings')) AS settings,
           (SELECT count(*) FROM pg_locks
             WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks,
           (SELECT count(*) FROM pg_class
             WHERE relnamespace = pg_my_temp_schema()) AS temporary_tables,
           (SELECT count(*) FROM pg_cursors) AS cursors,
           (SELECT count(*) FROM pg_listening_channels()) AS listening";

/// The session state of every server connection the pooler has on the database: as many
/// clients as the pool has room for, each in an open transaction, hold one each, and then
/// the pooler's own list of its server connections must name no other.
async fn every_server(pooled: &PgConnectOptions) -> Vec<Server> {
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..pool_size(pooled).await {
        let (mut client, _) = begin(pooled).await;
        let row = sqlx::raw_sql(SESSION_STATE)
            .fetch_one(&mut client)
            .await
            .expect("the session state is readable");
        servers.push(Server::from_row(&row).expect("the session state decodes"));
        clients.push(client);
    }
    let probed: BTreeSet<i32> = servers.iter().map(|server| server.pid).collect();
    let listed: BTreeSet<i32> = admin(pooled, "SHOW SERVERS")
        .await
        .iter()
        .filter(|row| row.get::<String, _>("database") == database(pooled))
        .map(|row| row.get("remote_pid"))
        .collect();
    assert_eq!(listed, probed, "every server connection was looked at");
    for client in clients {
        release(client).await;
    }
    servers
}

/// Server connections the pooler keeps at most for this database and user.
async fn pool_size(pooled: &PgConnectOptions) -> usize {
    let rows = admin(pooled, "SHOW DATABASES").await;
    let size: i32 = rows
        .iter()
        .find(|row| row.get::<String, _>("name") == database(pooled))
        .map(|row| row.get("pool_size"))
        .expect("the pooler lists the database");
    usize::try_from(size).expect("a pool size")
}

/// A command of PgBouncer's admin console (the `pgbouncer` database, simple queries only).
async fn admin(pooled: &PgConnectOptions, command: &'static str) -> Vec<PgRow> {
    let mut console = PgConnection::connect_with(&pooled.clone().database("pgbouncer"))
        .await
        .expect("the pooler's admin console accepts the test's user");
    let rows = sqlx::raw_sql(command)
        .fetch_all(&mut console)
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    let _ = console.close().await;
    rows
}

fn database(options: &PgConnectOptions) -> String {
    options.get_database().unwrap_or_default().to_owned()
}
