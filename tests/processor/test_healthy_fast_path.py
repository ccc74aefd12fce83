"""The healthy-access shortcut (``Pipeline.feed`` / ``feed_lines`` → ``RecordParser.healthy_access_line_ms`` →
``join.process_healthy``) changes nothing but speed: on real access lines it answers only where ``parse`` gives a healthy event of the same
time, and a pipeline with the shortcut gives the outputs and counters of one without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.configs import load_knowledge
from processor.events import FAILURE_STATUSES, NGINX_ACCESS, Event, Record, SourceRef
from processor.parse import ParseSettings, RecordParser
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
            if isinstance(event, Event) and event.fields.get("status") not in FAILURE_STATUSES \
                    and combined.fast.pattern.match(record.text):
                healthy += 1
                answered += parser.healthy_access_line_ms(record.text, record.host,
                                                          record.access_format) is not None
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
    assert [(o.kind, o.value if o.kind != "dead_letter" else str(o.value)) for o in fast_out] == \
        [(o.kind, o.value if o.kind != "dead_letter" else str(o.value)) for o in slow_out]
    assert sum(o.kind == "incident" for o in fast_out) > 10


def test_feed_lines_gives_what_feed_gives_record_by_record() -> None:
    # one partition's worth of access lines: healthy, failing, garbage, blank, a JSON line, a prefixed line, a
    # late line and one far in the future; then the same through feed(); outputs, their positions and counters
    settings = PipelineSettings(parse=ParseSettings(formats=_lab_formats()))  # type: ignore[arg-type]
    texts = [r.text for r in _records(LAB / "logs" / "access_combined.log", "combined")]
    for path in COMBINED[:6]:
        texts += [r.text for r in _records(path, None)]
    texts += ["", "   ", "garbage line", '{"status": 200}', texts[0].replace("2026", "2036"),
              "web_1  | " + texts[1], texts[2]]
    lines = [(1000 + i, text, "web-1" if i % 3 else None) for i, text in enumerate(texts)]
    for fmt in ("combined", None):
        a = Pipeline(settings)
        got = a.feed_lines("access", 4, NGINX_ACCESS, fmt, lines) + [(len(lines), a.flush())]
        b = Pipeline(settings)
        want = [(i, outs) for i, (off, text, host) in enumerate(lines)
                if (outs := b.feed(Record(text, SourceRef("access", off, 4), NGINX_ACCESS, host, fmt)))]
        want.append((len(lines), b.flush()))
        assert a.counters == b.counters
        assert a.held_offsets() == b.held_offsets()
        assert [(i, [(o.kind, str(o.value)) for o in outs]) for i, outs in got] == \
            [(i, [(o.kind, str(o.value)) for o in outs]) for i, outs in want]
        assert sum(o.kind == "incident" for _, outs in got for o in outs) >= 3
        assert sum(o.kind == "dead_letter" for _, outs in got for o in outs) >= 2
