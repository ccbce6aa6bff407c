#!/usr/bin/env bash
# The server time of one reservation of a named seat, with the migrations up to BEFORE
# (default 0010: the read and the decision as two calls, inventory_read_request then
# inventory_reserve) against all of them (since 0011: one inventory_decide_order call),
# side by side: ROUNDS rounds, each timing 180 reservations on each schema in turn
# (A B A B …), each on tables emptied and vacuumed first, then the medians and their
# ratio. Both hold 300 other flights besides the demo flight (benches/sql/other_flights.sql),
# so the planner walks indexes as it would on a shared database. Each schema runs the reservation it has: benches/sql/reserve_server_time.sql
# without inventory_decide_order, benches/sql/decide_server_time.sql with it. Talks to the
# PostgreSQL that scripts/postgres.sh finds.
#
#   bash benches/reserve-server-time.sh [ROUNDS] [BEFORE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-9}"
before="${2:-0010}"
export "$(bash scripts/postgres.sh | tail -n1)"
base="${DATABASE_URL%/*}"
demo=3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10
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
    q "$base/$db" -f tests/fixtures/flights.sql -f benches/sql/other_flights.sql -c "ANALYZE"
done

time_one() {
    # The demo flight's seats free again, the other flights as loaded.
    q "$base/$1" -c "DELETE FROM inventory_locks WHERE flight_id = '$demo'" \
        -c "UPDATE flight_seats SET status = 'AVAILABLE' WHERE flight_id = '$demo'" \
        -c "DELETE FROM outbox" -c "DELETE FROM reservations WHERE flight_id = '$demo'" \
        -c "VACUUM ANALYZE"
    local script=benches/sql/reserve_server_time.sql
    if [[ "$(q "$base/$1" -At -c "SELECT to_regproc('inventory_decide_order') IS NOT NULL")" == t ]]; then
        script=benches/sql/decide_server_time.sql
    fi
    q "$base/$1" -f "$script" 2>&1 | grep -o 'us_per_reservation [0-9]*' | cut -d' ' -f2
}
befores=(); nows=()
for ((i = 0; i < rounds; i++)); do
    befores+=("$(time_one bench_rules_before)")
    nows+=("$(time_one bench_rules_now)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
b="$(median "${befores[@]}")"; n="$(median "${nows[@]}")"
echo "migrations to $before: ${befores[*]} µs → median $b µs"
echo "all migrations:       ${nows[*]} µs → median $n µs"
awk -v b="$b" -v n="$n" 'BEGIN { printf "now ÷ before: %.2f\n", n / b }'
for db in bench_rules_before bench_rules_now; do
    q "$DATABASE_URL" -c "DROP DATABASE $db"
done
