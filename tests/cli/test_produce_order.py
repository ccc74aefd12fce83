"""`badgateway produce` sends the files as a shipper tailing them live would: merged in event time, each file in
its own order. File after file, one partition would carry the second access log's first lines far behind the
first one's last (the quick start's incidents then depended on which topic the service fetched first)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from processor.cli.produce import shipping_order
from processor.core.events import Event, Record, SourceRef
from processor.io.discovery import discover
from processor.io.files import open_lines
from processor.pipeline import Pipeline, PipelineSettings
from processor.runners.replay import Plan, plan_inputs

REPO = Path(__file__).resolve().parents[2]
LATENESS_MS = 5_000  # diagnosis.allowed_lateness_s's default


def example_plans(pipeline: Pipeline) -> list[Plan]:
    return plan_inputs(pipeline, discover([str(REPO / "examples/lab/logs")]), host="x")


def event_ms(pipeline: Pipeline, plan: Plan, raw: bytes) -> int | None:
    record = Record(raw.decode("utf-8", "surrogateescape"), SourceRef("t", 1), plan.log_type, "x", plan.access_format)
    parsed = pipeline.parser.parse(record)
    return parsed.ts_ms if isinstance(parsed, Event) else None


def test_every_line_goes_once_and_each_file_in_its_own_order() -> None:
    pipeline = Pipeline(PipelineSettings())
    plans = example_plans(pipeline)
    sent: dict[str, list[bytes]] = defaultdict(list)
    for plan, raw in shipping_order(pipeline, plans):
        sent[plan.file.display].append(raw)
    assert len(sent) == len(plans) >= 6
    for plan in plans:
        assert sent[plan.file.display] == [raw for _, raw in open_lines(plan.file)]


def test_each_log_type_is_sent_in_event_time() -> None:
    pipeline = Pipeline(PipelineSettings())
    plans = example_plans(pipeline)
    newest: dict[str | None, int] = {}
    behind = 0
    for plan, raw in shipping_order(pipeline, plans):
        ts = event_ms(pipeline, plan, raw)
        if ts is None:
            continue
        if ts < newest.get(plan.log_type, ts):
            behind = max(behind, newest[plan.log_type] - ts)
        newest[plan.log_type] = max(newest.get(plan.log_type, ts), ts)
    # at most the out-of-order a log writes itself (NGINX workers, PHP-FPM pools), well inside the lateness
    assert behind < LATENESS_MS


def test_file_after_file_would_have_been_late() -> None:
    # the reason for the merge: the second access log of the example starts a minute behind the first one's end
    pipeline = Pipeline(PipelineSettings())
    access = [p for p in example_plans(pipeline) if p.log_type == "nginx_access"]
    assert len(access) == 2
    times = [[t for _, raw in open_lines(p.file) if (t := event_ms(pipeline, p, raw)) is not None] for p in access]
    assert max(times[0]) - min(times[1]) > LATENESS_MS
