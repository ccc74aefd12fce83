"""The state the join keeps per host: pending failures, PHP-FPM evidence, master lifecycles; and its settings.

Plain data with small pure helpers, so ``processor.join`` reads as the algorithm.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from processor.events import NGINX_ACCESS, Event

@dataclass(frozen=True, slots=True)
class JoinSettings:
    """Windows of the join, in milliseconds (converted from config units once, at the edge)."""

    match_window_ms: int = 2_000  # access line ↔ error entry
    evidence_window_ms: int = 5_000  # error entry ↔ PHP-FPM evidence (either side)
    saturation_lookback_ms: int = 60_000  # `max_children` is logged once per episode
    allowed_lateness_ms: int = 5_000
    idle_timeout_ms: int = 30_000
    max_jump_ms: int = 3_600_000
    max_state: int = 1_000_000

    @property
    def release_ms(self) -> int:
        return self.match_window_ms + self.evidence_window_ms


@dataclass(slots=True)
class Pending:
    event: Event
    is_access: bool
    key: tuple[str | None, str | None]
    cid: int | None
    item_id: str
    late: bool
    consumed: bool = False


@dataclass(slots=True)
class Master:
    """One PHP-FPM master as seen through its log: the pools it runs and when it was up."""

    pools: set[str] = field(default_factory=set)
    timeline: list[tuple[int, bool, str, Event]] = field(default_factory=list)

    def state_at(self, ts_ms: int) -> tuple[bool, Event] | None:
        i = bisect.bisect_right(self.timeline, (ts_ms, True, "\uffff"), key=lambda t: (t[0], t[1], t[2]))
        if i == 0:
            return None
        _, up, _, ev = self.timeline[i - 1]
        return up, ev


@dataclass(slots=True)
class HostState:
    access: dict[tuple[str | None, str | None], list[Pending]] = field(default_factory=dict)
    errors: dict[tuple[str | None, str | None], list[Pending]] = field(default_factory=dict)
    evidence: list[Event] = field(default_factory=list)
    consumed: set[int] = field(default_factory=set)  # id() of evidence events already explained
    masters: dict[str, Master] = field(default_factory=dict)
    seen_types: set[str] = field(default_factory=set)
    pending: int = 0  # failures and anchors of this host still in a window
    last_ts_ms: int = -(2**62)


def match_key(ev: Event) -> tuple[str | None, str | None]:
    f = ev.fields
    client = f.get("remote_addr") if ev.log_type == NGINX_ACCESS else f.get("client")
    return client, f.get("request")


def connection_id(ev: Event) -> int | None:
    value = ev.fields.get("connection" if ev.log_type == NGINX_ACCESS else "cid")
    return value if isinstance(value, int) else None
