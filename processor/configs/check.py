"""``badgateway check-config``: find the 502s before they happen, from nginx.conf and php-fpm.conf.

``check`` is pure (parsed configs in, findings out); ``add_arguments``/``run`` are the CLI glue
that ``processor.cli`` calls. Exit codes: 0 no errors, 1 errors found, 2 unreadable/invalid config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from grammars.conf_units import PHP_TIME
from grammars.config_errors import Origin
from grammars.fpm_conf import DEFAULT_LISTEN_BACKLOG, FpmConf, PoolConf, listen_address_key
from grammars.nginx_conf import NginxConf, UpstreamServer
from processor.configs.live_host import LiveHost
from processor.configs.permissions import check_permissions
from processor.configs.rules import (
    SEVERITIES,
    Edit,
    EditCheck,
    Finding,
    PassRoute,
    check_other_passes_to_fpm,
    check_passes_to_http,
    check_reachability,
    pool_keys,
    resolve_routes,
    served_by_nginx,
)

_BUILTIN_FORMATS = frozenset({"combined"})
# Debian's stock pool size: at most this many PHP requests run at once, the rest queue.
_FEW_CHILDREN = 5


def check(nginx: NginxConf, fpms: list[FpmConf], live: LiveHost | None = None) -> list[Finding]:
    """Every finding for one NGINX and its PHP-FPM masters, errors first, then by location.

    A fix that proposes to change a line (``Finding.edits``) is checked first: the edit is applied to the
    whole config and the checks run again; an edit that would create another finding is not proposed. One
    kind is not counted against an edit: the timeout findings of a pool nothing reached before (its
    request_terminate_timeout could not be compared with any location's until then: they are that pool's own,
    and check-config reports them once the edit is made)."""
    pools = [pool for fpm in fpms for pool in fpm.pools.values()]
    before = _findings(nginx, pools, live, None)
    baseline = {_identity(f) for f in before}
    unused = {f.pool for f in before if f.code == "pool_unreached"}

    def breaks(edit: Edit) -> str | None:
        edited_nginx, edited_pools = apply_edit(edit, nginx, pools)
        new = [
            f
            for f in _findings(edited_nginx, edited_pools, live, None)
            if _identity(f) not in baseline and not (f.code in _PER_POOL_AND_TIMEOUT and f.pool in unused)
        ]
        return None if not new else f"that would cause {new[0].code} at {_first_origin(new[0])}"

    findings = _findings(nginx, pools, live, breaks)
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), f.nginx_origins or f.fpm_origins, f.code))


def _findings(nginx: NginxConf, pools: list[PoolConf], live: LiveHost | None, safe: EditCheck | None) -> list[Finding]:
    routes, findings = resolve_routes(nginx)
    findings += _check_log_formats(nginx)
    served = served_by_nginx(nginx)
    findings += check_passes_to_http(routes, served)
    if pools:
        findings += check_reachability(routes, pools, safe, served)
        findings += check_other_passes_to_fpm(nginx, pools)
        findings += check_permissions(nginx, routes, pools, live)
        findings += _check_timeouts(routes, pools)
    findings += _check_buffers(routes)
    findings += [f for pool in pools for f in _check_pool(pool)]
    return findings


def _identity(f: Finding) -> tuple[object, ...]:
    """What makes a finding the same one after an edit: not its wording, nor the nearest pool it names (the
    edit may move which pool is nearest), nor its counts."""
    if f.code in _PER_POOL_AND_TIMEOUT:
        # reported once per (pool, fastcgi_read_timeout), at the first location that has it: another location
        # taking the pool's traffic is the same finding
        return (f.code, f.pool, f.message)
    if f.code == "fastcgi_buffer_size_default":
        return (f.code, f.nginx_origins)  # about the locations; which address they pass to is not its business
    return (f.code, f.target, f.nginx_origins, None if f.code == "fastcgi_pass_unreached" else f.pool)


_PER_POOL_AND_TIMEOUT = frozenset({"fpm_timeout_first", "fpm_timeout_unset", "nginx_timeout_first"})


def _first_origin(f: Finding) -> str:
    origins = f.nginx_origins or f.fpm_origins
    return str(origins[0]) if origins else f"[{f.pool}]"


def apply_edit(edit: Edit, nginx: NginxConf, pools: list[PoolConf]) -> tuple[NginxConf, list[PoolConf]]:
    """The configs as they would be once ``edit`` is made (the parsed model, not the files)."""
    if edit.directive == "listen":
        return nginx, [
            dataclasses.replace(p, listen=edit.new)
            if p.name == edit.pool and p.origin_of("listen") == edit.origin
            else p
            for p in pools
        ]
    if edit.directive == "fastcgi_pass":
        passes = tuple(
            dataclasses.replace(fp, target=edit.new) if fp.origin == edit.origin else fp for fp in nginx.fastcgi_passes
        )
        return dataclasses.replace(nginx, fastcgi_passes=passes), pools
    upstreams = {
        name: tuple(UpstreamServer(edit.new, s.origin) if s.origin == edit.origin else s for s in servers)
        for name, servers in nginx.upstreams.items()
    }
    return dataclasses.replace(nginx, upstreams=upstreams), pools


def not_checked(nginx: NginxConf, fpms: list[FpmConf]) -> list[Finding]:
    """The checks that could not run for want of a config: silence about them is not a clean bill of health."""
    if fpms:
        return []
    passes = len(nginx.fastcgi_passes)
    return [
        Finding(
            "not_checked",
            "info",
            f"no --fpm-conf: the PHP-FPM checks did not run — which pool each of the {passes} fastcgi_pass reaches "
            "(socket_mismatch, tcp_refused), socket permissions (socket_permission), request_terminate_timeout "
            "against fastcgi_read_timeout (fpm_timeout, nginx_timeout), pm.max_children, listen.backlog and slowlog",
            "pass the PHP-FPM masters' configs: --fpm-conf /etc/php/8.2/fpm (a directory, a file or a glob such as "
            "'/etc/php/*/fpm/php-fpm.conf')",
            (Origin(nginx.path, 0),),
        )
    ]


def _check_log_formats(nginx: NginxConf) -> list[Finding]:
    return [
        Finding(
            "access_log_unknown_format",
            "error",
            f"access_log {log.path} uses log_format {log.format_name!r}, which is not defined (nginx refuses to start)",
            f"define `log_format {log.format_name} …;` in http {{}} or use one of: "
            f"{', '.join(sorted(_BUILTIN_FORMATS | set(nginx.log_formats)))}",
            (log.origin,),
        )
        for log in nginx.access_logs
        if log.path != "off" and log.format_name not in nginx.log_formats | dict.fromkeys(_BUILTIN_FORMATS)
    ]


def _check_timeouts(routes: list[PassRoute], pools: list[PoolConf]) -> list[Finding]:
    """Who gives up first on a slow script: FPM (502, fpm_timeout) or NGINX (504, nginx_timeout)."""
    by_key = pool_keys(pools, {key for route in routes for key, _ in route.keys})
    findings: list[Finding] = []
    seen: set[tuple[str, float]] = set()
    for route in routes:
        fp = route.fastcgi_pass
        for key, _ in route.keys:
            pool = by_key.get(key)
            if pool is None or (pool.name, fp.read_timeout_s) in seen:
                continue
            seen.add((pool.name, fp.read_timeout_s))
            read = fp.read_timeout_s
            read_at = (fp.read_timeout_origin or fp.origin,)
            term = pool.request_terminate_timeout_s or None  # 0 means "off"
            met = pool.max_execution_time_s or None
            read_txt = f"fastcgi_read_timeout {read:g}s" + ("" if fp.read_timeout_origin else " (default)")
            if term is not None and term <= read:
                findings.append(
                    Finding(
                        # the arrangement docs/causes.md recommends (PHP-FPM logs why), so only worth knowing
                        "fpm_timeout_first",
                        "info",
                        f"[{pool.name}] request_terminate_timeout {term:g}s ≤ {read_txt}: a request running longer "
                        "is killed by PHP-FPM and NGINX answers 502 (recv() failed (104: Connection reset by peer))",
                        "fix the slow code or raise request_terminate_timeout — and keep fastcgi_read_timeout "
                        "above it, or NGINX answers 504 instead",
                        read_at,
                        (pool.origin_of("request_terminate_timeout"),),
                        "fpm_timeout",
                        pool.name,
                        fp.target,
                    )
                )
            elif term is None and met is None:
                findings.append(
                    Finding(
                        "fpm_timeout_unset",
                        "warning",
                        f"[{pool.name}] request_terminate_timeout is off and no max_execution_time is set: a stuck "
                        f"script holds its worker forever while NGINX answers 504 after {read:g}s "
                        "(unless php.ini sets max_execution_time)",
                        f"set `request_terminate_timeout = {max(1, int(read) - 5)}s` in [{pool.name}] "
                        f"(a little below {read_txt.split(' (')[0]})",
                        read_at,
                        (pool.origin,),
                        "nginx_timeout",
                        pool.name,
                        fp.target,
                    )
                )
            elif term is not None or (met is not None and met > read):
                # request_terminate_timeout is wall-clock; max_execution_time counts CPU time only on
                # Linux, so it limits NGINX's wait only when no terminate timeout is set
                limit, key_name = (term, "request_terminate_timeout") if term else (met, "max_execution_time")
                findings.append(
                    Finding(
                        "nginx_timeout_first",
                        "warning",
                        f"{read_txt} < [{pool.name}] {key_name} {limit:g}s: NGINX answers 504 while the worker keeps "
                        "running and holds a pm.max_children slot",
                        f"raise fastcgi_read_timeout above {limit:g}s, or lower {key_name} below {read:g}s",
                        read_at,
                        (pool.origin_of("request_terminate_timeout" if term else _max_execution_key(pool)),),
                        "nginx_timeout",
                        pool.name,
                        fp.target,
                    )
                )
    return findings


def _max_execution_key(pool: PoolConf) -> str:
    admin = "php_admin_value[max_execution_time]"
    return admin if admin in pool.origins else "php_value[max_execution_time]"


def _check_buffers(routes: list[PassRoute]) -> list[Finding]:
    # one finding for all of them: it is the same advice wherever the default is left
    defaults = [r.fastcgi_pass for r in routes if r.fastcgi_pass.buffer_size_origin is None]
    if not defaults:
        return []
    targets = sorted({fp.target for fp in defaults})
    return [
        Finding(
            "fastcgi_buffer_size_default",
            "info",
            f"fastcgi_buffer_size is nginx's default ({defaults[0].buffer_size // 1024}k) for "
            f"{len(defaults)} fastcgi_pass ({', '.join(targets[:3])}{', …' if len(targets) > 3 else ''}): an app "
            "sending large headers (many cookies, a big CSP) gets 502 'upstream sent too big header'",
            "if the app sets large headers: `fastcgi_buffer_size 32k; fastcgi_buffers 16 16k;` in http {}",
            tuple(dict.fromkeys(fp.origin for fp in defaults)),
            cause="too_big_header",
            target=targets[0] if len(targets) == 1 else None,
        )
    ]


def _check_pool(pool: PoolConf) -> list[Finding]:
    findings: list[Finding] = []
    times = {
        "request_terminate_timeout": pool.request_terminate_timeout_s,
        "request_slowlog_timeout": pool.request_slowlog_timeout_s,
    }
    for key, seconds in times.items():
        raw = pool.settings.get(key)
        if raw is not None and not PHP_TIME.fullmatch(raw.value):
            findings.append(
                Finding(
                    "fpm_time_misread",
                    "warning",
                    f"[{pool.name}] {key} = {raw.value} is read by PHP-FPM as {seconds or 0:g}s "
                    f"({'off' if not seconds else 'only the last character is a unit'})",
                    f"write one number with one unit, e.g. `{key} = 90s`",
                    (),
                    (raw.origin,),
                    pool=pool.name,
                )
            )
    children, backlog = pool.max_children, pool.listen_backlog or DEFAULT_LISTEN_BACKLOG
    if children is not None and children <= _FEW_CHILDREN:
        findings.append(
            Finding(
                "max_children_low",
                "info",
                f"[{pool.name}] pm.max_children = {children}: at most {children} PHP "
                f"request{'s' if children != 1 else ''} at once; the rest "
                "queue and, once the backlog is full, get 502 (11: Resource temporarily unavailable)",
                f"size pm.max_children to memory (RAM for PHP / memory per worker), e.g. {max(children * 4, 10)}",
                (),
                (pool.origin_of("pm.max_children"),),
                "pool_saturated",
                pool.name,
            )
        )
    if children is not None and backlog < children:
        findings.append(
            Finding(
                "listen_backlog_small",
                "info",
                f"[{pool.name}] listen.backlog = {backlog} is below pm.max_children = {children}: bursts overflow "
                "the queue → 502 (11: Resource temporarily unavailable)",
                f"raise listen.backlog (and net.core.somaxconn) to at least {DEFAULT_LISTEN_BACKLOG}",
                (),
                (pool.origin_of("listen.backlog"),),
                "pool_saturated",
                pool.name,
            )
        )
    if not pool.request_slowlog_timeout_s:
        findings.append(
            Finding(
                "slowlog_off",
                "info",
                f"[{pool.name}] no slowlog (request_slowlog_timeout is off): a slow request leaves no stack trace",
                f"set `request_slowlog_timeout = 5s` and `slowlog = /var/log/php-fpm/{pool.name}.slow.log`",
                (),
                (pool.origin_of("request_slowlog_timeout"),),
                pool=pool.name,
            )
        )
    return findings


def findings_for(findings: Iterable[Finding], address: str) -> list[Finding]:
    """The findings about one upstream address, e.g. to quote in an incident's remediation.

    ``address`` may be spelled as nginx logs it (``fastcgi://unix:/run/php/a.sock:``) or as configured.
    """
    key = listen_address_key(address)
    return [f for f in findings if f.target is not None and listen_address_key(f.target) == key]


__all__ = ["Finding", "LiveHost", "check", "findings_for", "not_checked"]
