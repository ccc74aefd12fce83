"""nginx.conf → what badgateway needs: log formats, access/error logs, user, fastcgi routes, upstreams.

``load_nginx_conf`` reads the main file, expands ``include`` (globs, cycles detected) and walks the
tree once, carrying the ``fastcgi_*`` settings inherited http → server → location. Every value
keeps the ``Origin`` (file:line) it was read from; a default nginx applies has origin ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple, TypeVar

from grammars.conf_units import nginx_size, nginx_time_s
from grammars.config_errors import ConfigError, Origin
from grammars.nginx_include import expand_includes
from grammars.nginx_syntax import Directive

# One memory page on x86-64 (the documented default is "4k|8k").
DEFAULT_BUFFER_SIZE: Final = 4096
DEFAULT_BUFFERS: Final = (8, 4096)
DEFAULT_TIMEOUT_S: Final = 60.0
T = TypeVar("T")


class LogFormat(NamedTuple):
    """``log_format name [escape=…] 'part' …;`` with the parts concatenated."""

    fmt: str
    escape: str
    origin: Origin


class AccessLog(NamedTuple):
    """``access_log path [format]``; ``path == "off"`` (and no format) when logging is switched off."""

    path: str
    format_name: str
    origin: Origin


class ErrorLog(NamedTuple):
    """``error_log path [level]`` (level defaults to ``error``)."""

    path: str
    level: str
    origin: Origin


class UpstreamServer(NamedTuple):
    """One ``server address [params];`` inside an ``upstream`` block (params dropped)."""

    server: str
    origin: Origin


class OtherPass(NamedTuple):
    """A ``proxy_pass`` / ``uwsgi_pass`` / ``scgi_pass`` / ``grpc_pass``: a location that does not speak FastCGI."""

    directive: str
    target: str
    server_names: tuple[str, ...]
    location: str | None
    origin: Origin


class Listen(NamedTuple):
    """One ``listen address [params];`` of an ``http`` server: where NGINX itself answers HTTP (params dropped)."""

    address: str
    origin: Origin


@dataclass(frozen=True, slots=True)
class FastcgiPass:
    """One ``fastcgi_pass`` with where it sits and the fastcgi settings in force there.

    ``*_origin`` is None when nginx's default applies (60 s timeouts, 4k buffer, 8 4k buffers).
    """

    target: str
    server_names: tuple[str, ...]
    location: str | None
    origin: Origin
    read_timeout_s: float = DEFAULT_TIMEOUT_S
    send_timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_TIMEOUT_S
    buffer_size: int = DEFAULT_BUFFER_SIZE
    buffers: tuple[int, int] = DEFAULT_BUFFERS
    intercept_errors: bool = False
    listens: tuple[str, ...] = ()
    read_timeout_origin: Origin | None = None
    send_timeout_origin: Origin | None = None
    connect_timeout_origin: Origin | None = None
    buffer_size_origin: Origin | None = None
    buffers_origin: Origin | None = None
    intercept_errors_origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class NginxConf:
    """Everything extracted from one nginx.conf tree.

    ``user`` is None when the directive is absent: nginx then runs workers as ``nobody`` with
    group ``nogroup`` on Debian (``nobody`` elsewhere) — see ``effective_user``.
    """

    path: str
    log_formats: dict[str, LogFormat]
    access_logs: tuple[AccessLog, ...]
    error_logs: tuple[ErrorLog, ...]
    user: tuple[str, str] | None
    user_origin: Origin | None
    fastcgi_passes: tuple[FastcgiPass, ...]
    upstreams: dict[str, tuple[UpstreamServer, ...]]
    files: tuple[str, ...]
    http_listens: tuple[Listen, ...] = ()  # every http server's listen (not stream's or mail's)
    other_passes: tuple[OtherPass, ...] = ()  # proxy_pass & co. of http locations (not stream's)

    @property
    def effective_user(self) -> tuple[str, str]:
        """(user, group) the workers run as, applying nginx's compiled-in default when unset."""
        return self.user if self.user is not None else ("nobody", "nogroup")


def load_nginx_conf(path: str, *, prefix: str | None = None, root: str | None = None) -> NginxConf:
    """Read ``path`` and everything it includes.

    ``prefix`` is nginx's conf prefix for relative ``include``s (default: the main file's
    directory, as nginx does). ``root`` re-bases absolute paths, to check a config tree copied
    from another machine (``/etc/nginx/x`` is read as ``root/etc/nginx/x``).
    """
    tree, files = expand_includes(path, prefix=prefix, root=root)
    return _extract(path, tree, files)


def _arg(d: Directive, index: int) -> str:
    if len(d.args) <= index:
        raise ConfigError(d.origin.file, d.origin.line, f'invalid number of arguments in "{d.name}" directive')
    return d.args[index]


def _converted(d: Directive, convert: Callable[[Directive], T]) -> T:
    """``convert(d)``; a value nginx would reject is a ConfigError at the directive."""
    try:
        return convert(d)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(d.origin.file, d.origin.line, f'"{d.name}": {exc}') from None


def _time(d: Directive) -> float:
    return nginx_time_s(_arg(d, 0))


def _size(d: Directive) -> int:
    return nginx_size(_arg(d, 0))


def _buffers(d: Directive) -> tuple[int, int]:
    return int(_arg(d, 0)), nginx_size(_arg(d, 1))


def _flag(d: Directive) -> bool:
    if _arg(d, 0) not in ("on", "off"):
        raise ValueError(f'invalid value "{d.args[0]}", it must be "on" or "off"')
    return d.args[0] == "on"


# the fastcgi settings a fastcgi_pass inherits, and how each one's value is read
_INHERITED: Final[dict[str, Callable[[Directive], object]]] = {
    "fastcgi_read_timeout": _time,
    "fastcgi_send_timeout": _time,
    "fastcgi_connect_timeout": _time,
    "fastcgi_buffer_size": _size,
    "fastcgi_buffers": _buffers,
    "fastcgi_intercept_errors": _flag,
}


_OTHER_PASSES: Final = frozenset({"proxy_pass", "uwsgi_pass", "scgi_pass", "grpc_pass"})


@dataclass(frozen=True, slots=True)
class _Scope:
    """What a block inherits: server names/listens of the enclosing server, fastcgi settings."""

    server_names: tuple[str, ...] = ()
    listens: tuple[str, ...] = ()
    location: str | None = None
    settings: Mapping[str, Directive] = field(default_factory=dict)  # innermost fastcgi_* directive


class _Collector:
    def __init__(self) -> None:
        self.log_formats: dict[str, LogFormat] = {}
        self.access_logs: list[AccessLog] = []
        self.error_logs: list[ErrorLog] = []
        self.user: tuple[str, str] | None = None
        self.user_origin: Origin | None = None
        self.passes: list[FastcgiPass] = []
        self.upstreams: dict[str, tuple[UpstreamServer, ...]] = {}
        self.http_listens: list[Listen] = []
        self.other_passes: list[OtherPass] = []
        self._in_http = 0

    def walk(self, block: tuple[Directive, ...], scope: _Scope) -> None:
        # nginx applies a directive to its whole block wherever it appears, so settle the
        # block's own settings before looking at fastcgi_pass and nested blocks.
        settings = dict(scope.settings)
        for d in block:
            if d.name in _INHERITED:
                _converted(d, _INHERITED[d.name])  # nginx rejects a bad value even where unused
                settings[d.name] = d
        here = _Scope(scope.server_names, scope.listens, scope.location, settings)
        for d in block:
            self.directive(d, here)

    def directive(self, d: Directive, scope: _Scope) -> None:
        if d.name == "log_format":
            self.log_format(d)
        elif d.name == "access_log":
            path = _arg(d, 0)
            fmt = "" if path == "off" else next((a for a in d.args[1:2] if "=" not in a), "combined")
            self.access_logs.append(AccessLog(path, fmt, d.origin))
        elif d.name == "error_log":
            self.error_logs.append(ErrorLog(_arg(d, 0), d.args[1] if len(d.args) > 1 else "error", d.origin))
        elif d.name == "user":
            # "If group is omitted, a group whose name equals that of user is used."
            self.user, self.user_origin = (_arg(d, 0), d.args[1] if len(d.args) > 1 else d.args[0]), d.origin
        elif d.name == "fastcgi_pass":
            self.passes.append(_fastcgi_pass(d, scope))
        elif d.name == "upstream" and d.block is not None:
            self.upstreams[_arg(d, 0)] = tuple(
                UpstreamServer(_arg(s, 0), s.origin) for s in d.block if s.name == "server"
            )
        elif d.name == "listen" and d.args and self._in_http:
            self.http_listens.append(Listen(d.args[0], d.origin))
        elif d.name in _OTHER_PASSES and d.args and self._in_http:
            self.other_passes.append(OtherPass(d.name, d.args[0], scope.server_names, scope.location, d.origin))
        elif d.block is not None:
            http = d.name == "http"
            self._in_http += http
            self.walk(d.block, _enter(d, scope))
            self._in_http -= http

    def log_format(self, d: Directive) -> None:
        name, rest = _arg(d, 0), list(d.args[1:])
        escape = "default"
        if rest and rest[0].startswith("escape="):
            escape = rest.pop(0).removeprefix("escape=")
            if escape not in ("default", "json", "none"):
                raise ConfigError(d.origin.file, d.origin.line, f'unknown log format escaping "{escape}"')
        if not rest:
            raise ConfigError(d.origin.file, d.origin.line, 'invalid number of arguments in "log_format" directive')
        self.log_formats[name] = LogFormat("".join(rest), escape, d.origin)


def _enter(d: Directive, scope: _Scope) -> _Scope:
    """The scope inside block ``d``: a server resets names/listens, a location names the route."""
    if d.name == "server" and d.block is not None:
        names = tuple(a for s in d.block if s.name == "server_name" for a in s.args)
        listens = tuple(s.args[0] for s in d.block if s.name == "listen" and s.args)
        return _Scope(names, listens, None, scope.settings)
    if d.name == "location":
        return _Scope(scope.server_names, scope.listens, " ".join(d.args), scope.settings)
    return scope


def _fastcgi_pass(d: Directive, scope: _Scope) -> FastcgiPass:
    def setting(name: str, convert: Callable[[Directive], T], default: T) -> tuple[T, Origin | None]:
        found = scope.settings.get(name)
        return (default, None) if found is None else (_converted(found, convert), found.origin)

    read, read_o = setting("fastcgi_read_timeout", _time, DEFAULT_TIMEOUT_S)
    send, send_o = setting("fastcgi_send_timeout", _time, DEFAULT_TIMEOUT_S)
    conn, conn_o = setting("fastcgi_connect_timeout", _time, DEFAULT_TIMEOUT_S)
    size, size_o = setting("fastcgi_buffer_size", _size, DEFAULT_BUFFER_SIZE)
    bufs, bufs_o = setting("fastcgi_buffers", _buffers, DEFAULT_BUFFERS)
    icpt, icpt_o = setting("fastcgi_intercept_errors", _flag, False)
    return FastcgiPass(
        target=_arg(d, 0),
        server_names=scope.server_names,
        location=scope.location,
        origin=d.origin,
        read_timeout_s=read,
        send_timeout_s=send,
        connect_timeout_s=conn,
        buffer_size=size,
        buffers=bufs,
        intercept_errors=icpt,
        listens=scope.listens,
        read_timeout_origin=read_o,
        send_timeout_origin=send_o,
        connect_timeout_origin=conn_o,
        buffer_size_origin=size_o,
        buffers_origin=bufs_o,
        intercept_errors_origin=icpt_o,
    )


def _extract(path: str, tree: tuple[Directive, ...], files: tuple[str, ...]) -> NginxConf:
    c = _Collector()
    c.walk(tree, _Scope())
    return NginxConf(
        path=path,
        log_formats=c.log_formats,
        access_logs=tuple(c.access_logs),
        error_logs=tuple(c.error_logs),
        user=c.user,
        user_origin=c.user_origin,
        fastcgi_passes=tuple(c.passes),
        upstreams=c.upstreams,
        files=files,
        http_listens=tuple(c.http_listens),
        other_passes=tuple(c.other_passes),
    )


__all__ = [
    "AccessLog",
    "ConfigError",
    "ErrorLog",
    "FastcgiPass",
    "Listen",
    "LogFormat",
    "NginxConf",
    "Origin",
    "OtherPass",
    "UpstreamServer",
    "load_nginx_conf",
]
