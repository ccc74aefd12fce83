"""One episode's running state, bounded in memory, and the ``badgateway.episode`` record it reads as.

``EpisodeState`` takes the episode's incidents in (time, event.id) order (``episodes.EpisodeTracker`` sees to it),
so the bounded counts here (top URIs by Space-Saving, first samples, evidence lines seen recently) come out the
same whichever driver fed the incidents.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from processor.core.timefmt import iso_ms

if TYPE_CHECKING:
    from processor.diagnosis.episodes import EpisodeSettings

DATASET = "badgateway.episode"
TOP_URIS = 10  # listed in a record
URI_SLOTS = 64  # counted (Space-Saving): the top ten are exact unless more than 64 paths share the episode
SAMPLES = 5
HOSTS = 100  # listed (fleet-wide episodes); ``hosts_count`` counts them all up to HOSTS_COUNTED
HOSTS_COUNTED = 10_000
EVIDENCE_KINDS = 32
_RECENT_EVIDENCE = 256  # evidence lines remembered, so one line shared by many incidents counts once
_KAFKA_SOURCE = re.compile(r"^(?P<stream>.*\[\d+\])@(?P<offset>\d+)$")


class Item(NamedTuple):
    """What an episode keeps of one incident (never the incident itself)."""

    ts_ms: int
    event_id: str
    key: tuple[str | None, ...]  # (host or None when fleet-wide, cause, pool, upstream)
    host: str | None
    status: int | None
    uri: str | None
    remediation: str
    evidence: tuple[tuple[str, tuple[str, ...]], ...]  # (source, phrase key) per evidence line
    sources: dict[str, int]  # stream → lowest offset of the incident's records


@lru_cache(maxsize=4096)
def _second_ms(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")) * 1000


def ts_ms_of(timestamp: str) -> int:
    """``2026-11-24T07:41:42.123Z`` → epoch milliseconds (the incidents' own format, ``incident.iso_ms``)."""
    return _second_ms(timestamp[:19]) + int(timestamp[20:23])


def _source(text: str) -> tuple[str, int] | None:
    """``file:line`` or ``topic[p]@offset`` → (stream, offset)."""
    m = _KAFKA_SOURCE.match(text)
    if m is not None:
        return m["stream"], int(m["offset"])
    stream, _, offset = text.rpartition(":")
    return (stream, int(offset)) if stream and offset.isdigit() else None


def _phrase(log_type: str, fields: dict[str, Any]) -> tuple[str, ...] | None:
    kind = fields.get("kind")
    if not isinstance(kind, str):
        return None
    if kind == "exited_signal":
        return (kind, str(fields.get("signal_name") or fields.get("signal")))
    if kind == "exited_code":
        return (kind, str(fields.get("exit_code")))
    return (kind,) if log_type != "nginx_error" else ("nginx", kind)


def item_of(incident: Mapping[str, Any], fleet: bool) -> Item:
    host = (incident.get("host") or {}).get("name")
    bgw = incident["badgateway"]
    pool = (incident.get("php_fpm") or {}).get("pool")
    upstream = ((incident.get("nginx") or {}).get("upstream") or {}).get("address")
    key = (None if fleet else host, bgw["cause"], pool, upstream)
    evidence: list[tuple[str, tuple[str, ...]]] = []
    sources: dict[str, int] = {}
    ev = incident.get("evidence") or {}
    for entry in (ev.get("access"), ev.get("nginx_error"), *(ev.get("php_fpm") or ()), *(ev.get("duplicates") or ())):
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
            continue
        where = _source(entry["source"])
        if where is not None and where[1] < sources.get(where[0], 2**62):
            sources[where[0]] = where[1]
        phrase = _phrase(str(entry.get("log_type")), entry.get("fields") or {})
        if phrase is not None:
            evidence.append((entry["source"], phrase))
    url = incident.get("url") or {}
    uri = url.get("original")
    status = ((incident.get("http") or {}).get("response") or {}).get("status_code")
    return Item(
        ts_ms_of(incident["@timestamp"]),
        incident["event"]["id"],
        key,
        host,
        status if isinstance(status, int) else None,
        uri.split("?", 1)[0] if isinstance(uri, str) else None,
        str(bgw.get("remediation") or ""),
        tuple(evidence),
        sources,
    )


def episode_id(key: tuple[str | None, ...], first_event_id: str) -> str:
    """Stable: the same key and first incident give the same id in every driver and after every restart."""
    digest = hashlib.blake2b(digest_size=12)
    for part in (*key, first_event_id):
        digest.update((part or "").encode("utf-8", "surrogateescape") + b"\x00")
    return "bgw-ep-" + digest.hexdigest()


def evidence_line(phrase: tuple[str, ...], n: int) -> str:
    """("max_children",), 14 → "pm.max_children reached 14 times"."""
    times = "once" if n == 1 else f"{n} times"
    kind = phrase[0]
    if kind == "max_children":
        return f"pm.max_children reached {times}"
    if kind == "exited_signal":
        return f"{n} {'child' if n == 1 else 'children'} exited on {phrase[1]}"
    if kind == "exited_code":
        return f"{n} {'child' if n == 1 else 'children'} exited with code {phrase[1]}"
    if kind == "timed_out":
        return f"request_terminate_timeout hit {times}"
    if kind in ("exiting", "terminating"):
        return f"PHP-FPM master {kind} {times}"
    if kind == "nginx":
        return f"nginx {phrase[1].replace('_', ' ')} {times}"
    return f"{' '.join(phrase)} {times}"


class EpisodeState:
    """The running aggregate of one episode; ``add`` in (time, event.id) order."""

    __slots__ = (
        "key",
        "id",
        "first_ms",
        "last_ms",
        "count",
        "by_status",
        "minute",
        "in_minute",
        "peak",
        "uris",
        "samples",
        "hosts",
        "hosts_count",
        "remediation",
        "evidence",
        "recent",
        "held",
        "newest",
        "sequence",
        "emitted_count",
        "next_power",
        "power_cutoffs",
        "interval_k",
        "opened",
    )

    def __init__(self, first: Item, group_wait_ms: int) -> None:
        self.key = first.key
        self.id = episode_id(first.key, first.event_id)
        self.first_ms = self.last_ms = first.ts_ms
        self.count = 0
        self.by_status: dict[str, int] = {}
        self.minute = first.ts_ms // 60_000
        self.in_minute = 0
        self.peak = 0
        self.uris: dict[str, int] = {}
        self.samples: list[str] = []
        self.hosts: dict[str, None] = {}
        self.hosts_count = 0
        self.remediation = first.remediation
        self.evidence: dict[tuple[str, ...], int] = {}
        self.recent: OrderedDict[str, None] = OrderedDict()
        self.held: dict[str, int] = {}
        self.newest: dict[str, int] = {}
        self.sequence = 0
        self.emitted_count = 0
        self.next_power = 10
        self.power_cutoffs: list[int] = []
        self.interval_k = 0  # cutoffs taken so far: 0 = the opening one
        self.opened = False

    def add(self, item: Item) -> bool:
        """Count one incident; True when the count just reached a power of ten."""
        self.last_ms = max(self.last_ms, item.ts_ms)
        self.count += 1
        status = str(item.status)
        self.by_status[status] = self.by_status.get(status, 0) + 1
        minute = item.ts_ms // 60_000
        if minute > self.minute:
            self.minute, self.in_minute = minute, 0
        if minute == self.minute:  # (a late incident of a minute already past leaves the peak as it was)
            self.in_minute += 1
            self.peak = max(self.peak, self.in_minute)
        if item.uri is not None:
            self._count_uri(item.uri)
        if len(self.samples) < SAMPLES:
            self.samples.append(item.event_id)
        if item.host is not None and item.host not in self.hosts and self.hosts_count < HOSTS_COUNTED:
            self.hosts_count += 1
            if len(self.hosts) < HOSTS:
                self.hosts[item.host] = None
        for source, phrase in item.evidence:
            if source in self.recent:
                continue
            self.recent[source] = None
            if len(self.recent) > _RECENT_EVIDENCE:
                self.recent.popitem(last=False)
            if phrase in self.evidence or len(self.evidence) < EVIDENCE_KINDS:
                self.evidence[phrase] = self.evidence.get(phrase, 0) + 1
        for stream, offset in item.sources.items():
            if offset < self.held.get(stream, 2**62):
                self.held[stream] = offset
            if offset > self.newest.get(stream, -1):
                self.newest[stream] = offset
        if self.count == self.next_power:
            self.next_power *= 10
            self.power_cutoffs.append(item.ts_ms)
            return True
        return False

    def _count_uri(self, uri: str) -> None:
        uris = self.uris
        if uri in uris:
            uris[uri] += 1
        elif len(uris) < URI_SLOTS:
            uris[uri] = 1
        else:  # Space-Saving: the least counted path gives its slot (and its count, an over-estimate) to this one
            smallest = min(uris, key=lambda u: (uris[u], u))
            uris[uri] = uris.pop(smallest) + 1

    def next_cutoff(self, s: EpisodeSettings) -> int:
        regular = self.first_ms + s.group_wait_ms + self.interval_k * s.group_interval_ms
        return min(regular, self.power_cutoffs[0]) if self.power_cutoffs else regular

    def take_cutoff(self, cutoff_ms: int, s: EpisodeSettings) -> dict[str, Any] | None:
        """The record at ``cutoff_ms`` (``next_cutoff``), or None: a regular update with nothing new."""
        while self.power_cutoffs and self.power_cutoffs[0] <= cutoff_ms:
            self.power_cutoffs.pop(0)
        while self.first_ms + s.group_wait_ms + self.interval_k * s.group_interval_ms <= cutoff_ms:
            self.interval_k += 1
        if not self.opened:
            if cutoff_ms < self.first_ms + s.group_wait_ms:
                return None  # a power of ten before group_wait: the opening record tells it
            self.opened = True
            return self.record("opened", cutoff_ms, s)
        if self.count == self.emitted_count:
            return None
        return self.record("updated", cutoff_ms, s)

    def resolved(self, s: EpisodeSettings) -> dict[str, Any]:
        return self.record("resolved", self.last_ms + s.gap_ms, s)

    def record(self, state: str, cutoff_ms: int, s: EpisodeSettings) -> dict[str, Any]:
        self.sequence += 1
        self.emitted_count = self.count
        host, cause, pool, upstream = self.key
        uris = sorted(self.uris.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_URIS]
        evidence = sorted(self.evidence.items(), key=lambda kv: (-kv[1], kv[0]))
        return {
            "@timestamp": iso_ms(cutoff_ms),
            "event": {"id": f"{self.id}-{self.sequence}", "kind": "event", "dataset": DATASET},
            "episode": {
                "id": self.id,
                "state": state,
                "sequence": self.sequence,
                "first": iso_ms(self.first_ms),
                "last": iso_ms(self.last_ms),
                "duration_s": (self.last_ms - self.first_ms) / 1000,
                "count": self.count,
                "status": dict(sorted(self.by_status.items())),
                "peak_per_minute": self.peak,
                "top_uris": [{"uri": u, "count": n} for u, n in uris],
                "samples": list(self.samples),
                "hosts": sorted(self.hosts),
                "hosts_count": self.hosts_count,
                "evidence": [evidence_line(p, n) for p, n in evidence],
                "gap_s": s.gap_ms / 1000,
            },
            "host": {"name": host if not s.fleet else None},
            "badgateway": {"cause": cause, "remediation": self.remediation},
            "php_fpm": {"pool": pool},
            "nginx": {"upstream": {"address": upstream}},
        }
