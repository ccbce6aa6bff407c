//! The instance's connections: one per invocation it can run at once, opened on first use
//! and kept across invocations. An invocation holds one for its whole life (a
//! [`Session`]), so no pool hands it back and forth: no ping, no acquire round trip.
//! A connection that failed in a way that leaves it in doubt is closed, and the next
//! invocation opens a new one.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, Row};
use tokio::sync::{Semaphore, SemaphorePermit};
use uuid::Uuid;

use super::DbError;
use super::call::{self, Function};
use crate::deadline::Deadline;
use crate::rds_iam::{TokenSource, require_verified_tls};

/// A connection idle this long is closed rather than reused: RDS Proxy, a NAT or the
/// server may have dropped it meanwhile.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections are renewed now and then (an IAM token is only checked at sign-in).
const MAX_LIFETIME: Duration = Duration::from_secs(1_800);
/// Opening a connection takes no longer than this, whatever the invocation has left.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A lock wait inside a call takes at most this share of what the invocation has left,
/// so the call can still answer "lock not available" before the deadline.
const LOCK_WAIT_SHARE: f64 = 0.8;
/// ... and never more than this.
const MAX_LOCK_WAIT: Duration = Duration::from_secs(3);
/// Marks kept in memory before a write is made just to flush them.
const MAX_UNMARKED: usize = 200;
/// A call that takes this long is logged, by its function's name only.
const SLOW_CALL: Duration = Duration::from_secs(1);
/// The server gives a call up this long before the invocation would, so that its answer
/// ("canceling statement due to statement timeout") arrives while the invocation waits.
const SERVER_GIVES_UP_EARLIER: Duration = Duration::from_millis(50);

/// How connections sign in.
enum SignIn {
    Password,
    /// An RDS IAM auth token as the password, over verified TLS.
    Iam(TokenSource),
}

/// The connections of this instance, and the bus's acknowledgements still to be written.
pub struct Database {
    options: PgConnectOptions,
    sign_in: SignIn,
    idle: Mutex<Vec<Idle>>,
    slots: Semaphore,
    size: usize,
    unmarked: Mutex<Vec<Uuid>>,
}

struct Idle {
    connection: PgConnection,
    opened_at: Instant,
    idle_since: Instant,
}

impl Database {
    /// `size` connections at most, one per invocation the instance runs at once.
    pub fn new(options: PgConnectOptions, size: usize) -> Self {
        Self::with_sign_in(options, SignIn::Password, size)
    }

    /// Connections that sign in with an RDS IAM auth token from `tokens`, over TLS with
    /// the server's certificate verified; any password in `options` is ignored.
    pub fn with_iam(options: PgConnectOptions, tokens: TokenSource, size: usize) -> Self {
        Self::with_sign_in(require_verified_tls(options), SignIn::Iam(tokens), size)
    }

    fn with_sign_in(options: PgConnectOptions, sign_in: SignIn, size: usize) -> Self {
        let size = size.max(1);
        Self {
            // sqlx would log a call's text, event details and all, at DEBUG, and at WARN
            // when it runs long: a slow call is logged by its function's name instead.
            options: options
                .application_name("aeronode-inventory")
                .disable_statement_logging(),
            sign_in,
            idle: Mutex::new(Vec::with_capacity(size)),
            slots: Semaphore::new(size),
            size,
            unmarked: Mutex::new(Vec::new()),
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// A session for one invocation, once a connection slot is free.
    pub async fn session(&self, deadline: Deadline) -> Result<Session<'_>, DbError> {
        let permit = deadline
            .run(self.slots.acquire())
            .await
            .map_err(|_| DbError::OutOfTime)?
            .map_err(|_| DbError::from(sqlx::Error::PoolClosed))?;
        Ok(Session {
            database: self,
            live: None,
            deadline,
            _slot: permit,
        })
    }

    /// The bus accepted these outbox entries: the instance's next write marks them
    /// published, in its own commit.
    pub fn acknowledge(&self, event_ids: &[Uuid]) {
        lock(&self.unmarked).extend_from_slice(event_ids);
    }

    /// Closes the connections no invocation is using; the next invocation opens a new one.
    pub fn close_idle(&self) {
        lock(&self.idle).clear();
    }

    /// Whether the bus accepted this entry from this instance, and a write is still to
    /// mark it.
    pub fn awaits_mark(&self, event_id: Uuid) -> bool {
        lock(&self.unmarked).contains(&event_id)
    }

    /// How many accepted entries wait for a write to mark them.
    pub fn unmarked(&self) -> usize {
        lock(&self.unmarked).len()
    }

    fn take_unmarked(&self) -> Vec<Uuid> {
        std::mem::take(&mut *lock(&self.unmarked))
    }

    fn give_back_unmarked(&self, mut event_ids: Vec<Uuid>) {
        let mut unmarked = lock(&self.unmarked);
        event_ids.append(&mut unmarked);
        *unmarked = event_ids;
    }

    fn take_idle(&self) -> Option<Idle> {
        let mut idle = lock(&self.idle);
        while let Some(candidate) = idle.pop() {
            if candidate.idle_since.elapsed() < IDLE_TIMEOUT
                && candidate.opened_at.elapsed() < MAX_LIFETIME
            {
                return Some(candidate);
            }
            // Dropped without a goodbye: it is likely gone already, and waiting on it
            // would only cost the invocation time.
        }
        None
    }

    async fn connect(&self, deadline: Deadline) -> Result<Idle, DbError> {
        let options = match &self.sign_in {
            SignIn::Password => self.options.clone(),
            SignIn::Iam(tokens) => {
                let token = deadline
                    .run(tokens.token())
                    .await
                    .map_err(|_| DbError::OutOfTime)??;
                self.options.clone().password(token.as_str())
            }
        };
        let connection = deadline
            .capped(CONNECT_TIMEOUT)
            .run(PgConnection::connect_with(&options))
            .await
            .map_err(|_| DbError::OutOfTime)??;
        let now = Instant::now();
        Ok(Idle {
            connection,
            opened_at: now,
            idle_since: now,
        })
    }
}

fn log_if_slow(function: Function, took: Duration) {
    if took >= SLOW_CALL {
        let elapsed_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(function = function.name(), elapsed_ms, "slow call");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can panic while holding the lock; if something did, the data is a
    // plain list that is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One invocation's use of the database: one connection, bounded by the invocation's
/// deadline. Dropped, it gives the connection back for the next invocation.
pub struct Session<'a> {
    database: &'a Database,
    live: Option<Idle>,
    deadline: Deadline,
    _slot: SemaphorePermit<'a>,
}

impl Session<'_> {
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    pub fn database(&self) -> &Database {
        self.database
    }

    /// A call that only reads.
    pub async fn read<T: DeserializeOwned>(
        &mut self,
        function: Function,
        args: &impl Serialize,
    ) -> Result<T, DbError> {
        let sql = call::statement(function, args).map_err(|source| DbError::Decode {
            function: function.name(),
            source: source.into(),
        })?;
        self.run(function, sql).await
    }

    /// A call that writes: its lock waits are bounded by the time left, and it marks the
    /// entries the bus accepted since the instance's last write, in the same commit.
    pub async fn write<T: DeserializeOwned>(
        &mut self,
        function: Function,
        args: &impl Serialize,
    ) -> Result<T, DbError> {
        let published = self.database.take_unmarked();
        let envelope = Write {
            published: &published,
            args,
        };
        let result = match call::statement(function, &envelope) {
            Ok(sql) => self.run(function, sql).await,
            Err(source) => Err(DbError::Decode {
                function: function.name(),
                source: source.into(),
            }),
        };
        if result.is_err() {
            // Rolled back with the rest: the next write marks them.
            self.database.give_back_unmarked(published);
        }
        result
    }

    /// Writes the marks kept in memory, if there are many, or `always`.
    pub async fn flush_marks(&mut self, always: bool) -> Result<(), DbError> {
        let unmarked = self.database.unmarked();
        if unmarked == 0 || (!always && unmarked < MAX_UNMARKED) {
            return Ok(());
        }
        let _: serde_json::Value = self
            .write(super::ACKNOWLEDGE, &serde_json::json!({}))
            .await?;
        Ok(())
    }

    /// The connection itself, for work that is not a call (migrations, tests).
    pub async fn connection(&mut self) -> Result<&mut PgConnection, DbError> {
        Ok(&mut self.live().await?.connection)
    }

    /// `SELECT * FROM inventory_bound(…)`: the server's own bounds for the call that
    /// follows it in the same query (one round trip, one implicit transaction), from the
    /// time left now: the whole call gives up before the invocation would, and a lock
    /// wait within it sooner. `None` when too little is left to send anything.
    fn bounds(&self) -> Option<String> {
        let left = self.deadline.remaining();
        let statement = left.checked_sub(SERVER_GIVES_UP_EARLIER)?;
        let lock = statement.mul_f64(LOCK_WAIT_SHARE).min(MAX_LOCK_WAIT);
        Some(format!(
            "SELECT * FROM inventory_bound({}, {}); ",
            statement.as_millis().max(1),
            lock.as_millis().max(1)
        ))
    }

    async fn live(&mut self) -> Result<&mut Idle, DbError> {
        if self.live.is_none() {
            let connection = match self.database.take_idle() {
                Some(idle) => idle,
                None => self.database.connect(self.deadline).await?,
            };
            self.live = Some(connection);
        }
        self.live
            .as_mut()
            .ok_or_else(|| DbError::from(sqlx::Error::PoolClosed))
    }

    async fn run<T: DeserializeOwned>(
        &mut self,
        function: Function,
        sql: String,
    ) -> Result<T, DbError> {
        let deadline = self.deadline;
        self.live().await?;
        // Computed after any reconnect, from what is left as the call is sent.
        let Some(bounds) = self.bounds() else {
            return Err(DbError::OutOfTime);
        };
        let live = self.live().await?;
        let started = Instant::now();
        let outcome = deadline
            .run(sqlx::raw_sql(AssertSqlSafe(bounds + &sql)).fetch_one(&mut live.connection))
            .await;
        log_if_slow(function, started.elapsed());
        let row = match outcome {
            Ok(Ok(row)) => row,
            Ok(Err(error)) => {
                if DbError::breaks_connection(&error) {
                    self.live = None;
                }
                // The server gave the call up at its bound: the invocation's time is out,
                // and nothing the call started commits.
                if DbError::is_statement_timeout(&error)
                    && deadline.remaining() < SERVER_GIVES_UP_EARLIER * 4
                {
                    return Err(DbError::OutOfTime);
                }
                return Err(error.into());
            }
            Err(_) => {
                // Cut off mid-call: the connection's state is unknown. Closing it makes
                // the server roll back whatever the call had started.
                self.live = None;
                return Err(DbError::OutOfTime);
            }
        };
        // A function may answer SQL NULL (nothing found): that is JSON null.
        let text: Option<&str> = row.try_get_unchecked(0)?;
        serde_json::from_str(text.unwrap_or("null")).map_err(|source| DbError::Decode {
            function: function.name(),
            source: source.into(),
        })
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(mut live) = self.live.take() {
            live.idle_since = Instant::now();
            lock(&self.database.idle).push(live);
        }
    }
}

/// What every write carries besides its own arguments (see `inventory_begin`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Write<'a, T: Serialize> {
    published: &'a [Uuid],
    #[serde(flatten)]
    args: &'a T,
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use sqlx::postgres::PgPoolOptions;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Everything logged while it is the thread's default subscriber, at every level.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&lock(&self.0)).into_owned()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn sqlx_logs_no_statement_of_ours_slow_or_not() {
        let database = Database::new(PgConnectOptions::new_without_pgpass(), 1);

        // sqlx's LogSettings has no getter; its Debug output is the one view of it.
        let options = format!("{:?}", database.options());

        assert!(options.contains("statements_level: Off"), "{options}");
        assert!(options.contains("slow_statements_level: Off"), "{options}");
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_slow_call_is_logged_by_its_function_name_without_its_arguments(
        _: PgPoolOptions,
        options: PgConnectOptions,
    ) {
        let mut setup = PgConnection::connect_with(&options)
            .await
            .expect("the test database answers");
        sqlx::raw_sql(
            "CREATE FUNCTION slow_echo(args jsonb) RETURNS json LANGUAGE sql AS $$
                 SELECT pg_sleep(1.1);
                 SELECT args::json;
             $$",
        )
        .execute(&mut setup)
        .await
        .expect("the function is created");
        let database = Database::new(options, 1);
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(captured.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);

        let mut session = database
            .session(Deadline::after(Duration::from_secs(10)))
            .await
            .expect("a session");
        let echoed: Value = session
            .read(
                Function::named("slow_echo"),
                &json!({"passenger": "Ada Lovelace", "seats": ["12A"]}),
            )
            .await
            .expect("the call answers");

        let log = captured.text();
        assert_eq!(echoed["passenger"], "Ada Lovelace");
        assert!(
            !log.contains("Ada Lovelace"),
            "the arguments were logged:\n{log}"
        );
        assert!(
            log.lines()
                .any(|line| line.contains("slow call") && line.contains("function=\"slow_echo\"")),
            "no slow call named slow_echo in:\n{log}"
        );
    }
}
