"""The static checks behind ``badgateway check-config``: each takes parsed configs, returns findings.

Pure functions (a ``LiveHost`` is passed in when the machine itself may be asked). The cause labels
are the registry's (processor.diagnosis.registry, docs/causes.md), so the diagnosis can quote a finding in an incident's remediation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Final, Literal

from grammars.config_errors import Origin
from grammars.fpm_conf import PoolConf, listen_address_key
from grammars.nginx_conf import FastcgiPass, NginxConf, OtherPass
from processor.diagnosis import registry

Severity = Literal["error", "warning", "info"]
SEVERITIES: Final = ("error", "warning", "info")


@dataclass(frozen=True, slots=True)
class Edit:
    """One config line a fix proposes to change: ``directive`` at ``origin`` from ``old`` to ``new``.

    ``listen`` is a pool's (php-fpm), ``fastcgi_pass`` a location's and ``server`` an upstream's (nginx).
    """

    origin: Origin
    directive: Literal["listen", "fastcgi_pass", "server"]
    old: str
    new: str
    pool: str | None = None

    def __str__(self) -> str:
        if self.directive == "listen":
            return f"`listen = {self.new}` in [{self.pool}]"
        return f"`{self.directive} {self.new};`"


#: what applying an edit to the whole config would break (the new finding, as text), None when nothing
#: (check.py answers it)
EditCheck = Callable[[Edit], "str | None"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in the configs, located on the NGINX side and the PHP-FPM side.

    ``edits``: the line changes the fix proposes (any one of them fixes it), each checked against the whole
    config: applying it creates no other finding.
    """

    code: str
    severity: Severity
    message: str
    fix: str
    nginx_origins: tuple[Origin, ...] = ()
    fpm_origins: tuple[Origin, ...] = ()
    cause: str | None = None  # the cause it predicts: a label of processor.diagnosis.registry
    pool: str | None = None
    target: str | None = None
    edits: tuple[Edit, ...] = ()
    address: str | None = None  # the one server of an upstream group ``target`` names that it is about

    def __post_init__(self) -> None:
        if self.cause is not None and not registry.is_registered(self.cause):
            raise ValueError(f"finding {self.code}: {self.cause!r} is not a registered cause")


@dataclass(frozen=True, slots=True)
class PassRoute:
    """A ``fastcgi_pass`` resolved to the addresses it really connects to (upstream servers expanded)."""

    fastcgi_pass: FastcgiPass
    keys: tuple[tuple[str, Origin], ...]  # (address key, where that address is written)


def resolve_routes(nginx: NginxConf) -> tuple[list[PassRoute], list[Finding]]:
    """Every fastcgi_pass with its address keys; a dynamic or undefined target is a finding."""
    routes: list[PassRoute] = []
    findings: list[Finding] = []
    for fp in nginx.fastcgi_passes:
        if "$" in fp.target:
            findings.append(
                Finding(
                    "fastcgi_pass_dynamic",
                    "info",
                    f"fastcgi_pass {fp.target} is chosen at run time; not checked",
                    "nothing to do, or check the values the variable can take by hand",
                    (fp.origin,),
                    target=fp.target,
                )
            )
            continue
        servers = nginx.upstreams.get(fp.target)
        if servers is not None:
            routes.append(PassRoute(fp, tuple((listen_address_key(s.server), s.origin) for s in servers)))
        elif ":" not in fp.target:
            findings.append(
                Finding(
                    "fastcgi_pass_unknown_upstream",
                    "error",
                    f"fastcgi_pass {fp.target}: no upstream block of that name (nginx: no port in upstream)",
                    f"define `upstream {fp.target} {{ server unix:/run/php/<pool>.sock; }}` or pass an address",
                    (fp.origin,),
                    cause="socket_mismatch",
                    target=fp.target,
                )
            )
        else:
            routes.append(PassRoute(fp, ((listen_address_key(fp.target), fp.origin),)))
    return routes, findings


def _wildcard_port(listen: str | None) -> str | None:
    """The port of a pool listening on every address (``9000``, ``0.0.0.0:9000``, ``[::]:9000``)."""
    if not listen:
        return None
    if listen.isdigit():
        return listen
    host, _, port = listen.rpartition(":")
    return port if host in ("0.0.0.0", "[::]", "*") and port.isdigit() else None


def pool_keys(pools: list[PoolConf], targets: set[str]) -> dict[str, PoolConf]:
    """Address key → pool, with a wildcard pool also answering for any host on its port."""
    by_key = {p.listen_key: p for p in pools if p.listen_key}
    for pool in pools:
        port = _wildcard_port(pool.listen)
        for key in targets:
            if port and not key.startswith("unix:") and key.rpartition(":")[2] == port:
                by_key.setdefault(key, pool)
    return by_key


def served_by_nginx(nginx: NginxConf) -> dict[str, Origin]:
    """The addresses NGINX itself answers HTTP on (each ``listen`` of an http server), as address keys: a
    wildcard (``80``, ``*:80``, ``0.0.0.0:80``, ``[::]:80``) is reached on loopback."""
    served: dict[str, Origin] = {}
    for listen in nginx.http_listens:
        address = listen.address[2:] if listen.address.startswith("*:") else listen.address
        served.setdefault(listen_address_key(address), listen.origin)
    return served


def check_passes_to_http(routes: list[PassRoute], served: dict[str, Origin]) -> list[Finding]:
    """fastcgi_pass to an address an http server of the same NGINX listens on: that server answers the FastCGI
    request with an HTTP 400, which NGINX reads as ``upstream sent unsupported FastCGI protocol version: 72``
    (the ``H`` of ``HTTP/1.1``) → 502 (docs/causes.md, ``protocol_mismatch``)."""
    findings: list[Finding] = []
    for route in routes:
        fp = route.fastcgi_pass
        for key, origin in route.keys:
            listen = served.get(key)
            if listen is None:
                continue
            via = _via(fp, key, origin)
            findings.append(
                Finding(
                    "fastcgi_pass_to_http",
                    "error",
                    f"{_where(fp)} fastcgi_pass {via}: NGINX itself serves HTTP there (listen at {listen}), not "
                    "PHP-FPM → 502 (upstream sent unsupported FastCGI protocol version: 72)",
                    "point fastcgi_pass at the PHP-FPM pool's listen address (or use proxy_pass for an HTTP backend)",
                    tuple(dict.fromkeys((fp.origin, origin, listen))),
                    cause="protocol_mismatch",
                    target=fp.target,
                )
            )
    return findings


def check_other_passes_to_fpm(nginx: NginxConf, pools: list[PoolConf]) -> list[Finding]:
    """``proxy_pass`` (or ``uwsgi_pass``, ``scgi_pass``, ``grpc_pass``) to a PHP-FPM pool's address: PHP-FPM speaks
    FastCGI only, resets the connection and logs nothing → 502 (docs/causes.md, ``protocol_mismatch``). Recorded
    with nginx 1.22 + php-fpm 8.2: ``recv() failed (104: Connection reset by peer)``."""
    findings: list[Finding] = []
    keys: list[tuple[OtherPass, str, Origin]] = []
    for op in nginx.other_passes:
        if "$" in op.target:
            continue
        host = listen_address_key(op.target).partition(":")[0]  # http://backend/… names an upstream group
        servers = nginx.upstreams.get(host) if "://" in op.target else None
        if servers is not None:
            keys += [(op, listen_address_key(server.server), server.origin) for server in servers]
        else:
            keys.append((op, listen_address_key(op.target), op.origin))
    by_key = pool_keys(pools, {key for _, key, _ in keys})
    for op, key, origin in keys:
        pool = by_key.get(key)
        if pool is None:
            continue
        findings.append(
            Finding(
                "pass_to_fpm_not_fastcgi",
                "error",
                f"{_where(op)} {op.directive} {op.target}: pool [{pool.name}] listens on {key} and speaks FastCGI only "
                "→ 502 (recv() failed (104: Connection reset by peer), nothing in PHP-FPM's log)",
                f"use `fastcgi_pass {key};` with `include fastcgi_params;` (SCRIPT_FILENAME) for PHP",
                tuple(dict.fromkeys((op.origin, origin))),
                (pool.origin_of("listen"),),
                "protocol_mismatch",
                pool.name,
                key,
            )
        )
    return findings


def check_reachability(
    routes: list[PassRoute],
    pools: list[PoolConf],
    safe: EditCheck | None = None,
    served: dict[str, Origin] | None = None,
) -> list[Finding]:
    """fastcgi_pass targets no pool listens on, pools no fastcgi_pass reaches, pools without listen.

    ``safe`` vets each edit a fix would propose against the whole config (None: every edit is taken as safe);
    a fix names only edits that pass, so following it cannot break another location. An address NGINX serves
    HTTP on itself (``served``) is ``check_passes_to_http``'s: nothing refuses the connection there."""
    findings: list[Finding] = []
    by_key = pool_keys(pools, {key for route in routes for key, _ in route.keys})
    for route in routes:
        fp = route.fastcgi_pass
        for key, origin in route.keys:
            if key in by_key or (served is not None and key in served):
                continue
            unix = key.startswith("unix:")
            # another machine's pool may simply not be among the configs given
            remote = not unix and not key.startswith("127.0.0.1:")
            near = _nearest(key, pools)
            listening = _listening(pools, near)
            edits, why_not = _reach_edits(key, origin, route, pools, safe)
            via = _via(fp, key, origin)
            findings.append(
                Finding(
                    "fastcgi_pass_unreached",
                    "warning" if remote else "error",
                    f"{_where(fp)} fastcgi_pass {via}: no PHP-FPM pool {'of those given ' if remote else ''}"
                    f"listens there ({listening}) → 502 "
                    f"({'connect() … (2: No such file or directory)' if unix else 'connect() failed (111: Connection refused)'})",
                    _reach_fix(key, edits, near, why_not),
                    tuple(dict.fromkeys((fp.origin, origin))),
                    (near.origin_of("listen"),) if near else (),
                    "socket_mismatch" if unix else "tcp_refused",
                    near.name if near else None,
                    fp.target,
                    edits,
                    key if origin != fp.origin else None,
                )
            )
    reached = {by_key[key].name for route in routes for key, _ in route.keys if key in by_key}
    for pool in pools:
        if pool.listen is None:
            findings.append(
                Finding(
                    "pool_no_listen",
                    "error",
                    f"pool [{pool.name}] has no listen address: PHP-FPM will not start",
                    f"set `listen = /run/php/{pool.name}.sock` in [{pool.name}]",
                    (),
                    (pool.origin,),
                    "fpm_down",
                    pool.name,
                )
            )
        elif pool.name not in reached:
            findings.append(
                Finding(
                    "pool_unreached",
                    "warning",
                    f"pool [{pool.name}] listens on {pool.listen} but no fastcgi_pass reaches it",
                    f"point a location's fastcgi_pass at {listen_address_key(pool.listen)} or remove the pool",
                    (),
                    (pool.origin_of("listen"),),
                    pool=pool.name,
                )
            )
    return findings


# how many pools, nearest first, a fix tries before it says "add a pool"
_CANDIDATES = 8


def _reach_edits(
    key: str, origin: Origin, route: PassRoute, pools: list[PoolConf], safe: EditCheck | None
) -> tuple[tuple[Edit, ...], str | None]:
    """The safe edits that make ``key`` reached: point NGINX at a pool that listens, or move a pool's listen
    to ``key`` — the nearest pool for which the edit breaks nothing else; and what moving the nearest pool's
    listen would have broken (None when it breaks nothing)."""
    fp = route.fastcgi_pass
    candidates = _similar(key, pools)[:_CANDIDATES]
    via_upstream = origin != fp.origin
    nginx_side = (
        Edit(
            origin,
            "server" if via_upstream else "fastcgi_pass",
            key if via_upstream else fp.target,
            listen_address_key(p.listen) if p.listen else "",
            p.name,
        )
        for p in candidates
    )
    fpm_side = (
        Edit(p.origin_of("listen"), "listen", p.listen or "", key.removeprefix("unix:"), p.name) for p in candidates
    )
    edits = []
    why_not_nearest: str | None = None
    for side in (nginx_side, fpm_side):
        for edit in side:
            broken = None if safe is None else safe(edit)
            if broken is None:
                edits.append(edit)
                break
            if edit.directive == "listen" and edit.pool == candidates[0].name:
                why_not_nearest = broken
    return tuple(edits), why_not_nearest


def _reach_fix(key: str, edits: tuple[Edit, ...], near: PoolConf | None, why_not: str | None) -> str:
    address = key.removeprefix("unix:")
    to_pool = next((e for e in edits if e.directive != "listen"), None)
    moved = next((e for e in edits if e.directive == "listen"), None)
    if to_pool is not None and moved is not None and to_pool.pool == moved.pool:
        return f"make both name the same socket: {to_pool} or {moved}"
    parts = []
    if to_pool is not None:
        parts.append(f"point it at a pool that listens: {to_pool} (pool [{to_pool.pool}])")
    if moved is not None:
        parts.append(f"move an unused pool there: {moved}")
    parts.append(f"add a pool with `listen = {address}`" + ("" if to_pool else " or fix fastcgi_pass"))
    fix = " or ".join(parts)
    if near is not None and why_not is not None:
        fix += f" (not `listen = {address}` in [{near.name}]: {why_not})"
    return fix


def _similar(key: str, pools: list[PoolConf]) -> list[PoolConf]:
    """Pools of the same kind as ``key`` (unix or TCP), the most alike first."""
    kind = [p for p in pools if p.listen_key and p.listen_key.startswith("unix:") == key.startswith("unix:")]
    return sorted(kind, key=lambda p: -SequenceMatcher(None, key, p.listen_key or "").ratio())


def _where(fp: FastcgiPass | OtherPass) -> str:
    names = " ".join(fp.server_names) or "(no server_name)"
    return f"server {names}, location {fp.location or '(none)'}:"


def _via(fp: FastcgiPass, key: str, origin: Origin) -> str:
    """The address a fastcgi_pass reaches, as a message says it: through an upstream group, the group and server."""
    return f"{fp.target} (upstream server {key})" if origin != fp.origin else key


def _nearest(key: str, pools: list[PoolConf]) -> PoolConf | None:
    """The pool whose address looks most like ``key`` (same kind: unix or TCP), for the message."""
    similar = _similar(key, pools)
    return similar[0] if similar else None


def _listening(pools: list[PoolConf], near: PoolConf | None) -> str:
    """What the pools do listen on — all of them when few, else the nearest and a count."""
    named = [f"{p.listen} [{p.name}]" for p in pools if p.listen]
    if len(named) <= 3:
        return "pools listen on: " + (", ".join(named) or "nothing")
    first = f"{near.listen} [{near.name}]" if near else named[0]
    return f"pools listen on: {first} and {len(named) - 1} more"
