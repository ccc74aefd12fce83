"""A 502/504 the application answered itself (issue #19): PHP set the status, NGINX logged nothing. It gets
its own label and advice, never "ship the NGINX error log" when that log is shipped."""

from __future__ import annotations

from typing import Any

import pytest

from processor.diagnosis.join import DiagnosisJoin, JoinSettings
from tests.diagnosis.test_join import NO_CONFIGS, Message, access, error

ERROR_LOG_LIVE = error(
    0.5,
    "/other?id=1",
    "connect_failed",
    111,
    "fastcgi://127.0.0.1:9009",
    "connecting to upstream",
    target="127.0.0.1:9009",
)


def _causes(messages: list[Message]) -> dict[str, tuple[str, str]]:
    join = DiagnosisJoin(NO_CONFIGS, JoinSettings())
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        out += join.process(m.event(i + 1))
    out += join.flush()
    return {i["url"]["original"]: (i["badgateway"]["cause"], i["badgateway"]["remediation"]) for i in out}


@pytest.mark.parametrize(
    ("fields", "shipped", "cause"),
    [
        ({"upstream_status": [502], "upstream_addr": ["unix:/run/php/www.sock"]}, True, "app_answered"),
        (
            {"upstream_status": [504], "upstream_header_time": [0.0], "upstream_bytes_received": [310]},
            True,
            "app_answered",
        ),
        # NGINX made the 502 up (it read no header): an error entry is missing, not the application's answer
        ({"upstream_status": [502], "upstream_header_time": [None]}, True, "unknown"),
        ({"upstream_status": [502], "upstream_bytes_received": [0]}, True, "unknown"),
        ({"upstream_status": [502]}, False, "unknown"),  # no error log for this host: nothing to tell them apart
        ({}, True, "unknown"),  # no $upstream_status in the format
        ({"upstream_status": [502, 200]}, True, "unknown"),  # the last upstream tried is not the one that said 502
    ],
)
def test_the_applications_own_502(fields: dict[str, Any], shipped: bool, cause: str) -> None:
    status = fields.get("upstream_status", [502])[0]
    messages = [ERROR_LOG_LIVE] if shipped else []
    messages.append(access(2.0, "/appstatus.php?code=502", status=status if status in (502, 504) else 502, **fields))
    got, text = _causes(messages)["/appstatus.php?code=502"]
    assert got == cause
    if cause == "app_answered":
        assert "application answered" in text and "ship the NGINX error log" not in text
