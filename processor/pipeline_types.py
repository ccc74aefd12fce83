"""What a ``Pipeline`` gives out: ``Output`` records (an incident, an event, a dead letter or an episode) and, for
batch replay's block path, ``HealthyRun`` (a run of healthy access lines reduced to their time)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

from processor.core.events import SourceRef
from processor.diagnosis.join import Incident

OutputKind = Literal["incident", "event", "dead_letter", "episode"]


class Output(NamedTuple):
    kind: OutputKind
    value: Any  # incident dict | Event | DeadLetter | episode dict
    source: SourceRef | None


class HealthyRun(NamedTuple):
    """``lines`` consecutive healthy access lines of one stream, all at ``ts_ms`` from ``host``, the first at
    ``offset``: what ``parse_block`` gives instead of their events (the join only moves its clocks for them)."""

    ts_ms: int
    host: str | None
    lines: int
    offset: int


def incident_outputs(incidents: Iterable[Incident]) -> list[Output]:
    """The join's incidents as outputs (an incident has no source record of its own)."""
    return [Output("incident", inc, None) for inc in incidents]
