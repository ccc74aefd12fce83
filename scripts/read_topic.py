#!/usr/bin/env python3
"""Print a Kafka topic's records, one value per line: the quick start's way to read the incidents.

    python scripts/read_topic.py badgateway-incidents [--count N] [--timeout SECONDS]

Reads from the start of the topic (no consumer group, nothing committed) until N records were printed or
nothing came for SECONDS. Delivery is at least once: after a restart or a rebalance the service may write an
incident again, with the same ``event.id``; a record whose ``event.id`` was printed already is skipped, as a
consumer of the topic should (``--all`` prints every copy). The broker: --bootstrap, else $BADGATEWAY_KAFKA_BOOTSTRAP_SERVERS, else
localhost:9092 (what scripts/kafka.sh start listens on).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from kafka import KafkaConsumer, TopicPartition


def _event_id(value: bytes) -> object:
    """The record's ``event.id`` (None when it has none: then every copy is printed)."""
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    event = doc.get("event") if isinstance(doc, dict) else None
    return event.get("id") if isinstance(event, dict) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("topic")
    parser.add_argument("--bootstrap", default=os.environ.get("BADGATEWAY_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"))
    parser.add_argument("--count", type=int, default=0, help="stop after this many records (0: no limit)")
    parser.add_argument("--timeout", type=float, default=60.0, help="stop after this long without a record")
    parser.add_argument("--all", action="store_true", help="print every copy of a record (default: one per event.id)")
    args = parser.parse_args()
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap.split(","), enable_auto_commit=False, group_id=None)
    deadline = time.monotonic() + args.timeout
    partitions: set[int] | None = None
    while not partitions and time.monotonic() < deadline:
        partitions = consumer.partitions_for_topic(args.topic)
        if not partitions:
            time.sleep(0.5)  # the service creates the topic when it starts
    if not partitions:
        print(f"read_topic: no topic {args.topic} on {args.bootstrap}", file=sys.stderr)
        return 1
    consumer.assign([TopicPartition(args.topic, p) for p in sorted(partitions)])
    consumer.seek_to_beginning()
    printed = copies = 0
    seen: set[object] = set()
    while time.monotonic() < deadline and (not args.count or printed < args.count):
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                if args.count and printed >= args.count:
                    break
                value = record.value or b""
                deadline = time.monotonic() + args.timeout
                key = None if args.all else _event_id(value)
                if key is not None and key in seen:
                    copies += 1
                    continue
                seen.add(key)
                sys.stdout.buffer.write(value if value.endswith(b"\n") else value + b"\n")
                printed += 1
        sys.stdout.flush()
    consumer.close()
    again = f" ({copies} copies of records already printed skipped)" if copies else ""
    print(f"read_topic: {printed} records from {args.topic}{again}", file=sys.stderr)
    return 0 if not args.count or printed >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
