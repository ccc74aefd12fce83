"""Outage complexity (issue #23): the work per failure is bounded, however many failures and how much PHP-FPM
evidence one window holds. Operation counts, never timings: the evidence index counts the entries it compares
(``EvidenceIndex.examined``), and the test holds every failure and its evidence in one window until the end.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from processor.core.events import NGINX_ACCESS, NGINX_ERROR, PHP_FPM, Record, SourceRef
from processor.diagnosis.join import JoinSettings
from processor.io.sinks import MemorySink
from processor.pipeline import Pipeline, PipelineSettings
from processor.runners.replay import plan_inputs, replay
from tests.diagnosis.outage_logs import KINDS, outage

# nothing closes before the end: every failure and all its evidence sit in one window
ONE_WINDOW = JoinSettings(allowed_lateness_ms=10**9, idle_timeout_ms=10**9, max_jump_ms=10**10)


def _run(
    requests: int, per_second: int, kinds: tuple[str, ...] = KINDS, bare_every: int = 7, reuse_pids: int = 0
) -> tuple[Pipeline, list[dict[str, object]]]:
    logs = outage(requests, per_second=per_second, kinds=kinds, bare_every=bare_every, reuse_pids=reuse_pids)
    pipeline = Pipeline(PipelineSettings(join=ONE_WINDOW))
    outputs = []
    for name, log_type, lines in (
        ("access.log", NGINX_ACCESS, logs.access),
        ("error.log", NGINX_ERROR, logs.error),
        ("php-fpm.log", PHP_FPM, logs.fpm),
    ):
        for n, line in enumerate(lines, 1):
            outputs += pipeline.feed(Record(line, SourceRef(name, n), log_type, "web-1"))
    assert not outputs  # still all held
    held = pipeline.join.state_size
    assert held >= 2 * logs.failures  # the failures, their error entries and their evidence: one window
    incidents = [o.value for o in pipeline.flush() if o.kind == "incident"]
    assert len(incidents) == logs.failures
    return pipeline, incidents


def _examined_per_failure(pipeline: Pipeline, failures: int) -> float:
    host = pipeline.join._hosts["web-1"]
    return host.evidence.examined / failures


@pytest.mark.parametrize("kinds", [("timeout",), ("segfault",), KINDS], ids=["timeouts", "segfaults", "mix"])
def test_evidence_examined_per_failure_is_bounded_in_one_window(kinds: tuple[str, ...]) -> None:
    # 10,000 failures in 5 s, each with its PHP-FPM lines, all held together: a scan would compare each
    # failure with every line (20,000 for timeouts); the index compares a handful per list it asks
    big, incidents = _run(10_000, 2_000, kinds)
    per_failure = _examined_per_failure(big, 10_000)
    assert per_failure < 40, per_failure
    # and it does not grow with the window: a tenth of the outage costs the same per failure
    small, _ = _run(1_000, 2_000, kinds)
    assert per_failure <= _examined_per_failure(small, 1_000) * 1.25 + 1
    causes = Counter(i["badgateway"]["cause"] for i in incidents)  # type: ignore[index]
    expected = {
        "timeout": "fpm_timeout",
        "segfault": "child_crash",
        "socket": "socket_missing",
        "saturated": "pool_saturated",
        "nginx_504": "nginx_timeout",
    }
    assert causes == Counter({expected[k]: 10_000 // len(kinds) for k in kinds})


def test_a_pool_reusing_its_pids_costs_the_same_per_failure() -> None:
    # pm.max_children = 5: the same five pids time out and are reaped dozens of times a second. Each timeout
    # used to take every exit of its pid's second (and give them back to the next): quadratic in the rate
    big, incidents = _run(10_000, 2_000, ("timeout", "segfault"), bare_every=0, reuse_pids=5)
    per_failure = _examined_per_failure(big, 10_000)
    assert per_failure < 40, per_failure
    small, _ = _run(1_000, 2_000, ("timeout", "segfault"), bare_every=0, reuse_pids=5)
    assert per_failure <= _examined_per_failure(small, 1_000) * 1.25 + 1
    assert Counter(i["badgateway"]["cause"] for i in incidents) == {"fpm_timeout": 5_000, "child_crash": 5_000}  # type: ignore[index]
    for inc in incidents:
        fpm = inc["evidence"]["php_fpm"]  # type: ignore[index]
        if fpm[0]["fields"]["kind"] == "timed_out":
            # its own request's timeout, and the SIGTERM logged right after it: the exit of its own child
            assert fpm[0]["fields"]["uri"] == inc["url"]["original"]  # type: ignore[index]
            assert [e["fields"]["kind"] for e in fpm] == ["timed_out", "exited_signal"], fpm
            timeout_line = int(fpm[0]["source"].rpartition(":")[2])
            assert fpm[1]["source"].endswith(f":{timeout_line + 1}"), fpm


def test_each_timeout_explains_its_own_request() -> None:
    # the URI with its query identifies the request: each incident carries the timeout line of its own id,
    # and the SIGTERM that ended that child, never another request's. (A bare `GET /` cannot be told apart
    # from the other requests of its second: it takes the best-ranked line left, possibly another's.)
    _, incidents = _run(3_000, 2_000, ("timeout",), bare_every=0)
    for inc in incidents:
        uri = inc["url"]["original"]  # type: ignore[index]
        fpm = inc["evidence"]["php_fpm"]  # type: ignore[index]
        assert [e["fields"]["kind"] for e in fpm] == ["timed_out", "exited_signal"]
        assert fpm[0]["fields"]["child_pid"] == fpm[1]["fields"]["child_pid"]
        if "?" in uri:
            assert fpm[0]["fields"]["uri"] == uri
    pids = [inc["evidence"]["php_fpm"][0]["fields"]["child_pid"] for inc in incidents]  # type: ignore[index]
    assert len(set(pids)) == len(pids)  # no line explains two failures


def test_watermark_is_asked_again_only_when_it_may_have_moved(tmp_path: Path) -> None:
    # a replay of an outage at 200 requests/s: windows close all along, and nearly every event finds one due
    # against the most advanced stream. The watermark (the slowest stream) moves once a second of event time:
    # asked after every such event, its heap looked at ~0.3 stream clocks per event; asked only when one of
    # its inputs changed, a few per second of event time
    logs = outage(4_000, per_second=200)
    logs.write(str(tmp_path))
    pipeline = Pipeline(PipelineSettings())
    sink = MemorySink()
    replay(pipeline, plan_inputs(pipeline, [str(tmp_path)], host="web-1"), sink)
    assert len(sink.incidents) == logs.failures
    events = sum(pipeline.counters.events_by_type.values())
    assert pipeline.join.watermarks.examined / events < 0.05, pipeline.join.watermarks.examined / events
