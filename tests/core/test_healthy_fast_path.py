"""The healthy-access shortcuts change nothing but speed: ``Pipeline.feed`` / ``feed_lines`` →
``RecordParser.healthy_access_line_ms`` → ``join.process_healthy``, and ``Pipeline.feed_block`` (one regex pass over
a poll's lines) → ``join.process_healthy_run``. On real access lines the probe answers only where ``parse`` gives a
healthy event of the same time, and a pipeline with a shortcut gives the outputs and counters of one without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.configs.knowledge import load_knowledge
from processor.core.events import FAILURE_STATUSES, NGINX_ACCESS, Event, Record, SourceRef
from processor.core.parse import ParseSettings, RecordParser
from processor.pipeline import Output, Pipeline, PipelineSettings

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus" / "nginx-access"
LAB = ROOT.parent / "examples" / "lab"
# plain combined-format files of the real-world corpus (custom formats and JSON lines have no shortcut to test)
COMBINED = sorted(p for p in CORPUS.glob("*.log") if ".custom." not in p.name and ".json." not in p.name)


def _records(path: Path, fmt: str | None, host: str = "web-1") -> list[Record]:
    lines = path.read_text(errors="surrogateescape").splitlines()
    return [Record(line, SourceRef(path.name, i + 1), NGINX_ACCESS, host, fmt) for i, line in enumerate(lines)]


def _lab_formats() -> dict[str, object]:
    return dict(load_knowledge(str(LAB / "conf" / "nginx.conf"), []).formats)


@pytest.mark.parametrize("path", COMBINED, ids=lambda p: p.name)
def test_the_probe_answers_only_where_parse_gives_a_healthy_event_of_that_time(path: Path) -> None:
    parser = RecordParser(ParseSettings())
    answered = 0
    for record in _records(path, None):
        fast = parser.healthy_access_line_ms(record.text, record.host, record.access_format)
        if fast is None:
            continue
        answered += 1
        event = parser.parse(record)
        assert isinstance(event, Event), (record.source, event)
        assert event.log_type == NGINX_ACCESS and event.ts_ms == fast, record.source
        assert event.fields["status"] not in FAILURE_STATUSES, record.source


def test_the_probe_answers_for_every_healthy_line_in_the_format_it_was_given() -> None:
    # lines with more fields than "combined" (detected as another format by parse) are parse's to decide
    parser = RecordParser(ParseSettings())
    combined = parser.format_named("combined")
    assert combined is not None and combined.fast is not None
    healthy = answered = 0
    for path in COMBINED:
        for record in _records(path, None):
            event = parser.parse(record)
            if (
                isinstance(event, Event)
                and event.fields.get("status") not in FAILURE_STATUSES
                and combined.fast.pattern.match(record.text)
            ):
                healthy += 1
                answered += parser.healthy_access_line_ms(record.text, record.host, record.access_format) is not None
    assert healthy > 100 and answered == healthy, (answered, healthy)


def _run(records: list[Record], settings: PipelineSettings, shortcut: bool) -> tuple[list[Output], object]:
    pipeline = Pipeline(settings)
    pipeline._healthy_fast = shortcut and pipeline._healthy_fast
    out = [o for r in records for o in pipeline.feed(r)] + pipeline.flush()
    return out, pipeline.counters


@pytest.mark.skipif(not (LAB / "logs" / "access.log").exists(), reason="the lab's recorded run is not here")
def test_a_pipeline_with_the_shortcut_gives_what_one_without_gives() -> None:
    # the lab's recording (every cause, its own log_format) and the real-world corpus, one stream each
    settings = PipelineSettings(parse=ParseSettings(formats=_lab_formats()))  # type: ignore[arg-type]
    records = _records(LAB / "logs" / "access.log", "lab", host="lab")
    records += _records(LAB / "logs" / "access_combined.log", "combined", host="lab")
    for path in COMBINED:
        records += _records(path, None, host=path.stem)
    error = (LAB / "logs" / "error.log").read_text().splitlines()
    records += [Record(line, SourceRef("error.log", i + 1), "nginx_error", "lab") for i, line in enumerate(error)]
    fast_out, fast_counters = _run(records, settings, True)
    slow_out, slow_counters = _run(records, settings, False)
    assert fast_counters == slow_counters
    assert [(o.kind, o.value if o.kind != "dead_letter" else str(o.value)) for o in fast_out] == [
        (o.kind, o.value if o.kind != "dead_letter" else str(o.value)) for o in slow_out
    ]
    assert sum(o.kind == "incident" for o in fast_out) > 10


def test_feed_lines_gives_what_feed_gives_record_by_record() -> None:
    # one partition's worth of access lines: healthy, failing, garbage, blank, a JSON line, a prefixed line, a
    # late line and one far in the future; then the same through feed(); outputs, their positions and counters
    settings = PipelineSettings(parse=ParseSettings(formats=_lab_formats()))  # type: ignore[arg-type]
    texts = [r.text for r in _records(LAB / "logs" / "access_combined.log", "combined")]
    for path in COMBINED[:6]:
        texts += [r.text for r in _records(path, None)]
    texts += [
        "",
        "   ",
        "garbage line",
        '{"status": 200}',
        texts[0].replace("2026", "2036"),
        "web_1  | " + texts[1],
        texts[2],
    ]
    lines = [(1000 + i, text, "web-1" if i % 3 else None) for i, text in enumerate(texts)]
    for fmt in ("combined", None):
        a = Pipeline(settings)
        got = a.feed_lines("access", 4, NGINX_ACCESS, fmt, lines) + [(len(lines), a.flush())]
        b = Pipeline(settings)
        want = [
            (i, outs)
            for i, (off, text, host) in enumerate(lines)
            if (outs := b.feed(Record(text, SourceRef("access", off, 4), NGINX_ACCESS, host, fmt)))
        ]
        want.append((len(lines), b.flush()))
        assert a.counters == b.counters
        assert a.held_offsets() == b.held_offsets()
        assert [(i, [(o.kind, str(o.value)) for o in outs]) for i, outs in got] == [
            (i, [(o.kind, str(o.value)) for o in outs]) for i, outs in want
        ]
        assert sum(o.kind == "incident" for _, outs in got for o in outs) >= 3
        assert sum(o.kind == "dead_letter" for _, outs in got for o in outs) >= 2


def _block_texts() -> list[str]:
    texts = [r.text for r in _records(LAB / "logs" / "access_combined.log", "combined")]
    for path in COMBINED[:6]:
        texts += [r.text for r in _records(path, None)]
    # blank-looking, garbage, JSON, far future, prefixed, an unclosed quote (its match would run into the next
    # line), a late line, invalid UTF-8 carried as surrogate escapes
    return texts + [
        "   ",
        "garbage line",
        '{"status": 200}',
        texts[0].replace("2026", "2036"),
        "web_1  | " + texts[1],
        texts[3].rsplit('"', 1)[0],
        texts[2],
        texts[4].replace("GET", "G\udcffT"),
    ]


@pytest.mark.parametrize("hosts", ["web-1", None, "per line"])
@pytest.mark.parametrize("fmt", ["combined", None])
def test_feed_block_gives_what_feed_gives_record_by_record(hosts: str | None, fmt: str | None) -> None:
    settings = PipelineSettings(parse=ParseSettings(formats=_lab_formats()))  # type: ignore[arg-type]
    texts = _block_texts()
    offsets = list(range(1000, 1000 + len(texts)))
    per_line = ["web-1" if i % 3 else None for i in range(len(texts))] if hosts == "per line" else None
    a = Pipeline(settings)
    got = a.feed_block("access", 4, NGINX_ACCESS, fmt, per_line or hosts, offsets, "\n".join(texts))
    assert got is not None
    b = Pipeline(settings)
    want = [
        (i, outs)
        for i, (off, text) in enumerate(zip(offsets, texts))
        if (
            outs := b.feed(
                Record(text, SourceRef("access", off, 4), NGINX_ACCESS, per_line[i] if per_line else hosts, fmt)
            )
        )
    ]
    got.append((len(texts), a.flush()))
    want.append((len(texts), b.flush()))
    assert a.counters == b.counters
    assert a.held_offsets() == b.held_offsets()
    # incidents come with the last line of the healthy run that closed them: the same outputs, in the same order
    assert [(o.kind, str(o.value)) for _, outs in got for o in outs] == [
        (o.kind, str(o.value)) for _, outs in want for o in outs
    ]
    # a dead letter comes with its own line (the service sends it with that record's key and headers)
    assert [(i, str(o.value)) for i, outs in got for o in outs if o.kind == "dead_letter"] == [
        (i, str(o.value)) for i, outs in want for o in outs if o.kind == "dead_letter"
    ]
    assert sum(o.kind == "incident" for _, outs in got for o in outs) >= 3
    assert sum(o.kind == "dead_letter" for _, outs in got for o in outs) >= 2


def test_feed_block_declines_without_a_scanner_and_with_events_on() -> None:
    texts = _block_texts()[:5]
    offsets = list(range(len(texts)))
    events = Pipeline(PipelineSettings(emit_events=True))
    assert events.feed_block("access", 0, NGINX_ACCESS, "combined", "h", offsets, "\n".join(texts)) is None
    plain = Pipeline(PipelineSettings())
    assert plain.feed_block("error", 0, "nginx_error", None, "h", offsets, "\n".join(texts)) is None
    assert plain.counters.lines_in == 0 and events.counters.lines_in == 0  # nothing fed


def test_a_run_of_healthy_lines_joins_as_the_lines_one_by_one() -> None:
    # process_healthy_run(…, count) against count × process_healthy, through lateness, far-future lines, jumps
    # to confirm, wall-clock ticks and the windows of failures held in between
    import random

    from processor.diagnosis.join import DiagnosisJoin, JoinSettings
    from processor.diagnosis.topology import Topology

    failures = [r for r in _records(LAB / "logs" / "access_combined.log", "combined")]
    parser = RecordParser(ParseSettings())
    events = [e for r in failures if isinstance(e := parser.parse(r), Event)]
    assert any(e.fields["status"] in FAILURE_STATUSES for e in events)
    rng = random.Random(7)
    for _ in range(30):
        # the same settings for both (a failure line chosen twice is two requests now: state can reach max_state)
        settings = JoinSettings(max_state=rng.choice([5, 10_000]))
        one, many = DiagnosisJoin(Topology(), settings), DiagnosisJoin(Topology(), settings)
        base = events[0].ts_ms
        for step in range(60):
            roll = rng.random()
            if roll < 0.15:
                event = rng.choice(events)
                assert [str(i) for i in one.process(event)] == [str(i) for i in many.process(event)]
            elif roll < 0.2:
                now = base + rng.randint(-5_000, 400_000)
                assert one.advance(now) == many.advance(now)
            else:
                stream = rng.choice(["a[0]", "b[1]"])
                ts = base + rng.choice([0, 1, 2]) * 1000 * step + rng.choice([0, -60_000, 7_200_000])
                count = rng.randint(1, 40)
                host = rng.choice(["web-1", "web-2"])
                got = many.process_healthy_run(stream, ts, NGINX_ACCESS, host, count)
                want = [i for _ in range(count) for i in one.process_healthy(stream, ts, NGINX_ACCESS, host)]
                assert [str(i) for i in got] == [str(i) for i in want]
            assert one.counters == many.counters and one.held_offsets() == many.held_offsets()
            assert one.watermarks == many.watermarks and one._wm == many._wm and one._late == many._late
        assert [str(i) for i in one.flush()] == [str(i) for i in many.flush()]
