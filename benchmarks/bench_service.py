"""`badgateway run` end to end next to its Kafka client's bare consume → produce loop: same broker, data and run.

Each client (`kafka.client`: kafka-python, confluent) is timed against its own bare loop. Targets: the service
reaches ≥ 60% of the bare loop of whichever client it uses (issues 5 and 9), and ≥ 150,000 records/s on one
process with confluent-kafka (issue 9). The service parses every access line,
runs the join and commits with the safe-offset rule; the bare loop copies bytes. Three service modes are timed:
incidents only (the default deployment: ~4% of the lines are 502/504 and produce an incident), with the events
topic on (one ECS event produced per parsed line, the same output volume as the bare loop), and
`exactly_once = true` (Kafka transactions: the cost of the transactional mode).

    .venv/bin/python benchmarks/bench_service.py                     # starts its own broker
    .venv/bin/python benchmarks/bench_service.py --bootstrap 127.0.0.1:9092 -n 200000
    .venv/bin/python benchmarks/bench_service.py --clients confluent -n 500000   # one client only

The clock starts when the service receives its first record (group join is a constant, as in the bare loop) and
stops when it has processed the last one; the final flush + commit is timed and printed separately.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_kafka_bare import bare_loop, confluent_bare_loop, create_topics, load_topic, local_broker, make_lines  # noqa: E402

from processor.io.log import configure  # noqa: E402
from processor.runners.service import Service  # noqa: E402
from processor.runners.service_config import load_config  # noqa: E402

# make_lines() writes "combined" plus the request and upstream times
LOG_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
    '"$http_user_agent" rt=$request_time urt=$upstream_response_time'
)


def _position(service: Service) -> int:
    try:
        return sum(service.planner.next.values())
    except RuntimeError:  # the service thread changed the dict while we summed it
        return 0


BARE_LOOPS = {"kafka-python": bare_loop, "confluent": confluent_bare_loop}
MODES = (
    ("service", {}, "incidents only (default)"),
    ("events", {"events": True}, "+ events topic"),
    ("exactly_once", {"exactly_once": True}, "exactly_once = true"),
)


def service_rate(
    bootstrap: str,
    in_topic: str,
    n: int,
    *,
    client: str = "kafka-python",
    events: bool = False,
    exactly_once: bool = False,
) -> tuple[float, float, int]:
    """(records/s, seconds of the final flush + commit, incidents) for one service run over `in_topic`."""
    tag = uuid.uuid4().hex[:8]
    outputs = [f"bench-incidents-{tag}", f"bench-dead-{tag}"] + ([f"bench-events-{tag}"] if events else [])
    create_topics(bootstrap, outputs)
    sets = [
        f"kafka.client={client}",
        f"kafka.bootstrap_servers={bootstrap}",
        f"kafka.group_id=bench-svc-{tag}",
        f"inputs.0.topic={in_topic}",
        "inputs.0.type=nginx_access",
        "inputs.0.envelope=raw",
        # load_topic() keys records by client address; taken as the host, every line would be its own machine
        "inputs.0.host_from=fixed:web-1",
        f"outputs.incidents_topic={outputs[0]}",
        f"outputs.dead_letter_topic={outputs[1]}",
        f"diagnosis.log_format={LOG_FORMAT}",
        "metrics.port=0",
    ]
    if events:
        sets.append(f"outputs.events_topic={outputs[2]}")
    if exactly_once:
        sets += ["delivery.exactly_once=true", f"kafka.transactional_id=bench-{tag}"]
    service = Service(load_config(None, sets, environ={}))
    thread = threading.Thread(target=service.run, name="badgateway-run")
    thread.start()
    started = 0.0
    deadline = time.monotonic() + 120 + n / 1000
    # done when the position reaches the end (records_in would also count records re-read after a rebalance)
    while _position(service) < n:
        if not thread.is_alive() or time.monotonic() > deadline:
            service.stop()
            raise RuntimeError(f"service got {_position(service)} of {n} records")
        if not started and service.totals.records_in:
            started = time.perf_counter()
        # this thread takes the GIL from the service's at each wake-up: often only until the start is seen
        time.sleep(0.01 if started else 0.002)
    rate = n / (time.perf_counter() - started)
    stop_at = time.perf_counter()
    service.stop()
    thread.join()
    dead = service.totals.lines_dead_lettered + service.totals.envelope_dead_letters
    if dead:
        raise RuntimeError(f"{dead} lines dead-lettered: the benchmark's log_format does not match its lines")
    if service.totals.rebuilds:
        print(f"    (the service rebuilt its pipeline {service.totals.rebuilds} time(s): a rebalance)")
    return rate, time.perf_counter() - stop_at, service.totals.incidents


def run(
    bootstrap: str,
    n: int,
    runs: int,
    clients: list[str],
    failure_share: float | None = None,
    modes: tuple[tuple[str, dict[str, bool], str], ...] = MODES,
) -> None:
    configure(json=True)
    tag = uuid.uuid4().hex[:8]
    in_topic = f"bench-svc-in-{tag}"
    bare_outs = {(c, i): f"bench-svc-bare-{tag}-{c}-{i}" for c in clients for i in range(runs)}
    create_topics(bootstrap, [in_topic, *bare_outs.values()])
    lines = make_lines(n, failure_share=failure_share)
    print(f"loading {n:,} access lines into {in_topic}: {load_topic(bootstrap, in_topic, lines):,.0f} records/s")
    rates: dict[tuple[str, str], list[float]] = {}
    for i in range(runs):  # interleaved, so drift on the machine hits every client and mode alike
        for client in clients:
            bare = BARE_LOOPS[client](bootstrap, in_topic, bare_outs[(client, i)], n)
            rates.setdefault((client, "bare"), []).append(bare)
            line = [f"bare {bare:,.0f}/s"]
            for mode, options, _ in modes:
                rate, close_s, incidents = service_rate(bootstrap, in_topic, n, client=client, **options)
                rates.setdefault((client, mode), []).append(rate)
                line.append(f"{mode} {rate:,.0f}/s ({incidents} incidents, final flush+commit {close_s:.2f}s)")
            print(f"  run {i + 1}, {client}: " + " | ".join(line))
    print(f"\nmedians of {runs} run(s), {n:,} records each:")
    print(f"| client | bare consume → produce | {' | '.join(label for _, _, label in modes)} |")
    print("|---|---|" + "---|" * len(modes))
    for client in clients:
        b = statistics.median(rates[(client, "bare")])
        cells = []
        for mode, _, _ in modes:
            r = statistics.median(rates[(client, mode)])
            cells.append(f"{r:,.0f}/s = {r / b:.0%}")
        print(f"| {client} | {b:,.0f}/s | {' | '.join(cells)} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", help="an existing broker; without it one is started for the run")
    parser.add_argument("-n", type=int, default=100_000, help="records (default 100000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--clients",
        default="kafka-python,confluent",
        help="comma-separated kafka.client values to time (default: both)",
    )
    parser.add_argument(
        "--failure-share",
        type=float,
        default=None,
        help="share of 502/504 lines, e.g. 0.003 (default: about 3.3%%, an outage's mix)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(mode for mode, _, _ in MODES),
        help=f"comma-separated service modes to time (default: all of {', '.join(mode for mode, _, _ in MODES)})",
    )
    args = parser.parse_args(argv)
    modes = tuple(m for m in MODES if m[0] in args.modes.split(","))
    if not modes:
        parser.error(f"--modes: none of {', '.join(mode for mode, _, _ in MODES)}")
    clients = [c for c in args.clients.split(",") if c]
    unknown = set(clients) - set(BARE_LOOPS)
    if unknown:
        parser.error(f"--clients: unknown {sorted(unknown)}; known: {', '.join(BARE_LOOPS)}")
    if args.bootstrap:
        run(args.bootstrap, args.n, args.runs, clients, args.failure_share, modes)
    else:
        with local_broker() as bootstrap:
            run(bootstrap, args.n, args.runs, clients, args.failure_share, modes)


if __name__ == "__main__":
    main()
