//! moto's server as a real EventBridge and SQS endpoint on the loopback, driven with the
//! AWS SDK for Rust: a bus, a rule for what this service publishes, and a queue as the
//! rule's target, so a test reads what actually went through the bus.
//!
//! Starting moto costs about a second of CPU, so the tests share one server
//! ([`Moto::shared`]), each on a bus and queue of its own; a test that stops the server
//! starts its own ([`Moto::start`]).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_eventbridge::types::Target;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The bus the service publishes to by default (`EVENT_BUS_NAME`); each test routes its own,
/// named after it.
pub const BUS: &str = "SkyLedger-Default-Bus";
pub const REGION: &str = "eu-west-1";
/// Credentials moto accepts; also given to the binary.
pub const ACCESS_KEY: &str = "testing";

const QUEUE: &str = "inventory-events";
const RULE: &str = "inventory-events-to-queue";
const STARTUP: Duration = Duration::from_secs(15);

/// A `moto_server` process on a loopback port, killed on drop.
pub struct Moto {
    port: u16,
    process: Option<Child>,
    /// The shared server's watchdog: it reaps the server, and ends with the test process.
    _watchdog: Option<std::process::Child>,
}

/// The queue behind the rule, where published events arrive, and the bus it listens to.
pub struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    bus: String,
}

static SHARED: std::sync::OnceLock<Moto> = std::sync::OnceLock::new();

impl Moto {
    /// The server the tests share, started on first use. It ends with the test process: a
    /// watchdog shell stops it once its parent is gone (a static is never dropped).
    pub fn shared() -> &'static Self {
        SHARED.get_or_init(|| {
            let port = free_port();
            let (_, log) = log_file("moto-shared");
            let watchdog = format!(
                "\"$0\" -H 127.0.0.1 -p {port} & moto=$!; \
                 while kill -0 {parent} 2>/dev/null && kill -0 $moto 2>/dev/null; do sleep 0.5; done; \
                 kill $moto 2>/dev/null",
                parent = std::process::id()
            );
            let watchdog = std::process::Command::new("sh")
                .args(["-c", &watchdog])
                .arg(moto_server())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("the log file can be shared"))
                .stderr(log)
                .spawn()
                .expect("moto_server starts");
            let deadline = Instant::now() + STARTUP;
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "the shared moto_server did not listen within {STARTUP:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Self {
                port,
                process: None,
                _watchdog: Some(watchdog),
            }
        })
    }

    pub async fn start() -> Self {
        let mut moto = Self {
            port: free_port(),
            process: None,
            _watchdog: None,
        };
        moto.restart().await;
        moto
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server: its port refuses connections until [`Moto::restart`].
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill().await;
        }
    }

    /// Starts the server again on the same port, empty, and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.stop().await;
        // Its request log, for when a test fails.
        let (_, log) = log_file("moto");
        let mut process = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file can be shared"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("moto_server starts");
        let deadline = Instant::now() + STARTUP;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = process.try_wait() {
                panic!(
                    "moto_server exited with {status} (is port {} taken?)",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within {STARTUP:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.process = Some(process);
    }

    /// Creates a bus of this test's own, a queue, and a rule on the bus that sends
    /// everything from `skyledger.inventory` to the queue.
    pub async fn route_inventory_events_to_queue(&self) -> Queue {
        self.route_inventory_events_on(&own_bus()).await
    }

    /// The same, on the bus named `bus` (one of [`own_bus`]'s names).
    pub async fn route_inventory_events_on(&self, bus: &str) -> Queue {
        let aws = sdk_config(&self.endpoint());
        let events = aws_sdk_eventbridge::Client::new(&aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let own = bus.rsplit('-').next().unwrap_or_default().to_owned();
        let bus = bus.to_owned();

        events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("CreateEventBus");
        let url = sqs
            .create_queue()
            .queue_name(format!("{QUEUE}-{own}"))
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .expect("a queue url");
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
            .expect("the queue has an ARN");
        events
            .put_rule()
            .name(RULE)
            .event_bus_name(&bus)
            .event_pattern(json!({"source": ["skyledger.inventory"]}).to_string())
            .send()
            .await
            .expect("PutRule");
        let target = Target::builder()
            .id("queue")
            .arn(arn)
            .build()
            .expect("a complete target");
        let put = events
            .put_targets()
            .rule(RULE)
            .event_bus_name(&bus)
            .targets(target)
            .send()
            .await
            .expect("PutTargets");
        assert_eq!(put.failed_entry_count, 0, "the queue is the rule's target");
        Queue { sqs, url, bus }
    }
}

impl Queue {
    /// The bus whose rule feeds this queue: the service's `EVENT_BUS_NAME` in this test.
    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// The EventBridge envelopes that arrived, read and deleted: waits (long polling, about
    /// `within` at most) until `expected` have arrived, then takes whatever else is already
    /// there, so a test can tell one from two. moto delivers to the queue within PutEvents,
    /// so what was published before this call is there without waiting.
    pub async fn receive(&self, expected: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut envelopes = Vec::new();
        loop {
            let missing = envelopes.len() < expected;
            let messages = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(if missing { 1 } else { 0 })
                .send()
                .await
                .expect("ReceiveMessage")
                .messages
                .unwrap_or_default();
            if messages.is_empty() && (!missing || Instant::now() >= deadline) {
                return envelopes;
            }
            let mut read = Vec::new();
            for (index, message) in messages.into_iter().enumerate() {
                let body = message.body.unwrap_or_default();
                let envelope = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("a queued message is not JSON ({e}): {body}"));
                envelopes.push(envelope);
                read.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .set_receipt_handle(message.receipt_handle)
                        .build()
                        .expect("a complete delete entry"),
                );
            }
            if !read.is_empty() {
                self.sqs
                    .delete_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(read))
                    .send()
                    .await
                    .expect("DeleteMessageBatch");
            }
        }
    }
}

/// A bus name no other test uses.
pub fn own_bus() -> String {
    format!("{BUS}-{}", uuid::Uuid::new_v4().simple())
}

pub fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    let credentials = Credentials::new(ACCESS_KEY, ACCESS_KEY, None, None, "aeronode-tests");
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .endpoint_url(endpoint)
        .build()
}

/// `$AERONODE_TOOLS_BIN/moto_server`, else the one `scripts/test.sh` installs.
fn moto_server() -> PathBuf {
    let bin = std::env::var_os("AERONODE_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin"));
    let path = bin.join("moto_server");
    assert!(
        path.is_file(),
        "{} not found: run scripts/test.sh once (it installs the test tools into .tools/venv), \
         or set AERONODE_TOOLS_BIN to a directory holding moto_server",
        path.display()
    );
    path
}

/// A fresh log file for a process the running test starts, under `target/tmp/e2e-logs`,
/// named after the test and numbered in start order (`<test>.2.moto.log`), so a rerun
/// overwrites the last run's logs.
pub fn log_file(process: &str) -> (PathBuf, std::fs::File) {
    thread_local! {
        // libtest runs each test on its own thread.
        static STARTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    let number = STARTED.with(|started| {
        started.set(started.get() + 1);
        started.get()
    });
    let thread = std::thread::current();
    let test = thread
        .name()
        .unwrap_or("test")
        .rsplit("::")
        .next()
        .unwrap_or("test");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join(format!("{test}.{number}.{process}.log"));
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, file)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}
