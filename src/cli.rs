//! The binary's command line. With no command it is the Lambda function; the commands are
//! for operators and run anywhere the database is reachable (`DATABASE_URL`, or the `DB_*`
//! settings). Each prints JSON lines on stdout; logs go to stderr.

use std::io::Write;

use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::db::{DbError, Session};
use crate::domain::FlightId;
use crate::inventory::{self, InventoryError};
use crate::outbound::outbox::{self, OutboxError};
use crate::{availability, seatmap};

#[derive(Debug, Parser)]
#[command(
    name = "aeronode-inventory",
    version,
    about = "The seat inventory of SkyLedger: an AWS Lambda function, and its operator commands.",
    long_about = "The seat inventory of SkyLedger. Without a command it runs as the AWS Lambda \
function: started by Lambda (or a local Runtime API emulator such as `cargo lambda watch`), \
it holds seats for OrderCreated events and answers on EventBridge. To run it locally on a \
sample event: bash scripts/run-local.sh. The commands below are for operators; they reach the \
database through DATABASE_URL, or DB_HOST, DB_PORT, DB_NAME, DB_USER and DB_PASSWORD \
(or DB_IAM_AUTH=true)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Applies database/migrations and exits; already applied ones are skipped, so running
    /// it twice is safe. Migrations never run on a cold start.
    Migrate,
    /// Outbox entries the bus kept refusing for OUTBOX_PARK_AFTER, or refused for good:
    /// one JSON line each (eventId, orderId or flightId, detailType, attempts, lastError,
    /// failingSince, parkedAt).
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Orders set aside because their holds could not be closed consistently.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Draws a flight's seat map: rows down, seat letters across, free, held and sold
    /// seats, and the counts per cabin. In colour when stdout is a terminal.
    Seatmap {
        /// The flight's id.
        flight_id: Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Prints one JSON line per parked entry: eventId, orderId, detailType, attempts,
    /// lastError, parkedAt.
    Dead,
    /// Makes parked entries due again, with a fresh attempt count; the next schedule
    /// publishes them. All of them when no id is given. Prints how many.
    Redrive {
        /// The eventIds to redrive.
        event_ids: Vec<Uuid>,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// Prints one JSON line per quarantined order: orderId, flightId, reason, quarantinedAt;
    /// then one per cancelled flight that only quarantined orders hold open: flightId,
    /// cancelledAt, quarantinedOrders.
    List,
    /// Takes repaired orders out of quarantine (all of them when no id is given); the next
    /// sweep expires their lapsed holds. Prints how many.
    Retry {
        /// The orderIds to retry.
        order_ids: Vec<Uuid>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot serialize the output: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("no flight {0}")]
    NoSuchFlight(Uuid),
}

/// Runs an operator command on `session`, writing to `out`; `terminal`: `out` is a
/// terminal, so drawings may use colour.
pub async fn run(
    command: &Command,
    session: &mut Session<'_>,
    out: &mut impl Write,
    terminal: bool,
) -> Result<(), CommandError> {
    match command {
        Command::Migrate => {
            crate::db::MIGRATOR
                .run(session.connection().await?)
                .await
                .map_err(|error| DbError::from(sqlx::Error::from(error)))?;
            writeln!(out, "{}", serde_json::json!({"migrated": true}))?;
        }
        Command::Outbox {
            action: OutboxAction::Dead,
        } => {
            for entry in outbox::parked(session).await? {
                writeln!(out, "{}", serde_json::to_string(&entry)?)?;
            }
        }
        Command::Outbox {
            action: OutboxAction::Redrive { event_ids },
        } => {
            let redriven = outbox::redrive(session, some_unless_empty(event_ids)).await?;
            writeln!(out, "{}", serde_json::json!({"redriven": redriven}))?;
        }
        Command::Quarantine {
            action: QuarantineAction::List,
        } => {
            for order in inventory::quarantined(session).await? {
                writeln!(out, "{}", serde_json::to_string(&order)?)?;
            }
            for flight in inventory::cancellations_held(session).await? {
                writeln!(out, "{}", serde_json::to_string(&flight)?)?;
            }
        }
        Command::Quarantine {
            action: QuarantineAction::Retry { order_ids },
        } => {
            let released =
                inventory::release_quarantine(session, some_unless_empty(order_ids)).await?;
            writeln!(out, "{}", serde_json::json!({"retried": released}))?;
        }
        Command::Seatmap { flight_id } => {
            let map = availability::read(session, FlightId::from(*flight_id))
                .await?
                .ok_or(CommandError::NoSuchFlight(*flight_id))?;
            write!(out, "{}", seatmap::render(&map, terminal))?;
        }
    }
    Ok(())
}

fn some_unless_empty(ids: &[Uuid]) -> Option<Vec<Uuid>> {
    (!ids.is_empty()).then(|| ids.to_vec())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn commands_and_their_ids_parse() {
        let redrive = Cli::try_parse_from([
            "aeronode-inventory",
            "outbox",
            "redrive",
            "b6f7c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
        ]);
        let none = Cli::try_parse_from(["aeronode-inventory"]);
        let bad_id = Cli::try_parse_from(["aeronode-inventory", "quarantine", "retry", "12A"]);

        assert!(matches!(
            redrive.map(|cli| cli.command),
            Ok(Some(Command::Outbox { action: OutboxAction::Redrive { event_ids } })) if event_ids.len() == 1
        ));
        assert!(matches!(none.map(|cli| cli.command), Ok(None)));
        assert!(bad_id.is_err());
    }
}
