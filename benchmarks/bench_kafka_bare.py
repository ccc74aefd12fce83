"""kafka-python's bare consume → produce loop on a real broker: the yardstick for `badgateway run`.

Issue 5 asks the service to reach ≥ 60% of this loop's records/s on the same broker and data. The service benchmark
imports the pieces from here so both measure the same thing:

    from bench_kafka_bare import make_lines, load_topic, bare_loop, PRODUCER_CONFIG, CONSUMER_CONFIG

Usage:
    .venv/bin/python benchmarks/bench_kafka_bare.py                      # starts its own broker (scripts/kafka.sh)
    .venv/bin/python benchmarks/bench_kafka_bare.py --bootstrap 127.0.0.1:9092 -n 500000 --runs 5
    .venv/bin/python benchmarks/bench_kafka_bare.py --transactional   # and the exactly-once loop, interleaved
    .venv/bin/python benchmarks/bench_kafka_bare.py --confluent       # and confluent-kafka's loop, interleaved

The clock starts when the first records arrive (group join and the first fetch are left out: they are a constant,
not a rate) and stops when the producer's flush returns and the consumer's offsets are committed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata

REPO = Path(__file__).resolve().parents[1]

# The producer settings issue 5 fixes for the service (acks=all, idempotent); the loop uses the same, so the
# comparison measures the service's own work and not a difference in delivery guarantees.
PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,
    "batch_size": 256 * 1024,
}
# The same guarantees in librdkafka's names (badgateway's confluent client: processor/io/kafka/confluent_client.py).
CONFLUENT_PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "partitioner": "murmur2_random",
}
CONSUMER_CONFIG: dict[str, Any] = {
    "auto_offset_reset": "earliest",
    "enable_auto_commit": False,
    "max_partition_fetch_bytes": 4 * 1024 * 1024,
}

_PATHS = [
    "/index.php",
    "/wp-login.php",
    "/api/v1/orders",
    "/api/v1/cart/items",
    "/checkout/payment",
    "/search",
    "/static/app.9f2c1.js",
    "/images/banner-2026.webp",
    "/account/settings",
    "/feed.xml",
]
_QUERIES = ["", "", "", "?page=2", "?q=nginx+502&sort=recent", "?id=48213", "?utm_source=newsletter&utm_medium=email"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "kube-probe/1.31",
]
_REFERERS = ["-", "-", "https://shop.example.com/", "https://www.google.com/"]
# Mostly 200s, with the 502/504 badgateway is about at a realistic trickle.
_STATUSES = [200] * 80 + [301, 302, 304, 304, 404, 404, 499, 500, 502, 502, 504]
# nginx's own error pages; 304 and 499 send no body.
_ERROR_PAGE_BYTES = {304: 0, 499: 0, 502: 157, 504: 167}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def make_lines(n: int, seed: int = 5, failure_share: float | None = None) -> list[bytes]:
    """`n` NGINX access lines ("combined" + request and upstream times), ~200 bytes each, deterministic.

    `failure_share`: the share of 502/504 lines (default: `_STATUSES`' 3 in 91, about 3.3%, an outage's mix)."""
    rng = random.Random(seed)
    failing = [s for s in _STATUSES if s in (502, 504)]
    others = [s for s in _STATUSES if s not in (502, 504)]
    start_s = 1_795_500_000  # 2026-11-24, where the lab logs live
    lines = []
    stamp = ""
    for i in range(n):
        if i % 50 == 0:  # ~50 requests per second
            ts = time.gmtime(start_s + i // 50)
            stamp = f"{ts.tm_mday:02d}/{_MONTHS[ts.tm_mon - 1]}/{ts.tm_year}:{ts.tm_hour:02d}:{ts.tm_min:02d}:{ts.tm_sec:02d}"
        if failure_share is None:
            status = rng.choice(_STATUSES)
        else:
            status = rng.choice(failing if rng.random() < failure_share else others)
        method = "POST" if rng.random() < 0.15 else "GET"
        request_s = rng.expovariate(8.0) if status != 504 else 60.0 + rng.random() / 100
        upstream = "-" if status == 499 else f"{min(request_s, 60.0):.3f}"
        body = _ERROR_PAGE_BYTES[status] if status in _ERROR_PAGE_BYTES else rng.randint(150, 48_000)
        lines.append(
            f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - [{stamp} +0000] "
            f'"{method} {rng.choice(_PATHS)}{rng.choice(_QUERIES)} HTTP/1.1" {status} {body} '
            f'"{rng.choice(_REFERERS)}" "{rng.choice(_AGENTS)}" rt={request_s:.3f} urt={upstream}'.encode()
        )
    return lines


def create_topics(bootstrap: str, names: list[str], partitions: int = 1) -> None:
    with KafkaAdminClient(bootstrap_servers=bootstrap, client_id="badgateway-bench") as admin:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1} for name in names},
            wait_for_metadata=True,
        )


def load_topic(bootstrap: str, topic: str, lines: list[bytes]) -> float:
    """Produce `lines` to `topic` (keyed by client address, as a shipper keyed by host would); returns records/s."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_CONFIG)
    try:
        started = time.perf_counter()
        for line in lines:
            producer.send(topic, value=line, key=line[: line.index(b" ")])
        producer.flush()
        return len(lines) / (time.perf_counter() - started)
    finally:
        producer.close()


def _copy(n: int, what: str, step: Callable[[], int | None], per_s: int = 1000) -> tuple[int, float]:
    """The loops' common clock: ``step()`` until ``n`` records are copied (it returns how many, ``None`` when the
    poll brought nothing). (records, the perf_counter of the first poll that brought some.)"""
    count = 0
    started = 0.0
    deadline = time.monotonic() + 60 + n / per_s
    while count < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} got {count} of {n} records")
        got = step()
        if got is None:
            continue
        if not started:
            started = time.perf_counter()
        count += got
    return count, started


def bare_loop(bootstrap: str, in_topic: str, out_topic: str, n: int) -> float:
    """Consume `n` records from `in_topic` in a fresh group, produce each value to `out_topic`; returns records/s."""
    consumer = KafkaConsumer(
        in_topic, bootstrap_servers=bootstrap, group_id=f"bench-bare-{uuid.uuid4().hex[:8]}", **CONSUMER_CONFIG
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_CONFIG)

    def step() -> int | None:
        batches = consumer.poll(timeout_ms=1000)
        for records in batches.values():
            for record in records:
                producer.send(out_topic, value=record.value, key=record.key)
        return sum(map(len, batches.values())) if batches else None

    try:
        count, started = _copy(n, f"bare loop from {in_topic}", step)
        producer.flush()
        consumer.commit()
        return count / (time.perf_counter() - started)
    finally:
        producer.close()
        consumer.close(autocommit=False)


def confluent_bare_loop(bootstrap: str, in_topic: str, out_topic: str, n: int) -> float:
    """`bare_loop` with confluent-kafka (librdkafka), the settings of badgateway's confluent client."""
    from confluent_kafka import Consumer, Producer

    from processor.io.kafka.confluent_client import FETCH_TUNING

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **FETCH_TUNING,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, **CONFLUENT_PRODUCER_CONFIG})
    consumer.subscribe([in_topic])

    def step() -> int | None:
        msgs = consumer.consume(2000, 1.0)
        copied = 0
        for m in msgs:
            if m.error() is not None:
                continue
            while True:
                try:
                    producer.produce(out_topic, m.value(), m.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            copied += 1
        producer.poll(0)
        return copied if msgs else None

    try:
        count, started = _copy(n, f"confluent bare loop from {in_topic}", step)
        while producer.flush(1.0) > 0:
            pass
        consumer.commit(asynchronous=False)
        return count / (time.perf_counter() - started)
    finally:
        consumer.close()


def transactional_loop(bootstrap: str, in_topic: str, out_topic: str, n: int, records_per_tx: int = 500) -> float:
    """`bare_loop` with exactly-once: one Kafka transaction (outputs + input offsets) per `records_per_tx`."""
    group = f"bench-tx-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(
        in_topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        isolation_level="read_committed",
        max_poll_records=records_per_tx,
        **CONSUMER_CONFIG,
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=group, **PRODUCER_CONFIG)

    def step() -> int | None:
        batches = consumer.poll(timeout_ms=1000)
        if not batches:
            return None
        producer.begin_transaction()
        offsets = {}
        for tp, records in batches.items():
            for record in records:
                producer.send(out_topic, value=record.value, key=record.key)
            offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        producer.commit_transaction()
        return sum(map(len, batches.values()))

    try:
        producer.init_transactions()
        count, started = _copy(n, f"transactional loop from {in_topic}", step, per_s=500)
        return count / (time.perf_counter() - started)
    finally:
        producer.close()
        consumer.close(autocommit=False)


@contextmanager
def local_broker() -> Iterator[str]:
    """A broker of our own, started by the same code as the tests' `kafka_broker` fixture."""
    sys.path.insert(0, str(REPO))
    from tests.fixtures.kafka import KafkaBroker, fetch_broker_jars

    fetch_broker_jars()
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as data_dir:
        broker = KafkaBroker(Path(data_dir))
        started = time.perf_counter()
        broker.start()
        print(f"broker {broker.bootstrap} started in {time.perf_counter() - started:.1f}s")
        try:
            yield broker.bootstrap
        finally:
            broker.stop()


def run(
    bootstrap: str, n: int, runs: int, partitions: int, transactional: bool, confluent: bool = False
) -> dict[str, list[float]]:
    tag = uuid.uuid4().hex[:8]
    in_topic = f"bench-in-{tag}"
    loops = {"bare consume → produce": bare_loop}
    if confluent:
        loops["confluent-kafka bare consume → produce"] = confluent_bare_loop
    if transactional:
        loops["transactional (500/tx)"] = transactional_loop
    out_topics = {(name, i): f"bench-out-{tag}-{j}-{i}" for j, name in enumerate(loops) for i in range(runs)}
    create_topics(bootstrap, [in_topic, *out_topics.values()], partitions)
    lines = make_lines(n)
    mean_bytes = sum(map(len, lines)) / n
    print(f"loading {n:,} lines (mean {mean_bytes:.0f} bytes) into {in_topic} ({partitions} partition(s))")
    print(f"  load: {load_topic(bootstrap, in_topic, lines):,.0f} records/s")
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for i in range(runs):  # interleaved, so a noisy neighbour hits both loops alike
        for name, loop in loops.items():
            rate = loop(bootstrap, in_topic, out_topics[(name, i)], n)
            rates[name].append(rate)
            print(f"  {name}: {rate:,.0f} records/s")
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", help="an existing broker; without it one is started for the run")
    parser.add_argument("-n", type=int, default=200_000, help="records (default 200000)")
    parser.add_argument("--runs", type=int, default=3, help="timed loops over the same input (default 3)")
    parser.add_argument("--partitions", type=int, default=1, help="partitions per topic (default 1)")
    parser.add_argument("--transactional", action="store_true", help="also time the exactly-once loop")
    parser.add_argument("--confluent", action="store_true", help="also time confluent-kafka's bare loop")
    args = parser.parse_args(argv)

    if args.bootstrap:
        rates = run(args.bootstrap, args.n, args.runs, args.partitions, args.transactional, args.confluent)
    else:
        with local_broker() as bootstrap:
            rates = run(bootstrap, args.n, args.runs, args.partitions, args.transactional, args.confluent)
    for name, values in rates.items():
        print(
            f"{name}: median {statistics.median(values):,.0f} records/s, best {max(values):,.0f} ({len(values)} runs)"
        )


if __name__ == "__main__":
    main()
