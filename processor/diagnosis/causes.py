"""Tag one failed request with its cause and PHP-FPM pool (docs/causes.md, "The causes").

Pure: a ``Failure`` (the access line and/or the NGINX error entry the join matched), the PHP-FPM evidence
the join gathered for it, and the ``Topology`` from the configs go in; a ``Diagnosis`` comes out.
"""

from __future__ import annotations

import posixpath
import re
from functools import lru_cache
from typing import Final, NamedTuple

from processor.core.events import Event
from processor.diagnosis import registry
from processor.diagnosis.evidence import EvidenceIndex, log_position, search_keys
from processor.diagnosis.remediation import HTTP_ANSWERED, NOT_FASTCGI_SPOKEN, UNREACHABLE_ERRNOS
from processor.diagnosis.topology import PoolInfo, Topology, address_key, is_unix

# Error-log kinds that mean "this request got no valid response from the upstream".
ANCHOR_KINDS: Final = frozenset(
    {
        "connect_failed",
        "recv_failed",
        "premature_close",
        "too_big_header",
        "upstream_timed_out",
        "no_live_upstreams",
        "protocol_mismatch",
        "invalid_header",
    }
)
# an error entry whose upstream is http://, uwsgi://… at a pool's address: NGINX spoke another protocol to PHP-FPM,
# which resets the connection (recv() failed (104), no PHP-FPM line): recorded with nginx 1.22 + php-fpm 8.2
_OTHER_SCHEMES: Final = ("http://", "https://", "uwsgi://", "scgi://", "grpc://")
# After the header was sent the client already has its status: not a 502/504.
_HEADER_PHASE: Final = (
    None,
    "connecting to upstream",
    "sending request to upstream",
    "reading response header from upstream",
)


def is_anchor(error_fields: dict[str, object]) -> bool:
    """True for an error-log entry that explains a 502/504 (and can stand for one without an access line)."""
    return error_fields.get("kind") in ANCHOR_KINDS and error_fields.get("action") in _HEADER_PHASE


# Failure, FpmView and Diagnosis are NamedTuples, not frozen dataclasses: one of each per incident, and a frozen
# dataclass's __init__ (object.__setattr__ per field) cost ~3 µs an incident.
class Failure(NamedTuple):
    """One failed request as the join assembled it."""

    host: str
    ts_ms: int
    access: Event | None
    error: Event | None
    error_log_seen: bool = False  # the host's NGINX error log is shipped (its silence says something)


class FpmView(NamedTuple):
    """The PHP-FPM evidence around a failure, as the join holds it (all on the same host)."""

    # the host's timeouts and exits not yet explaining another failure, and how far from the failure to look
    candidates: EvidenceIndex | None = None
    window_ms: int = 0
    saturation: Event | None = None  # the first `max_children` warning of the lookback
    # the lifecycle line proving the master of the failure's pool is down, and whether every master is
    master_down: Event | None = None
    all_masters_down: bool = False


class Diagnosis(NamedTuple):
    cause: str
    status: int
    status_inferred: bool
    pool: str | None
    pool_source: str | None
    upstream: str | None
    fpm_evidence: tuple[Event, ...]
    pool_info: PoolInfo | None
    note: str | None = None
    connect_error: tuple[int, str] | None = None  # (errno, strerror) of a connect() no cause follows from
    server: str | None = None  # the server block NGINX named in the error entry, and the request's URI:
    uri: str | None = None  # which fastcgi_pass it went through (``Topology.route_to``, for the remediation)


def upstream_of(failure: Failure) -> str | None:
    """The upstream address as NGINX wrote it, normalised (``unix:/run/php/a.sock``, ``127.0.0.1:9000``)."""
    if failure.error is not None:
        f = failure.error.fields
        for candidate in (f.get("connect_target"), f.get("upstream")):
            key = address_key(candidate) if isinstance(candidate, str) else None
            if key:
                return key
    if failure.access is not None:
        addrs = failure.access.fields.get("upstream_addr")
        if isinstance(addrs, list) and addrs:
            last = addrs[-1]
            if isinstance(last, str):
                return address_key(last)
    return None


# The pool a distribution's package or image listens with, named by its socket or port: Debian/Ubuntu's
# /run/php/php8.2-fpm.sock (php7.4-fpm.sock, php5-fpm.sock), RHEL's /run/php-fpm/www.sock (its name says it),
# Alpine's 127.0.0.1:9000 and the official image's `listen = 9000`: all pool [www].
_DISTRO_SOCKET: Final = re.compile(r"php(?:\d+(?:\.\d+)?)?-fpm")
_DISTRO_PORT: Final = ":9000"
DISTRO_POOL: Final = "www"


@lru_cache(maxsize=1024)
def pool_guess(upstream: str | None) -> tuple[str, str] | None:
    """(pool, pool_source) guessed from the upstream alone: a distribution's default (``distro_default``:
    ``unix:/run/php/php8.2-fpm.sock``, ``127.0.0.1:9000`` → ``www``), else the socket's name (``socket_name``:
    ``unix:/run/php/mypool.sock`` → ``mypool``). Marked as guesses."""
    if not upstream:
        return None
    if not is_unix(upstream):
        return (DISTRO_POOL, "distro_default") if upstream.endswith(_DISTRO_PORT) else None
    stem = posixpath.basename(upstream[5:])
    for suffix in (".sock", ".socket"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    if _DISTRO_SOCKET.fullmatch(stem):
        return DISTRO_POOL, "distro_default"
    return (stem, "socket_name") if stem else None


def socket_pool_guess(upstream: str | None) -> str | None:
    """The pool ``pool_guess`` names for ``upstream``, if any."""
    guess = pool_guess(upstream)
    return guess[0] if guess is not None else None


def request_uri(failure: Failure) -> str | None:
    for ev in (failure.access, failure.error):
        if ev is not None and isinstance(ev.fields.get("uri"), str):
            return str(ev.fields["uri"])
    return None


def uri_score(fpm_uri: object, uri: str | None) -> float:
    """How well an FPM ``request: "GET /x?q"`` fits the NGINX URI.

    3 same URI with a query, 2 same query, 1.5 same path (no query: common paths like ``/`` recur),
    1 can't tell (rewrites turn ``/`` into ``/index.php``), 0 clearly another request.
    """
    if not isinstance(fpm_uri, str) or uri is None:
        return 1
    p1, _, q1 = fpm_uri.partition("?")
    p2, _, q2 = uri.partition("?")
    if fpm_uri == uri:
        return 3 if q1 else 1.5
    if q1 and q2:
        return 2 if q1 == q2 else 0
    if p1.endswith(".php") and p2.endswith(".php") and p1 != p2:
        return 0
    return 1


def _answered_by_app(failure: Failure) -> bool:
    """The application answered the 502/504 itself: its upstream's status is the response's, NGINX logged no
    error while its error log is shipped, and nothing in the access line says NGINX made the answer up (no
    response header or no byte received from the upstream)."""
    if failure.access is None or not failure.error_log_seen:
        return False
    f = failure.access.fields
    statuses = f.get("upstream_status")
    if not isinstance(statuses, list) or not statuses or statuses[-1] != f.get("status"):
        return False
    header_times, received = f.get("upstream_header_time", [0.0]), f.get("upstream_bytes_received", [1])
    if not isinstance(header_times, list) or not header_times or header_times[-1] is None:
        return False  # NGINX never read a response header from it
    return isinstance(received, list) and bool(received) and bool(received[-1])


def _status(failure: Failure, cause_default: int) -> tuple[int, bool]:
    if failure.access is not None and isinstance(failure.access.fields.get("status"), int):
        return int(failure.access.fields["status"]), False
    return cause_default, True


def _near_timeout(failure: Failure, pool: PoolInfo | None) -> bool:
    """``$request_time`` within a second (or 10%) of the pool's request_terminate_timeout."""
    if failure.access is None or pool is None or not pool.request_terminate_timeout_s:
        return False
    rt = failure.access.fields.get("request_time")
    if not isinstance(rt, (int, float)):
        return False
    limit = pool.request_terminate_timeout_s
    return abs(rt - limit) <= max(1.0, 0.1 * limit)


def classify(failure: Failure, fpm: FpmView, topology: Topology) -> Diagnosis:
    """Name the cause of one failed request. Never guesses: weak evidence gives the weaker label."""
    upstream = upstream_of(failure)
    pool_info = topology.pool_at(upstream)
    pool, pool_source = (pool_info.name, "config") if pool_info else (None, None)
    err = failure.error.fields if failure.error is not None else None
    uri = request_uri(failure)
    used: tuple[Event, ...] = ()
    note: str | None = None
    connect_error: tuple[int, str] | None = None

    def done(cause: str, default_status: int | None = None) -> Diagnosis:
        nonlocal pool, pool_source
        if pool is None:
            guess = pool_guess(upstream)
            if guess is not None and cause not in ("socket_mismatch", "socket_missing", "protocol_mismatch"):
                pool, pool_source = guess
        status, inferred = _status(failure, default_status or registry.cause(cause).default_status)
        server = err.get("server") if err is not None else None
        return Diagnosis(
            cause,
            status,
            inferred,
            pool,
            pool_source,
            upstream,
            used,
            pool_info,
            note,
            connect_error,
            server if isinstance(server, str) else None,
            uri,
        )

    def unexplained_connect() -> Diagnosis:
        """A connect() error whose errno names no cause: `unknown`, saying what the errno does tell."""
        nonlocal note, connect_error
        if isinstance(errno, int):
            strerror = str(err.get("strerror") or "") if err is not None else ""
            connect_error = (errno, strerror)
            if errno in UNREACHABLE_ERRNOS:
                note = (
                    f"connect() to {upstream} failed ({errno}: {strerror}): NGINX found no route to it, so "
                    "nothing tells whether PHP-FPM listens there"
                )
            else:
                note = f"connect() to {upstream} failed ({errno}: {strerror}): no cause follows from that errno"
        return done("unknown")

    if err is None:
        return done("app_answered" if _answered_by_app(failure) else "unknown")
    kind, errno, action = err.get("kind"), err.get("errno"), err.get("action")

    if kind == "connect_failed":
        if errno == 13:
            return done("socket_permission")
        if errno == 11:
            used = (fpm.saturation,) if fpm.saturation else ()
            return done("pool_saturated")
        if not is_unix(upstream):
            return done("tcp_refused") if errno == 111 else unexplained_connect()
        if errno == 111:  # a killed master leaves its socket file behind
            used = (fpm.master_down,) if fpm.master_down else ()
            return done("fpm_down")
        if errno == 2:
            if topology.known:
                if pool_info is None:
                    return done("socket_mismatch")
                used = (fpm.master_down,) if fpm.master_down else ()
                return done("fpm_down")
            if fpm.all_masters_down and fpm.master_down is not None:
                used = (fpm.master_down,)
                return done("fpm_down")
            return done("socket_missing")
        return unexplained_connect()
    if kind == "too_big_header":
        return done("too_big_header")
    if kind == "protocol_mismatch" or kind == "invalid_header":
        note = _quoted_message(err, upstream)
        return done(kind)
    if kind == "no_live_upstreams":
        return done("no_live_upstreams")
    if kind == "upstream_timed_out":
        if action == "connecting to upstream":
            used = (fpm.saturation,) if fpm.saturation else ()
            return done("pool_saturated", 504)
        return done("nginx_timeout", 504)
    if kind in ("recv_failed", "premature_close"):
        named = err.get("upstream")
        if pool_info is not None and isinstance(named, str) and named.startswith(_OTHER_SCHEMES):
            scheme = named[: named.find("://")].upper()
            note = f"NGINX spoke {scheme} to {upstream}, where pool {pool_info.name} listens: {NOT_FASTCGI_SPOKEN}"
            return done("protocol_mismatch")
        t = failure.error.ts_ms if failure.error is not None else failure.ts_ms
        best = best_evidence(fpm.candidates, uri, pool, t, fpm.window_ms) if fpm.candidates is not None else None
        if best is not None and best.fields.get("kind") == "timed_out":
            assert fpm.candidates is not None
            companion = fpm.candidates.companion_exit(best, t, fpm.window_ms)
            used = (best, companion) if companion is not None else (best,)
            pool, pool_source = _evidence_pool(pool, pool_source, best)
            return done("fpm_timeout")
        if best is not None and _ended_by_its_master(best):
            used = (best,)
            pool, pool_source = _evidence_pool(pool, pool_source, best)
            note = "its worker was ended by its master's stop or reload (php-fpm logs such an exit at DEBUG)"
            return done("upstream_reset")
        if best is not None:
            used = (best,)
            pool, pool_source = _evidence_pool(pool, pool_source, best)
            return done("child_crash")
        if _near_timeout(failure, pool_info):
            note = "no PHP-FPM evidence; $request_time matches the pool's request_terminate_timeout"
            return done("fpm_timeout")
        return done("upstream_reset")
    return done("unknown")


def _quoted_message(err: dict[str, object], upstream: str | None) -> str:
    """What NGINX said it read from the upstream, quoted (without `` while …``), and what a 72 means."""
    message = str(err.get("message") or "")
    cut = message.rfind(" while ")
    said = message[:cut] if cut >= 0 and err.get("action") else message
    if said.startswith("upstream sent unsupported FastCGI protocol version: 72"):
        return f"{upstream or 'the upstream'} {HTTP_ANSWERED} ({said})"
    return f"NGINX read from {upstream or 'the upstream'}: {said}"


def _ended_by_its_master(ev: Event) -> bool:
    """A child's exit php-fpm logged at DEBUG: it does so only while its master stops or reloads (it may not
    spawn children then), so the stop ended the worker; it did not crash (docs/causes.md)."""
    return ev.fields.get("kind") != "timed_out" and str(ev.fields.get("level") or "").upper() == "DEBUG"


def _evidence_pool(pool: str | None, source: str | None, ev: Event) -> tuple[str | None, str | None]:
    if pool is None and isinstance(ev.fields.get("pool"), str):
        return str(ev.fields["pool"]), "fpm_log"
    return pool, source


def best_evidence(index: EvidenceIndex, uri: str | None, pool: str | None, t_ms: int, window_ms: int) -> Event | None:
    """The PHP-FPM line that explains a reset (docs/causes.md, "Which PHP-FPM line explains a reset").

    Candidates: the pool's timeouts and crashes (an exit that is not the SIGTERM ending a timeout) within
    ``window_ms`` of the failure, not explaining another failure yet, never another request's line. Best: a
    URI that identifies the request (same query) first, then the closest second (FPM kills or loses the
    worker the moment NGINX sees the reset), then the URI fit, then a timeout before a crash, then the
    closest millisecond, then the earlier line of its log. ``index`` answers "nearest in time" per list of
    equal URI fit, so the ranking looks at a bounded number of lines however many the window holds.
    """
    pools = [pool] if pool is not None else index.pools()
    for keys in search_keys(uri):
        ranked = []
        for p in pools:
            for kind in ("timeout", "crash"):
                for key in keys:
                    e = index.nearest((p, kind, *key), t_ms, window_ms)
                    if e is not None:
                        dt_ms = abs(e.ts_ms - t_ms)
                        score = uri_score(e.fields.get("uri"), uri)
                        # best first: closest second, URI fit, a timeout, closest ms, earliest in its log
                        rank = (dt_ms // 1000, -score, e.fields.get("kind") != "timed_out", dt_ms, log_position(e))
                        ranked.append((rank, e))
        if ranked:
            return min(ranked, key=lambda r: r[0])[1]
    return None
