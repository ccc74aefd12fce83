"""One or two concrete sentences per cause: what the operator should do (docs/causes.md says why).

One function per cause, each registered with its cause in ``processor.diagnosis.registry``. When the configs are
known the text names the directive, its file:line and the values involved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from processor.diagnosis.causes import Diagnosis
    from processor.diagnosis.topology import Route, Topology

# connect() errnos that say NGINX found no route to the upstream's network (101, ENETUNREACH) or host (113,
# EHOSTUNREACH): it never reached the machine, so nothing tells whether PHP-FPM listens there (docs/causes.md,
# "A connect() error no cause follows from").
UNREACHABLE_ERRNOS: Final = frozenset({101, 113})
# The notes of a protocol_mismatch (causes.classify writes them, protocol_mismatch below reads them): 'H' (72)
# where a FastCGI record starts is an HTTP status line; a pool's address named with http:// (proxy_pass) or
# uwsgi:// is NGINX speaking another protocol to PHP-FPM
HTTP_ANSWERED: Final = "answered with 'H' (72) where a FastCGI record starts: an HTTP response"
NOT_FASTCGI_SPOKEN: Final = "PHP-FPM speaks FastCGI only"


def _secs(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}s"


def route_of(d: Diagnosis, topology: Topology) -> Route | None:
    """The fastcgi_pass the failed request went through: its upstream, its server block, its location."""
    return topology.route_to(d.upstream, d.server, d.uri)


def fpm_down(d: Diagnosis, topology: Topology) -> str:
    pool = d.pool_info
    sock = d.upstream or "the upstream"
    return (
        f"PHP-FPM is not running for {sock}"
        + (f" (pool {pool.name}, {pool.origin})" if pool else "")
        + ": start it (`systemctl is-active php8.2-fpm`, `systemctl enable --now php8.2-fpm`)"
        " and check why it stopped in its log."
    )


def socket_mismatch(d: Diagnosis, topology: Topology) -> str:
    route = route_of(d, topology)
    sock = d.upstream or "the upstream"
    where = f" ({route.origin})" if route else ""
    listens = ", ".join(f"{p.listen} ({p.origin})" for p in topology.pools[:4])
    return (
        f"No PHP-FPM pool listens on {sock}{where}: make fastcgi_pass and the pool's `listen` "
        f"name the same socket" + (f"; pools listen on {listens}." if listens else ".")
    )


def socket_missing(d: Diagnosis, topology: Topology) -> str:
    sock = d.upstream or "the upstream"
    return (
        f"{sock} does not exist: either PHP-FPM is down or no pool listens there; check "
        "`systemctl is-active php8.2-fpm` and that fastcgi_pass matches a pool's `listen`."
    )


def socket_permission(d: Diagnosis, topology: Topology) -> str:
    pool = d.pool_info
    sock = d.upstream or "the upstream"
    detail = ""
    if pool is not None:
        detail = (
            f" (listen.owner={pool.listen_owner or 'unset'}, listen.group={pool.listen_group or 'unset'},"
            f" listen.mode={pool.listen_mode or '0660'} in {pool.listen_origin or pool.origin})"
        )
    user = f" `{topology.nginx_user}`" if topology.nginx_user else ""
    return (
        f"NGINX's worker user{user} may not connect to {sock}{detail}: set listen.owner / listen.group "
        "/ listen.mode so that user can read and write the socket."
    )


def tcp_refused(d: Diagnosis, topology: Topology) -> str:
    route = route_of(d, topology)
    sock = d.upstream or "the upstream"
    return f"Nothing accepts connections on {sock}: start the pool listening on that address, or fix fastcgi_pass" + (
        f" ({route.origin})." if route else "."
    )


def pool_saturated(d: Diagnosis, topology: Topology) -> str:
    pool = d.pool_info
    detail = ""
    if pool is not None and pool.max_children is not None:
        detail = f" (pm.max_children = {pool.max_children} in {pool.max_children_origin or pool.origin}"
        detail += f", listen.backlog = {pool.listen_backlog})" if pool.listen_backlog is not None else ")"
    return (
        f"Every worker of the pool was busy and the listen queue was full{detail}: raise "
        "pm.max_children / listen.backlog, or find what makes workers slow (slowlog)."
    )


def fpm_timeout(d: Diagnosis, topology: Topology) -> str:
    pool = d.pool_info
    route = route_of(d, topology)
    limit = ""
    if pool is not None and pool.request_terminate_timeout_s:
        limit = (
            f"request_terminate_timeout = {_secs(pool.request_terminate_timeout_s)} in "
            f"{pool.request_terminate_timeout_origin or pool.origin}"
        )
        if route is not None:
            limit += f" is below fastcgi_read_timeout {_secs(route.read_timeout_s)}"
        limit += ": "
    return (
        f"{limit}PHP-FPM killed the script for outliving request_terminate_timeout: fix the slow code "
        "or raise the timeout, and keep fastcgi_read_timeout above it (or NGINX answers 504)."
    )


def child_crash(d: Diagnosis, topology: Topology) -> str:
    sig = ""
    for ev in d.fpm_evidence:
        if ev.fields.get("signal_name"):
            sig = f" ({ev.fields['signal_name']})"
    return (
        f"A PHP-FPM worker crashed{sig}: SIGSEGV points to an extension bug, SIGKILL to the OOM killer "
        "or a `kill`; check core dumps and `dmesg`."
    )


def upstream_reset(d: Diagnosis, topology: Topology) -> str:
    if d.fpm_evidence:
        return (
            f"PHP-FPM's master was stopping or reloading and ended the worker serving this request"
            f"{f' (pool {d.pool})' if d.pool else ''}: not a crash. To let requests finish, stop or reload it "
            "gracefully (SIGQUIT, `systemctl reload`) with process_control_timeout above the longest request."
        )
    return (
        "PHP-FPM closed the connection and no PHP-FPM log explains it: ship the PHP-FPM log so "
        "badgateway can tell a timeout from a crash."
    )


def too_big_header(d: Diagnosis, topology: Topology) -> str:
    route = route_of(d, topology)
    size = ""
    if route is not None and route.buffer_size:
        size = f" (fastcgi_buffer_size {route.buffer_size} at {route.buffer_size_origin or route.origin})"
    return f"The response headers exceed NGINX's buffer{size}: raise fastcgi_buffer_size / fastcgi_buffers."


def protocol_mismatch(d: Diagnosis, topology: Topology) -> str:
    sock = d.upstream or "the upstream"
    route = route_of(d, topology)
    where = f" ({route.origin})" if route else ""
    note = d.note or ""
    if NOT_FASTCGI_SPOKEN in note:
        return (
            f"NGINX does not speak FastCGI to {sock}, a PHP-FPM pool's address: PHP-FPM speaks FastCGI only and "
            "resets the connection. The location serving this URI needs fastcgi_pass with fastcgi_params "
            "(SCRIPT_FILENAME) for PHP, not proxy_pass / uwsgi_pass."
        )
    if HTTP_ANSWERED in note:
        return (
            f"An HTTP server answers on {sock}, not PHP-FPM: fastcgi_pass{where} points at a web server, a proxy "
            "or sidecar (Istio/Envoy treating the port as HTTP), or a container that serves HTTP (php:apache "
            "rather than php:fpm). Point fastcgi_pass at the pool's listen address, or use proxy_pass for an "
            "HTTP backend. That server's access log shows each of these requests as a 400 with binary bytes."
        )
    return (
        f"What answers on {sock} does not speak FastCGI as PHP-FPM does{where}: check that fastcgi_pass names the "
        "pool's listen address and not another service (uWSGI wants uwsgi_pass, an HTTP backend proxy_pass)."
    )


def invalid_header(d: Diagnosis, topology: Topology) -> str:
    return (
        "The script sent a response header NGINX refuses: a header() line without a colon, a Status that is not "
        "a number (`header('Status: …')`), a control byte or a duplicate Content-Length, which PHP passes through "
        "as given. The note quotes what NGINX read (1.21.1 and later print the start of the line); find the call "
        "in the script or framework serving this URI."
    )


def nginx_timeout(d: Diagnosis, topology: Topology) -> str:
    route = route_of(d, topology)
    limit = ""
    if route is not None:
        limit = f" (fastcgi_read_timeout {_secs(route.read_timeout_s)} at {route.read_timeout_origin or route.origin})"
    return (
        f"NGINX stopped waiting for PHP-FPM{limit}: raise fastcgi_read_timeout (and the send/connect "
        "timeouts) or speed up the script."
    )


def no_live_upstreams(d: Diagnosis, topology: Topology) -> str:
    return (
        "Every server of the upstream group is marked failed: see the earlier connect errors for why "
        "(max_fails / fail_timeout)."
    )


def app_answered(d: Diagnosis, topology: Topology) -> str:
    sock = d.upstream or "the upstream"
    return (
        f"The application answered {d.status} itself ({sock} returned it; NGINX logged no error): a "
        "script or framework set the status (`http_response_code()`, an error page for a failed call to a "
        "service it depends on). Look in the application's own log for this URI, not at PHP-FPM or NGINX."
    )


def unknown(d: Diagnosis, topology: Topology) -> str:
    if d.connect_error is not None:
        errno, strerror = d.connect_error
        sock = d.upstream or "the upstream"
        route = route_of(d, topology)
        where = f" ({route.origin})" if route else ""
        if errno in UNREACHABLE_ERRNOS:
            return (
                f"NGINX has no route to {sock} ({errno}: {strerror}): check that fastcgi_pass{where} still names "
                "the pool's address (a container's or VM's address changes when it is recreated; an IPv6 "
                "address needs an IPv6 route), then the routes and firewalls on the way (`REJECT --reject-with "
                "icmp-host-prohibited` answers 113). Whether PHP-FPM runs there cannot be told from these logs."
            )
        return (
            f"NGINX could not connect to {sock} ({errno}: {strerror}) and that errno names no cause: check "
            f"the address fastcgi_pass{where} names and that PHP-FPM listens there."
        )
    return "No NGINX error-log entry explains this response: ship the NGINX error log for this host."
