#!/usr/bin/env bash
# Runs the service locally on a sample event and prints the events it emits.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bash scripts/run-local.sh [EVENT_FILE] [--as-is] [--reset]
       bash scripts/run-local.sh --demo [--reset]

Runs the real binary under cargo-lambda's Runtime API emulator (`cargo lambda watch`),
against PostgreSQL (database aeronode_local, created, migrated and seeded with the demo
flight on first use) and moto's EventBridge, where a rule routes what the service publishes
to an SQS queue that this script reads. stdout carries only the emitted events, as JSON;
everything else (progress, the seat map after each event) goes to stderr.

  EVENT_FILE  the event to send (default events/order-created.json). By default it is sent
              as a new order: a fresh envelope id and, if it has one, a fresh detail.orderId.
  --as-is     send the file unchanged: a second run is a redelivery, answered the same way.
  --reset     drop aeronode_local first, so the demo flight starts with every seat free.
  --demo      the whole lifecycle on a new flight: opened by the schedule, an order holds
              12A and 12B, its payment books them, a second order for 12A is refused, the
              first order's cancellation gives the seats back, and the second order, sent
              again as a new order for 12A and 12B, holds them; then operations blocks 1A
              and 1B, that order moves from 12B to 14C, a third order holds 30A, and an
              aircraft swap takes row 30 out, moving the third order to row 29. Each run
              uses a new flight.
  -h, --help  this text.

The first run installs the Python tools (about a minute) and builds the service (two to
three minutes); later runs take a few seconds. A hold lasts a day here (LOCK_TTL_SECONDS),
so a second plain run is refused until --reset.
USAGE
}

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
log() { echo "run-local: $*" >&2; }
die() { log "$*"; exit 2; }

event_file="events/order-created.json"
as_is=false
reset=false
demo=false
for arg in "$@"; do
    case "$arg" in
        -h | --help) usage; exit 0 ;;
        --as-is) as_is=true ;;
        --reset) reset=true ;;
        --demo) demo=true ;;
        -*) die "unknown option $arg (see --help)" ;;
        *) event_file="$arg" ;;
    esac
done
if ! $demo && [[ ! -f "$event_file" ]]; then
    die "no such event file: $event_file"
fi

log "checking PostgreSQL and the Python tools (the first time installs them: about a minute)"
export "$(bash scripts/postgres.sh | tail -n1)"
export "$(bash scripts/tools.sh | tail -n1)"
export PATH="$TOOLS_BIN:$PATH"
# Static test credentials and a region for everything here: no lookup of a real account.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1

local_db="aeronode_local"
# The binary verifies the server's certificate unless the URL says otherwise; the local
# server has none to verify, so TLS is off by name, unless the URL names an sslmode.
server_url="${DATABASE_URL%%\?*}"
query="${DATABASE_URL#"$server_url"}"
case "$query" in
    *sslmode=*) ;;
    "") query="?sslmode=disable" ;;
    *) query="$query&sslmode=disable" ;;
esac
local_url="${server_url%/*}/$local_db$query"
if $reset; then
    log "dropping $local_db"
    psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $local_db WITH (FORCE)"
fi
if [[ "$(psql "$DATABASE_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$local_db'")" != 1 ]]; then
    log "creating $local_db on ${DATABASE_URL#*@}"
    psql "$DATABASE_URL" -qc "CREATE DATABASE $local_db"
fi

log "building the service (the first time: two to three minutes)"
# Where cargo put it (CARGO_TARGET_DIR, .cargo/config.toml's target-dir…), as cargo says.
binary="$(cargo build --bin aeronode-inventory --message-format=json-render-diagnostics |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "aeronode-inventory":
        print(m["executable"])')"
[[ -x "$binary" ]] || die "cargo build named no aeronode-inventory executable"
DATABASE_URL="$local_url" RUST_LOG=warn "$binary" migrate >/dev/null
psql "$local_url" -q -v ON_ERROR_STOP=1 -f database/seeds/0001_demo_flight.sql

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
moto_port="$(free_port)"
lambda_port="$(free_port)"
workdir="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT

log "starting moto's EventBridge and the function under cargo lambda watch"
endpoint="http://127.0.0.1:$moto_port"
moto_server -H 127.0.0.1 -p "$moto_port" >"$workdir/moto.log" 2>&1 &
pids+=($!)
bus="SkyLedger-Default-Bus"
queue_url="$(python3 scripts/local_bus.py setup "$endpoint" "$bus")"
cargo lambda watch --quiet --ignore-changes -A 127.0.0.1 -P "$lambda_port" \
    --env-var "DATABASE_URL=$local_url" --env-var "EVENT_BUS_NAME=$bus" \
    --env-var "AWS_ENDPOINT_URL=$endpoint" --env-var "AWS_REGION=eu-west-1" \
    --env-var "AWS_ACCESS_KEY_ID=testing" --env-var "AWS_SECRET_ACCESS_KEY=testing" \
    --env-var "LOCK_TTL_SECONDS=86400" --env-var "RUST_LOG=info" >"$workdir/function.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
    (echo >"/dev/tcp/127.0.0.1/$lambda_port") 2>/dev/null && break
    sleep 0.2
done

# Sends one event (already written to $1), prints what the service emitted, and draws the
# seat map of flight $2 (or of the demo flight) on stderr.
invoke() {
    local payload="$1" flight="${2:-3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10}"
    if ! cargo lambda invoke -A 127.0.0.1 -P "$lambda_port" --data-file "$payload" aeronode-inventory \
        >"$workdir/response.json" 2>"$workdir/invoke.err"; then
        log "the invocation failed: $(grep -o '"errorType":"[^"]*"' "$workdir/invoke.err" | head -n1)"
        cat "$workdir/invoke.err" >&2
        tail -n 5 "$workdir/function.log" >&2
        exit 1
    fi
    local drained=0
    python3 scripts/local_bus.py drain "$endpoint" "$queue_url" || drained=$?
    case "$drained" in
        0) ;;
        3) log "the event was handled and rightly needs no answer: nothing was emitted" ;;
        *) log "could not read the emitted events"; exit 1 ;;
    esac
    DATABASE_URL="$local_url" "$binary" seatmap "$flight" >&2 || true
}

# Writes sample $1 as a new event ($2.json), with detail assignments; prints its flight.
prepare() {
    local sample="$1" name="$2"
    shift 2
    python3 scripts/local_bus.py event "$sample" "$workdir/$name.json" "$@"
}

if $demo; then
    flight="$(python3 -c 'import uuid; print(uuid.uuid4())')"
    first="$(python3 -c 'import uuid; print(uuid.uuid4())')"
    second="$(python3 -c 'import uuid; print(uuid.uuid4())')"
    again="$(python3 -c 'import uuid; print(uuid.uuid4())')"
    step() { log ""; log "$*"; }

    step "1. the schedule opens flight $flight (FlightScheduled)"
    prepare events/flight-scheduled.json opened "flightId=$flight" >/dev/null
    # Two seats each side of the aisle in BUSINESS (A B, E F), so that step 7 can block 1A
    # and 1B side by side.
    python3 - "$workdir/opened.json" <<'PY'
import json, sys
event = json.load(open(sys.argv[1]))
event["detail"]["cabins"] = [{"cabin": "BUSINESS", "rows": "1-3", "letters": "ABEF"},
                             {"cabin": "ECONOMY", "rows": "10-30", "letters": "ABCDEF"}]
json.dump(event, open(sys.argv[1], "w"))
PY
    invoke "$workdir/opened.json" "$flight"

    step "2. order $first holds 12A and 12B (OrderCreated)"
    prepare events/order-created.json first "orderId=$first" "flightId=$flight" >/dev/null
    invoke "$workdir/first.json" "$flight"

    step "3. its payment books them (PaymentSucceeded)"
    prepare events/payment-succeeded.json paid "orderId=$first" >/dev/null
    invoke "$workdir/paid.json" "$flight"

    step "4. a second order, $second, for 12A is refused (OrderCreated)"
    python3 - "$workdir/second.json" "$second" "$flight" <<'PY'
import json, sys, uuid
event = json.load(open("events/order-created.json"))
event["id"] = str(uuid.uuid4())
event["detail"] = {"orderId": sys.argv[2], "flightId": sys.argv[3], "seats": ["12A"]}
json.dump(event, open(sys.argv[1], "w"))
PY
    invoke "$workdir/second.json" "$flight"

    step "5. the first order's cancellation gives the seats back (OrderCancelled)"
    prepare events/order-cancelled.json cancelled "orderId=$first" >/dev/null
    invoke "$workdir/cancelled.json" "$flight"

    step "6. the second order, sent again as a new order ($again) for 12A and 12B, holds them (OrderCreated)"
    python3 - "$workdir/again.json" "$again" "$flight" <<'PY'
import json, sys, uuid
event = json.load(open("events/order-created.json"))
event["id"] = str(uuid.uuid4())
event["detail"] = {"orderId": sys.argv[2], "flightId": sys.argv[3], "seats": ["12A", "12B"]}
json.dump(event, open(sys.argv[1], "w"))
PY
    invoke "$workdir/again.json" "$flight"

    step "7. operations blocks 1A and 1B for crew rest (SeatBlockRequested)"
    prepare events/seat-block-requested.json blocked "requestId=new" "flightId=$flight" >/dev/null
    invoke "$workdir/blocked.json" "$flight"

    step "8. order $again moves from 12B to 14C (SeatChangeRequested)"
    prepare events/seat-change-requested.json changed "changeId=new" "orderId=$again" \
        "flightId=$flight" >/dev/null
    python3 - "$workdir/changed.json" <<'PY'
import json, sys
event = json.load(open(sys.argv[1]))
event["detail"]["moves"] = [{"from": "12B", "to": "14C"}]
json.dump(event, open(sys.argv[1], "w"))
PY
    invoke "$workdir/changed.json" "$flight"

    third="$(python3 -c 'import uuid; print(uuid.uuid4())')"
    step "9. a third order, $third, holds 30A (OrderCreated)"
    python3 - "$workdir/third.json" "$third" "$flight" <<'PY'
import json, sys, uuid
event = json.load(open("events/order-created.json"))
event["id"] = str(uuid.uuid4())
event["detail"] = {"orderId": sys.argv[2], "flightId": sys.argv[3], "seats": ["30A"]}
json.dump(event, open(sys.argv[1], "w"))
PY
    invoke "$workdir/third.json" "$flight"

    step "10. an aircraft swap takes row 30 out; the third order moves to row 29 (AircraftChanged)"
    prepare events/aircraft-changed.json swapped "changeId=new" "flightId=$flight" >/dev/null
    python3 - "$workdir/swapped.json" <<'PY'
import json, sys
event = json.load(open(sys.argv[1]))
event["detail"]["cabins"] = [{"cabin": "BUSINESS", "rows": "1-3", "letters": "ABEF"},
                             {"cabin": "ECONOMY", "rows": "10-29", "letters": "ABCDEF"}]
json.dump(event, open(sys.argv[1], "w"))
PY
    invoke "$workdir/swapped.json" "$flight"
    exit 0
fi

if $as_is; then
    cp "$event_file" "$workdir/event.json"
    flight="$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1])).get("detail")
print(d.get("flightId", "") if isinstance(d, dict) else "")' "$event_file" 2>/dev/null || true)"
    log "sending $event_file as it is"
elif grep -q '"orderId"' "$event_file"; then
    flight="$(prepare "$event_file" event "orderId=new")"
    log "sending $event_file as a new order"
else
    flight="$(prepare "$event_file" event)"
    log "sending $event_file with a fresh envelope id"
fi
invoke "$workdir/event.json" "$flight"
