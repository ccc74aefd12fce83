"""Identical access lines are as many requests (docs/causes.md, "Identical access lines").

NGINX writes one access line per request. Behind a load balancer, a CDN or a NAT every request comes from a few
client addresses, and in an outage the same URL fails many times a second with the same status and the same
error page size: with the combined format, those lines are byte for byte the same. They used to collapse into
one incident (the line was taken for a shipper's resend): an outage was under-counted exactly where it was
heaviest. Now the n-th identical line of a stream's second is its own request, with its own ``event.id`` (the
first keeps the plain one); the same line in another log, or resent after newer lines, is still one incident.
"""

from __future__ import annotations

from pathlib import Path

from processor.core.events import NGINX_ACCESS, Event, SourceRef
from processor.diagnosis.incident import event_id
from processor.diagnosis.join import DiagnosisJoin
from processor.diagnosis.state import JoinSettings
from processor.diagnosis.topology import Topology
from tests.behaviour.realworld.harness import replay

RECORDED = Path(__file__).parent / "recorded" / "identical-requests"
T0_MS = 1_795_000_000_000


def test_a_poller_behind_one_address_is_four_requests(tmp_path: Path) -> None:
    logs = {name: (RECORDED / name).read_text() for name in ("access.log", "error.log")}
    incidents, dead = replay(tmp_path, logs)
    assert dead == []
    urls = sorted(i["url"]["original"] for i in incidents)
    assert urls == ["/api/poll.php"] * 4 + ["/api/poll.php?since=5"]
    assert {i["badgateway"]["cause"] for i in incidents} == {"tcp_refused"}
    # each access line paired with an error entry of its own: none inferred from the error log alone
    assert sorted(i["evidence"]["access"]["source"].rsplit(":", 1)[1] for i in incidents) == ["1", "2", "3", "4", "5"]
    cids = [i["evidence"]["nginx_error"]["fields"]["cid"] for i in incidents]
    assert sorted(cids) == [1, 2, 5, 7, 9]
    assert len({i["event"]["id"] for i in incidents}) == 5


def test_the_access_log_alone_counts_every_request(tmp_path: Path) -> None:
    incidents, _ = replay(tmp_path, {"access.log": (RECORDED / "access.log").read_text()})
    assert len(incidents) == 5
    first = (RECORDED / "access.log").read_text().splitlines()[0]
    # the first of the identical lines keeps the id it always had
    assert incidents[0]["event"]["id"] == event_id("", _access(first, "access.log", 1))


def _access(raw: str, stream: str, offset: int, at_ms: int = T0_MS) -> Event:
    fields = {"remote_addr": "10.0.0.1", "request": "GET /api/poll.php HTTP/1.1", "status": 502}
    return Event(NGINX_ACCESS, "", at_ms, fields, SourceRef(stream, offset), raw)


def _ids(events: list[Event]) -> tuple[list[str], int]:
    join = DiagnosisJoin(Topology(), JoinSettings())
    out = [i for e in events for i in join.process(e)] + join.flush()
    return [i["event"]["id"] for i in out], join.counters.duplicates


LINE = '10.0.0.1 - - [..] "GET /api/poll.php HTTP/1.1" 502 157 "-" "poller/2.1"'


def test_identical_lines_of_one_second_get_ids_of_their_own_in_every_order() -> None:
    ids, duplicates = _ids([_access(LINE, "access.log", n) for n in range(1, 4)])
    assert len(set(ids)) == 3 and duplicates == 0
    # the same lines again (another run, another driver): the same ids
    assert _ids([_access(LINE, "access.log", n + 10) for n in range(1, 4)])[0] == ids


def test_the_same_line_in_another_log_is_one_request() -> None:
    ids, duplicates = _ids([_access(LINE, "access.log", 1), _access(LINE, "copy/access.log", 1)])
    assert len(ids) == 1 and duplicates == 1


def test_a_resent_line_after_newer_ones_is_one_request() -> None:
    newer = '10.0.0.1 - - [..] "GET /api/poll.php?since=5 HTTP/1.1" 502 157 "-" "poller/2.1"'
    events = [
        _access(LINE, "access.log", 1),
        _access(newer, "access.log", 2, T0_MS + 1000),
        _access(LINE, "access.log", 3),  # a shipper's retry sends the stretch again: older than the stream's second
    ]
    ids, duplicates = _ids(events)
    assert len(ids) == 2 and duplicates == 1
