"""The event-time join: failed requests ↔ NGINX error entries ↔ PHP-FPM evidence, emitted once per window.

Pure and deterministic: events in (any arrival order within the allowed lateness), incidents out in
the order their windows close. State is only what a window still needs: failures, error anchors and
PHP-FPM evidence — never the healthy traffic.
"""

from __future__ import annotations

import bisect
import heapq
from typing import Any

from processor.core.events import (
    FAILURE_STATUSES,
    NGINX_ACCESS,
    NGINX_ERROR,
    PHP_FPM,
    Counters,
    Event,
    SourceRef,
    without_text,
)
from processor.core.watermark import NO_WATERMARK, Watermarks
from processor.diagnosis.causes import is_anchor
from processor.diagnosis.incident import event_id
from processor.diagnosis.incident_making import IncidentMaking
from processor.diagnosis.state import HostState, JoinSettings, Master, Pending, ReleaseQueue, Waiting, timeline_order
from processor.diagnosis.topology import Topology

Incident = dict[str, Any]

__all__ = ["DiagnosisJoin", "Incident", "JoinSettings"]

_EVIDENCE_KINDS = frozenset({"timed_out", "exited_signal", "exited_code", "max_children"})
_DOWN_KINDS = frozenset({"exiting", "terminating"})
_UP_KINDS = frozenset({"running", "ready"})
_SWEEP_EVERY_MS = 60_000
_FORGET_MS = 600_000  # a host with nothing in flight, quiet this long (event time), is forgotten


class DiagnosisJoin(IncidentMaking):
    """Holds the windows; ``process`` events, ``advance`` the clock, ``flush`` at the end."""

    def __init__(self, topology: Topology, settings: JoinSettings, counters: Counters | None = None) -> None:
        self.topology = topology
        self.settings = settings
        self.counters = counters if counters is not None else Counters()
        self.watermarks = Watermarks(settings.allowed_lateness_ms, settings.idle_timeout_ms, settings.max_jump_ms)
        self._hosts: dict[str, HostState] = {}
        # by (release, access first, log position, arrival): a second's failures close in the order their lines
        # were written, so the first takes the first of that second's PHP-FPM lines
        self._queue = ReleaseQueue()
        self._seq = 0
        self._evidence_count = 0
        # the item ids of the lines already in an incident, by their event time (a line sent again has the same
        # time as its first copy), and a heap of those times, oldest first: pruned a whole second at a time
        self._emitted_at: dict[int, set[str]] = {}
        self._emitted_times: list[int] = []
        self._last_prune_ms = NO_WATERMARK
        self._last_drain_bound = NO_WATERMARK
        self._last_sweep_ms = NO_WATERMARK
        self._busy: set[str] = set()  # hosts holding PHP-FPM evidence or lifecycle history
        self._wm = NO_WATERMARK  # as last computed; windows already closed stay closed
        # the watermarks' version and idle rule when _wm was computed (_closed skips a drain that would find the same)
        self._drained_version = -1
        self._drained_idle_rule: bool | None = None
        self._late = False  # whether the event being processed is late (set by _see)
        self._lateness_ms = settings.allowed_lateness_ms
        self._release_ms = settings.release_ms
        self._remediations: dict[tuple[object, ...], str] = {}  # _remediation's texts
        self._max_state = settings.max_state
        self._last_source_name: str | None = None
        self._last_source_partition: int | None = None
        self._last_stream = ""

    # -- input ---------------------------------------------------------------------------------
    def process(self, event: Event) -> list[Incident]:
        """Take one parsed event; return the incidents whose windows it closed."""
        host = self._see(self.stream_of(event.source), event.ts_ms, event.log_type, event.host)
        f = event.fields
        if event.log_type == NGINX_ACCESS:
            if f.get("status") in FAILURE_STATUSES:
                self._hold(host, event, True, self._late)
        elif event.log_type == NGINX_ERROR:
            if is_anchor(f):
                self._hold(host, event, False, self._late)
        elif event.log_type == PHP_FPM:
            self._fpm(host, event)
        return self._closed()

    def process_healthy(self, stream: str, ts_ms: int, log_type: str, host: str) -> list[Incident]:
        """``process`` for an event the join holds nothing of (an access line whose status is no failure),
        without the event: its clocks move and its host is seen, exactly as ``process`` would.
        ``stream``: its source's ``SourceRef.stream`` (``stream_of``)."""
        self._see(stream, ts_ms, log_type, host)
        return self._closed()

    def process_healthy_run(self, stream: str, ts_ms: int, log_type: str, host: str, count: int) -> list[Incident]:
        """``process_healthy`` of ``count`` such events in a row, all of one time: the same state, counters and
        incidents. Once the first has moved the clocks, the next ones of that time move nothing (``_steady``)
        but the late count: they are counted, not walked."""
        incidents = self.process_healthy(stream, ts_ms, log_type, host)
        count -= 1
        while count and not self._steady(stream, ts_ms):
            incidents += self.process_healthy(stream, ts_ms, log_type, host)
            count -= 1
        if count:
            late = self._late = ts_ms < self._wm  # the stream is known now
            if late:
                self.counters.late_records += count
        return incidents

    def _steady(self, stream: str, ts_ms: int) -> bool:
        """Whether another healthy event of ``stream`` at ``ts_ms`` would change nothing but the late count:
        not ahead of the wall clock, not past its stream's clock (no jump to confirm), and no window or prune
        due at the unchanged bound (what ``_closed`` checks)."""
        watermarks = self.watermarks
        clock = watermarks.streams[stream]
        now_ms = watermarks.now_ms
        if (
            (now_ms is not None and ts_ms > now_ms + watermarks.max_jump_ms)
            or clock.pending_jump
            or ts_ms > clock.max_ts_ms
        ):
            return False
        bound = watermarks.global_max_ts_ms - self._lateness_ms
        queue = self._queue
        first = queue.first_release()
        return not (
            (first is not None and first <= bound and not self._drained_already(first))
            or len(queue) + self._evidence_count > self._max_state
            or bound - self._last_drain_bound >= 1_000
        )

    def _drained_already(self, first: int) -> bool:
        """Whether a drain now would find what the last one left: the watermark where it was (its inputs
        unchanged) and nothing waiting up to it (``first``: the release due first)."""
        watermarks = self.watermarks
        return (
            first > self._wm
            and watermarks.version == self._drained_version
            and watermarks.event_time_idle is self._drained_idle_rule
        )

    def stream_of(self, source: SourceRef) -> str:
        """``source.stream``, remembered: SourceRef.stream formats a string per call, and consecutive records
        come from the same stream."""
        if source.name == self._last_source_name and source.partition == self._last_source_partition:
            return self._last_stream
        stream = self._last_stream = source.stream
        self._last_source_name, self._last_source_partition = source.name, source.partition
        return stream

    def _see(self, stream: str, ts_ms: int, log_type: str, host_name: str) -> HostState:
        """Every event: lateness, the watermark and the host's own clock; sets ``_late``."""
        watermarks = self.watermarks
        # a stream's first record opens it: it can only be late against its own progress
        late = self._late = ts_ms < self._wm and stream in watermarks.streams
        if late:
            self.counters.late_records += 1
        before = watermarks.future_records
        watermarks.observe(stream, ts_ms, log_type)
        if watermarks.future_records != before:
            self.counters.future_records += watermarks.future_records - before
        host = self._hosts.get(host_name)
        if host is None:
            host = self._hosts[host_name] = HostState()
        host.seen_types.add(log_type)
        if ts_ms > host.last_ts_ms:
            host.last_ts_ms = ts_ms
        return host

    def _closed(self) -> list[Incident]:
        """After each event: the windows it closed (and now and then a prune)."""
        # the join's watermark never exceeds the most advanced stream minus the lateness: when even that
        # bound closes no window, skip computing the minimum over streams (the common, healthy line)
        watermarks = self.watermarks
        bound = watermarks.global_max_ts_ms - self._lateness_ms
        queue = self._queue
        first = queue.first_release()
        if len(queue) + self._evidence_count > self._max_state:
            return self._drain()
        if first is not None and first <= bound:
            if self._drained_already(first):
                return []  # the watermark is where the last drain left it, and nothing before it waits
            return self._drain()
        if bound - self._last_drain_bound >= 1_000:  # now and then: prune old evidence
            self._last_drain_bound = bound
            return self._drain()
        return []

    def advance(self, now_ms: int) -> list[Incident]:
        """Processing time moved on (wall clock from the driver): idle inputs stop holding windows open."""
        self.watermarks.tick(now_ms)
        return self._drain()

    def progress(self, stream: str, ts_ms: int, log_type: str, host: str) -> list[Incident]:
        """A stream's lines up to ``ts_ms`` that the join has no use for (healthy traffic parsed elsewhere,
        e.g. in a parse worker): only the watermark moves."""
        self.watermarks.observe(stream, ts_ms, log_type)
        h = self._hosts.get(host)
        if h is None:
            h = self._hosts[host] = HostState()
        h.seen_types.add(log_type)
        return self._drain()

    def close_input(self, stream: str) -> list[Incident]:
        self.watermarks.close(stream)
        return self._drain()

    def flush(self) -> list[Incident]:
        """End of input: close every window now."""
        out: list[Incident] = []
        queue = self._queue
        while len(queue):
            out.extend(self._finalize(queue.pop(), evicted=False))
        return out

    def held_offsets(self) -> dict[str, int]:
        """Lowest source offset per stream still needed by an open window (pending or as evidence)."""
        held: dict[str, int] = {}
        for pending in self._queue:
            if not pending.consumed:
                _min_into(held, pending.event.source)
        horizon = self._wm - self.settings.release_ms - self.settings.saturation_lookback_ms
        for host in self._hosts.values():
            for ev in host.evidence:
                _min_into(held, ev.source)
            for master in host.masters.values():
                # lifecycle lines inside the horizon, which a window may still read: a restart re-reads them, so an
                # incident's evidence does not depend on where the service restarted (#18). Not the state before the
                # horizon: with failures always in flight that would keep the offset at the master's start for ever
                timeline = master.timeline
                for _, _, _, line in timeline[bisect.bisect_left(timeline, horizon, key=lambda t: t[0]) :]:
                    _min_into(held, line.source)
        return held

    @property
    def state_size(self) -> int:
        return len(self._queue) + self._evidence_count

    def held_windows(self) -> tuple[int, int | None]:
        """(failures waiting in open windows, the event time of the one due first): for metrics."""
        first = self._queue.first_release()
        return len(self._queue), (first - self.settings.release_ms if first is not None else None)

    @property
    def complete_before_ms(self) -> int:
        """Every incident of a failure before this event time has been emitted (late events aside): the failures
        still waiting are no older, and an incident takes its time from a line at most ``release_ms`` from them."""
        release = self._queue.first_release()  # the oldest waiting failure's time + release_ms
        first = release - self._release_ms if release is not None else self._wm
        return min(first, self._wm) - self._release_ms

    def _hold(self, host: HostState, event: Event, is_access: bool, late: bool) -> None:
        item_id = event_id(event.host, event)
        if is_access and (repeat := host.repeat_of(event)):
            item_id = event_id(event.host, event, repeat)  # another request with the same line (a shared client)
        emitted = self._emitted_at.get(event.ts_ms)
        if item_id in host.waiting_ids or (emitted is not None and item_id in emitted):
            self.counters.duplicates += 1  # the very same line again (another log, a resend): one incident
            return
        # match_key, connection_id and log_position, inlined (two holds per failed request)
        f = event.fields
        if is_access:
            index = host.access
            key = (f.get("remote_addr"), f.get("request"))
            cid = f.get("connection")
        else:
            index = host.errors
            key = (f.get("client"), f.get("request"))
            cid = f.get("cid")
        waiting = index.get(key)
        if waiting is None:
            waiting = index[key] = Waiting()
        # held without its text (its id is taken; nothing downstream reads it): an outage holds thousands
        event = without_text(event)
        source = event.source
        position = (source.name, -1 if source.partition is None else source.partition, source.offset)
        pending = Pending(event, is_access, key, cid if isinstance(cid, int) else None, item_id, late, False, position)
        waiting.add(pending)
        host.waiting_ids.add(item_id)
        host.pending += 1
        self._seq += 1
        self._queue.push(event.ts_ms + self._release_ms, 0 if is_access else 1, position, self._seq, pending)

    def _fpm(self, host: HostState, event: Event) -> None:
        f = event.fields
        kind = f.get("kind")
        master_key = f.get("log_file") or self.stream_of(event.source)
        master = host.masters.get(master_key)
        if master is None:
            master = host.masters[master_key] = Master()
        pool = f.get("pool")
        if isinstance(pool, str):
            master.pools.add(pool)
        if kind in _DOWN_KINDS or kind in _UP_KINDS:
            entry = (event.ts_ms, kind in _UP_KINDS, event.raw, event)
            # in log order within a second: a master started and stopped in one second ends stopped
            bisect.insort(master.timeline, entry, key=timeline_order)
            self._busy.add(event.host)
        if kind in _EVIDENCE_KINDS:
            # held without its text, as a failure is
            host.evidence.add(without_text(event))
            self._evidence_count += 1
            self._busy.add(event.host)

    # -- output --------------------------------------------------------------------------------
    def _drain(self) -> list[Incident]:
        out: list[Incident] = []
        # not forced monotonic: a stream that shows up behind the others (a host whose clock lags) pulls
        # the watermark back for the windows still open, instead of making all its records late
        watermarks = self.watermarks
        wm = self._wm = watermarks.current()
        self._drained_version, self._drained_idle_rule = watermarks.version, watermarks.event_time_idle
        queue = self._queue
        first = queue.first_release()
        while first is not None and first <= wm:
            out.extend(self._finalize(queue.pop(), evicted=False))
            first = queue.first_release()
        while len(queue) and self.state_size > self.settings.max_state:
            self.counters.evicted += 1
            out.extend(self._finalize(queue.pop(), evicted=True))
        if wm - self._last_prune_ms >= 1_000:
            self._prune(wm)
        return out

    def _prune(self, wm: int) -> None:
        """Drop evidence no open window can use. Only hosts holding evidence are visited (a fleet of
        thousands of quiet hosts costs nothing); hosts with no state left are forgotten now and then."""
        self._last_prune_ms = wm
        horizon = wm - self.settings.release_ms - self.settings.saturation_lookback_ms
        candidate_horizon = max(horizon, wm - self.settings.candidate_retain_ms)
        if wm - self._last_sweep_ms >= _SWEEP_EVERY_MS:
            self._last_sweep_ms = wm
            forget = [
                name
                for name, h in self._hosts.items()
                if not h.pending and not h.evidence and not h.masters and h.last_ts_ms < horizon - _FORGET_MS
            ]
            for name in forget:
                del self._hosts[name]
        for name in list(self._busy):
            host = self._hosts[name]
            self._evidence_count -= host.evidence.prune(candidate_horizon, horizon)
            for master in host.masters.values():
                tl = master.timeline
                cut = bisect.bisect_left(tl, horizon, key=lambda t: t[0])
                if cut > 1:
                    del tl[: cut - 1]  # keep the last state before the horizon
            if not host.evidence and all(len(m.timeline) <= 1 for m in host.masters.values()):
                self._busy.discard(name)
        times = self._emitted_times
        while times and times[0] < horizon:
            del self._emitted_at[heapq.heappop(times)]
        while self._evidence_count > self.settings.max_state // 2:
            biggest = max(self._hosts.values(), key=lambda h: len(h.evidence))
            drop = max(1, len(biggest.evidence) // 10)
            biggest.evidence.evict_oldest(drop)
            self._evidence_count -= drop
            self.counters.evidence_evicted += drop


def _min_into(held: dict[str, int], source: SourceRef) -> None:
    stream = source.stream
    if stream not in held or source.offset < held[stream]:
        held[stream] = source.offset
