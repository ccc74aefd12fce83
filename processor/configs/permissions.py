"""check-config's permission checks: can NGINX's worker user open each pool's unix socket (the socket's owner,
group and mode as the pool sets them, or as the live host has them with ``--live``)."""

from __future__ import annotations

from grammars.config_errors import Origin
from grammars.fpm_conf import DEFAULT_LISTEN_MODE, PoolConf
from grammars.nginx_conf import NginxConf
from processor.configs.live_host import LiveHost, may_connect
from processor.configs.rules import Finding, PassRoute


def socket_access(
    pool: PoolConf, user: str, groups: frozenset[str], primary_of: dict[str, str]
) -> tuple[bool, bool, str]:
    """Whether ``user`` (in ``groups``) may connect to ``pool``'s unix socket as FPM will create it.

    Returns (allowed, unsure, how): ``unsure`` when only a group membership we do not know of
    (supplementary groups, without a live host) could still let ``user`` in.
    """
    if pool.listen_acl_users or pool.listen_acl_groups:
        # with ACLs FPM ignores listen.owner/group (it logs so) and grants rw to the named ones
        ok = user in pool.listen_acl_users or bool(groups & set(pool.listen_acl_groups))
        return (
            ok,
            not ok and bool(pool.listen_acl_groups),
            (
                f"listen.acl_users = {','.join(pool.listen_acl_users) or '-'}, "
                f"listen.acl_groups = {','.join(pool.listen_acl_groups) or '-'}"
            ),
        )
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


def check_permissions(
    nginx: NginxConf, routes: list[PassRoute], pools: list[PoolConf], live: LiveHost | None
) -> list[Finding]:
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
        fpm_origins = tuple(
            dict.fromkeys(
                pool.origin_of(k)
                for k in ("listen.owner", "listen.group", "listen.mode", "listen.acl_users", "listen.acl_groups")
            )
        )
        who = f"nginx runs as {user}:{group}" + ("" if nginx.user else " (no `user` directive: nginx's default)")
        if not ok:
            sure = known is not None or not unsure
            findings.append(
                Finding(
                    "socket_permission",
                    "error" if sure else "warning",
                    f"pool [{pool.name}] {how}: {who} and cannot connect → 502 (13: Permission denied)"
                    + ("" if sure else f" (unless {user} is in a group that grants it; --live checks)"),
                    f"in [{pool.name}] set `listen.owner = {user}` and `listen.group = {group}` (mode 0660), "
                    f"or `listen.acl_users = {user}`",
                    user_origins + (reached[key].fastcgi_pass.origin,),
                    fpm_origins,
                    "socket_permission",
                    pool.name,
                    pool.listen,
                )
            )
        if live is not None:
            findings.extend(_live_socket(pool, key, user, groups, live, user_origins, fpm_origins))
    return findings


def _live_socket(
    pool: PoolConf,
    key: str,
    user: str,
    groups: frozenset[str],
    live: LiveHost,
    user_origins: tuple[Origin, ...],
    fpm_origins: tuple[Origin, ...],
) -> list[Finding]:
    path = key.removeprefix("unix:")
    st = live.stat_socket(path)
    if st is None:
        return [
            Finding(
                "socket_absent",
                "warning",
                f"pool [{pool.name}]: {path} does not exist on this host → 502 (2: No such file or directory)",
                "start PHP-FPM (e.g. `systemctl enable --now php8.2-fpm`) and check its log for bind errors",
                (),
                (pool.origin_of("listen"),),
                "fpm_down",
                pool.name,
                pool.listen,
            )
        ]
    owner, group = st.owner or str(st.uid), st.group or str(st.gid)
    if may_connect(user, groups, owner, group, st.mode):
        return []
    return [
        Finding(
            "socket_permission_live",
            "error",
            f"{path} is {owner}:{group} mode {st.mode:04o} on this host: {user} cannot connect → 502 "
            "(13: Permission denied)",
            f"fix listen.owner/listen.group/listen.mode of [{pool.name}] and restart PHP-FPM",
            user_origins,
            fpm_origins,
            "socket_permission",
            pool.name,
            pool.listen,
        )
    ]
