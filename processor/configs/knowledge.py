"""What the configs teach the pipeline: access log formats, which file uses which, and the ``Topology``.

The edge between the config grammars (``grammars.nginx_conf``, ``grammars.fpm_conf``) and the core:
config errors become ``UserConfigError`` naming file:line.
"""

from __future__ import annotations

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
        out.append(PoolInfo(
            name=pool.name, listen=pool.listen, listen_key=key, origin=listen_origin, master=fpm.path,
            request_terminate_timeout_s=pool.request_terminate_timeout_s,
            request_terminate_timeout_origin=_o(pool.origins.get("request_terminate_timeout")),
            max_children=pool.max_children, max_children_origin=_o(pool.origins.get("pm.max_children")),
            listen_backlog=pool.listen_backlog, pm=pool.pm, listen_owner=pool.listen_owner,
            listen_group=pool.listen_group, listen_mode=pool.listen_mode,
            listen_origin=_o(pool.origins.get("listen.mode") or pool.origins.get("listen.owner")),
            max_execution_time_s=pool.max_execution_time_s,
        ))
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
            out.append(Route(
                target=target, target_key=key, origin=str(fp.origin), location=fp.location,
                read_timeout_s=fp.read_timeout_s, read_timeout_origin=_o(fp.read_timeout_origin),
                connect_timeout_s=fp.connect_timeout_s, buffer_size=str(fp.buffer_size),
                buffer_size_origin=_o(fp.buffer_size_origin),
            ))
    return out


def _findings(nginx: NginxConf | None, fpms: tuple[FpmConf, ...]) -> dict[str, tuple[tuple[str | None, str], ...]]:
    """check-config's findings, by upstream: incidents quote the one that explains them."""
    if nginx is None or not fpms:
        return {}
    from processor.configs.check import check  # the same checks `badgateway check-config` reports

    by_target: dict[str, list[tuple[str | None, str]]] = {}
    for finding in check(nginx, list(fpms)):
        key = address_key(finding.target) if finding.target else None
        if key is not None:
            by_target.setdefault(key, []).append((finding.cause, f"{finding.message} — fix: {finding.fix}"))
    return {k: tuple(v) for k, v in by_target.items()}


def load_knowledge(nginx_conf: str | None, fpm_confs: Sequence[str], log_format: str | None = None,
                   escape: str = "default") -> Knowledge:
    """Read the configs once; unreadable or broken configs raise ``UserConfigError`` (file:line: why)."""
    try:
        nginx = load_nginx_conf(nginx_conf) if nginx_conf else None
        fpms = tuple(load_fpm_conf(p) for p in fpm_confs)
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
