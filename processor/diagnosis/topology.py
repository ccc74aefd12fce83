"""What the configs tell the diagnosis: which pool listens where, and NGINX's timeouts per route.

A ``Topology`` is built once (from parsed nginx.conf / php-fpm.conf, see ``processor.configs.knowledge``) and
passed into the core; an empty one means "no configs known", and the causes fall back accordingly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from grammars.fpm_conf import listen_address_key


@lru_cache(maxsize=4096)
def address_key(address: str | None) -> str | None:
    """Normalise an upstream address so NGINX and PHP-FPM spellings compare equal.

    ``fastcgi://unix:/run/php/a.sock:`` / ``unix:/run/php/a.sock`` / ``/run/php/a.sock`` → ``unix:/run/php/a.sock``;
    ``9000`` / ``localhost:9000`` / ``0.0.0.0:9000`` → ``127.0.0.1:9000`` (the config grammar's rule).
    Cached: every failure asks, and a site has a handful of upstreams (in an outage, the same one each time).
    """
    if not address or not address.strip():
        return None
    return listen_address_key(address)


_WILDCARD_HOSTS: frozenset[str] = frozenset({"0.0.0.0", "[::]", "::", "*"})


def _wildcard_port(listen: str) -> str | None:
    """The port of a ``listen`` on every address (``9001``, ``0.0.0.0:9001``, ``[::]:9001``), else None."""
    addr = listen.strip()
    if addr.isdigit():
        return addr
    host, sep, port = addr.rpartition(":")
    return port if sep and port.isdigit() and host in _WILDCARD_HOSTS else None


def is_unix(address_key_: str | None) -> bool:
    return bool(address_key_) and str(address_key_).startswith("unix:")


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """One PHP-FPM pool as its config declares it."""

    name: str
    listen: str
    listen_key: str
    origin: str  # "pool.d/www.conf:14" (where `listen` is set)
    master: str  # the php-fpm.conf this pool belongs to
    request_terminate_timeout_s: float | None = None
    request_terminate_timeout_origin: str | None = None
    max_children: int | None = None
    max_children_origin: str | None = None
    listen_backlog: int | None = None
    pm: str | None = None
    listen_owner: str | None = None
    listen_group: str | None = None
    listen_mode: str | None = None
    listen_origin: str | None = None
    max_execution_time_s: float | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """An NGINX ``fastcgi_pass`` and the timeouts/buffers in force where it is."""

    target: str
    target_key: str
    origin: str
    location: str | None = None
    read_timeout_s: float = 60.0
    read_timeout_origin: str | None = None
    connect_timeout_s: float = 60.0
    buffer_size: str | None = None
    buffer_size_origin: str | None = None
    server_names: tuple[str, ...] = ()  # of the server block it sits in


@dataclass(frozen=True, slots=True)
class Topology:
    """Pools by listen address, routes by target; empty when no configs were given."""

    pools: tuple[PoolInfo, ...] = ()
    routes: tuple[Route, ...] = ()
    nginx_user: str | None = None
    # check-config's findings about each upstream (listen key → (cause label, "message — fix", nginx file:lines))
    findings: dict[str, tuple[tuple[str | None, str, tuple[str, ...]], ...]] = field(
        default_factory=dict, compare=False
    )
    _by_key: dict[str, PoolInfo] = field(default_factory=dict, compare=False, repr=False)
    # pools listening on every address (`listen = 0.0.0.0:9001`, `[::]:9001`, `9001`) by port; None: ambiguous
    _by_port: dict[str, PoolInfo | None] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for pool in self.pools:
            self._by_key.setdefault(pool.listen_key, pool)
            port = _wildcard_port(pool.listen)
            if port is not None:
                self._by_port[port] = pool if self._by_port.get(port, pool) is pool else None

    @property
    def known(self) -> bool:
        """True when pool configs were given (so a missing listen address means a mismatch)."""
        return bool(self.pools)

    def pool_at(self, address: str | None) -> PoolInfo | None:
        """The pool listening at ``address``: its exact ``listen``, or the one pool listening on every address
        at that port (NGINX connects to ``10.0.0.2:9001``, the pool says ``listen = 0.0.0.0:9001``)."""
        key = address_key(address)
        if not key:
            return None
        pool = self._by_key.get(key)
        if pool is None and self._by_port and not is_unix(key):
            pool = self._by_port.get(key.rpartition(":")[2])
        return pool

    def route_to(self, address: str | None, server: str | None = None, uri: str | None = None) -> Route | None:
        """The ``fastcgi_pass`` a request to ``address`` went through: of those naming that address, one in the
        server block NGINX named in the error entry (``server``), and there the location NGINX would choose for
        ``uri`` (``location_for``); else the first. Two locations passing to one pool may have other timeouts and
        buffers, and the remediation quotes the one in force."""
        key = address_key(address)
        routes = [route for route in self.routes if route.target_key == key]
        if len(routes) > 1 and server:
            routes = [r for r in routes if server in r.server_names] or routes
        if len(routes) > 1 and uri:
            return location_for(routes, uri.partition("?")[0]) or routes[0]
        return routes[0] if routes else None

    def masters(self) -> tuple[str, ...]:
        return tuple(sorted({p.master for p in self.pools}))


def location_for(routes: list[Route], path: str) -> Route | None:
    """The route whose location NGINX picks for ``path`` (ngx_http_core_find_location): an exact ``=`` match;
    else the longest prefix, unless it is ``^~`` the first regex (``~``, ``~*``) in config order that matches;
    else that longest prefix. None when none matches (an internal redirect, a named location)."""
    longest: tuple[int, bool, Route] | None = None
    for route in routes:
        kind, pattern = _location(route.location or "")
        if kind == "=" and path == pattern:
            return route
        if kind in ("", "^~") and path.startswith(pattern) and (longest is None or len(pattern) > longest[0]):
            longest = (len(pattern), kind == "^~", route)
    if longest is not None and longest[1]:
        return longest[2]
    for route in routes:
        kind, pattern = _location(route.location or "")
        if kind in ("~", "~*") and (regex := _regex(pattern, kind == "~*")) is not None and regex.search(path):
            return route
    return longest[2] if longest is not None else None


def _location(location: str) -> tuple[str, str]:
    """``~* \\.php$`` → (``~*``, ``\\.php$``); ``/api/`` → ("", ``/api/``); ``=/x`` → (``=``, ``/x``)."""
    for modifier in ("^~", "~*", "=", "~", "@"):
        if location.startswith(modifier):
            return modifier, location[len(modifier) :].strip()
    return "", location.strip()


@lru_cache(maxsize=256)
def _regex(pattern: str, ignore_case: bool) -> re.Pattern[str] | None:
    try:  # PCRE, as NGINX compiles it: Python's re reads what locations commonly hold
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error:
        return None
