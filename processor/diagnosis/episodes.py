"""Outage episodes: the incidents of one (host, cause, pool, upstream) whose event times follow each other by less
than ``gap``, as one ``badgateway.episode`` record per change (``opened``, ``updated``, ``resolved``).

Pure and deterministic: incidents and an event-time bound in, records out; no clock. What a record says is a
function of the episode's incidents up to the record's cutoff (an event time), and the cutoffs are functions of the
incidents' times alone, so every driver gives the same records for the same incidents, whatever order they arrive
in. The driver says, with ``advance(complete_before_ms)``, below which event time every incident has arrived (the
join's watermark, minus its windows); the tracker holds newer incidents until then and applies them in
(time, event.id) order. An incident arriving below that bound anyway (a late one) joins its open episode, or opens
one.

Cutoffs of an episode whose first incident is at F and last at L:

- ``opened``:  F + group_wait;
- ``updated``: F + group_wait + k·group_interval (when the count changed), and at the incident whose count reaches
  a power of ten (10, 100, 1000 …);
- ``resolved``: L + gap, once no incident came in between.

Memory per episode is bounded (``episode_record``: top URIs by a bounded Space-Saving count, capped samples and
evidence lines); the work is constant per incident (linear in incidents).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processor.diagnosis.episode_record import EpisodeState, Item, item_of

__all__ = ["EpisodeSettings", "EpisodeTracker", "Item", "item_of"]

NO_TIME = -(2**62)
END_OF_INPUT = 2**62


@dataclass(frozen=True, slots=True)
class EpisodeSettings:
    """Episode rules, in milliseconds of event time (converted from seconds once, at the edge)."""

    gap_ms: int = 60_000
    group_wait_ms: int = 10_000
    group_interval_ms: int = 300_000
    fleet: bool = False  # one episode across hosts (listing them) instead of one per host
    # a resolved episode keeps its input records held this much longer, so a restart that replays an incident of
    # it (its evidence still held by the join) replays the whole episode: the same records, not a contradiction
    retain_ms: int = 72_000

    def __post_init__(self) -> None:
        if not 0 <= self.group_wait_ms < self.gap_ms:
            raise ValueError("episodes: group_wait must be shorter than gap")
        if self.group_interval_ms <= 0:
            raise ValueError("episodes: group_interval must be positive")


class EpisodeTracker:
    """Groups incidents into episodes; ``add`` incidents, ``advance`` event time, ``finish`` at end of input."""

    def __init__(self, settings: EpisodeSettings | None = None) -> None:
        self.settings = settings if settings is not None else EpisodeSettings()
        self._open: dict[tuple[str | None, ...], EpisodeState] = {}
        self._waiting: list[tuple[int, str, int, Item]] = []  # incidents not yet below the bound
        self._due: list[tuple[int, int, tuple[str | None, ...]]] = []  # (due, serial, key), lazy
        self._serial = 0
        self._clock = NO_TIME  # every incident before this event time has been applied
        # (release after, serial, held offsets, episode.id) of the resolved episodes still held
        self._retired: list[tuple[int, int, dict[str, int], str]] = []
        self._newest: dict[str, dict[str, int]] = {}  # episode.id → newest offsets, of the resolved ones held
        self.applied = 0  # incidents applied (a cost measure for tests)
        self.steps = 0  # heap operations and cutoffs looked at (a cost measure for tests)

    # -- input ----------------------------------------------------------------------------------------
    def add(self, incident: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One incident in (any order); the records a late one completed (usually none)."""
        item = item_of(incident, self.settings.fleet)
        if item.ts_ms >= self._clock:
            self._serial += 1
            heapq.heappush(self._waiting, (item.ts_ms, item.event_id, self._serial, item))
            self.steps += 1
            return []
        out: list[dict[str, Any]] = []
        self._apply(item, out)  # late: below what was declared complete
        return out

    def advance(self, complete_before_ms: int) -> list[dict[str, Any]]:
        """Every incident before ``complete_before_ms`` (event time) has been added: the records now due."""
        waiting, due = self._waiting, self._due
        if complete_before_ms <= self._clock or not (
            (waiting and waiting[0][0] < complete_before_ms)
            or (due and due[0][0] < complete_before_ms)
            or (self._retired and self._retired[0][0] < complete_before_ms)
        ):
            self._clock = max(self._clock, complete_before_ms)
            return []
        out: list[dict[str, Any]] = []
        while waiting and waiting[0][0] < complete_before_ms:
            item = heapq.heappop(waiting)[3]
            self.steps += 1
            self._cutoffs_before(item.ts_ms, out)
            self._apply(item, out)
        self._cutoffs_before(complete_before_ms, out)
        self._clock = max(self._clock, complete_before_ms)
        while self._retired and self._retired[0][0] < complete_before_ms:
            self._newest.pop(heapq.heappop(self._retired)[3], None)
        return out

    def finish(self) -> list[dict[str, Any]]:
        """End of input: every waiting incident applied, every episode resolved."""
        out = self.advance(END_OF_INPUT)
        self._retired.clear()
        self._newest.clear()
        return out

    # -- state ----------------------------------------------------------------------------------------
    @property
    def open_episodes(self) -> int:
        return len(self._open)

    def held_offsets(self) -> dict[str, int]:
        """Per input stream, the lowest offset of a record an open (or recently resolved) episode's incidents
        came from: a driver that resumes after a crash from below these replays every such episode whole, and
        regenerates the same records (same ``episode.id`` and sequence) instead of contradicting them."""
        held: dict[str, int] = {}
        sources = [ep.held for ep in self._open.values()] + [r[2] for r in self._retired]
        sources += [w[3].sources for w in self._waiting]
        for where in sources:
            for stream, offset in where.items():
                if offset < held.get(stream, END_OF_INPUT):
                    held[stream] = offset
        return held

    def sources_of(self, episode_id: str) -> list[tuple[str, int]]:
        """(stream, offset) of the newest input record behind the episode, per stream: an exactly-once driver
        sends its record once every one of them is committed."""
        ep = next((e for e in self._open.values() if e.id == episode_id), None)
        return sorted((ep.newest if ep is not None else self._newest.get(episode_id, {})).items())

    # -- the rules --------------------------------------------------------------------------------------
    def _apply(self, item: Item, out: list[dict[str, Any]]) -> None:
        s = self.settings
        key = item.key
        ep = self._open.get(key)
        if ep is not None and item.ts_ms - ep.last_ms >= s.gap_ms:
            self._resolve(ep, out)
            ep = None
        if ep is None:
            ep = self._open[key] = EpisodeState(item, s.group_wait_ms)
            self._push(ep.first_ms + s.group_wait_ms, key)
        self.applied += 1
        if ep.add(item):  # the count reached a power of ten: a cutoff at this incident
            self._push(item.ts_ms, key)

    def _push(self, due_ms: int, key: tuple[str | None, ...]) -> None:
        self._serial += 1
        self.steps += 1
        heapq.heappush(self._due, (due_ms, self._serial, key))

    def _cutoffs_before(self, bound_ms: int, out: list[dict[str, Any]]) -> None:
        """Emit every cutoff of every open episode before ``bound_ms`` (all incidents up to it are applied)."""
        due = self._due
        gap = self.settings.gap_ms
        while due and due[0][0] < bound_ms:
            _, _, key = heapq.heappop(due)
            self.steps += 1
            ep = self._open.get(key)
            if ep is None:
                continue
            if ep.last_ms + gap <= bound_ms:
                self._resolve(ep, out)
                continue
            self._emit_due(ep, bound_ms, out)
            # lazy: an entry may be stale (the episode's last incident moved on); it is looked at and put back
            self._push(min(ep.next_cutoff(self.settings), ep.last_ms + gap - 1), key)

    def _emit_due(self, ep: EpisodeState, bound_ms: int, out: list[dict[str, Any]]) -> None:
        s = self.settings
        while True:
            cutoff = ep.next_cutoff(s)
            if cutoff >= bound_ms or cutoff >= ep.last_ms + s.gap_ms:
                return
            self.steps += 1
            record = ep.take_cutoff(cutoff, s)
            if record is not None:
                out.append(record)

    def _resolve(self, ep: EpisodeState, out: list[dict[str, Any]]) -> None:
        s = self.settings
        self._emit_due(ep, ep.last_ms + s.gap_ms, out)
        out.append(ep.resolved(s))
        del self._open[ep.key]
        if ep.held:
            self._serial += 1
            heapq.heappush(self._retired, (ep.last_ms + s.gap_ms + s.retain_ms, self._serial, ep.held, ep.id))
            self._newest[ep.id] = ep.newest
