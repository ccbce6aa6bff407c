//! Wiring only: configuration, telemetry, the pool and the EventBridge client, built once
//! per cold start, then the Lambda runtime loop. `aeronode-inventory migrate` instead
//! applies `database/migrations` and exits; migrations never run on a cold start.

use aeronode_inventory::config::Config;
use aeronode_inventory::handler::{App, Settings};
use aeronode_inventory::outbound::EventBridgeBus;
use aeronode_inventory::{db, lambda, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init(std::io::stdout);
    let config = Config::from_env().inspect_err(|error| {
        tracing::error!(error = %error, "configuration is invalid; not starting");
    })?;
    let pool = db::pool(config.database);
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        db::MIGRATOR.run(&pool).await?;
        tracing::info!("migrations applied");
        return Ok(());
    }
    // Honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_EVENTBRIDGE, so a local emulator works.
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let bus = EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&aws),
        config.event_bus_name,
    );
    let settings = Settings {
        lock_ttl: config.lock_ttl,
        relay: config.relay,
    };
    lambda::run(App::new(pool, bus, settings)).await
}
