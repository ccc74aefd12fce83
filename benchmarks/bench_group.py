"""One vs two consumer-group members: `badgateway run` processes (kafka.client = confluent) on an 8-partition topic.

    .venv/bin/python benchmarks/bench_group.py                    # starts its own broker (scripts/kafka.sh)
    .venv/bin/python benchmarks/bench_group.py -n 400000 --members 1,2,3 --bootstrap 127.0.0.1:9092

For each member count, that many `badgateway run` processes (each its own interpreter, `python -m processor.cli
run --set …`, the configuration of bench_service.py) join a fresh group on a fresh, empty topic of 8 partitions;
once the group has settled (``--settle`` seconds), the access lines of bench_kafka_bare.make_lines (3.3 % 502/504
by default) are produced into it with confluent-kafka's producer (keyed by client address), and the members
consume them to the end. (Loaded before the members start, the first member to join takes every partition and
is done before the second one joins.) Each member's metrics endpoint is polled every 20 ms: its records/s is the
records it processed (`badgateway_records_in`) over the time from its first record to its last; the total is all
records over the time from the first record of any member to the moment the group's positions reach the end
(`badgateway_consumer_position`, the highest per partition). The group join is left out (the clock starts at the
first record); a rebalance while consuming is not (members start together and may rebalance once: printed).

The broker runs on the same machine: with two CPUs the members, the broker and this poller share them.
No thresholds: the numbers are printed.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_kafka_bare import create_topics, local_broker, make_lines
from bench_service import LOG_FORMAT

PARTITIONS = 8
_SAMPLE = re.compile(r"^(badgateway_[a-z_]+?)(?:_total)?(?:\{([^}]*)\})? ([0-9.eE+-]+)$")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1.0) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m is None or line.startswith("#"):
            continue
        name, labels, value = m.groups()
        if name.endswith("_created"):
            continue
        parsed = dict(re.findall(r'(\w+)="([^"]*)"', labels or ""))
        out.setdefault(name, []).append((parsed, float(value)))
    return out


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(v for _, v in samples.get(name, []))


def produce(bootstrap: str, topic: str, lines: list[bytes]) -> float:
    """All lines into ``topic`` with confluent-kafka (the service's settings); records/s."""
    from bench_kafka_bare import CONFLUENT_PRODUCER_CONFIG
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, **CONFLUENT_PRODUCER_CONFIG})
    started = time.perf_counter()
    for line in lines:
        while True:
            try:
                producer.produce(topic, line, line[: line.index(b" ")])
                break
            except BufferError:
                producer.poll(0.01)
    while producer.flush(1.0) > 0:
        pass
    return len(lines) / (time.perf_counter() - started)


def members_run(bootstrap: str, lines: list[bytes], members: int, timeout: float, settle: float) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    n = len(lines)
    topic = f"bench-group-in-{tag}"
    outs = [f"bench-group-incidents-{tag}", f"bench-group-dead-{tag}"]
    create_topics(bootstrap, [topic], partitions=PARTITIONS)
    create_topics(bootstrap, outs)
    ports = [_free_port() for _ in range(members)]
    procs = []
    for i, port in enumerate(ports):
        sets = [
            "kafka.client=confluent",
            f"kafka.bootstrap_servers={bootstrap}",
            f"kafka.group_id=bench-group-{tag}",
            f"kafka.client_id=bench-group-{tag}-{i}",
            f"inputs.0.topic={topic}",
            "inputs.0.type=nginx_access",
            "inputs.0.envelope=raw",
            "inputs.0.host_from=fixed:web-1",
            f"outputs.incidents_topic={outs[0]}",
            f"outputs.dead_letter_topic={outs[1]}",
            f"diagnosis.log_format={LOG_FORMAT}",
            f"metrics.port={port}",
        ]
        cmd = [sys.executable, "-m", "processor.cli", "run"] + [a for s in sets for a in ("--set", s)]
        procs.append(subprocess.Popen(cmd, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    first: list[float | None] = [None] * members
    last: list[float | None] = [None] * members
    seen = [0.0] * members
    rebuilds = [0.0] * members
    positions: dict[str, float] = {}
    done_at = None
    deadline = time.monotonic() + timeout
    produced = 0.0
    try:
        time.sleep(settle)
        for i, proc in enumerate(procs):
            if proc.poll() is not None:
                err = (proc.stderr.read().decode() if proc.stderr else "").strip().splitlines()[-3:]
                raise RuntimeError(f"member {i} exited {proc.returncode}: {' | '.join(err)}")
        produced = produce(bootstrap, topic, lines)
        while True:
            now = time.perf_counter()
            for i, port in enumerate(ports):
                samples = scrape(port)
                if samples is None:
                    continue
                got = _total(samples, "badgateway_records_in")
                if got > seen[i]:
                    if first[i] is None:
                        first[i] = now
                    last[i] = now
                    seen[i] = got
                rebuilds[i] = _total(samples, "badgateway_rebuilds")
                for labels, value in samples.get("badgateway_consumer_position", []):
                    key = labels.get("partition", "?")
                    positions[key] = max(positions.get(key, 0.0), value)
            if sum(positions.values()) >= n:
                done_at = time.perf_counter()
                break
            for i, proc in enumerate(procs):
                if proc.poll() is not None:
                    err = (proc.stderr.read().decode() if proc.stderr else "").strip().splitlines()[-3:]
                    raise RuntimeError(f"member {i} exited {proc.returncode}: {' | '.join(err)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the group reached {sum(positions.values()):,.0f} of {n:,} records in {timeout}s")
            time.sleep(0.02)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    starts = [f for f in first if f is not None]
    per_member = []
    for i in range(members):
        f, la = first[i], last[i]
        rate = seen[i] / (la - f) if f is not None and la is not None and la > f else float("nan")
        per_member.append((seen[i], rate, rebuilds[i]))
    assert done_at is not None
    total_rate = n / (done_at - min(starts)) if starts else float("nan")
    return {
        "members": per_member,
        "total": total_rate,
        "seconds": done_at - min(starts) if starts else 0.0,
        "produced": produced,
    }


def run(
    bootstrap: str,
    n: int,
    member_counts: list[int],
    runs: int,
    failure_share: float | None,
    timeout: float,
    settle: float,
) -> None:
    lines = make_lines(n, failure_share=failure_share)
    print(f"{n:,} access lines per run, {PARTITIONS} partitions, members settle {settle:g}s before the load")
    totals: dict[int, list[float]] = {}
    for r in range(runs):
        for count in member_counts:  # interleaved, so drift on the machine hits both alike
            got = members_run(bootstrap, lines, count, timeout, settle)
            totals.setdefault(count, []).append(got["total"])  # type: ignore[arg-type]
            each = "; ".join(
                f"member {i + 1}: {recs:,.0f} records at {rate:,.0f}/s" + (f" ({rb:.0f} rebuilds)" if rb else "")
                for i, (recs, rate, rb) in enumerate(got["members"])
            )  # type: ignore[attr-defined]
            print(
                f"  run {r + 1}, {count} member(s): total {got['total']:,.0f} records/s "
                f"({got['seconds']:.2f}s; load {got['produced']:,.0f}/s) | {each}",
                flush=True,
            )
    print(f"\n| members | total records/s (median of {runs}) | × one member |")
    print("|---|---|---|")
    base = None
    for count in member_counts:
        vals = sorted(totals[count])
        med = vals[len(vals) // 2]
        base = base or med
        print(f"| {count} | {med:,.0f} | {med / base:.2f}× |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--bootstrap", help="an existing broker; without it one is started for the run")
    ap.add_argument("-n", type=int, default=300_000, help="records (default 300000)")
    ap.add_argument("--members", default="1,2", help="member counts to compare (default 1,2)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument(
        "--failure-share",
        type=float,
        default=None,
        help="share of 502/504 lines (default: about 3.3%%, an outage's mix)",
    )
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per group run")
    ap.add_argument("--settle", type=float, default=8.0, help="seconds the members get to join before the load")
    args = ap.parse_args(argv)
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        sys.exit("bench_group: confluent-kafka is not installed (pip install 'badgateway[confluent]')")
    counts = [int(x) for x in args.members.split(",") if x]
    if args.bootstrap:
        run(args.bootstrap, args.n, counts, args.runs, args.failure_share, args.timeout, args.settle)
        return
    try:
        from tests.fixtures.kafka import fetch_broker_jars

        fetch_broker_jars()
    except Exception as exc:  # noqa: BLE001
        sys.exit(f"bench_group: no broker ({exc}); run `bash scripts/kafka.sh fetch`")
    with local_broker() as bootstrap:
        run(bootstrap, args.n, counts, args.runs, args.failure_share, args.timeout, args.settle)


if __name__ == "__main__":
    main()
