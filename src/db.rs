//! The connection to PostgreSQL, sized and shaped for Lambda behind RDS Proxy.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};

/// The schema, from `database/migrations`: the same files `sqlx migrate run` and `psql -f` apply.
pub static MIGRATOR: Migrator = sqlx::migrate!("database/migrations");

/// Every statement goes through here: unnamed, never cached on the session, so RDS Proxy
/// can keep multiplexing the connection (a named prepared statement would pin it).
pub fn statement(sql: &'static str) -> Query<'static, Postgres, PgArguments> {
    sqlx::query(sql).persistent(false)
}

/// One connection: a Lambda instance runs one invocation at a time. Connects lazily, so
/// a cold start does not wait for the database until the first event needs it.
pub fn pool(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        // A ping per invocation would cost a round trip; a dead connection fails the
        // invocation instead, and the retry is safe.
        .test_before_acquire(false)
        // Close before RDS Proxy's idle client timeout would, and recycle now and then.
        .idle_timeout(Some(Duration::from_secs(300)))
        .max_lifetime(Some(Duration::from_secs(1800)))
        .connect_lazy_with(options.application_name("aeronode-inventory"))
}
