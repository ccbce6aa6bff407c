"""Helpers of scripts/run-local.sh: the local bus on moto, and the events sent to the function.

    local_bus.py setup ENDPOINT BUS              create the bus and a queue its answers reach; prints the queue URL
    local_bus.py drain ENDPOINT QUEUE_URL [N]    prints, one JSON document each, the events waiting in the queue;
                                                 on stderr, the count; exit 3 if none
    local_bus.py event FILE OUT [KEY=VALUE ...]  writes FILE to OUT with a fresh envelope id and detail.KEY set
                                                 (VALUE "new": a fresh UUID); prints the detail's flightId, if any

Messages and tracebacks never reach stdout: run-local.sh keeps stdout for the events alone.
"""

import json
import sys
import time
import uuid


def fail(message):
    print(f"run-local: {message}", file=sys.stderr)
    sys.exit(1)


def clients(endpoint):
    import boto3

    return boto3.client("events", endpoint_url=endpoint), boto3.client("sqs", endpoint_url=endpoint)


def setup(endpoint, bus):
    events, sqs = clients(endpoint)
    for _ in range(100):
        try:
            events.list_event_buses()
            break
        except Exception:
            time.sleep(0.1)
    else:
        fail(f"moto did not answer at {endpoint}")
    queue_url = sqs.create_queue(QueueName="inventory-answers")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.create_event_bus(Name=bus)
    events.put_rule(Name="inventory-answers", EventBusName=bus,
                    EventPattern=json.dumps({"source": ["skyledger.inventory"]}))
    events.put_targets(Rule="inventory-answers", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    print(queue_url)


def drain(endpoint, queue_url):
    """Every event already in the queue (the function publishes before it answers)."""
    _, sqs = clients(endpoint)
    drained = 0
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not messages:
            sys.exit(0 if drained else 3)
        for message in messages:
            event = json.loads(message["Body"])
            print(json.dumps({"source": event["source"], "detail-type": event["detail-type"], "detail": event["detail"]}, indent=2))
            sys.stdout.flush()
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            drained += 1


def event(path, out, assignments):
    try:
        with open(path) as f:
            payload = json.load(f)
    except (OSError, ValueError) as error:
        fail(f"cannot read {path}: {error}")
    if not isinstance(payload, dict):
        fail(f"{path} is not a JSON object")
    if "detail" in payload:
        payload["id"] = str(uuid.uuid4())
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        payload.setdefault("detail", {})[key] = str(uuid.uuid4()) if value == "new" else value
    with open(out, "w") as f:
        json.dump(payload, f)
    detail = payload.get("detail")
    flight = detail.get("flightId") if isinstance(detail, dict) else None
    if isinstance(flight, str):
        print(flight)


def main(argv):
    if len(argv) >= 3 and argv[0] == "setup":
        setup(argv[1], argv[2])
    elif len(argv) == 3 and argv[0] == "drain":
        drain(argv[1], argv[2])
    elif len(argv) >= 3 and argv[0] == "event":
        event(argv[1], argv[2], argv[3:])
    else:
        fail(__doc__.strip())


if __name__ == "__main__":
    main(sys.argv[1:])
