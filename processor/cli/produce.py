"""``badgateway produce``: log files into the service's input topics, one record per line, keyed by host.

The quick start's producer (README): it stands in for a log shipper, so the service can be seen working with
nothing but the bundled broker and example. Each file's log type is detected as ``replay`` detects it and sent
to the topic the configuration's ``[[inputs]]`` give that type (``examples/badgateway.toml``: nginx-access,
nginx-error, php-fpm). Topics are created when missing. Lines go as the raw lines a shipper would send, in file
order, all keyed by one host so that a host's records share a partition, as the join expects.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
from collections import Counter

from processor.core.errors import KafkaError, UserConfigError
from processor.io.discovery import discover
from processor.io.files import open_lines
from processor.io.kafka.client import ClientError, backend
from processor.io.kafka.settings import KafkaSection
from processor.runners.service_config import load_config

# the topics of examples/badgateway.toml's [[inputs]], when no --config says otherwise
DEFAULT_TOPICS = {"nginx_access": "nginx-access", "nginx_error": "nginx-error", "php_fpm": "php-fpm"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``badgateway produce``."""
    p.add_argument("paths", nargs="+", metavar="PATH", help="log files, directories or globs (.gz … too)")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="a badgateway.toml: its [kafka] broker and its [[inputs]] topics for each log type "
        "(none: the topics of examples/badgateway.toml on --bootstrap)",
    )
    p.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="the broker(s), comma-separated (none: the config's, else $BADGATEWAY_KAFKA_BOOTSTRAP_"
        "SERVERS, else localhost:9092)",
    )
    p.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="TYPE=TOPIC",
        help="send a log type to a topic (e.g. php_fpm_slowlog=php-fpm-slow), repeatable",
    )
    p.add_argument("--host", help="the record key: the host every line comes from (none: this machine's name)")
    p.add_argument(
        "--kafka-client",
        choices=("kafka-python", "confluent"),
        default=None,
        help="the Kafka client library (none: the config's kafka.client, else kafka-python)",
    )


def _kafka_and_topics(args: argparse.Namespace) -> tuple[KafkaSection, dict[str, str]]:
    if args.config:
        config = load_config(args.config)
        kafka = config.kafka
        topics = {i.type: i.topic for i in config.inputs if i.type != "auto"}
    else:
        env = os.environ.get("BADGATEWAY_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
        kafka = KafkaSection(bootstrap_servers=tuple(s.strip() for s in env.split(",") if s.strip()))
        topics = dict(DEFAULT_TOPICS)
    if args.bootstrap:
        kafka = dataclasses.replace(kafka, bootstrap_servers=tuple(s.strip() for s in args.bootstrap.split(",")))
    if args.kafka_client:
        kafka = dataclasses.replace(kafka, client=args.kafka_client)
    for item in args.topic:
        log_type, sep, topic = item.partition("=")
        if not sep or not topic:
            raise UserConfigError(f"--topic {item!r}: expected TYPE=TOPIC, e.g. nginx_access=nginx-access")
        topics[log_type.strip()] = topic.strip()
    return kafka, topics


def produce_command(args: argparse.Namespace) -> int:
    """Send every line of the files to its type's topic; one line per file on stderr says where it went."""
    from processor.pipeline import Pipeline, PipelineSettings
    from processor.runners.replay import plan_inputs

    kafka, topics = _kafka_and_topics(args)
    host = args.host or socket.gethostname()
    plans = plan_inputs(Pipeline(PipelineSettings()), discover(args.paths), host=host)
    client = backend(kafka)
    failures: list[BaseException] = []
    sent: Counter[str] = Counter()
    try:
        for name in sorted({topics[p.log_type] for p in plans if p.log_type in topics}):
            client.ensure_topic(kafka, name, 1)
        producer = client.make_producer(kafka)
        try:
            for plan in plans:
                to = topics.get(plan.log_type or "")
                if to is None:
                    print(
                        f"badgateway produce: {plan.file.display}: {plan.log_type or 'unknown type'}: no topic "
                        f"for it, skipped (--topic {plan.log_type or 'TYPE'}=TOPIC sends it)",
                        file=sys.stderr,
                    )
                    continue
                n = 0
                for _, line in open_lines(plan.file):
                    producer.send(to, line, host.encode(), None, failures.append)
                    n += 1
                sent[to] += n
                print(f"badgateway produce: {plan.file.display}: {n:,} lines ({plan.log_type}) → {to}", file=sys.stderr)
            producer.flush()
        finally:
            producer.close(10.0)
    except ClientError as exc:
        raise KafkaError(f"kafka ({', '.join(kafka.bootstrap_servers)}): {exc}") from exc
    if failures:
        raise KafkaError(f"kafka: {len(failures)} records were not delivered: {failures[0]}")
    total = ", ".join(f"{topic} {n:,}" for topic, n in sorted(sent.items())) or "nothing"
    print(f"badgateway produce: sent {total} (key {host})", file=sys.stderr)
    return 0
