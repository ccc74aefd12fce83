"""The cause registry: every cause badgateway can name, and what each one brings with it.

One entry per cause, read by everything that speaks of causes: the classifier (``causes.classify``, which
status a cause implies when the access line is missing), the remediation text (``join`` quotes
``Cause.remediation``), the HTML report (colours, order, legend), ``check-config`` (a finding predicts a
registered cause), the terminal summary and ``docs/causes.md`` (a test checks the page has a row per cause).

Adding a cause is one ``register`` call plus a rule in ``causes.classify`` that returns its label; see
CONTRIBUTING.md ("Add a cause"). The evidence behind each built-in cause is described in docs/causes.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from processor.diagnosis import remediation as text

if TYPE_CHECKING:
    from processor.diagnosis.causes import Diagnosis
    from processor.diagnosis.topology import Topology

Remedy = Callable[["Diagnosis", "Topology"], str]
_LABEL = re.compile(r"[a-z][a-z0-9_]{0,39}")
_COLOUR = re.compile(r"#[0-9a-f]{6}")


class Cause(NamedTuple):
    """One cause: its label in incidents, a one-line summary, the report's colour, the status it implies when
    no access line says otherwise, and the remediation text for one diagnosis."""

    label: str
    summary: str
    colour: str
    default_status: int
    remediation: Remedy


class RegistryError(ValueError):
    """A cause that cannot be registered (bad label or colour, or a label taken by another cause)."""


_CAUSES: dict[str, Cause] = {}


def register(cause: Cause) -> Cause:
    """Add a cause. Its label must be new, lowercase ``[a-z0-9_]``; its colour ``#rrggbb``; its status 502/504."""
    if not _LABEL.fullmatch(cause.label):
        raise RegistryError(
            f"cause label {cause.label!r}: use 1-40 characters of a-z, 0-9 and _, starting with a letter"
        )
    if not _COLOUR.fullmatch(cause.colour):
        raise RegistryError(f"cause {cause.label}: colour {cause.colour!r} is not #rrggbb (lowercase hex)")
    if cause.default_status not in (502, 504):
        raise RegistryError(f"cause {cause.label}: default_status {cause.default_status} is not 502 or 504")
    if not callable(cause.remediation):
        raise RegistryError(f"cause {cause.label}: remediation must be a function of (diagnosis, topology)")
    if cause.label in _CAUSES and _CAUSES[cause.label] != cause:
        raise RegistryError(f"cause {cause.label} is already registered")
    _CAUSES[cause.label] = cause
    return cause


def unregister(label: str) -> None:
    """Remove a cause added with ``register`` (tests and plugins that are unloaded); built-ins stay."""
    if label in BUILT_IN:
        raise RegistryError(f"cause {label} is built in")
    _CAUSES.pop(label, None)


def cause(label: str) -> Cause:
    """The registered cause of that label (``KeyError`` naming the known ones if there is none)."""
    try:
        return _CAUSES[label]
    except KeyError:
        raise KeyError(f"unknown cause {label!r}; registered: {', '.join(_CAUSES)}") from None


def labels() -> tuple[str, ...]:
    """Every registered label, the built-ins first in their documented order, then added ones."""
    return tuple(_CAUSES)


def is_registered(label: str) -> bool:
    return label in _CAUSES


def remediation(d: Diagnosis, topology: Topology) -> str:
    """The remediation text for a diagnosis, specific where the configs allow; when check-config has a
    finding about this upstream that predicts this very cause, it is quoted (of several, the one naming the
    fastcgi_pass the request went through: another server block's may say another location)."""
    said = cause(d.cause).remediation(d, topology)
    predicting = [(f, origins) for c, f, origins in topology.findings.get(d.upstream or "", ()) if c == d.cause]
    if not predicting:
        return said
    route = text.route_of(d, topology) if len(predicting) > 1 else None
    finding = next((f for f, origins in predicting if route is not None and route.origin in origins), predicting[0][0])
    return f"{said} Config check: {finding}"


BUILT_IN: tuple[str, ...] = tuple(
    register(c).label
    for c in (
        Cause("fpm_down", "PHP-FPM is not running for the socket NGINX connects to", "#c0392b", 502, text.fpm_down),
        Cause(
            "socket_mismatch",
            "NGINX connects to a socket no PHP-FPM pool listens on",
            "#8e44ad",
            502,
            text.socket_mismatch,
        ),
        Cause(
            "socket_missing",
            "the socket does not exist: PHP-FPM is down or no pool listens there",
            "#795548",
            502,
            text.socket_missing,
        ),
        Cause(
            "socket_permission", "NGINX's user may not open the PHP-FPM socket", "#d81b60", 502, text.socket_permission
        ),
        Cause(
            "tcp_refused", "nothing accepts connections on the upstream's TCP address", "#9e9d24", 502, text.tcp_refused
        ),
        Cause(
            "pool_saturated",
            "every worker of the pool was busy and its listen queue was full",
            "#ff7f0e",
            502,
            text.pool_saturated,
        ),
        Cause(
            "fpm_timeout", "PHP-FPM killed the script at request_terminate_timeout", "#1f77b4", 502, text.fpm_timeout
        ),
        Cause("child_crash", "the PHP-FPM worker serving the request crashed", "#2c3e50", 502, text.child_crash),
        Cause(
            "upstream_reset",
            "PHP-FPM closed the connection and no PHP-FPM log explains it",
            "#17becf",
            502,
            text.upstream_reset,
        ),
        Cause(
            "too_big_header", "the response headers exceed NGINX's FastCGI buffer", "#2ca02c", 502, text.too_big_header
        ),
        Cause(
            "protocol_mismatch",
            "NGINX and the upstream do not speak the same protocol",
            "#6d4c41",
            502,
            text.protocol_mismatch,
        ),
        Cause("invalid_header", "the script sent a response header NGINX refuses", "#c2185b", 502, text.invalid_header),
        Cause(
            "nginx_timeout",
            "NGINX stopped waiting for PHP-FPM (fastcgi_read_timeout)",
            "#5dade2",
            504,
            text.nginx_timeout,
        ),
        Cause(
            "no_live_upstreams",
            "every server of the upstream group was marked failed",
            "#7f8c8d",
            502,
            text.no_live_upstreams,
        ),
        Cause("app_answered", "the application answered the 502/504 itself", "#00897b", 502, text.app_answered),
        Cause("unknown", "a 502/504 with no NGINX error entry to explain it", "#b0b7bd", 502, text.unknown),
    )
)
