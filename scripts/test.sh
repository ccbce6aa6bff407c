#!/usr/bin/env bash
# Runs the whole test suite on this machine, installing or starting what it needs:
# PostgreSQL (scripts/postgres.sh), the Python tools in .tools/venv (scripts/tools.sh),
# PgBouncer (scripts/pgbouncer.sh) for a second pass of the integration and end-to-end tests.
#
#   scripts/test.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
log() { echo "test.sh: $*" >&2; }

export "$(bash scripts/postgres.sh | tail -n1)"
export "$(bash scripts/tools.sh | tail -n1)"
export PATH="$TOOLS_BIN:$PATH" AERONODE_TOOLS_BIN="$TOOLS_BIN"

log "migrations and seed apply with plain psql, file after file"
scratch="aeronode_psql_check"
base_url="${DATABASE_URL%/*}"
psql "$DATABASE_URL" -q -c "DROP DATABASE IF EXISTS $scratch" -c "CREATE DATABASE $scratch"
# The seeds run twice: they must be safe to rerun.
for file in database/migrations/*.sql database/seeds/*.sql database/seeds/*.sql; do
    psql "$base_url/$scratch" -q -v ON_ERROR_STOP=1 -f "$file"
done
psql "$DATABASE_URL" -q -c "DROP DATABASE $scratch"

log "cargo test (unit, integration on real PostgreSQL, end to end on the real binary, the test stubs)"
# Benchmarks are not tests: they run on their own (BENCHMARKS.md).
cargo test --workspace --lib --bins --tests

log "integration and end-to-end tests again, the service through PgBouncer in transaction pooling mode"
# As RDS Proxy multiplexes, each transaction goes to whichever server connection is free:
# anything left on a session (a prepared statement, a SET, an advisory lock) breaks here.
# The tests still create, read and drop their databases directly.
pooler="$(bash scripts/pgbouncer.sh | tail -n1)"
AERONODE_VIA_POOLER="${pooler#POOLER_URL=}" cargo test --test api

log "template checks and the SAM build"
bash scripts/check-template.sh --build
