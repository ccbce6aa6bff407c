#!/usr/bin/env bash
# Runs the service locally on a sample event and prints the event it emits.
#
#   scripts/run-local.sh [EVENT_FILE] [--as-is]
#
# The real binary runs under cargo-lambda's Runtime API emulator (`cargo lambda watch`),
# against PostgreSQL (scripts/postgres.sh starts one if needed; database aeronode_local,
# migrated and seeded with the demo flight) and moto's EventBridge, where a rule on the
# bus routes what the service publishes to an SQS queue that this script reads and prints.
#
# By default the sample is sent as a new order (fresh orderId and event id), as the order
# service would: a second run for the same seats is refused with SeatReservationFailed.
# --as-is sends the file unchanged: a second run is a redelivery and gets the same answer.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
event_file="events/order-created.json"
as_is=false
for arg in "$@"; do
    case "$arg" in
        --as-is) as_is=true ;;
        *) event_file="$arg" ;;
    esac
done
log() { echo "run-local: $*" >&2; }

export "$(bash scripts/postgres.sh | tail -n1)"
export "$(bash scripts/tools.sh | tail -n1)"
export PATH="$TOOLS_BIN:$PATH"

local_db="aeronode_local"
local_url="${DATABASE_URL%/*}/$local_db"
if [[ "$(psql "$DATABASE_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$local_db'")" != 1 ]]; then
    psql "$DATABASE_URL" -qc "CREATE DATABASE $local_db"
fi
log "building"
cargo build --quiet --bin aeronode-inventory
DATABASE_URL="$local_url" RUST_LOG=warn target/debug/aeronode-inventory migrate
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

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1
endpoint="http://127.0.0.1:$moto_port"
moto_server -H 127.0.0.1 -p "$moto_port" >"$workdir/moto.log" 2>&1 &
pids+=($!)
bus="SkyLedger-Default-Bus"
queue_url="$(python3 - "$endpoint" "$bus" <<'PY'
import json, sys, time, boto3
endpoint, bus = sys.argv[1], sys.argv[2]
for _ in range(100):
    try:
        events = boto3.client("events", endpoint_url=endpoint)
        events.list_event_buses()
        break
    except Exception:
        time.sleep(0.1)
sqs = boto3.client("sqs", endpoint_url=endpoint)
queue_url = sqs.create_queue(QueueName="inventory-answers")["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
events.create_event_bus(Name=bus)
events.put_rule(Name="inventory-answers", EventBusName=bus,
                EventPattern=json.dumps({"source": ["skyledger.inventory"]}))
events.put_targets(Rule="inventory-answers", EventBusName=bus,
                   Targets=[{"Id": "queue", "Arn": queue_arn}])
print(queue_url)
PY
)"

payload="$workdir/event.json"
if $as_is; then
    cp "$event_file" "$payload"
else
    python3 - "$event_file" "$payload" <<'PY'
import json, sys, uuid
event = json.load(open(sys.argv[1]))
event["id"] = str(uuid.uuid4())
if "orderId" in event.get("detail", {}):
    event["detail"]["orderId"] = str(uuid.uuid4())
json.dump(event, open(sys.argv[2], "w"))
PY
fi

log "starting the function under cargo lambda watch"
cargo lambda watch --quiet --ignore-changes -A 127.0.0.1 -P "$lambda_port" \
    --env-var "DATABASE_URL=$local_url" --env-var "EVENT_BUS_NAME=$bus" \
    --env-var "AWS_ENDPOINT_URL=$endpoint" --env-var "AWS_REGION=eu-west-1" \
    --env-var "AWS_ACCESS_KEY_ID=testing" --env-var "AWS_SECRET_ACCESS_KEY=testing" \
    --env-var "RUST_LOG=info" >"$workdir/function.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
    (echo >"/dev/tcp/127.0.0.1/$lambda_port") 2>/dev/null && break
    sleep 0.2
done

log "invoking with $event_file$($as_is || echo ' as a new order')"
if ! cargo lambda invoke -A 127.0.0.1 -P "$lambda_port" --data-file "$payload" aeronode-inventory >"$workdir/response.json" 2>"$workdir/invoke.err"; then
    cat "$workdir/invoke.err" "$workdir/function.log" >&2
    exit 1
fi

python3 - "$endpoint" "$queue_url" <<'PY'
import json, sys, boto3
endpoint, queue_url = sys.argv[1], sys.argv[2]
sqs = boto3.client("sqs", endpoint_url=endpoint)
messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=10).get("Messages", [])
if not messages:
    sys.exit("run-local: no event arrived on the bus")
for message in messages:
    event = json.loads(message["Body"])
    print(json.dumps({"source": event["source"], "detail-type": event["detail-type"], "detail": event["detail"]}, indent=2))
PY
