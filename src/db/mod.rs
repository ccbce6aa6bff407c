//! PostgreSQL, shaped for Lambda behind RDS Proxy: the instance's connections, held across
//! invocations; every statement a call of a server-side function, in one round trip,
//! with nothing left on the session; errors that say whether a retry can help.

mod call;
mod error;
mod session;

use sqlx::migrate::Migrator;

pub use call::Function;
pub use error::{DbError, INCONSISTENT, is_transient_sqlstate};
pub use session::{Database, Session};

/// The schema, from `database/migrations`: the same files `sqlx migrate run` and `psql -f` apply.
pub static MIGRATOR: Migrator = sqlx::migrate!("database/migrations");

/// Marks what the bus accepted, and nothing else (`inventory_acknowledge`).
pub(crate) const ACKNOWLEDGE: Function = Function::named("inventory_acknowledge");
