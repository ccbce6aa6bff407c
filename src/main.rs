//! Wiring only: configuration, telemetry, the pool and the EventBridge client, built once
//! per cold start, then the Lambda runtime loop. `aeronode-inventory migrate` instead
//! applies `database/migrations` and exits; migrations never run on a cold start.

use aeronode_inventory::config::Config;
use aeronode_inventory::handler::{App, Settings};
use aeronode_inventory::outbound::EventBridgeBus;
use aeronode_inventory::rds_iam::IamPool;
use aeronode_inventory::{db, lambda, metrics, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init(std::io::stdout);
    let config = Config::from_env().inspect_err(|error| {
        tracing::error!(error = %error, "configuration is invalid; not starting");
    })?;
    // Honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_EVENTBRIDGE, so a local emulator works.
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
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
