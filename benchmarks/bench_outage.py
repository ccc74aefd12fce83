"""The outage matrix (issue #23): every driver over generated outages, side by side, from one run.

    python benchmarks/bench_outage.py --quick          # a small subset, ~1-2 minutes
    python benchmarks/bench_outage.py                  # the full matrix, up to ~20 minutes
    python benchmarks/bench_outage.py --drivers replay,hot --kinds timeout,mix --shares 0.033,1 --densities 2000

Data: ``gen_outage.py`` (access + NGINX error + PHP-FPM logs; ``--shares`` of the requests fail with the
evidence of ``--kinds``; ``--densities`` requests per second of event time). Drivers:

  parse             replay's parsing alone: the three files through the pipeline's parse (blocks, runs of
                    healthy lines), no join, no output — the floor under replay's time at each share
  replay            ``badgateway replay DIR`` in-process (parse + diagnose, incidents to a file)
  workers           ``badgateway replay DIR --workers 2``
  hot               the Kafka service's per-batch work without Kafka (as bench_pipeline_hot.py: polls of 2000
                    records → ``Pipeline.feed_block``/``feed_lines``, one input per log type)
  run-kafka-python  ``badgateway run`` (kafka.client = kafka-python) against a real broker, three input topics
  run-confluent     the same with kafka.client = confluent

Each cell: lines/s at N requests (all three files' lines), the ratio to the bare-regex ceiling measured in this run
over the same lines (bench_replay.py's plainest loop: one ``re.match().groupdict()`` per line), and the doubling
ratio t(2N)/t(N) (≈ 2.0 when linear; the times themselves are in the detail table). Every measurement runs in a
child process of its own (a fresh interpreter: no state carried from cell to cell, a time limit, and the child's
ru_maxrss). Then: the causes replay gave against the causes each kind's evidence calls for, and replay's peak
memory (ru_maxrss of the child) at 100 % vs 1 % failures for a big input.

No thresholds: the numbers are printed, to be read. The Kafka drivers need the broker jars
(``bash scripts/kafka.sh fetch``) and skip with a message without them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from bench_replay import ACCESS, ERROR, FPM
from gen_outage import KINDS, STREAMS, generate, streams

DRIVERS = ("parse", "replay", "workers", "hot", "run-kafka-python", "run-confluent")
KAFKA_CLIENT = {"run-kafka-python": "kafka-python", "run-confluent": "confluent"}
SHARES = (0.0, 0.01, 0.033, 0.3, 1.0)
DENSITIES = (200.0, 2000.0)
ALL_KINDS = ("mix", *KINDS)

# the plainest Python regex per line (the ceiling): bench_replay.py's patterns
BARE = {"access": ACCESS, "error": ERROR, "fpm": FPM}

INPUT_TYPES = {"access": "nginx_access", "error": "nginx_error", "fpm": "php_fpm"}


def _sets(topics: dict[str, str]) -> list[str]:
    """The service configuration of the hot loop and of ``run``: one raw input per log type, one host."""
    sets = [
        "inputs.0.format=combined",
        "outputs.incidents_topic=bench-incidents",
        "outputs.dead_letter_topic=bench-dead",
        "metrics.port=0",
    ]
    for i, stream in enumerate(STREAMS):
        sets += [
            f"inputs.{i}.topic={topics[stream]}",
            f"inputs.{i}.type={INPUT_TYPES[stream]}",
            f"inputs.{i}.envelope=raw",
            f"inputs.{i}.host_from=fixed:web-1",
        ]
    return sets


# ------------------------------------------------------------------------------------------------ child side


def _maxrss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory. Of this process: its own address space's high-water mark (VmHWM), as ``ru_maxrss``
    carries the parent's peak across fork and exec (the parent holds the generated logs: 200 MB at 1M lines)."""
    if who == resource.RUSAGE_SELF:
        try:
            with open("/proc/self/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
    return resource.getrusage(who).ru_maxrss / 1024


def _causes(path: str) -> dict[str, int]:
    got: Counter[str] = Counter()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            got[json.loads(line).get("badgateway", {}).get("cause", "?")] += 1
    return dict(got)


def child_replay(job: dict[str, Any]) -> dict[str, Any]:
    from processor.cli import main

    # warm-up: one replay of the first lines of each file (grammars lowered, modules imported, caches filled),
    # so the timed run is the steady state; the warm-up's time is the fixed cost of a replay invocation
    warm = tempfile.mkdtemp(prefix="warm-", dir=os.path.dirname(job["dir"]))
    for name in os.listdir(job["dir"]):
        with (
            open(os.path.join(job["dir"], name), encoding="utf-8") as src,
            open(os.path.join(warm, name), "w", encoding="utf-8") as dst,
        ):
            for j, line in enumerate(src):
                if j >= 50:
                    break
                dst.write(line)
    w0 = time.perf_counter()
    main(["replay", warm, "-o", os.devnull, "-q", "--no-progress", "--workers", str(job.get("workers", 1))])
    startup = time.perf_counter() - w0
    subprocess.run(["rm", "-rf", warm], check=False)
    out = os.path.join(job["dir"], "incidents.jsonl")
    started = time.perf_counter()
    episodes = ["--episodes", os.devnull] if job.get("episodes") else []  # outage episodes grouped too (#21)
    rc = main(
        ["replay", job["dir"], "-o", out, "-q", "--no-progress", "--workers", str(job.get("workers", 1)), *episodes]
    )
    seconds = time.perf_counter() - started
    if rc:
        raise RuntimeError(f"replay exited {rc}")
    causes = _causes(out)
    os.unlink(out)
    return {
        "seconds": seconds,
        "startup": startup,
        "incidents": sum(causes.values()),
        "causes": causes,
        "maxrss_mb": max(_maxrss_mb(), _maxrss_mb(resource.RUSAGE_CHILDREN)),
    }


def child_parse(job: dict[str, Any]) -> dict[str, Any]:
    from processor.cli.main import build_parser
    from processor.io.discovery import discover
    from processor.runners.replay import block_lines, parse_file, plan_inputs
    from processor.runners.settings import build_pipeline

    args = build_parser().parse_args(["replay", job["dir"], "-q", "-o", os.devnull])
    pipeline, knowledge = build_pipeline(args, emit_events=False, episodes=False)
    plans = plan_inputs(
        pipeline,
        discover([job["dir"]]),
        format_by_path=knowledge.format_by_path,
        forced_format=knowledge.forced_format,
    )
    size = block_lines(plans)
    started = time.perf_counter()
    items = 0
    for plan in plans:
        for _ in parse_file(pipeline, plan, [0], size):
            items += 1
    return {"seconds": time.perf_counter() - started, "items": items, "maxrss_mb": _maxrss_mb()}


def child_hot(job: dict[str, Any]) -> dict[str, Any]:
    import gc

    from bench_pipeline_hot import _Rec, handle

    from processor.io.kafka.inputs import InputReader
    from processor.runners.service import pipeline_factory
    from processor.runners.service_config import load_config

    cfg = load_config(None, ["kafka.bootstrap_servers=127.0.0.1:1", *_sets({s: s for s in STREAMS})], environ={})
    new_pipeline, forced = pipeline_factory(cfg)
    readers = {s: InputReader(cfg.inputs[i], cfg.delivery.max_record_bytes, forced) for i, s in enumerate(STREAMS)}
    lines, index, _ = streams(job["n"], share=job["share"], kind=job["kind"], density=job["density"], seed=job["seed"])
    records = {s: [_Rec(s, 0, off, line.encode()) for off, line in enumerate(lines[s])] for s in STREAMS}
    # polls: 2000 access records, with the error and FPM records written up to the same request
    polls: list[tuple[str, list[Any]]] = []
    cursor = {s: 0 for s in STREAMS}
    for at in range(0, job["n"], 2000):
        end = min(at + 2000, job["n"])
        for s in ("error", "fpm"):
            j = cursor[s]
            while j < len(index[s]) and index[s][j] < end:
                j += 1
            if j > cursor[s]:
                polls.append((s, records[s][cursor[s] : j]))
            cursor[s] = j
        polls.append(("access", records["access"][at:end]))
    for s in ("error", "fpm"):
        if cursor[s] < len(records[s]):
            polls.append((s, records[s][cursor[s] :]))
    gc.collect()  # the collector as Service.run sets it
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    pipeline = new_pipeline()
    started = time.perf_counter()
    incidents = dead = 0
    for stream, batch in polls:
        got = handle(pipeline, readers[stream], batch)
        incidents, dead = incidents + got[0], dead + got[1]
    incidents += sum(1 for out in pipeline.flush() if out.kind == "incident")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "incidents": incidents, "dead": dead, "maxrss_mb": _maxrss_mb()}


def child_run(job: dict[str, Any]) -> dict[str, Any]:
    import threading

    from bench_kafka_bare import create_topics
    from bench_service import _position

    from processor.io.log import configure
    from processor.runners.service import Service
    from processor.runners.service_config import load_config

    configure(json=True)
    tag = uuid.uuid4().hex[:8]
    outs = [f"bench-outage-incidents-{tag}", f"bench-outage-dead-{tag}"]
    create_topics(job["bootstrap"], outs)
    sets = _sets(job["topics"]) + [
        f"kafka.client={job['client']}",
        f"kafka.bootstrap_servers={job['bootstrap']}",
        f"kafka.group_id=bench-outage-{tag}",
        f"outputs.incidents_topic={outs[0]}",
        f"outputs.dead_letter_topic={outs[1]}",
    ]
    service = Service(load_config(None, sets, environ={}))
    thread = threading.Thread(target=service.run, name="badgateway-run")
    thread.start()
    total = job["lines"]
    started = 0.0
    deadline = time.monotonic() + job["timeout"]
    try:
        while _position(service) < total:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"service got {_position(service)} of {total} records")
            if not started and service.totals.records_in:
                started = time.perf_counter()
            time.sleep(0.01 if started else 0.002)
        seconds = time.perf_counter() - started
    finally:
        service.stop()
        thread.join()
    dead = service.totals.lines_dead_lettered + service.totals.envelope_dead_letters
    return {"seconds": seconds, "incidents": service.totals.incidents, "dead": dead, "maxrss_mb": _maxrss_mb()}


CHILDREN = {"parse": child_parse, "replay": child_replay, "hot": child_hot, "run": child_run}


def child_main(spec: str) -> None:
    job = json.loads(spec)
    try:
        result = CHILDREN[job["what"]](job)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which prints it in the cell
        result = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    sys.stdout.flush()
    print("\n@@RESULT " + json.dumps(result))


# ----------------------------------------------------------------------------------------------- parent side


def run_child(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(REPO),
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {timeout:.0f}s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("@@RESULT "):
            return json.loads(line[len("@@RESULT ") :])  # type: ignore[no-any-return]
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": f"exit {proc.returncode}: {tail[0][:200]}"}


def bare(paths: dict[str, str]) -> tuple[int, float]:
    """bench_replay.py's bare loop over the three files: (lines, wall seconds); best of three."""
    best = float("inf")
    n = 0
    for _ in range(3):
        n = 0
        started = time.perf_counter()
        for stream in STREAMS:
            match = BARE[stream].match
            with open(paths[stream], encoding="utf-8", errors="surrogateescape") as fh:
                for line in fh:
                    m = match(line)
                    if m is not None:
                        m.groupdict()
                    n += 1
        best = min(best, time.perf_counter() - started)
    return n, best


def _file_lines(paths: dict[str, str]) -> dict[str, list[bytes]]:
    out = {}
    for s in STREAMS:
        with open(paths[s], "rb") as fh:
            out[s] = [line.rstrip(b"\n") for line in fh]
    return out


def _k(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def _share(s: float) -> str:
    return f"{s * 100:g} %"


class Matrix:
    def __init__(self, drivers: list[str]) -> None:
        self.drivers = drivers
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    @staticmethod
    def cell(row: dict[str, Any], d: str) -> str:
        r = row["results"].get(d)
        if r is None:
            return "—"
        one = r.get(1)
        if one is None or "error" in one:
            return "ERR " + (one or {}).get("error", "?")[:40] if one is not None else "—"
        rate = one["lines"] / one["seconds"]
        text = f"{_k(rate)}/s {rate / row['bare_rate']:.2f}×"
        two = r.get(2)
        if two is not None and "error" not in two:
            text += f" d{two['seconds'] / one['seconds']:.2f}"
        elif two is not None:
            text += " d?"
        return text

    def print(self) -> None:
        heads = ["kind", "dens/s", "fail", "lines N", "bare regex", *self.drivers]
        table = [heads]
        for row in self.rows:
            table.append(
                [
                    row["kind"],
                    f"{row['density']:g}",
                    _share(row["share"]),
                    f"{row['lines'][1]:,}",
                    f"{_k(row['bare_rate'])}/s",
                    *[self.cell(row, d) for d in self.drivers],
                ]
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(heads))]
        for j, r in enumerate(table):
            print("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
            if j == 0:
                print("  ".join("-" * w for w in widths))

    def print_times(self) -> None:
        print(
            "\ndoubling detail: t(N) → t(2N) seconds per driver (lines N → 2N); replay's fixed cost per invocation "
            "(a 50-line replay first, untimed in the cells) in brackets"
        )
        for row in self.rows:
            parts = []
            for d in self.drivers:
                r = row["results"].get(d) or {}
                one, two = r.get(1), r.get(2)
                if one is None or "error" in one:
                    continue
                t2 = f"{two['seconds']:.3f}" if two and "error" not in two else (two or {}).get("error", "—")
                warm = f" (+{one['startup']:.2f} warm-up)" if "startup" in one else ""
                size = f" [{one['lines']:,} lines]" if one["lines"] != row["lines"][1] else ""
                parts.append(f"{d} {one['seconds']:.3f} → {t2}{warm}{size}")
            print(
                f"  {row['kind']:<10} {row['density']:>6g}/s {_share(row['share']):>6} "
                f"({row['lines'][1]:,} → {row['lines'].get(2, 0):,}): " + "; ".join(parts)
            )

    def print_causes(self) -> None:
        print("\ncauses (replay at N) against the causes the generated evidence calls for:")
        for row in self.rows:
            r = (row["results"].get("replay") or {}).get(1)
            if r is None or "error" in r:
                continue
            want = Counter(row["expected"])
            got = Counter(r["causes"])
            verdict = "ok" if got == want else "MISMATCH"
            extra = ""
            if got != want:
                extra = f"  want {dict(sorted(want.items()))}  got {dict(sorted(got.items()))}"
            counts = []
            for d in self.drivers:
                if d == "replay":
                    continue
                o = (row["results"].get(d) or {}).get(1)
                if o and "error" not in o and "incidents" in o and o["incidents"] != o["want"]:
                    counts.append(f"{d} gave {o['incidents']} incidents (want {o['want']})")
                if o and o.get("dead"):
                    counts.append(f"{d} dead-lettered {o['dead']}")
            print(
                f"  {row['kind']:<10} {row['density']:>6g}/s {_share(row['share']):>6}: {verdict}{extra}"
                + ("  | " + "; ".join(counts) if counts else "")
            )

    def print_errors(self) -> None:
        seen = set()
        for row in self.rows:
            for d, r in row["results"].items():
                for size, o in r.items():
                    if o and "error" in o and o["error"] not in seen:
                        seen.add(o["error"])
                        print(
                            f"\n{d} at {row['kind']}/{row['density']:g}/{_share(row['share'])} (size {size}N): "
                            f"{o['error']}"
                        )
                        if o.get("trace"):
                            print("    " + "\n    ".join(o["trace"].strip().splitlines()[-6:]))


def kafka_available() -> str | None:
    """None if a broker can be started here, else why not."""
    try:
        import kafka  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return "kafka-python is not installed"
    from tests.fixtures.kafka import fetch_broker_jars

    try:
        fetch_broker_jars()
    except Exception as exc:  # noqa: BLE001
        return (
            f"no broker jars ({str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}); "
            "run `bash scripts/kafka.sh fetch`"
        )
    return None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="a small subset: ~1-2 minutes")
    ap.add_argument("--drivers", help=f"comma-separated, of {','.join(DRIVERS)} (default: all)")
    ap.add_argument("--shares", help="failure shares, comma-separated, 0..1 (default 0,0.01,0.033,0.3,1)")
    ap.add_argument("--kinds", help=f"of {','.join(ALL_KINDS)} (default: all; --quick: mix)")
    ap.add_argument("--densities", help="requests/s of event time (default 200,2000)")
    ap.add_argument(
        "-n",
        "--requests",
        type=int,
        help="N, requests per cell (default 50000; --quick 1500); the doubling column also runs 2N",
    )
    ap.add_argument("--no-doubling", action="store_true", help="run N only")
    ap.add_argument(
        "--kafka-requests",
        type=int,
        help="N of the Kafka drivers (default: N; --quick 5000, as a run of 1500 is over in 10 ms)",
    )
    ap.add_argument("--kafka-kinds", help="kinds the Kafka drivers run (default mix)")
    ap.add_argument("--kafka-shares", help="shares the Kafka drivers run (default all; --quick 0.033,1)")
    ap.add_argument("--kafka-densities", help="densities the Kafka drivers run (default all; --quick 200)")
    ap.add_argument("--bootstrap", help="an existing broker for the Kafka drivers (default: start one)")
    ap.add_argument(
        "--memory-lines",
        type=int,
        help="lines of each log set of the peak-memory comparison, 1 %% vs 100 %% failing (default 1000000; "
        "--quick 100000; 0 = skip)",
    )
    ap.add_argument("--memory-kinds", default="mix", help="kinds of the memory comparison (default mix)")
    ap.add_argument("--cell-timeout", type=float, help="seconds per measurement (default 600; --quick 60)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--episodes", action="store_true", help="replay also groups outage episodes (--episodes)")
    args = ap.parse_args(argv)
    if args.child:
        child_main(args.child)
        return

    def floats(text: str | None, default: tuple[float, ...]) -> list[float]:
        return [float(x) for x in text.split(",") if x] if text else list(default)

    def names(text: str | None, default: tuple[str, ...], known: tuple[str, ...], what: str) -> list[str]:
        got = [x for x in text.split(",") if x] if text else list(default)
        bad = [x for x in got if x not in known]
        if bad:
            ap.error(f"--{what}: unknown {bad}; known: {', '.join(known)}")
        return got

    quick = args.quick
    drivers = names(args.drivers, DRIVERS, DRIVERS, "drivers")
    shares = floats(args.shares, SHARES)
    kinds = names(args.kinds, ("mix",) if quick else ALL_KINDS, ALL_KINDS, "kinds")
    densities = floats(args.densities, DENSITIES)
    n = args.requests or (1500 if quick else 50_000)
    k_kinds = names(args.kafka_kinds, ("mix",), ALL_KINDS, "kafka-kinds")
    k_shares = floats(args.kafka_shares, (0.033, 1.0) if quick else SHARES)
    k_densities = floats(args.kafka_densities, (200.0,) if quick else DENSITIES)
    kafka_n = args.kafka_requests or (5_000 if quick else n)
    mem_lines = args.memory_lines if args.memory_lines is not None else (100_000 if quick else 1_000_000)
    mem_kinds = names(args.memory_kinds, ("mix",), ALL_KINDS, "memory-kinds")
    timeout = args.cell_timeout or (60.0 if quick else 600.0)
    sizes = (1,) if args.no_doubling else (1, 2)

    kafka_drivers = [d for d in drivers if d in KAFKA_CLIENT]
    if kafka_drivers and not args.bootstrap:
        why = kafka_available()
        if why is not None:
            print(f"skipping {', '.join(kafka_drivers)}: {why}")
            drivers = [d for d in drivers if d not in KAFKA_CLIENT]
            kafka_drivers = []
    if "run-confluent" in kafka_drivers:
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:
            print("skipping run-confluent: confluent-kafka is not installed (pip install 'badgateway[confluent]')")
            drivers.remove("run-confluent")
            kafka_drivers.remove("run-confluent")

    print(
        f"outage matrix: N = {n:,} requests per cell{' and 2N' if len(sizes) > 1 else ''}; drivers "
        f"{', '.join(drivers)}; kinds {', '.join(kinds)}; shares {', '.join(_share(s) for s in shares)}; "
        f"densities {', '.join(f'{d:g}' for d in densities)}/s; CPUs {os.cpu_count()}"
    )
    if kafka_drivers:
        print(
            f"  Kafka drivers at N = {kafka_n:,}, kinds {', '.join(k_kinds)}, shares {', '.join(_share(s) for s in k_shares)}, "
            f"densities {', '.join(f'{d:g}' for d in k_densities)}/s"
        )
    started = time.perf_counter()

    broker_cm = None
    bootstrap = args.bootstrap
    if kafka_drivers and not bootstrap:
        from bench_kafka_bare import local_broker

        broker_cm = local_broker()
        bootstrap = broker_cm.__enter__()
    try:
        matrix = Matrix(drivers)
        with tempfile.TemporaryDirectory(prefix="bench-outage-") as tmp:
            for kind in kinds:
                for density in densities:
                    for share in shares:
                        kafka = kind in k_kinds and density in k_densities and share in k_shares
                        matrix.add(
                            one_cell(
                                tmp,
                                kind,
                                density,
                                share,
                                n,
                                sizes,
                                drivers,
                                bootstrap,
                                timeout,
                                args.seed,
                                kafka_n if kafka else 0,
                                episodes=args.episodes,
                            )
                        )
            print()
            print(
                "cells: lines/s at N (all three logs), × = share of the bare-regex ceiling's lines/s in this "
                "run, d = t(2N)/t(N) (2.00 = linear)"
            )
            matrix.print()
            matrix.print_times()
            matrix.print_causes()
            if mem_lines:
                print(
                    f"\npeak memory of replay (ru_maxrss of a child process), ~{mem_lines:,} lines each, 200 requests/s:"
                )
                for kind in mem_kinds:
                    line = []
                    for share in (0.01, 1.0):
                        d = os.path.join(tmp, f"mem-{kind}-{share}")
                        # as many requests as make the lines (a failed request writes two or three)
                        pilot = generate(d, 2_000, share, kind, 200.0, args.seed)
                        requests = round(mem_lines * 2_000 / pilot.total_lines)
                        out = generate(d, requests, share, kind, 200.0, args.seed)
                        r = run_child({"what": "replay", "dir": d}, timeout * 4)
                        line.append(
                            f"{_share(share)}: "
                            + (
                                f"{r['maxrss_mb']:.0f} MB ({requests:,} requests, {out.total_lines:,} lines, "
                                f"{r['seconds']:.1f}s)"
                                if "error" not in r
                                else r["error"]
                            )
                        )
                        subprocess.run(["rm", "-rf", d], check=False)
                    print(f"  {kind:<10} " + "  vs  ".join(line))
            matrix.print_errors()
    finally:
        if broker_cm is not None:
            broker_cm.__exit__(None, None, None)
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


def one_cell(
    tmp: str,
    kind: str,
    density: float,
    share: float,
    n: int,
    sizes: tuple[int, ...],
    drivers: list[str],
    bootstrap: str | None,
    timeout: float,
    seed: int,
    kafka_n: int,
    *,
    episodes: bool = False,
) -> dict[str, Any]:
    """One row of the matrix: the in-process drivers at N (and 2N), the Kafka drivers at ``kafka_n`` (and 2×)."""
    row: dict[str, Any] = {"kind": kind, "density": density, "share": share, "lines": {}, "results": {}}
    t0 = time.perf_counter()
    local = [dr for dr in drivers if dr not in KAFKA_CLIENT]
    remote = [dr for dr in drivers if dr in KAFKA_CLIENT] if kafka_n and bootstrap else []
    for size in sizes:
        for base, group in ((n, local), (kafka_n, remote)):
            if not group:
                continue
            d = os.path.join(tmp, f"{kind}-{density:g}-{share:g}-{base * size}")
            out = generate(d, base * size, share, kind, density, seed)
            if base == n:
                row["lines"][size] = out.total_lines
                if size == 1:
                    row["expected"] = dict(out.expected_causes())
                    lines, bare_s = bare(out.paths)
                    row["bare_rate"] = lines / bare_s
            topics: dict[str, str] | None = None
            if group is remote:
                assert bootstrap is not None
                from bench_kafka_bare import create_topics, load_topic

                tag = uuid.uuid4().hex[:8]
                topics = {s: f"bench-outage-{s}-{tag}" for s in STREAMS}
                create_topics(bootstrap, list(topics.values()))
                for s, values in _file_lines(out.paths).items():
                    load_topic(bootstrap, topics[s], values)
            for dr in group:
                prev = row["results"].get(dr, {}).get(1)
                if size > 1 and (prev is None or "error" in prev):
                    continue  # no doubling after a failure or a timeout at N
                if dr == "parse":
                    job: dict[str, Any] = {"what": "parse", "dir": d}
                elif dr in ("replay", "workers"):
                    job = {
                        "what": "replay",
                        "dir": d,
                        "workers": 2 if dr == "workers" else 1,
                        "episodes": episodes,
                    }
                elif dr == "hot":
                    job = {
                        "what": "hot",
                        "n": base * size,
                        "share": share,
                        "kind": kind,
                        "density": density,
                        "seed": seed,
                    }
                else:
                    job = {
                        "what": "run",
                        "client": KAFKA_CLIENT[dr],
                        "bootstrap": bootstrap,
                        "topics": topics,
                        "lines": out.total_lines,
                        "timeout": timeout,
                    }
                result = run_child(job, timeout + 30)
                result["lines"] = out.total_lines
                result["want"] = sum(out.failures.values())
                row["results"].setdefault(dr, {})[size] = result
            subprocess.run(["rm", "-rf", d], check=False)
    summary = " ".join(f"{dr}={Matrix.cell(row, dr)}" for dr in drivers if dr in row["results"])
    print(f"  {kind:<10} {density:>6g}/s {_share(share):>6}  [{time.perf_counter() - t0:5.1f}s]  {summary}", flush=True)
    return row


if __name__ == "__main__":
    main()
