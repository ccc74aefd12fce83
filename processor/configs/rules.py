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
from grammars.fpm_conf import DEFAULT_LISTEN_MODE, PoolConf, listen_address_key
from grammars.nginx_conf import FastcgiPass, NginxConf
from processor.diagnosis import registry
from processor.configs.live_host import LiveHost, may_connect

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
            findings.append(Finding(
                "fastcgi_pass_dynamic", "info", f"fastcgi_pass {fp.target} is chosen at run time; not checked",
                "nothing to do, or check the values the variable can take by hand", (fp.origin,),
                target=fp.target))
            continue
        servers = nginx.upstreams.get(fp.target)
        if servers is not None:
            routes.append(PassRoute(fp, tuple((listen_address_key(s.server), s.origin) for s in servers)))
        elif ":" not in fp.target:
            findings.append(Finding(
                "fastcgi_pass_unknown_upstream", "error",
                f"fastcgi_pass {fp.target}: no upstream block of that name (nginx: no port in upstream)",
                f"define `upstream {fp.target} {{ server unix:/run/php/<pool>.sock; }}` or pass an address",
                (fp.origin,), cause="socket_mismatch", target=fp.target))
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


def check_reachability(routes: list[PassRoute], pools: list[PoolConf], safe: EditCheck | None = None) -> list[Finding]:
    """fastcgi_pass targets no pool listens on, pools no fastcgi_pass reaches, pools without listen.

    ``safe`` vets each edit a fix would propose against the whole config (None: every edit is taken as safe);
    a fix names only edits that pass, so following it cannot break another location."""
    findings: list[Finding] = []
    by_key = pool_keys(pools, {key for route in routes for key, _ in route.keys})
    for route in routes:
        fp = route.fastcgi_pass
        for key, origin in route.keys:
            if key in by_key:
                continue
            unix = key.startswith("unix:")
            # another machine's pool may simply not be among the configs given
            remote = not unix and not key.startswith("127.0.0.1:")
            near = _nearest(key, pools)
            listening = _listening(pools, near)
            edits, why_not = _reach_edits(key, origin, route, pools, safe)
            via = f"{fp.target} (upstream server {key})" if origin != fp.origin else key
            findings.append(Finding(
                "fastcgi_pass_unreached", "warning" if remote else "error",
                f"{_where(fp)} fastcgi_pass {via}: no PHP-FPM pool {'of those given ' if remote else ''}"
                f"listens there ({listening}) → 502 "
                f"({'connect() … (2: No such file or directory)' if unix else '(111: Connection refused)'})",
                _reach_fix(key, edits, near, why_not), tuple(dict.fromkeys((fp.origin, origin))),
                (near.origin_of("listen"),) if near else (), "socket_mismatch" if unix else "tcp_refused",
                near.name if near else None, fp.target, edits))
    reached = {by_key[key].name for route in routes for key, _ in route.keys if key in by_key}
    for pool in pools:
        if pool.listen is None:
            findings.append(Finding(
                "pool_no_listen", "error", f"pool [{pool.name}] has no listen address: PHP-FPM will not start",
                f"set `listen = /run/php/{pool.name}.sock` in [{pool.name}]", (), (pool.origin,),
                "fpm_down", pool.name))
        elif pool.name not in reached:
            findings.append(Finding(
                "pool_unreached", "warning",
                f"pool [{pool.name}] listens on {pool.listen} but no fastcgi_pass reaches it",
                f"point a location's fastcgi_pass at {listen_address_key(pool.listen)} or remove the pool",
                (), (pool.origin_of("listen"),), pool=pool.name))
    return findings


# how many pools, nearest first, a fix tries before it says "add a pool"
_CANDIDATES = 8


def _reach_edits(key: str, origin: Origin, route: PassRoute, pools: list[PoolConf],
                 safe: EditCheck | None) -> tuple[tuple[Edit, ...], str | None]:
    """The safe edits that make ``key`` reached: point NGINX at a pool that listens, or move a pool's listen
    to ``key`` — the nearest pool for which the edit breaks nothing else; and what moving the nearest pool's
    listen would have broken (None when it breaks nothing)."""
    fp = route.fastcgi_pass
    candidates = _similar(key, pools)[:_CANDIDATES]
    via_upstream = origin != fp.origin
    nginx_side = (Edit(origin, "server" if via_upstream else "fastcgi_pass", key if via_upstream else fp.target,
                       listen_address_key(p.listen) if p.listen else "", p.name) for p in candidates)
    fpm_side = (Edit(p.origin_of("listen"), "listen", p.listen or "", key.removeprefix("unix:"), p.name)
                for p in candidates)
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


def _where(fp: FastcgiPass) -> str:
    names = " ".join(fp.server_names) or "(no server_name)"
    return f"server {names}, location {fp.location or '(none)'}:"


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


def socket_access(pool: PoolConf, user: str, groups: frozenset[str],
                  primary_of: dict[str, str]) -> tuple[bool, bool, str]:
    """Whether ``user`` (in ``groups``) may connect to ``pool``'s unix socket as FPM will create it.

    Returns (allowed, unsure, how): ``unsure`` when only a group membership we do not know of
    (supplementary groups, without a live host) could still let ``user`` in.
    """
    if pool.listen_acl_users or pool.listen_acl_groups:
        # with ACLs FPM ignores listen.owner/group (it logs so) and grants rw to the named ones
        ok = user in pool.listen_acl_users or bool(groups & set(pool.listen_acl_groups))
        return ok, not ok and bool(pool.listen_acl_groups), (
            f"listen.acl_users = {','.join(pool.listen_acl_users) or '-'}, "
            f"listen.acl_groups = {','.join(pool.listen_acl_groups) or '-'}")
    # unset owner: the socket keeps the master's owner — root for a master started by systemd
    owner = pool.listen_owner or "root"
    group = pool.listen_group or primary_of.get(owner, owner)
    mode_text = pool.listen_mode or DEFAULT_LISTEN_MODE
    try:
        mode = int(mode_text, 8)
    except ValueError:
        return False, False, f"listen.mode = {mode_text} is not an octal mode"
    ok = may_connect(user, groups, owner, group, mode)
    unsure = not ok and user != owner and group not in groups and bool(mode & 0o020)
    return ok, unsure, f"socket {owner}:{group} mode {mode:04o}"


def check_permissions(nginx: NginxConf, routes: list[PassRoute], pools: list[PoolConf],
                      live: LiveHost | None) -> list[Finding]:
    """Unix sockets NGINX's worker user could not connect to (from configs, and the live socket)."""
    user, group = nginx.effective_user
    known = live.groups_of(user) if live is not None else None
    groups = (known or frozenset()) | {group}
    primary_of: dict[str, str] = {}
    findings: list[Finding] = []
    user_origins = (nginx.user_origin,) if nginx.user_origin else ()
    reached = {key: route for route in routes for key, _ in route.keys}
    for pool in pools:
        key = pool.listen_key
        if not key or not key.startswith("unix:") or key not in reached:
            continue
        owner = pool.listen_owner or "root"
        if live is not None:
            primary_of[owner] = live.primary_group(owner) or owner
        ok, unsure, how = socket_access(pool, user, groups, primary_of)
        fpm_origins = tuple(dict.fromkeys(pool.origin_of(k) for k in (
            "listen.owner", "listen.group", "listen.mode", "listen.acl_users", "listen.acl_groups")))
        who = f"nginx runs as {user}:{group}" + ("" if nginx.user else " (no `user` directive: nginx's default)")
        if not ok:
            sure = known is not None or not unsure
            findings.append(Finding(
                "socket_permission", "error" if sure else "warning",
                f"pool [{pool.name}] {how}: {who} and cannot connect → 502 (13: Permission denied)"
                + ("" if sure else f" (unless {user} is in a group that grants it; --live checks)"),
                f"in [{pool.name}] set `listen.owner = {user}` and `listen.group = {group}` (mode 0660), "
                f"or `listen.acl_users = {user}`", user_origins + (reached[key].fastcgi_pass.origin,),
                fpm_origins, "socket_permission", pool.name, pool.listen))
        if live is not None:
            findings.extend(_live_socket(pool, key, user, groups, live, user_origins, fpm_origins))
    return findings


def _live_socket(pool: PoolConf, key: str, user: str, groups: frozenset[str], live: LiveHost,
                 user_origins: tuple[Origin, ...], fpm_origins: tuple[Origin, ...]) -> list[Finding]:
    path = key.removeprefix("unix:")
    st = live.stat_socket(path)
    if st is None:
        return [Finding("socket_absent", "warning",
                        f"pool [{pool.name}]: {path} does not exist on this host → 502 (2: No such file or directory)",
                        "start PHP-FPM (e.g. `systemctl enable --now php8.2-fpm`) and check its log for bind errors",
                        (), (pool.origin_of("listen"),), "fpm_down", pool.name, pool.listen)]
    owner, group = st.owner or str(st.uid), st.group or str(st.gid)
    if may_connect(user, groups, owner, group, st.mode):
        return []
    return [Finding("socket_permission_live", "error",
                    f"{path} is {owner}:{group} mode {st.mode:04o} on this host: {user} cannot connect → 502 "
                    "(13: Permission denied)",
                    f"fix listen.owner/listen.group/listen.mode of [{pool.name}] and restart PHP-FPM",
                    user_origins, fpm_origins, "socket_permission", pool.name, pool.listen)]
