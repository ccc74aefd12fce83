"""php-fpm.conf + pool files → the master's settings and one ``PoolConf`` per ``[pool]``.

Built on ``grammars.fpm_ini`` (the ini syntax and ``include=``). ``$pool`` in a pool's values is
replaced by the pool name, as FPM does (``listen = /run/php/$pool.sock``). Every value keeps its
``Origin``; an unset key has none, and the documented FPM default is applied by the reader of it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple, TypeVar

from grammars.conf_units import php_time_s
from grammars.config_errors import ConfigError, Origin
from grammars.fpm_ini import IniReader

# FPM_BACKLOG_DEFAULT on Linux (php-src sapi/fpm/fpm/fpm_sockets.h).
DEFAULT_LISTEN_BACKLOG: Final = 511
DEFAULT_LISTEN_MODE: Final = "0660"
_TRUE: Final = frozenset({"1", "yes", "on", "true"})
_FALSE: Final = frozenset({"", "0", "no", "off", "false", "none"})
_PHP_VALUE: Final = re.compile(r"(php_(?:admin_)?(?:value|flag))\[([^\]]+)\]")
T = TypeVar("T")


class Setting(NamedTuple):
    """A raw ini value (after ``$pool`` substitution) and where it was set."""

    value: str
    origin: Origin


@dataclass(frozen=True, slots=True)
class PoolConf:
    """One PHP-FPM pool as configured. ``None`` means "not set" (FPM's default applies).

    ``listen_mode`` is the mode as written (``0660``); ``max_execution_time_s`` comes from
    ``php_admin_value[max_execution_time]`` (or ``php_value[…]``), php.ini is not read.
    ``origins`` maps each ini key set for the pool (``listen``, ``pm.max_children``, …) to its Origin.
    """

    name: str
    origin: Origin
    listen: str | None
    listen_owner: str | None
    listen_group: str | None
    listen_mode: str | None
    listen_acl_users: tuple[str, ...]
    listen_acl_groups: tuple[str, ...]
    listen_backlog: int | None
    user: str | None
    group: str | None
    pm: str | None
    max_children: int | None
    request_terminate_timeout_s: float | None
    request_slowlog_timeout_s: float | None
    slowlog: str | None
    access_log: str | None
    access_format: str | None
    catch_workers_output: bool | None
    php_values: dict[str, str]
    php_admin_values: dict[str, str]
    max_execution_time_s: float | None
    origins: dict[str, Origin]
    settings: dict[str, Setting]

    def origin_of(self, key: str) -> Origin:
        """Where ``key`` was set, or the pool's ``[name]`` header when it was left at its default."""
        return self.origins.get(key, self.origin)

    @property
    def listen_key(self) -> str | None:
        """``listen_address_key(listen)``, to compare with an nginx ``fastcgi_pass``."""
        return listen_address_key(self.listen) if self.listen else None


@dataclass(frozen=True, slots=True)
class FpmConf:
    """One php-fpm master: its ``[global]`` settings and its pools."""

    path: str
    pools: dict[str, PoolConf]
    error_log: str | None
    error_log_origin: Origin | None
    log_level: str | None
    log_limit: int | None
    global_settings: dict[str, Setting]
    files: tuple[str, ...]


_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", "*", ""})


def listen_address_key(listen: str) -> str:
    """One comparable spelling for an FPM ``listen`` and an nginx ``fastcgi_pass`` target.

    ``unix:/run/php/a.sock`` and ``/run/php/a.sock`` → ``unix:/run/php/a.sock``; ``9000``,
    ``127.0.0.1:9000``, ``localhost:9000``, ``[::]:9000``, ``0.0.0.0:9000`` → ``127.0.0.1:9000``
    (a wildcard listen is reachable on loopback); other hosts keep their name (``10.0.0.5:9000``). An error
    entry's ``upstream`` loses its scheme and a proxied request's URI (``http://10.0.0.5:8080/a.jpg`` →
    ``10.0.0.5:8080``).
    """
    addr = listen.strip()
    _, scheme, rest = addr.partition("://")
    if scheme:
        # an error entry's `upstream: "fastcgi://…"`; a proxied one carries the request's URI after the address
        # (`http://10.0.0.2:8080/a.jpg`, `http://unix:/run/app.sock:/a`): the address is what comes before it
        addr = "unix:" + rest[5:].partition(":")[0] if rest.startswith("unix:") else rest.partition("/")[0]
    if addr.startswith("unix:"):
        return "unix:" + addr[5:].rstrip(":") if addr.endswith(":") else addr
    if addr.startswith("/"):
        return "unix:" + addr
    if addr.isdigit():
        return "127.0.0.1:" + addr
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        return addr.lower()  # an upstream name or a host without a port
    host = host.strip("[]").lower()
    return f"{'127.0.0.1' if host in _LOOPBACK else host}:{port}"


def load_fpm_conf(path: str, *, prefix: str | None = None, root: str | None = None) -> FpmConf:
    """Read a php-fpm.conf and everything it includes.

    FPM prefixes a relative ``include`` with its ``-p`` prefix (``/usr`` by default); pass
    ``prefix`` to say so. Without it the main file's directory is tried, then the including
    file's, which is what a copied config tree needs. ``root`` re-bases absolute paths.
    """
    reader = IniReader(prefix if prefix is not None else os.path.dirname(path), root)
    global_settings: dict[str, Setting] = {}
    pool_settings: dict[str, dict[str, Setting]] = {}
    for entry in reader.read(path):
        if entry.section == "global":
            global_settings[entry.key] = Setting(entry.value, entry.origin)
            continue
        # FPM expands $pool in every string option of a pool (fpm_conf_expand_pool_name)
        value = entry.value.replace("$pool", entry.section)
        pool_settings.setdefault(entry.section, {})[entry.key] = Setting(value, entry.origin)
    pools = {
        name: _pool(name, reader.section_origins.get(name, s[next(iter(s))].origin), s)
        for name, s in pool_settings.items()
    }
    error_log = global_settings.get("error_log")
    limit = global_settings.get("log_limit")
    return FpmConf(
        path=path,
        pools=pools,
        error_log=error_log.value if error_log else None,
        error_log_origin=error_log.origin if error_log else None,
        log_level=global_settings["log_level"].value if "log_level" in global_settings else None,
        log_limit=_int(limit) if limit else None,
        global_settings=global_settings,
        files=tuple(reader.files),
    )


def _int(s: Setting) -> int:
    try:
        return int(s.value, 0) if s.value.startswith("0x") else int(s.value)
    except ValueError:
        raise ConfigError(s.origin.file, s.origin.line, f"invalid integer {s.value!r}") from None


def _time(s: Setting) -> float:
    try:
        return php_time_s(s.value)
    except ValueError as exc:
        raise ConfigError(s.origin.file, s.origin.line, str(exc)) from None


def _bool(s: Setting) -> bool:
    value = s.value.strip().lower()
    if value not in _TRUE | _FALSE:
        raise ConfigError(s.origin.file, s.origin.line, f"invalid boolean {s.value!r} (expected yes or no)")
    return value in _TRUE


def _pool(name: str, origin: Origin, settings: dict[str, Setting]) -> PoolConf:
    def text(key: str) -> str | None:
        return settings[key].value if key in settings else None

    def typed(key: str, convert: Callable[[Setting], T]) -> T | None:
        return convert(settings[key]) if key in settings else None

    php: dict[str, dict[str, str]] = {"php_value": {}, "php_admin_value": {}}
    for key, s in settings.items():
        m = _PHP_VALUE.fullmatch(key)
        if m:
            php["php_admin_value" if "admin" in m.group(1) else "php_value"][m.group(2)] = s.value
    # php_admin_value wins: php_value can be overridden by ini_set(), the admin one cannot
    max_exec_key = next(
        (k for k in ("php_admin_value[max_execution_time]", "php_value[max_execution_time]") if k in settings), None
    )
    return PoolConf(
        name=name,
        origin=origin,
        listen=text("listen"),
        listen_owner=text("listen.owner"),
        listen_group=text("listen.group"),
        listen_mode=text("listen.mode"),
        listen_acl_users=_list(text("listen.acl_users")),
        listen_acl_groups=_list(text("listen.acl_groups")),
        listen_backlog=typed("listen.backlog", _int),
        user=text("user"),
        group=text("group"),
        pm=text("pm"),
        max_children=typed("pm.max_children", _int),
        request_terminate_timeout_s=typed("request_terminate_timeout", _time),
        request_slowlog_timeout_s=typed("request_slowlog_timeout", _time),
        slowlog=text("slowlog"),
        access_log=text("access.log"),
        access_format=text("access.format"),
        catch_workers_output=typed("catch_workers_output", _bool),
        php_values=php["php_value"],
        php_admin_values=php["php_admin_value"],
        max_execution_time_s=_time(settings[max_exec_key]) if max_exec_key else None,
        origins={k: s.origin for k, s in settings.items()},
        settings=dict(settings),
    )


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()
