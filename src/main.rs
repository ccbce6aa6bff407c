//! Wiring only: configuration, telemetry, the database connections and the EventBridge
//! client, built once per cold start, then the Lambda runtime loop. `aeronode-inventory
//! migrate` instead applies `database/migrations` and exits; migrations never run on a
//! cold start.

use std::time::Duration;

use aeronode_inventory::config::Config;
use aeronode_inventory::db::{self, Database};
use aeronode_inventory::deadline::Deadline;
use aeronode_inventory::handler::{App, Settings};
use aeronode_inventory::outbound::EventBridgeBus;
use aeronode_inventory::rds_iam::TokenSource;
use aeronode_inventory::{lambda, metrics, telemetry};
use aws_config::timeout::TimeoutConfig;

fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init(std::io::stdout);
    let config = Config::from_env().inspect_err(|error| {
        tracing::error!(error = %error, "configuration is invalid; not starting");
    })?;
    // One invocation at a time needs one thread; Lambda Managed Instances run several.
    let runtime = if config.max_concurrency > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> Result<(), lambda_runtime::Error> {
    // Honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_EVENTBRIDGE, so a local emulator works.
    // The SDK sets no read timeout by default: an endpoint that accepts and never answers
    // would hold the invocation until Lambda's timeout instead of failing it for a retry.
    let timeouts = TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    let database = if config.iam_auth {
        let tokens = TokenSource::from_sdk_config(&config.database, &aws)?;
        Database::with_iam(config.database, tokens, config.max_concurrency)
    } else {
        Database::new(config.database, config.max_concurrency)
    };
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        let mut session = database
            .session(Deadline::after(Duration::from_secs(600)))
            .await?;
        db::MIGRATOR.run(session.connection().await?).await?;
        tracing::info!("migrations applied");
        return Ok(());
    }
    let bus = EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&aws),
        config.event_bus_name,
    );
    let settings = Settings {
        lock_ttl: config.lock_ttl,
        relay: config.relay,
    };
    let metrics = metrics::install()
        .inspect_err(|error| tracing::warn!(error = %error, "metrics are off"))
        .ok();
    lambda::run(App::new(database, bus, settings), metrics).await
}
