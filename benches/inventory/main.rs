//! The AeroNode Inventory benchmark (see BENCHMARKS.md): contention throughput of the real
//! handler against the smallest seat-taking transaction, round trips per reservation, and
//! the cold start, memory and size of the release binary, against a real PostgreSQL.
//!
//! ```sh
//! cargo bench --bench inventory                       # the full run, ~3 minutes plus the build
//! cargo bench --bench inventory -- --quick            # shorter phases, fewer runs
//! cargo bench --bench inventory -- --json target/bench/inventory.json
//! cargo bench --bench inventory -- --svg target/bench/contention.svg   # also the chart
//! ```
//!
//! Options: `--quick`, `--json PATH`, `--svg PATH` (the contention chart, `chart.rs`:
//! decided/s and p50 latency against K, handler beside ceiling; needs that section),
//! `--only contention,flash-sale,round-trips,cold-start,memory`, `--binary PATH` (measure this binary,
//! don't build), `--no-build` (use target/shipped's binary as it is), `--seconds N` per
//! contention phase, `--cold-starts N`, `--invocations N`.
//! `DATABASE_URL` names the server; without it `scripts/postgres.sh` finds or starts one.
//! The run uses a fresh database, `aeronode_bench`, dropped at the end unless a check failed.

mod binary;
mod chart;
mod contention;
mod database;
mod events;
mod flash_sale;
mod report;
mod round_trips;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use aeronode_testkit::put_events::PutEvents;
use serde_json::json;

/// Errors end the run with a message; the bench is not a library.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// The database the run creates (dropping any earlier one).
const BENCH_DATABASE: &str = "aeronode_bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Contention,
    FlashSale,
    RoundTrips,
    ColdStart,
    Memory,
}

impl Section {
    const ALL: [Self; 5] = [
        Self::Contention,
        Self::FlashSale,
        Self::RoundTrips,
        Self::ColdStart,
        Self::Memory,
    ];

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "contention" => Some(Self::Contention),
            "flash-sale" => Some(Self::FlashSale),
            "round-trips" => Some(Self::RoundTrips),
            "cold-start" => Some(Self::ColdStart),
            "memory" => Some(Self::Memory),
            _ => None,
        }
    }
}

/// How much of everything a run does.
#[derive(Clone, Debug)]
pub struct Plan {
    pub quick: bool,
    /// Concurrent simulated Lambda instances, one phase each (handler, then ceiling).
    pub instances: Vec<usize>,
    /// Length of one contention phase.
    pub phase: Duration,
    pub cold_starts: usize,
    pub memory_invocations: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        Self {
            quick,
            instances: vec![1, 4, 8, 16],
            phase: Duration::from_secs(if quick { 3 } else { 10 }),
            cold_starts: if quick { 5 } else { 20 },
            memory_invocations: if quick { 2_000 } else { 10_000 },
        }
    }
}

struct Options {
    plan: Plan,
    json: Option<PathBuf>,
    svg: Option<PathBuf>,
    sections: Vec<Section>,
    binary: binary::Source,
}

fn options() -> Result<Options> {
    let mut quick = false;
    let mut json = None;
    let mut svg = None;
    let mut sections = Section::ALL.to_vec();
    let mut source = binary::Source::Build;
    let (mut cold_starts, mut invocations, mut seconds) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            "--quick" => quick = true,
            "--json" => json = Some(PathBuf::from(args.next().ok_or("--json needs a path")?)),
            "--svg" => svg = Some(PathBuf::from(args.next().ok_or("--svg needs a path")?)),
            "--only" => {
                let list = args.next().ok_or("--only needs a list of sections")?;
                sections = list
                    .split(',')
                    .map(|name| {
                        Section::parse(name.trim()).ok_or_else(|| {
                            format!("unknown section {name:?} (contention, flash-sale, round-trips, cold-start, memory)")
                        })
                    })
                    .collect::<std::result::Result<_, _>>()?;
            }
            "--binary" => {
                source = binary::Source::Given(PathBuf::from(
                    args.next().ok_or("--binary needs a path")?,
                ));
            }
            "--no-build" => source = binary::Source::AsBuilt,
            "--cold-starts" => cold_starts = Some(number(args.next(), "--cold-starts")?),
            "--invocations" => invocations = Some(number(args.next(), "--invocations")?),
            "--seconds" => seconds = Some(number(args.next(), "--seconds")?),
            other => {
                return Err(
                    format!("unknown argument {other:?}; see benches/inventory/main.rs").into(),
                );
            }
        }
    }
    if svg.is_some() && !sections.contains(&Section::Contention) {
        return Err("--svg charts the contention section; add it to --only".into());
    }
    let mut plan = Plan::new(quick);
    plan.cold_starts = cold_starts.unwrap_or(plan.cold_starts);
    plan.memory_invocations = invocations.unwrap_or(plan.memory_invocations);
    if let Some(seconds) = seconds {
        plan.phase = Duration::from_secs(seconds as u64);
    }
    Ok(Options {
        plan,
        json,
        svg,
        sections,
        binary: source,
    })
}

fn number(value: Option<String>, flag: &str) -> Result<usize> {
    value
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag} needs a whole number above 0").into())
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("bench: {error}");
            return ExitCode::from(2);
        }
    };
    contention::count_lost_races();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("bench: the consistency check failed: a seat was held twice (see above)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the sections; `Ok(false)` when a consistency check failed.
async fn run(options: Options) -> Result<bool> {
    let plan = &options.plan;
    let want = |section| options.sections.contains(&section);
    // Build first: a build that fails should not cost a whole contention run.
    let binary = if want(Section::ColdStart) || want(Section::Memory) {
        Some(binary::locate(&options.binary)?)
    } else {
        None
    };
    let server = database::server_url()?;
    let db = database::BenchDb::fresh(&server, BENCH_DATABASE).await?;
    let events = events::Events::load()?;
    let machine = report::Machine::read(&db).await?;
    eprintln!("bench: {}", machine.summary());

    let mut consistent = true;
    let mut results = report::Results::default();
    if want(Section::Contention) {
        let phases = contention::run(&db, &events, plan).await?;
        consistent &= phases.iter().all(|phase| phase.consistency.is_ok());
        results.contention = Some(phases);
    }
    let mut flash_sale = None;
    if want(Section::FlashSale) {
        let phases = flash_sale::run(&db, &events).await?;
        consistent &= phases.iter().all(|phase| phase.consistency.is_ok());
        flash_sale = Some(phases);
    }
    if want(Section::RoundTrips) {
        let counted = round_trips::run(&db, &events).await?;
        consistent &= counted.consistency.is_ok();
        results.round_trips = Some(counted);
    }
    if let Some(binary) = &binary {
        let stub = PutEvents::start().await?;
        results.binary = Some(binary::size(binary)?);
        if want(Section::ColdStart) {
            let runs = plan.cold_starts;
            let configured = ("as configured", db.url.as_str());
            let cold = binary::cold_starts(binary, configured, &db, &events, &stub, runs).await?;
            consistent &= cold.consistency.is_ok();
            results.cold_start = Some(cold);
            // TLS costs the first connection most of a cold start: show it apart.
            if machine.tls {
                let plain_url = database::without_tls(&db.url);
                let plain = ("plain TCP", plain_url.as_str());
                let cold = binary::cold_starts(binary, plain, &db, &events, &stub, runs).await?;
                consistent &= cold.consistency.is_ok();
                results.cold_start_plain = Some(cold);
            }
            // Behind RDS Proxy a cold start borrows a warm server connection: PgBouncer in
            // transaction mode (`bash scripts/pgbouncer.sh`) is the stand-in. The first run
            // warms its pool; every later one finds a server connection waiting.
            if let Ok(pooler) = std::env::var("BENCH_POOLER_URL") {
                let url = database::through(&pooler, &db.url);
                let through = (report::POOLER, url.as_str());
                let cold = binary::cold_starts(binary, through, &db, &events, &stub, runs).await?;
                consistent &= cold.consistency.is_ok();
                results.cold_start_pooler = Some(cold);
            }
        }
        if want(Section::Memory) {
            let memory =
                binary::memory(binary, &db, &events, &stub, plan.memory_invocations).await?;
            consistent &= memory.consistency.is_ok();
            results.memory = Some(memory);
        }
    }

    let command = report::command_line(plan.quick, options.json.as_deref());
    println!("{}", results.markdown(&machine, plan, &command));
    if let Some(phases) = &flash_sale {
        println!("{}", flash_sale::markdown(phases));
    }
    if let Some(path) = &options.json {
        let document = json!({
            "command": command,
            "machine": machine.json(),
            "plan": {
                "quick": plan.quick,
                "instances": plan.instances,
                "phaseSeconds": plan.phase.as_secs_f64(),
                "coldStarts": plan.cold_starts,
                "memoryInvocations": plan.memory_invocations,
            },
            "results": results.json(plan),
            "flashSale": flash_sale
                .as_ref()
                .map(|phases| phases.iter().map(flash_sale::SalePhase::json).collect::<Vec<_>>()),
            "consistent": consistent,
        });
        write_file(path, &(serde_json::to_string_pretty(&document)? + "\n"))?;
    }
    if let (Some(path), Some(phases)) = (&options.svg, &results.contention) {
        chart::write(path, phases, &machine, plan)?;
    }
    // Kept for a look when a check failed; otherwise the run cleans up after itself.
    if consistent {
        db.drop_database().await?;
    } else {
        eprintln!("bench: database {BENCH_DATABASE} kept for inspection");
    }
    Ok(consistent)
}

/// Writes one output of the run, creating its folder.
fn write_file(path: &Path, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents)?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}
