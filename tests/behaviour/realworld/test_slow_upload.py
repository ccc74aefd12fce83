"""A failed upload is one request: its access line comes seconds after its error entry (recorded/PROVENANCE.md).

NGINX writes the access line when the request ends. When the upstream fails while the client is still sending
the body, NGINX reads the rest of it before it logs the 502: with a slow upload the access line is seconds after
the error entry, outside the 2 s match window. The one request used to give two incidents: the error entry's
(``fpm_timeout``, its status inferred) and the access line's (``unknown``). An error entry with no partner in the
window now pairs with the first later access line whose request was still open then: its ``$request_time`` says
so when the format logs it; a request with a body (POST, PUT, PATCH) may be as long as the join waits.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from processor.core.events import NGINX_ACCESS, NGINX_ERROR, Event, SourceRef
from processor.diagnosis.join import DiagnosisJoin
from processor.diagnosis.state import JoinSettings
from processor.diagnosis.topology import Topology
from tests.behaviour.realworld.harness import replay

RECORDED = Path(__file__).parent / "recorded" / "slow-upload"


@pytest.mark.parametrize("variant", ["combined", "timed"])
def test_the_recorded_slow_upload_is_one_fpm_timeout(tmp_path: Path, variant: str) -> None:
    folder = RECORDED / variant
    logs = {name: (folder / name).read_text() for name in ("access.log", "error.log", "php-fpm.log")}
    incidents, dead = replay(tmp_path, logs, fpm_confs=((folder / "php-fpm.conf").read_text(),))
    assert dead == []
    [incident] = incidents
    assert incident["badgateway"]["cause"] == "fpm_timeout" and incident["php_fpm"]["pool"] == "upload"
    assert not incident["badgateway"]["status_inferred"]
    evidence = incident["evidence"]
    assert evidence["access"]["fields"]["http_user_agent"] == "slow-upload/1.0"
    gap_ms = _ms(evidence["access"]["@timestamp"]) - _ms(evidence["nginx_error"]["@timestamp"])
    assert gap_ms == 4000  # the access line 4 s after the error entry: beyond the 2 s match window
    assert [e["fields"]["kind"] for e in evidence["php_fpm"]] == ["timed_out", "exited_signal"]


def _ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


T0 = 1_795_000_000_000
KEY = {"request": "POST /upload.php HTTP/1.1", "client": "10.0.0.9"}


def _error(at_s: float) -> Event:
    fields: dict[str, Any] = {
        "kind": "premature_close",
        "action": "reading response header from upstream",
        "client": KEY["client"],
        "request": KEY["request"],
        "upstream": "fastcgi://127.0.0.1:9000",
        "method": "POST",
        "uri": "/upload.php",
    }
    return Event(NGINX_ERROR, "h", T0 + int(at_s * 1000), fields, SourceRef("error.log", 1), f"e{at_s}")


def _access(at_s: float, method: str = "POST", **more: Any) -> Event:
    request = KEY["request"].replace("POST", method)
    fields = {"remote_addr": KEY["client"], "request": request, "method": method, "status": 502, **more}
    return Event(NGINX_ACCESS, "h", T0 + int(at_s * 1000), fields, SourceRef("access.log", 1), f"a{at_s}{more}")


def _incidents(*events: Event) -> list[dict[str, Any]]:
    join = DiagnosisJoin(Topology(), JoinSettings())
    return [i for e in events for i in join.process(e)] + join.flush()


@pytest.mark.parametrize(
    ("access", "pairs"),
    [
        (_access(4.0), True),  # a body, no $request_time: as long as the join waits (7 s)
        (_access(9.0), False),  # … and no longer
        (_access(4.0, request_time=5.0), True),  # the request was open 5 s: the error 4 s before its end is its
        (_access(4.0, request_time=1.0), False),  # the request began 3 s after that error: another request's
        (_access(4.0, method="GET"), False),  # no body to wait for: NGINX logs a GET's 502 at once
    ],
)
def test_an_error_pairs_with_a_later_access_line_only_if_its_request_was_open(access: Event, pairs: bool) -> None:
    error = _error(0.0)
    error.fields["request"] = access.fields["request"]
    out = _incidents(error, access)
    assert len(out) == (1 if pairs else 2)
    if pairs:
        assert out[0]["evidence"]["access"] is not None and out[0]["evidence"]["nginx_error"] is not None
