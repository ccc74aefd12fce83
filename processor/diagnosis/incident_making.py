"""Closing a window: a waiting failure, its partner line and duplicates taken out of the join's indexes, the
PHP-FPM evidence around it gathered, classified (``causes.classify``) and made into one incident.

``IncidentMaking`` is mixed into ``DiagnosisJoin`` (processor/diagnosis/join.py), which holds the state declared
here; docs/causes.md says which PHP-FPM line explains a reset and why.
"""

from __future__ import annotations

import heapq
from typing import Any

from processor.core.events import NGINX_ACCESS, NGINX_ERROR, PHP_FPM, Counters, Event
from processor.core.watermark import Watermarks
from processor.diagnosis.causes import Diagnosis, Failure, FpmView, classify, socket_pool_guess, upstream_of
from processor.diagnosis.incident import build_incident
from processor.diagnosis.registry import BUILT_IN, remediation
from processor.diagnosis.state import HostState, JoinSettings, Pending, Waiting
from processor.diagnosis.topology import Topology

Incident = dict[str, Any]

_EXPLAINING_KINDS = frozenset({"timed_out", "exited_signal", "exited_code"})  # one failure each
# the error kinds whose cause reads the masters' state and the max_children warnings (causes.classify)
_CONNECT_KINDS = frozenset({"connect_failed", "upstream_timed_out"})
_DUPLICATE_WINDOW_MS = 1000
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_ALL_TYPES = frozenset({NGINX_ACCESS, NGINX_ERROR, PHP_FPM})  # what an incident's missing_evidence names


class IncidentMaking:
    topology: Topology
    settings: JoinSettings
    counters: Counters
    watermarks: Watermarks
    _hosts: dict[str, HostState]
    _emitted_at: dict[int, set[str]]
    _emitted_times: list[int]
    _remediations: dict[tuple[object, ...], str]

    def _take(self, host: HostState, index: dict[tuple[str | None, str | None], Waiting], p: Pending) -> None:
        if p.consumed:
            return
        host.pending -= 1
        host.waiting_ids.discard(p.item_id)
        key = p.key
        waiting = index[key]
        waiting.remove(p)
        if not waiting:
            del index[key]
        p.consumed = True

    def _finalize(self, p: Pending, *, evicted: bool) -> list[Incident]:
        if p.consumed:
            return []
        event = p.event
        host = self._hosts[event.host]
        key = p.key
        if p.is_access:
            self._take(host, host.access, p)
            waiting = host.errors.get(key)
            partner = waiting.partner_for(p, self.settings.match_window_ms) if waiting is not None else None
            if partner is not None:
                self._take(host, host.errors, partner)
                error: Event | None = partner.event
            else:
                error = None
            access: Event | None = event
        else:
            self._take(host, host.errors, p)
            waiting = host.access.get(key)
            partner = None
            if waiting is not None:
                window = self.settings.match_window_ms
                partner = waiting.partner_for(p, window) or waiting.later_access(p, window, self._reach_ms)
            if partner is not None:
                self._take(host, host.access, partner)
                access = partner.event
            else:
                access = None
            error = event
        duplicates: list[Event] = []
        if access is not None:
            waiting = host.access.get(key)  # a partner has the same key
            if waiting is not None:
                for q in waiting.same_request_elsewhere(access, _DUPLICATE_WINDOW_MS):
                    self._take(host, host.access, q)  # the same request in a second access log
                    duplicates.append(q.event)
        if error is not None:
            cid = error.fields.get("cid")
            waiting = host.errors.get(key)
            if waiting is not None and isinstance(cid, int):
                for q in waiting.same_connection(cid):
                    if self._same_request(host, error, q):
                        self._take(host, host.errors, q)  # a second error line about the same request
                        duplicates.append(q.event)
        anchor_ts = access.ts_ms if access is not None else event.ts_ms
        anchor = partner if partner is not None and access is partner.event else p  # its id is the incident's
        seen_types = host.seen_types
        failure = Failure(event.host, anchor_ts, access, error, NGINX_ERROR in seen_types)
        diagnosis = classify(failure, self._fpm_view(host, failure), self.topology)
        for ev in diagnosis.fpm_evidence:
            if ev.fields.get("kind") in _EXPLAINING_KINDS:
                host.evidence.consume(ev)
        late = p.late or (partner is not None and partner.late)
        counters = self.counters
        if late:
            counters.late_incidents += 1
        counters.incidents += 1
        self._emit_id(p)
        if partner is not None:
            self._emit_id(partner)
        missing = [] if len(seen_types) >= 3 and _ALL_TYPES <= seen_types else sorted(_ALL_TYPES - seen_types)
        text = self._remediation(diagnosis)
        return [
            build_incident(
                failure,
                diagnosis,
                text,
                late=late,
                evicted=evicted,
                missing_evidence=missing,
                idle_inputs=self.watermarks.idle_streams(),
                duplicates=duplicates,
                anchor_id=anchor.item_id,
            )
        ]

    def _reach_ms(self, access: Event) -> int:
        """How long before an access line's time its request's error entry may be: its ``$request_time`` (plus the
        match window) when the format logs it; else, for a request with a body (POST, PUT, PATCH: NGINX reads the
        rest of an upload before it logs the 502), as long as the join holds the entry (``release_ms``)."""
        f = access.fields
        rt = f.get("request_time")
        if isinstance(rt, (int, float)):
            return int(rt * 1000) + self.settings.match_window_ms
        if f.get("method") in _BODY_METHODS:
            return self.settings.release_ms
        return self.settings.match_window_ms

    def _remediation(self, d: Diagnosis) -> str:
        """``remediation(d, self.topology)``, kept per what the built-in texts read: the cause, the upstream, the
        pool, the status, whether PHP-FPM evidence was found, a connect error and (for a crash) the signal's name;
        in an outage thousands of incidents share one text. A cause added to the registry is asked every time."""
        if d.cause not in BUILT_IN:
            return remediation(d, self.topology)
        sig = None
        if d.cause == "child_crash":
            for ev in d.fpm_evidence:
                sig = ev.fields.get("signal_name") or sig
        key = (
            d.cause,
            d.upstream,
            id(d.pool_info),
            d.pool,
            d.status,
            sig,
            bool(d.fpm_evidence),
            d.connect_error,
            d.note,
            d.server,
            d.uri.partition("?")[0] if d.uri else None,  # the location it went through (``route_of``)
        )
        text = self._remediations.get(key)
        if text is None:
            if len(self._remediations) >= 1024:
                self._remediations.clear()
            text = self._remediations[key] = remediation(d, self.topology)
        return text

    def _same_request(self, host: HostState, error: Event, q: Pending) -> bool:
        """Whether ``q``, an error line of the same connection and request line as ``error``, is about the same
        request (the next upstream tried, `no live upstreams`): near in time, not the same failure at the same
        upstream again (NGINX never tries one server twice for one request), and no access line waits that
        would be its own. A keep-alive connection carries many requests, and connection ids start again at 1
        when NGINX restarts."""
        if abs(q.event.ts_ms - error.ts_ms) > self.settings.release_ms:
            return False
        f, g = q.event.fields, error.fields
        if f.get("kind") == g.get("kind") and f.get("upstream") == g.get("upstream"):
            return False
        access = host.access.get(q.key)
        return access is None or access.partner_for(q, self.settings.match_window_ms) is None

    def _emit_id(self, p: Pending) -> None:
        ts_ms = p.event.ts_ms
        ids = self._emitted_at.get(ts_ms)
        if ids is None:
            self._emitted_at[ts_ms] = {p.item_id}
            heapq.heappush(self._emitted_times, ts_ms)
        else:
            ids.add(p.item_id)

    def _fpm_view(self, host: HostState, failure: Failure) -> FpmView:
        t = failure.error.ts_ms if failure.error is not None else failure.ts_ms
        window = self.settings.evidence_window_ms
        kind = failure.error.fields.get("kind") if failure.error is not None else None
        if kind not in _CONNECT_KINDS:  # a reset or a timeout reading: only timeouts and crashes can tell
            return FpmView(host.evidence, window)
        saturation = host.evidence.first_saturation(t - self.settings.saturation_lookback_ms, t + window)
        return FpmView(host.evidence, window, saturation, *self._master_state(host, failure, t))

    def _master_state(self, host: HostState, failure: Failure, t: int) -> tuple[Event | None, bool]:
        """(the lifecycle line proving the pool's master is down, every master down?)."""
        if not host.masters:
            return None, False
        upstream = upstream_of(failure)
        pool_info = self.topology.pool_at(upstream)
        pool = pool_info.name if pool_info else socket_pool_guess(upstream)
        down_event: Event | None = None
        all_down = True
        for master in host.masters.values():
            state = master.state_at(t)
            up = state[0] if state is not None else bool(master.pools)
            if up:
                all_down = False
            elif state is not None and (pool is None or pool in master.pools or not master.pools):
                if down_event is None or state[1].ts_ms > down_event.ts_ms:
                    down_event = state[1]
        return down_event, all_down and down_event is not None
