"""What the configs teach the pipeline: access log formats, which file uses which, and the ``Topology``.

The edge between the config grammars (``grammars.nginx_conf``, ``grammars.fpm_conf``) and the core:
config errors become ``UserConfigError`` naming file:line.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from grammars.access import AccessFormat, compile_log_format
from grammars.config_errors import ConfigError, Origin
from grammars.fpm_conf import FpmConf, load_fpm_conf
from grammars.nginx_conf import NginxConf, load_nginx_conf
from processor.core.errors import UserConfigError
from processor.diagnosis.topology import PoolInfo, Route, Topology, address_key

CLI_FORMAT = "cli"


@dataclass(frozen=True, slots=True)
class Knowledge:
    topology: Topology = field(default_factory=Topology)
    formats: dict[str, AccessFormat] = field(default_factory=dict)
    format_by_path: dict[str, str] = field(default_factory=dict)
    forced_format: str | None = None
    nginx: NginxConf | None = None
    fpm: tuple[FpmConf, ...] = ()


def _o(origin: Origin | None) -> str | None:
    return str(origin) if origin is not None else None


def pools_of(fpm: FpmConf) -> list[PoolInfo]:
    out: list[PoolInfo] = []
    for pool in fpm.pools.values():
        if not pool.listen:
            continue
        key = address_key(pool.listen)
        if key is None:
            continue
        listen_origin = _o(pool.origins.get("listen")) or str(pool.origin)
        out.append(
            PoolInfo(
                name=pool.name,
                listen=pool.listen,
                listen_key=key,
                origin=listen_origin,
                master=fpm.path,
                request_terminate_timeout_s=pool.request_terminate_timeout_s,
                request_terminate_timeout_origin=_o(pool.origins.get("request_terminate_timeout")),
                max_children=pool.max_children,
                max_children_origin=_o(pool.origins.get("pm.max_children")),
                listen_backlog=pool.listen_backlog,
                pm=pool.pm,
                listen_owner=pool.listen_owner,
                listen_group=pool.listen_group,
                listen_mode=pool.listen_mode,
                listen_origin=_o(pool.origins.get("listen.mode") or pool.origins.get("listen.owner")),
                max_execution_time_s=pool.max_execution_time_s,
            )
        )
    return out


def routes_of(nginx: NginxConf) -> list[Route]:
    out: list[Route] = []
    for fp in nginx.fastcgi_passes:
        servers = nginx.upstreams.get(fp.target)
        targets = [s.server for s in servers] if servers else [fp.target]
        for target in targets:
            key = address_key(target)
            if key is None:
                continue
            out.append(
                Route(
                    target=target,
                    target_key=key,
                    origin=str(fp.origin),
                    location=fp.location,
                    read_timeout_s=fp.read_timeout_s,
                    read_timeout_origin=_o(fp.read_timeout_origin),
                    connect_timeout_s=fp.connect_timeout_s,
                    buffer_size=str(fp.buffer_size),
                    buffer_size_origin=_o(fp.buffer_size_origin),
                    server_names=fp.server_names,
                )
            )
    return out


def _findings(
    nginx: NginxConf | None, fpms: tuple[FpmConf, ...]
) -> dict[str, tuple[tuple[str | None, str, tuple[str, ...]], ...]]:
    """check-config's findings, by upstream, with the nginx lines each names: incidents quote the one that
    explains them, of the fastcgi_pass they went through when several do."""
    if nginx is None or not fpms:
        return {}
    from processor.configs.check import check  # the same checks `badgateway check-config` reports

    by_target: dict[str, list[tuple[str | None, str, tuple[str, ...]]]] = {}
    for finding in check(nginx, list(fpms)):
        # a finding about one server of an upstream group goes with that server's address (NGINX logs it)
        key = address_key(finding.address or finding.target) if finding.target else None
        if key is not None:
            text = f"{finding.message} — fix: {finding.fix}"
            by_target.setdefault(key, []).append((finding.cause, text, tuple(map(str, finding.nginx_origins))))
    return {k: tuple(v) for k, v in by_target.items()}


# a line only nginx.conf has: a block opening or a directive ending in `;` (php-fpm.conf is `key = value`)
_NGINX_LINE = re.compile(
    r"^\s*(?:(?:http|events|server|location|upstream|stream)\b[^=]*\{|[a-z_]+\s+[^=]*;\s*(?:#.*)?$)"
)
_GLOB_CHARS = re.compile(r"[*?[]")
_EXPLAIN_BYTES = 1 << 20
_EXPLAIN_LINES = 2000  # how far into a broken php-fpm.conf the explanation looks for an nginx line


def fpm_conf_paths(specs: Sequence[str], *, root: str | None = None) -> list[str]:
    """``--fpm-conf`` arguments → php-fpm.conf files: a file as is, a directory's ``php-fpm*.conf`` (``/etc/php/8.2/fpm``
    holds one master's), a glob's matches (``/etc/php/*/fpm/php-fpm.conf``), each expanded the same way, in order
    and once. A directory or glob that gives nothing is an error: a silently empty list would hide every pool.
    With ``root`` (check-config --root) absolute paths are looked for under it, and returned as written."""
    out: list[str] = []
    for spec in specs:
        base = root.rstrip("/") if root and os.path.isabs(spec) else ""
        real = base + spec
        found = sorted(glob.glob(real)) if _GLOB_CHARS.search(spec) and not os.path.exists(real) else [real]
        found = [p[len(base) :] for p in found]
        if not found:
            raise UserConfigError(f"--fpm-conf {spec}: no file matches")
        for path in found:
            if os.path.isdir(base + path):
                masters = sorted(
                    p[len(base) :]
                    for p in glob.glob(os.path.join(glob.escape(base + path), "php-fpm*.conf"))
                    if os.path.isfile(p)
                )
                if not masters:
                    raise UserConfigError(
                        f"--fpm-conf {path}: a directory with no php-fpm*.conf in it (pass the "
                        "master's php-fpm.conf, or the directory that holds it)"
                    )
                found_here = masters
            else:
                found_here = [path]
            out += [p for p in found_here if p not in out]
    return out


def explain_fpm_error(path: str, exc: ConfigError) -> str:
    """A php-fpm.conf that does not parse: say which file and line, and what it looks like instead of the
    parser's column text (an nginx.conf passed as --fpm-conf is the usual mistake)."""
    where = exc.file or path
    try:
        # /dev/zero, a FIFO, a huge file: the parser's own message, nothing more is read
        if not os.path.isfile(where) or os.path.getsize(where) > _EXPLAIN_BYTES:
            return str(exc)
    except OSError:
        return str(exc)
    try:
        with open(where, encoding="utf-8", errors="replace") as fh:
            # the head only: a file that is no config may be anything, of any size
            lines = [line.rstrip("\n") for line, _ in zip(fh, range(max(_EXPLAIN_LINES, exc.line)))]
    except OSError:
        return str(exc)
    nginx_at = next((n for n, text in enumerate(lines, 1) if _NGINX_LINE.match(text)), None)
    if nginx_at is not None:
        return (
            f"{exc.file or path}:{nginx_at}: this is an nginx config ({lines[nginx_at - 1].strip()[:40]!r}), "
            "not a php-fpm.conf: pass it as --nginx-conf, and as --fpm-conf the PHP-FPM master's config "
            "(e.g. /etc/php/8.2/fpm/php-fpm.conf)"
        )
    if "column" in exc.message and exc.line:
        text = lines[exc.line - 1].strip() if 0 < exc.line <= len(lines) else ""
        return (
            f"{exc.file}:{exc.line}: not a php-fpm.conf line: {text[:60]!r} (expected `key = value`, "
            "`[pool]` or a comment)"
        )
    return str(exc)


def load_fpm_confs(specs: Sequence[str], *, root: str | None = None) -> tuple[FpmConf, ...]:
    """Every master config ``--fpm-conf`` names (files, directories, globs), errors made readable."""
    confs: list[FpmConf] = []
    for path in fpm_conf_paths(specs, root=root):
        try:
            confs.append(load_fpm_conf(path, root=root))
        except ConfigError as exc:
            raise UserConfigError(explain_fpm_error(path, exc)) from exc
    return tuple(confs)


def load_knowledge(
    nginx_conf: str | None, fpm_confs: Sequence[str], log_format: str | None = None, escape: str = "default"
) -> Knowledge:
    """Read the configs once; unreadable or broken configs raise ``UserConfigError`` (file:line: why)."""
    try:
        nginx = load_nginx_conf(nginx_conf) if nginx_conf else None
        fpms = load_fpm_confs(fpm_confs)
    except ConfigError as exc:
        raise UserConfigError(str(exc)) from exc
    except OSError as exc:
        raise UserConfigError(f"{exc.filename or nginx_conf}: {exc.strerror or exc}") from exc
    formats: dict[str, AccessFormat] = {}
    format_by_path: dict[str, str] = {}
    if nginx is not None:
        for name, lf in nginx.log_formats.items():
            try:
                formats[name] = compile_log_format(lf.fmt, escape=lf.escape, name=name)
            except (ValueError, TypeError) as exc:
                raise UserConfigError(f"{lf.origin}: log_format {name}: {exc}") from exc
        for al in nginx.access_logs:
            if al.path != "off":
                format_by_path[al.path] = al.format_name
    forced = None
    if log_format:
        try:
            formats[CLI_FORMAT] = compile_log_format(log_format, escape=escape, name=CLI_FORMAT)
        except (ValueError, TypeError) as exc:
            raise UserConfigError(f"--log-format: {exc}") from exc
        forced = CLI_FORMAT
    pools = tuple(p for fpm in fpms for p in pools_of(fpm))
    routes = tuple(routes_of(nginx)) if nginx is not None else ()
    user = nginx.user[0] if nginx is not None and nginx.user else None
    topology = Topology(pools=pools, routes=routes, nginx_user=user, findings=_findings(nginx, fpms))
    return Knowledge(topology, formats, format_by_path, forced, nginx, fpms)
