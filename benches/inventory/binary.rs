//! The release binary as Lambda runs it: its size, its cold start under a local Runtime API,
//! and its memory over many invocations. PutEvents goes to a stub on the loopback that
//! accepts every entry, so the figures are about our process, not an emulator's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aeronode_testkit::put_events::PutEvents;
use aeronode_testkit::runtime_api::{Invocation, RuntimeApi};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::Result;
use crate::database::{BenchDb, Consistency};
use crate::events::{Events, seat_number};
use crate::report::median;

const BINARY_NAME: &str = "aeronode-inventory";
/// How long a cold start may take before the run gives up on it.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Where the binary to measure comes from.
pub enum Source {
    /// `cargo build --release --bin aeronode-inventory` into [`SHIPPED_DIR`], then the result.
    Build,
    /// The binary of the last such build, as it is.
    AsBuilt,
    Given(PathBuf),
}

/// The target directory, under this bench's own, of the binary as it ships. `cargo bench`
/// also builds `target/release/aeronode-inventory`, but with the features the dev-dependencies
/// add (a larger, different binary); a directory of its own keeps the two builds from
/// replacing each other on every run.
const SHIPPED_DIR: &str = "shipped";

/// The binary to measure, built first unless told otherwise.
pub fn locate(source: &Source) -> Result<PathBuf> {
    let binary = match source {
        Source::Given(path) => path.clone(),
        Source::Build | Source::AsBuilt => {
            // This bench runs from <target>/release/deps/.
            let exe = std::env::current_exe()?;
            let target = exe
                .ancestors()
                .nth(3)
                .ok_or("cannot tell the target directory from the bench's own path")?;
            let shipped = target.join(SHIPPED_DIR);
            if matches!(source, Source::Build) {
                build(&shipped)?;
            }
            shipped.join("release").join(BINARY_NAME)
        }
    };
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "no binary at {} (run without --no-build first)",
            binary.display()
        )
        .into())
    }
}

fn build(target_dir: &Path) -> Result<()> {
    eprintln!(
        "bench: cargo build --release --bin {BINARY_NAME} --target-dir {} (LTO: a few minutes on 2 cores when it is not up to date)",
        target_dir.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--bin", BINARY_NAME, "--target-dir"])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the release build failed ({status})").into())
    }
}

pub struct Size {
    pub bytes: u64,
    /// No `.symtab` section name in the file.
    pub stripped: bool,
    pub path: PathBuf,
}

impl Size {
    pub fn json(&self) -> Value {
        json!({"bytes": self.bytes, "stripped": self.stripped, "path": self.path})
    }
}

pub fn size(binary: &Path) -> Result<Size> {
    let bytes = std::fs::read(binary)?;
    let stripped = !bytes.windows(8).any(|window| window == b".symtab\0");
    Ok(Size {
        bytes: bytes.len() as u64,
        stripped,
        path: binary.to_owned(),
    })
}

/// One cold start: exec → the first `GET …/invocation/next`, and exec → the end of the
/// first invocation (a single-seat `OrderCreated`, queued before the exec).
#[derive(Clone, Copy, Debug)]
pub struct Start {
    pub init: Duration,
    pub first_invocation: Duration,
}

pub struct ColdStarts {
    /// How the binary reached the database: "as configured" or "plain TCP".
    pub connection: &'static str,
    pub runs: Vec<Start>,
    pub consistency: Consistency,
}

impl ColdStarts {
    pub fn init_median(&self) -> Duration {
        median(self.runs.iter().map(|run| run.init))
    }

    pub fn first_invocation_median(&self) -> Duration {
        median(self.runs.iter().map(|run| run.first_invocation))
    }

    pub fn json(&self) -> Value {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        json!({
            "connection": self.connection,
            "runs": self.runs.len(),
            "initMedianMs": ms(self.init_median()),
            "firstInvocationMedianMs": ms(self.first_invocation_median()),
            "initMs": self.runs.iter().map(|r| ms(r.init)).collect::<Vec<_>>(),
            "firstInvocationMs": self.runs.iter().map(|r| ms(r.first_invocation)).collect::<Vec<_>>(),
            "consistency": self.consistency.json(),
        })
    }
}

/// `runs` cold starts of the binary, connecting with `database_url`.
pub async fn cold_starts(
    binary: &Path,
    (connection, database_url): (&'static str, &str),
    db: &BenchDb,
    events: &Events,
    stub: &PutEvents,
    runs: usize,
) -> Result<ColdStarts> {
    let flight = db.flight().await?;
    let reserved_before = stub.published("SeatReserved");
    let mut starts = Vec::with_capacity(runs);
    for run in 0..runs {
        let api = RuntimeApi::start().await?;
        let event = events.order_created(Uuid::new_v4(), flight, &[seat_number(run)]);
        let pending = api.submit(event);
        let started = Instant::now();
        let mut process = Process::spawn(binary, &api, database_url, stub)?;
        let first_poll = tokio::select! {
            first = api.first_poll(START_LIMIT) => first?,
            status = process.child.wait() => return Err(process.exited(status)),
        };
        let init = first_poll.saturating_duration_since(started);
        let outcome = tokio::select! {
            outcome = pending.outcome() => outcome?,
            status = process.child.wait() => return Err(process.exited(status)),
        };
        let first_invocation = started.elapsed();
        process.stop().await;
        if !matches!(outcome, Invocation::Response(_)) {
            return Err(
                format!("cold start {run}: the first invocation failed: {outcome:?}").into(),
            );
        }
        starts.push(Start {
            init,
            first_invocation,
        });
    }
    let reserved = stub.published("SeatReserved") - reserved_before;
    let mut consistency = db.check_holds(flight, runs as u64).await?;
    if reserved != runs as u64 {
        consistency.problems.push(format!(
            "{reserved} SeatReserved published for {runs} single-seat orders on free seats"
        ));
    }
    let cold = ColdStarts {
        connection,
        runs: starts,
        consistency: consistency.report("cold start"),
    };
    eprintln!(
        "bench: cold start ({connection}): init median {:.1} ms, first invocation median {:.1} ms over {runs} runs",
        cold.init_median().as_secs_f64() * 1e3,
        cold.first_invocation_median().as_secs_f64() * 1e3,
    );
    Ok(cold)
}

/// `/proc/PID/status` after this many invocations, in kB.
#[derive(Clone, Copy, Debug)]
pub struct MemorySample {
    pub invocations: usize,
    /// Peak resident set so far.
    pub vm_hwm_kb: u64,
    pub vm_rss_kb: u64,
}

pub struct Memory {
    pub invocations: usize,
    pub samples: Vec<MemorySample>,
    pub wall: Duration,
    /// CPU time (user + system) the binary used over the invocations, init excluded.
    pub cpu: Duration,
    pub consistency: Consistency,
}

impl Memory {
    pub fn last(&self) -> Option<MemorySample> {
        self.samples.last().copied()
    }

    /// The sample half-way through the invocations.
    pub fn half_way(&self) -> Option<MemorySample> {
        self.samples
            .iter()
            .find(|s| s.invocations == self.invocations / 2)
            .copied()
    }

    pub fn cpu_per_invocation(&self) -> Duration {
        self.cpu / u32::try_from(self.invocations.max(1)).unwrap_or(u32::MAX)
    }

    pub fn wall_per_invocation(&self) -> Duration {
        self.wall / u32::try_from(self.invocations.max(1)).unwrap_or(u32::MAX)
    }

    pub fn json(&self) -> Value {
        json!({
            "invocations": self.invocations,
            "wallSeconds": self.wall.as_secs_f64(),
            "cpuSeconds": self.cpu.as_secs_f64(),
            "cpuMsPerInvocation": self.cpu_per_invocation().as_secs_f64() * 1e3,
            "samples": self.samples.iter().map(|s| json!({
                "invocations": s.invocations,
                "vmHwmKb": s.vm_hwm_kb,
                "vmRssKb": s.vm_rss_kb,
            })).collect::<Vec<_>>(),
            "consistency": self.consistency.json(),
        })
    }
}

/// Sample every this many invocations.
const SAMPLE_EVERY: usize = 1_000;

/// One instance through `invocations` invocations: a two-seat `OrderCreated`, then the
/// `PaymentFailed` that releases it, and again, each a real write to the database.
pub async fn memory(
    binary: &Path,
    db: &BenchDb,
    events: &Events,
    stub: &PutEvents,
    invocations: usize,
) -> Result<Memory> {
    let flight = db.flight().await?;
    let published_before = (
        stub.published("SeatReserved"),
        stub.published("SeatReleased"),
    );
    let api = RuntimeApi::start().await?;
    let mut process = Process::spawn(binary, &api, &db.url, stub)?;
    tokio::select! {
        first = api.first_poll(START_LIMIT) => { first?; }
        status = process.child.wait() => return Err(process.exited(status)),
    }
    let pid = process.child.id().ok_or("the binary has no pid")?;
    let mut samples = vec![read_status(pid, 0)?];
    let cpu_before = cpu_time(pid)?;
    let started = Instant::now();
    let orders = invocations / 2;
    for n in 0..orders {
        // 90 pairs of seats; each pair was released before it comes round again.
        let pair = n % 90;
        let seats = [seat_number(2 * pair), seat_number(2 * pair + 1)];
        let order = Uuid::new_v4();
        for event in [
            events.order_created(order, flight, &seats),
            events.payment_failed(order),
        ] {
            let outcome = tokio::select! {
                outcome = api.invoke(event) => outcome?,
                status = process.child.wait() => return Err(process.exited(status)),
            };
            if !matches!(outcome, Invocation::Response(_)) {
                return Err(
                    format!("memory run, order {n}: invocation failed: {outcome:?}").into(),
                );
            }
        }
        let done = 2 * (n + 1);
        if done % SAMPLE_EVERY == 0 || done == 2 * orders {
            samples.push(read_status(pid, done)?);
        }
    }
    let wall = started.elapsed();
    let cpu = cpu_time(pid)?.saturating_sub(cpu_before);
    process.stop().await;

    let reserved = stub.published("SeatReserved") - published_before.0;
    let released = stub.published("SeatReleased") - published_before.1;
    let mut consistency = db.check_holds(flight, 2 * orders as u64).await?;
    if (reserved, released) != (orders as u64, orders as u64) {
        consistency.problems.push(format!(
            "{reserved} SeatReserved and {released} SeatReleased published for {orders} orders"
        ));
    }
    let memory = Memory {
        invocations: 2 * orders,
        samples,
        wall,
        cpu,
        consistency: consistency.report("memory"),
    };
    if let (Some(half), Some(last)) = (memory.half_way(), memory.last()) {
        eprintln!(
            "bench: memory: VmHWM {} kB at {}, {} kB at {} invocations; VmRSS {} → {} kB; {:.3} ms CPU and {:.2} ms wall per invocation",
            half.vm_hwm_kb,
            half.invocations,
            last.vm_hwm_kb,
            last.invocations,
            half.vm_rss_kb,
            last.vm_rss_kb,
            memory.cpu_per_invocation().as_secs_f64() * 1e3,
            memory.wall_per_invocation().as_secs_f64() * 1e3,
        );
    }
    Ok(memory)
}

/// User + system CPU time of the process so far, from `/proc/PID/stat` (clock ticks of
/// 10 ms on Linux, so only totals over many invocations mean anything).
fn cpu_time(pid: u32) -> Result<Duration> {
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it are space-separated.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 counted after the name.
    let ticks = |index: usize| -> Result<u64> {
        Ok(fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .ok_or("unreadable /proc/PID/stat")?)
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / TICKS_PER_SECOND))
}

fn read_status(pid: u32, invocations: usize) -> Result<MemorySample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status").into())
    };
    Ok(MemorySample {
        invocations,
        vm_hwm_kb: field("VmHWM:")?,
        vm_rss_kb: field("VmRSS:")?,
    })
}

/// The binary, started as Lambda would: a clean environment with the Lambda variables,
/// the database and the (stub) EventBridge endpoint. Its logs go to a file in the temp dir.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(
        binary: &Path,
        api: &RuntimeApi,
        database_url: &str,
        stub: &PutEvents,
    ) -> Result<Self> {
        let log = std::env::temp_dir().join("aeronode-bench-binary.log");
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(api.environment())
            .env("DATABASE_URL", database_url)
            .env("EVENT_BUS_NAME", "SkyLedger-Default-Bus")
            .env("AWS_ENDPOINT_URL", stub.endpoint())
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        if let Some(password) = std::env::var_os("PGPASSWORD") {
            command.env("PGPASSWORD", password);
        }
        Ok(Self {
            child: command.spawn()?,
            log,
        })
    }

    fn exited(&self, status: std::io::Result<std::process::ExitStatus>) -> crate::Error {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect::<Vec<_>>();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "the binary exited ({status:?}); the end of its log:\n{}",
            tail.join("\n")
        )
        .into()
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
