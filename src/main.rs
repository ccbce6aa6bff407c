//! Wiring only: the command line, configuration, telemetry, the database connections and
//! the EventBridge client, built once per cold start, then the Lambda runtime loop. The
//! operator commands (`migrate`, `outbox`, `quarantine`, `seatmap`) run once and exit; migrations
//! never run on a cold start.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use aeronode_inventory::cli::{self, Cli, Command};
use aeronode_inventory::config::Config;
use aeronode_inventory::db::Database;
use aeronode_inventory::deadline::Deadline;
use aeronode_inventory::handler::{App, Settings};
use aeronode_inventory::outbound::EventBridgeBus;
use aeronode_inventory::rds_iam::TokenSource;
use aeronode_inventory::{lambda, metrics, telemetry};
use aws_config::timeout::TimeoutConfig;
use clap::Parser;

/// An operator command gets this long, whatever it does.
const COMMAND_TIME: Duration = Duration::from_secs(600);

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.is_none() && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        eprintln!(
            "aeronode-inventory runs as an AWS Lambda function and AWS_LAMBDA_RUNTIME_API is not \
             set; to run it locally on a sample event: bash scripts/run-local.sh (see --help)"
        );
        return ExitCode::from(2);
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "stopped");
            eprintln!("aeronode-inventory: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Option<Command>) -> Result<(), lambda_runtime::Error> {
    // The function logs to stdout, as Lambda expects; a command keeps stdout for its output.
    match command {
        None => telemetry::init(std::io::stdout),
        Some(_) => telemetry::init(std::io::stderr),
    }
    let config = Config::from_env()?;
    // One invocation at a time needs one thread; Lambda Managed Instances run several.
    let runtime = if config.max_concurrency > 1 && command.is_none() {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(serve(config, command))
}

async fn serve(config: Config, command: Option<Command>) -> Result<(), lambda_runtime::Error> {
    // A command needs AWS only to sign in with IAM; the function always needs it (the bus).
    let aws = match (&command, config.iam_auth) {
        (Some(_), false) => None,
        _ => Some(aws_config().await),
    };
    let database = match &aws {
        Some(aws) if config.iam_auth => {
            let tokens = TokenSource::from_sdk_config(&config.database, aws)?;
            Database::with_iam(config.database, tokens, config.max_concurrency)
        }
        _ => Database::new(config.database, config.max_concurrency),
    };
    if let Some(command) = command {
        let mut session = database.session(Deadline::after(COMMAND_TIME)).await?;
        let terminal = std::io::stdout().is_terminal();
        cli::run(
            &command,
            &mut session,
            &mut std::io::stdout().lock(),
            terminal,
        )
        .await?;
        return Ok(());
    }
    let aws = match aws {
        Some(aws) => aws,
        None => aws_config().await,
    };
    let client = match &config.event_bus_endpoint {
        Some(endpoint) => aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&aws)
                .endpoint_url(endpoint)
                .build(),
        ),
        None => aws_sdk_eventbridge::Client::new(&aws),
    };
    let bus = EventBridgeBus::new(client, config.event_bus_name);
    let settings = Settings {
        lock_ttl: config.lock_ttl,
        relay: config.relay,
        flight_retention_days: config.flight_retention_days,
        serves: config.serves,
    };
    let metrics = metrics::install()
        .inspect_err(|error| tracing::warn!(error = %error, "metrics are off"))
        .ok();
    lambda::run(App::new(database, bus, settings), metrics).await
}

/// Honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_EVENTBRIDGE, so a local emulator works.
/// The SDK sets no read timeout by default: an endpoint that accepts and never answers
/// would hold the invocation until Lambda's timeout instead of failing it for a retry.
async fn aws_config() -> aws_config::SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}
