#!/usr/bin/env bash
# The server time of one reservation decision (inventory_reserve), with the migrations up to
# BEFORE (default 0007: the rules before migration 0008) against all of them, side by side:
# ROUNDS rounds, each timing 180 calls on each schema in turn (A B A B …), each on tables
# emptied and vacuumed first, then the medians and their ratio. Talks to the PostgreSQL that scripts/postgres.sh finds.
#
#   bash benches/reserve-server-time.sh [ROUNDS] [BEFORE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-9}"
before="${2:-0007}"
export "$(bash scripts/postgres.sh | tail -n1)"
base="${DATABASE_URL%/*}"
q() { psql "$1" -q -v ON_ERROR_STOP=1 "${@:2}"; }

for db in bench_rules_before bench_rules_now; do
    q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done
for file in database/migrations/*.sql; do
    name="$(basename "$file")"
    if [[ "${name%%_*}" < "$before" || "${name%%_*}" == "$before" ]]; then
        q "$base/bench_rules_before" -f "$file"
    fi
    q "$base/bench_rules_now" -f "$file"
done
for db in bench_rules_before bench_rules_now; do
    q "$base/$db" -f tests/fixtures/flights.sql
done

time_one() {
    q "$base/$1" -c "UPDATE flight_seats SET status = 'AVAILABLE'" -c "DELETE FROM inventory_locks" \
        -c "DELETE FROM outbox" -c "DELETE FROM reservations" -c "VACUUM ANALYZE"
    q "$base/$1" -f benches/sql/reserve_server_time.sql 2>&1 | grep -o 'us_per_reservation [0-9]*' | cut -d' ' -f2
}
befores=(); nows=()
for ((i = 0; i < rounds; i++)); do
    befores+=("$(time_one bench_rules_before)")
    nows+=("$(time_one bench_rules_now)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
b="$(median "${befores[@]}")"; n="$(median "${nows[@]}")"
echo "migrations to $before: ${befores[*]} µs → median $b µs"
echo "all migrations:      ${nows[*]} µs → median $n µs"
awk -v b="$b" -v n="$n" 'BEGIN { printf "now ÷ before: %.2f\n", n / b }'
for db in bench_rules_before bench_rules_now; do
    q "$DATABASE_URL" -c "DROP DATABASE $db"
done
