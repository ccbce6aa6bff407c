//! Integration tests: the library handler against a real PostgreSQL (a fresh database per
//! test, migrations applied), and the real binary end to end.

mod aircraft;
mod availability;
mod aws_emulator;
mod binary;
mod blocks;
mod budgets;
mod concurrency;
mod delivery;
mod e2e;
mod e2e_faults;
mod eventbridge;
mod flights;
mod hardening;
mod helpers;
mod hostile_text;
mod idempotency;
mod interleave;
mod lifecycle;
mod outbox;
mod plans;
mod pooler;
mod queue;
mod rds_iam;
mod read_only;
mod reserve;
mod rules;
mod schemas;
mod seat_changes;

/// Logs stay quiet unless TEST_LOG is set.
pub fn quiet_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        aeronode_inventory::telemetry::init(std::io::stderr);
    }
}
