"""Keep-alive (issue #19): several failed requests on one client connection are several incidents; a second
error line about the same request (the next upstream tried, `no live upstreams`) is still folded into one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from processor.diagnosis.join import DiagnosisJoin, JoinSettings
from tests.diagnosis.test_join import NO_CONFIGS, Message, error
from tests.diagnosis.test_join import access as _access

REFUSED = ("connect_failed", 111, "fastcgi://127.0.0.1:9000", "connecting to upstream")


def access(at: float, uri: str, **more: Any) -> Message:
    m = _access(at, uri, **more)
    return replace(m, raw=f"{m.raw} at {at}")  # each line its own (the same line twice is a resend)


def _incidents(messages: list[Message]) -> list[dict[str, object]]:
    join = DiagnosisJoin(NO_CONFIGS, JoinSettings())
    out = []
    for i, m in enumerate(sorted(messages, key=lambda m: m.at_s)):
        out += join.process(m.event(i + 1))
    return out + join.flush()


def test_ten_refused_requests_on_one_connection_are_ten_incidents() -> None:
    # `*3`, one request every half second, each with its access line and its error line
    messages = []
    for n in range(10):
        messages += [
            access(1.0 + n / 2, "/", connection=3),
            error(1.0 + n / 2, "/", *REFUSED, cid=3, target="127.0.0.1:9000"),
        ]
    out = _incidents(messages)
    assert len(out) == 10
    assert {i["badgateway"]["cause"] for i in out} == {"tcp_refused"}  # type: ignore[index]
    assert all(not i["evidence"].get("duplicates") for i in out)  # type: ignore[union-attr]


def test_without_connection_in_the_access_format_too() -> None:
    messages = []
    for n in range(4):
        messages += [access(1.0 + n, "/"), error(1.0 + n, "/", *REFUSED, cid=3, target="127.0.0.1:9000")]
    assert len(_incidents(messages)) == 4


def test_a_second_error_line_of_one_request_is_still_one_incident() -> None:
    # one request, two upstreams refused, then no live upstreams: one access line, three error lines
    out = _incidents(
        [
            access(1.0, "/", connection=5),
            error(1.0, "/", *REFUSED, cid=5, target="127.0.0.1:9000"),
            error(
                1.0,
                "/",
                "connect_failed",
                111,
                "fastcgi://127.0.0.1:9001",
                "connecting to upstream",
                cid=5,
                target="127.0.0.1:9001",
            ),
            error(1.0, "/", "no_live_upstreams", None, "fastcgi://php", "connecting to upstream", cid=5),
        ]
    )
    assert len(out) == 1 and len(out[0]["evidence"]["duplicates"]) == 2  # type: ignore[index,arg-type]


def test_error_lines_far_apart_are_never_merged_by_connection_id() -> None:
    # connection ids start again at 1 when nginx restarts: days apart, `*1` is another connection
    day_s = 86_400.0
    out = _incidents(
        [
            error(1.0, "/", *REFUSED, cid=1, target="127.0.0.1:9000"),
            error(1.0 + 210 * day_s, "/", *REFUSED, cid=1, target="127.0.0.1:9000"),
        ]
    )
    assert len(out) == 2


def test_without_an_access_log_the_same_failure_again_is_another_request() -> None:
    # only the error log: NGINX never tries one server twice for one request, so a second `connect() failed`
    # to the same upstream on `*3` is the connection's next request
    out = _incidents([error(1.0 + n / 2, "/", *REFUSED, cid=3, target="127.0.0.1:9000") for n in range(4)])
    assert len(out) == 4
