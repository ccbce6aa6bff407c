//! The figures: percentiles, the machine they came from, the Markdown table the run prints
//! (pasted as is into BENCHMARKS.md) and the same as JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Row;

use crate::binary::{ColdStarts, Memory, Size};
use crate::contention::{HOT_SEATS, Mode, Phase};
use crate::database::BenchDb;
use crate::round_trips::RoundTrips;
use crate::{Plan, Result};

/// The targets of the issues. A MB is 1,000,000 bytes, the stricter reading.
const TARGET_RATIO_AT: usize = 8;
const TARGET_RATIO: f64 = 0.5;
/// The handler's p50 at K = 1 is at most this many times the ceiling's.
const TARGET_P50_FACTOR: f64 = 2.0;
const TARGET_ROUND_TRIPS: u64 = 3;
const TARGET_INIT: Duration = Duration::from_millis(20);
/// The first invocation over TLS to the database, exec → first response.
const TARGET_FIRST_INVOCATION: Duration = Duration::from_millis(25);
const TARGET_PEAK_RSS_BYTES: u64 = 24_000_000;
const TARGET_BINARY_BYTES: u64 = 12_000_000;
/// Resident-set growth per invocation after the first 1,000 (which open the connection,
/// warm the caches and the allocator's arenas).
const TARGET_GROWTH_BYTES_PER_INVOCATION: f64 = 8.0;

/// Latencies of one phase, sorted.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn of(latencies: impl Iterator<Item = Duration>) -> Self {
        let mut all: Vec<Duration> = latencies.collect();
        all.sort_unstable();
        Self(all)
    }

    /// Nearest-rank percentile, in milliseconds.
    pub fn percentile_ms(&self, percent: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let rank = ((percent / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1].as_secs_f64() * 1e3
    }

    pub fn p50_ms(&self) -> f64 {
        self.percentile_ms(50.0)
    }

    pub fn json(&self) -> Value {
        let mean = if self.0.is_empty() {
            0.0
        } else {
            self.0.iter().sum::<Duration>().as_secs_f64() * 1e3 / self.0.len() as f64
        };
        json!({
            "count": self.0.len(),
            "mean": mean,
            "p50": self.percentile_ms(50.0),
            "p95": self.percentile_ms(95.0),
            "p99": self.percentile_ms(99.0),
            "max": self.percentile_ms(100.0),
        })
    }
}

pub fn median(values: impl Iterator<Item = Duration>) -> Duration {
    let mut all: Vec<Duration> = values.collect();
    all.sort_unstable();
    match all.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => all[n / 2],
        n => (all[n / 2 - 1] + all[n / 2]) / 2,
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The command as it was run, for the report.
pub fn command_line(quick: bool, json: Option<&Path>) -> String {
    let mut command = String::from("cargo bench --bench inventory");
    let mut args: Vec<String> = Vec::new();
    if quick {
        args.push("--quick".into());
    }
    if let Some(path) = json {
        args.push(format!("--json {}", path.display()));
    }
    let others: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench" && arg != "--quick")
        .collect();
    let mut skip_next = false;
    for arg in others {
        if skip_next {
            skip_next = false;
            continue;
        }
        if arg == "--json" {
            skip_next = true;
            continue;
        }
        args.push(arg);
    }
    if !args.is_empty() {
        command.push_str(" -- ");
        command.push_str(&args.join(" "));
    }
    command
}

/// Where the figures came from.
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub memory: String,
    pub kernel: String,
    pub load: String,
    pub postgres: String,
    pub database_settings: String,
    pub tls: bool,
    pub release_profile: String,
    pub rustc: String,
    /// The commit measured, and how many files differed from it.
    pub revision: String,
    pub started: String,
}

impl Machine {
    pub async fn read(db: &BenchDb) -> Result<Self> {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown CPU".into(), |(_, name)| name.trim().to_owned());
        let meminfo = read("/proc/meminfo");
        let memory = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or_else(
                || "unknown".into(),
                |kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0),
            );
        let kernel = format!(
            "{} {} {}",
            read("/proc/sys/kernel/ostype").trim(),
            read("/proc/sys/kernel/osrelease").trim(),
            std::env::consts::ARCH
        );
        let load = read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let row = sqlx::query(
            "SELECT version() AS version,
                    current_setting('fsync') AS fsync,
                    current_setting('synchronous_commit') AS synchronous_commit,
                    current_setting('shared_buffers') AS shared_buffers,
                    coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS tls",
        )
        .fetch_one(&db.admin)
        .await?;
        let version: String = row.get("version");
        let postgres = version.split(" on ").next().unwrap_or(&version).to_owned();
        let database_settings = format!(
            "fsync={}, synchronous_commit={}, shared_buffers={}",
            row.get::<String, _>("fsync"),
            row.get::<String, _>("synchronous_commit"),
            row.get::<String, _>("shared_buffers"),
        );
        let manifest = read(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        let release_profile = manifest
            .split("[profile.release]")
            .nth(1)
            .map(|section| {
                section
                    .lines()
                    .map(str::trim)
                    .take_while(|line| !line.starts_with('['))
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .unwrap_or_default();
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let commit = git(&["rev-parse", "--short", "HEAD"]);
        let changed = git(&["status", "--porcelain", "--untracked-files=no"])
            .lines()
            .count();
        let revision = match changed {
            0 => commit,
            n => format!("{commit} with {n} modified files"),
        };
        Ok(Self {
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
            kernel,
            load,
            postgres,
            database_settings,
            tls: row.get("tls"),
            release_profile,
            rustc,
            revision,
            started: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        })
    }

    pub fn summary(&self) -> String {
        format!(
            "{}, {} CPUs, {}; {}; {} ({}), TLS {}; load {}",
            self.cpu,
            self.cpus,
            self.memory,
            self.kernel,
            self.postgres,
            self.database_settings,
            if self.tls { "on" } else { "off" },
            self.load
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "cpu": self.cpu,
            "cpus": self.cpus,
            "memory": self.memory,
            "kernel": self.kernel,
            "loadAverageAtStart": self.load,
            "postgres": self.postgres,
            "databaseSettings": self.database_settings,
            "tlsToDatabase": self.tls,
            "releaseProfile": self.release_profile,
            "rustc": self.rustc,
            "revision": self.revision,
            "started": self.started,
        })
    }
}

#[derive(Default)]
pub struct Results {
    pub contention: Option<Vec<Phase>>,
    pub round_trips: Option<RoundTrips>,
    pub binary: Option<Size>,
    pub cold_start: Option<ColdStarts>,
    /// The same without TLS to the database, when the run's connection used TLS.
    pub cold_start_plain: Option<ColdStarts>,
    /// The same through PgBouncer in transaction mode with warm server connections (the
    /// RDS Proxy case), when `BENCH_POOLER_URL` names one.
    pub cold_start_pooler: Option<ColdStarts>,
    pub memory: Option<Memory>,
}

/// The connection label of the cold starts through the pooler.
pub const POOLER: &str = "PgBouncer, transaction mode, warm server connections";

/// One line of the targets table.
struct Verdict {
    figure: &'static str,
    target: String,
    measured: String,
    met: bool,
}

impl Results {
    fn phase(&self, mode: Mode, instances: usize) -> Option<&Phase> {
        self.contention
            .as_ref()?
            .iter()
            .find(|p| p.mode == mode && p.instances == instances)
    }

    /// handler ÷ ceiling, in orders (transactions) decided per second.
    fn ratio(&self, instances: usize) -> Option<(f64, f64)> {
        let handler = self.phase(Mode::Handler, instances)?;
        let ceiling = self.phase(Mode::Ceiling, instances)?;
        let divide = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Some((
            divide(handler.decided_per_second, ceiling.decided_per_second),
            divide(handler.reserved_per_second, ceiling.reserved_per_second),
        ))
    }

    fn consistent(&self) -> bool {
        let phases = self
            .contention
            .iter()
            .flatten()
            .all(|p| p.consistency.is_ok());
        phases
            && self
                .round_trips
                .as_ref()
                .is_none_or(|r| r.consistency.is_ok())
            && self
                .cold_start
                .iter()
                .chain(&self.cold_start_plain)
                .chain(&self.cold_start_pooler)
                .all(|c| c.consistency.is_ok())
            && self.memory.as_ref().is_none_or(|m| m.consistency.is_ok())
    }

    fn verdicts(&self) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        if let Some((ratio, _)) = self.ratio(TARGET_RATIO_AT) {
            verdicts.push(Verdict {
                figure: "handler ÷ ceiling throughput at K = 8",
                target: format!("≥ {TARGET_RATIO:.2}"),
                measured: format!("{ratio:.2}"),
                met: ratio >= TARGET_RATIO,
            });
        }
        if let (Some(handler), Some(ceiling)) =
            (self.phase(Mode::Handler, 1), self.phase(Mode::Ceiling, 1))
        {
            let (handler, ceiling) = (handler.latencies.p50_ms(), ceiling.latencies.p50_ms());
            verdicts.push(Verdict {
                figure: "handler p50 at K = 1, against the ceiling's",
                target: format!(
                    "≤ {TARGET_P50_FACTOR:.0}× ({:.2} ms)",
                    ceiling * TARGET_P50_FACTOR
                ),
                measured: format!("{handler:.2} ms ({:.2}×)", handler / ceiling),
                met: handler <= ceiling * TARGET_P50_FACTOR,
            });
        }
        if let Some(counted) = &self.round_trips {
            let trips = counted.reservation.round_trips;
            verdicts.push(Verdict {
                figure: "round trips per single-seat reservation",
                target: format!("≤ {TARGET_ROUND_TRIPS}"),
                measured: format!("{trips} ({} statements)", counted.reservation.statements()),
                met: trips <= TARGET_ROUND_TRIPS,
            });
            verdicts.push(Verdict {
                figure: "statements left prepared on the session",
                target: "0".into(),
                measured: counted.prepared_statements.to_string(),
                met: counted.prepared_statements == 0,
            });
        }
        if let Some(cold) = &self.cold_start {
            let init = cold.init_median();
            verdicts.push(Verdict {
                figure: "init: exec → first `next`, median",
                target: format!("≤ {} ms", TARGET_INIT.as_millis()),
                measured: format!("{:.1} ms", ms(init)),
                met: init <= TARGET_INIT,
            });
        }
        for cold in self
            .cold_start
            .iter()
            .chain(&self.cold_start_plain)
            .chain(&self.cold_start_pooler)
        {
            let first = cold.first_invocation_median();
            verdicts.push(Verdict {
                figure: match cold.connection {
                    "plain TCP" => {
                        "exec → first invocation complete, median, plain TCP to the database"
                    }
                    POOLER => "exec → first invocation complete, median, through PgBouncer (warm)",
                    _ => "exec → first invocation complete over TLS, median",
                },
                target: format!("≤ {} ms", TARGET_FIRST_INVOCATION.as_millis()),
                measured: format!("{:.1} ms", ms(first)),
                met: first <= TARGET_FIRST_INVOCATION,
            });
        }
        if let Some(memory) = &self.memory
            && let Some(last) = memory.last()
        {
            let peak = last.vm_hwm_kb * 1024;
            verdicts.push(Verdict {
                figure: "peak RSS (VmHWM) at the end of the memory run",
                target: format!("≤ {} MB", TARGET_PEAK_RSS_BYTES / 1_000_000),
                measured: format!(
                    "{:.1} MB ({} kB) after {}",
                    peak as f64 / 1e6,
                    last.vm_hwm_kb,
                    last.invocations
                ),
                met: peak <= TARGET_PEAK_RSS_BYTES,
            });
            if let Some(warm) = memory.samples.iter().find(|s| s.invocations >= 1_000) {
                let invocations = last.invocations.saturating_sub(warm.invocations).max(1);
                let grown = (last.vm_rss_kb as f64 - warm.vm_rss_kb as f64) * 1024.0;
                let per_invocation = grown / invocations as f64;
                verdicts.push(Verdict {
                    figure: "VmRSS growth per invocation (each with a new trace id)",
                    target: format!("< {TARGET_GROWTH_BYTES_PER_INVOCATION:.0} B"),
                    measured: format!(
                        "{per_invocation:.1} B ({:+} kB from {} to {})",
                        last.vm_rss_kb as i64 - warm.vm_rss_kb as i64,
                        warm.invocations,
                        last.invocations
                    ),
                    met: per_invocation < TARGET_GROWTH_BYTES_PER_INVOCATION,
                });
            }
        }
        if let Some(size) = &self.binary {
            verdicts.push(Verdict {
                figure: "release binary, stripped",
                target: format!("≤ {} MB", TARGET_BINARY_BYTES / 1_000_000),
                measured: format!(
                    "{:.2} MB ({} bytes{})",
                    size.bytes as f64 / 1e6,
                    size.bytes,
                    if size.stripped { "" } else { ", NOT stripped" }
                ),
                met: size.bytes <= TARGET_BINARY_BYTES && size.stripped,
            });
        }
        verdicts.push(Verdict {
            figure: "seats held twice (checked after every phase)",
            target: "0".into(),
            measured: if self.consistent() {
                "0".into()
            } else {
                "SOME (see stderr)".into()
            },
            met: self.consistent(),
        });
        verdicts
    }

    pub fn markdown(&self, machine: &Machine, plan: &Plan, command: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## AeroNode Inventory benchmark, {}\n",
            machine.started
        );
        let _ = writeln!(out, "- Command: `{command}`");
        let _ = writeln!(
            out,
            "- Machine: {}, {} CPUs, {} RAM; {}; load average at start {}",
            machine.cpu, machine.cpus, machine.memory, machine.kernel, machine.load
        );
        let _ = writeln!(
            out,
            "- Database: {} on the same machine ({}), TLS {}",
            machine.postgres,
            machine.database_settings,
            if machine.tls { "on" } else { "off" }
        );
        let _ = writeln!(
            out,
            "- Build: {} at {}; `[profile.release]` {}",
            machine.rustc, machine.revision, machine.release_profile
        );
        let _ = writeln!(out);

        if let Some(phases) = &self.contention {
            let _ = writeln!(
                out,
                "### 1. Contention: {} s per phase, {HOT_SEATS} hot seats, 1–3 seats per order\n",
                plan.phase.as_secs_f64()
            );
            let _ = writeln!(
                out,
                "| K | path | decided/s | reserved/s | failed (taken)/s | p50 ms | p95 ms | p99 ms | lost races | errors | consistent |"
            );
            let _ = writeln!(out, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|");
            for phase in phases {
                let retries = match phase.mode {
                    Mode::Handler => phase.retries.to_string(),
                    Mode::Ceiling => "–".into(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                    phase.instances,
                    phase.mode.name(),
                    phase.decided_per_second,
                    phase.reserved_per_second,
                    phase.taken_per_second,
                    phase.latencies.percentile_ms(50.0),
                    phase.latencies.percentile_ms(95.0),
                    phase.latencies.percentile_ms(99.0),
                    retries,
                    phase.error_count(),
                    if phase.consistency.is_ok() {
                        "yes"
                    } else {
                        "NO"
                    },
                );
            }
            let _ = writeln!(out);
            let mut noted = false;
            for phase in phases {
                for (kind, count) in &phase.errors {
                    noted = true;
                    let _ = writeln!(
                        out,
                        "- K = {} {}: invocations failed with {kind}: {count} (Lambda retries them).",
                        phase.instances,
                        phase.mode.name()
                    );
                }
                for (kind, count) in &phase.release_errors {
                    noted = true;
                    let _ = writeln!(
                        out,
                        "- K = {} {}: releases (`PaymentFailed`, not timed) failed with {kind} and retried: {count}.",
                        phase.instances,
                        phase.mode.name()
                    );
                }
            }
            if noted {
                let _ = writeln!(out);
            }
            let _ = writeln!(
                out,
                "| K | handler ÷ ceiling, decided/s | handler ÷ ceiling, reserved/s |"
            );
            let _ = writeln!(out, "|--:|--:|--:|");
            for &instances in &plan.instances {
                if let Some((decided, reserved)) = self.ratio(instances) {
                    let _ = writeln!(out, "| {instances} | {decided:.2} | {reserved:.2} |");
                }
            }
            let _ = writeln!(out);
        }

        if let Some(counted) = &self.round_trips {
            let _ = writeln!(out, "### 2. Round trips, steady state, one seat\n");
            let _ = writeln!(
                out,
                "| work | round trips | statements | Parse | Bind | Execute | Query (simple) | bytes to server / to client |"
            );
            let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|");
            for (work, traffic) in [
                (
                    "reservation (`OrderCreated`, free seat)",
                    &counted.reservation,
                ),
                ("refusal (`OrderCreated`, seat held)", &counted.refusal),
                ("release (`PaymentFailed`)", &counted.release),
            ] {
                let _ = writeln!(
                    out,
                    "| {work} | {} | {} | {} | {} | {} | {} | {} / {} |",
                    traffic.round_trips,
                    traffic.statements(),
                    traffic.count('P'),
                    traffic.count('B'),
                    traffic.count('E'),
                    traffic.count('Q'),
                    traffic.bytes_to_server,
                    traffic.bytes_to_client,
                );
            }
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Statements of the reservation, in order: {}\n",
                counted
                    .reservation
                    .sql
                    .iter()
                    .map(|sql| format!("`{sql}`"))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            let reservation = &counted.reservation;
            let _ = writeln!(
                out,
                "Each round trip of the reservation (frontend messages, then the wait for the server's first byte, through the proxy): {}. The `handle` call took {:.2} ms, {:.2} ms of it waiting on the server.\n",
                reservation
                    .turns
                    .iter()
                    .zip(&reservation.waits)
                    .map(|(turn, wait)| format!("`{turn}` {} µs", wait.as_micros()))
                    .collect::<Vec<_>>()
                    .join(", "),
                ms(reservation.wall),
                ms(reservation.waiting()),
            );
            let _ = writeln!(
                out,
                "`pg_prepared_statements` on the handler's session afterwards: {} rows.\n",
                counted.prepared_statements
            );
        }

        if self.cold_start.is_some() || self.binary.is_some() {
            let _ = writeln!(out, "### 3. Cold start and size of the release binary\n");
        }
        for cold in self
            .cold_start
            .iter()
            .chain(&self.cold_start_plain)
            .chain(&self.cold_start_pooler)
        {
            let inits: Vec<Duration> = cold.runs.iter().map(|r| r.init).collect();
            let firsts: Vec<Duration> = cold.runs.iter().map(|r| r.first_invocation).collect();
            let range = |all: &[Duration]| {
                let min = all.iter().min().copied().unwrap_or_default();
                let max = all.iter().max().copied().unwrap_or_default();
                format!("{:.1} | {:.1}", ms(min), ms(max))
            };
            let _ = writeln!(
                out,
                "| {} runs, database connection {} | median ms | min ms | max ms |",
                cold.runs.len(),
                cold.connection
            );
            let _ = writeln!(out, "|---|--:|--:|--:|");
            let _ = writeln!(
                out,
                "| exec → first `GET /runtime/invocation/next` | {:.1} | {} |",
                ms(cold.init_median()),
                range(&inits)
            );
            let _ = writeln!(
                out,
                "| exec → first invocation complete (one-seat `OrderCreated`: connect, reserve, PutEvents) | {:.1} | {} |",
                ms(cold.first_invocation_median()),
                range(&firsts)
            );
            let _ = writeln!(out);
        }
        if let Some(size) = &self.binary {
            let _ = writeln!(
                out,
                "Release binary: {} bytes ({:.2} MB, {:.2} MiB), {}.\n",
                size.bytes,
                size.bytes as f64 / 1e6,
                size.bytes as f64 / 1024.0 / 1024.0,
                if size.stripped {
                    "stripped"
                } else {
                    "NOT stripped"
                }
            );
        }

        if let Some(memory) = &self.memory {
            let _ = writeln!(
                out,
                "### 4. Memory: {} invocations (`OrderCreated` for two seats, then its `PaymentFailed`)\n",
                memory.invocations,
            );
            let _ = writeln!(
                out,
                "{:.1} s in all: {:.2} ms per invocation, of which the binary used {:.3} ms of CPU.\n",
                memory.wall.as_secs_f64(),
                memory.wall_per_invocation().as_secs_f64() * 1e3,
                memory.cpu_per_invocation().as_secs_f64() * 1e3,
            );
            let _ = writeln!(out, "| invocations | VmHWM kB | VmRSS kB |");
            let _ = writeln!(out, "|--:|--:|--:|");
            for sample in &memory.samples {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    sample.invocations, sample.vm_hwm_kb, sample.vm_rss_kb
                );
            }
            let _ = writeln!(out);
        }

        let _ = writeln!(out, "### Against the targets\n");
        let _ = writeln!(out, "| figure | target | measured | met |");
        let _ = writeln!(out, "|---|---|---|---|");
        for verdict in self.verdicts() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                verdict.figure,
                verdict.target,
                verdict.measured,
                if verdict.met { "yes" } else { "**no**" }
            );
        }
        out
    }

    pub fn json(&self, plan: &Plan) -> Value {
        let ratios: Vec<Value> = plan
            .instances
            .iter()
            .filter_map(|&k| {
                self.ratio(k).map(|(decided, reserved)| {
                    json!({"instances": k, "decided": decided, "reserved": reserved})
                })
            })
            .collect();
        let verdicts: Vec<Value> = self
            .verdicts()
            .into_iter()
            .map(|v| json!({"figure": v.figure, "target": v.target, "measured": v.measured, "met": v.met}))
            .collect();
        json!({
            "contention": self.contention.as_ref().map(|phases| phases.iter().map(Phase::json).collect::<Vec<_>>()),
            "handlerOverCeiling": ratios,
            "roundTrips": self.round_trips.as_ref().map(RoundTrips::json),
            "binary": self.binary.as_ref().map(Size::json),
            "coldStart": self.cold_start.as_ref().map(ColdStarts::json),
            "coldStartPlainTcp": self.cold_start_plain.as_ref().map(ColdStarts::json),
            "memory": self.memory.as_ref().map(Memory::json),
            "targets": verdicts,
        })
    }
}
