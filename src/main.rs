//! Wiring only: configuration, telemetry, the pool and the EventBridge client, built once
//! per cold start, then the Lambda runtime loop. `aeronode-inventory migrate` instead
//! applies `database/migrations` and exits; migrations never run on a cold start.

use std::time::Duration;

use aeronode_inventory::config::Config;
use aeronode_inventory::handler::{App, Settings};
use aeronode_inventory::outbound::EventBridgeBus;
use aeronode_inventory::rds_iam::IamPool;
use aeronode_inventory::{db, lambda, metrics, telemetry};
use aws_config::timeout::TimeoutConfig;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init(std::io::stdout);
    let config = Config::from_env().inspect_err(|error| {
        tracing::error!(error = %error, "configuration is invalid; not starting");
    })?;
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
    let (pool, iam) = if config.iam_auth {
        let iam = IamPool::from_sdk_config(config.database, &aws)?;
        (iam.pool().clone(), Some(iam))
    } else {
        (db::pool(config.database), None)
    };
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        if let Some(iam) = &iam {
            iam.renew_token().await?;
        }
        db::MIGRATOR.run(&pool).await?;
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
    lambda::run(App::new(pool, bus, settings), iam, metrics).await
}
