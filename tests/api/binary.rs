//! The compiled binary as Lambda runs it, for the end-to-end tests: its own Runtime API
//! stub, settings from the environment only, its log in a file (printed if a test fails).

use std::process::Stdio;
use std::time::{Duration, Instant};

use aeronode_testkit::runtime_api::{Invocation, Pending, RuntimeApi};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use tokio::process::{Child, Command};

use crate::aws_emulator::{self, ACCESS_KEY, BUS, REGION};
use crate::helpers::app_target;

/// Bound on every wait for something that should happen at once.
pub const SOON: Duration = Duration::from_secs(10);

/// The `aeronode-inventory` binary as Lambda runs it: its own Runtime API, settings from
/// the environment only, its log in a file (printed if the test fails).
pub struct Binary {
    process: Child,
    pub runtime: RuntimeApi,
    log: std::path::PathBuf,
}

impl Binary {
    /// Starts the binary and waits for its first `/next`, the end of its cold start.
    pub async fn start(
        options: &PgConnectOptions,
        aws_endpoint: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let runtime = RuntimeApi::start().await.expect("the Runtime API listens");
        let (log, file) = aws_emulator::log_file("binary");
        let mut command = Command::new(env!("CARGO_BIN_EXE_aeronode-inventory"));
        command
            .env_clear()
            .envs(runtime.environment())
            .env("DATABASE_URL", database_url(options))
            .env("EVENT_BUS_NAME", BUS)
            .env("LOCK_TTL_SECONDS", "900")
            .env("RUST_LOG", "info")
            .env("AWS_ENDPOINT_URL", aws_endpoint)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", ACCESS_KEY)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("the log file can be shared"))
            .stderr(file)
            .kill_on_drop(true);
        if let Some(password) = std::env::var_os("PGPASSWORD") {
            command.env("PGPASSWORD", password);
        }
        let mut process = command.spawn().expect("the binary starts");
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        tokio::select! {
            polled = runtime.first_poll(SOON) => if let Err(error) = polled {
                panic!("{error}; the binary's log:\n{}", read_log());
            },
            status = process.wait() => panic!(
                "the binary exited ({status:?}) before asking for an event; its log:\n{}",
                read_log()
            ),
        }
        Self {
            process,
            runtime,
            log,
        }
    }

    pub async fn invoke(&mut self, event: Value) -> Invocation {
        let pending = self.runtime.submit(event);
        self.outcome(pending).await
    }

    /// The binary's answer to an invocation already submitted.
    pub async fn outcome(&mut self, pending: Pending) -> Invocation {
        tokio::select! {
            outcome = pending.outcome() => outcome.unwrap_or_else(|error| panic!("{error}")),
            status = self.process.wait() => panic!("the binary exited ({status:?}) during an invocation"),
        }
    }

    /// `kill -9`, and wait until it is gone.
    pub async fn crash(mut self) {
        self.process.kill().await.expect("the binary can be killed");
    }

    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- log of the binary ({}) ---\n{}",
                self.log.display(),
                self.log_lines().join("\n")
            );
        }
    }
}

/// Polls `check` until it holds; panics after [`SOON`].
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + SOON;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {SOON:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The test database as a URL for the binary, through the pooler when the run has one
/// ([`app_target`]); the password, if any, goes as PGPASSWORD. TLS is off by name: the
/// loopback servers of the tests have none, and the binary must not guess.
pub fn database_url(options: &PgConnectOptions) -> String {
    url_of(&app_target(options))
}

/// The database itself, never a pooler: for `migrate`, which takes a session-level lock
/// and prepares its statements (README, "Apply the migrations").
pub fn direct_database_url(options: &PgConnectOptions) -> String {
    url_of(options)
}

fn url_of(target: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}?sslmode=disable",
        target.get_username(),
        target.get_host(),
        target.get_port(),
        target.get_database().unwrap_or_default()
    )
}
