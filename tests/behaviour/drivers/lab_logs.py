"""The lab recording (examples/lab: real nginx + php-fpm) for the driver-equivalence suite, in any time zone.

``lab_copy(dest, zone)`` writes the recorded logs as a host in ``zone`` would have written them: the access
logs' ``$time_local`` with that zone's offset, the NGINX error log, the PHP-FPM logs and the slowlog in local
time without an offset (which is why ``replay`` must learn the zone from the access log, and the other drivers
be told it). Event times do not change, so the diagnosis must not either.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

LAB = Path(__file__).resolve().parents[3] / "examples" / "lab"
FILES = (
    "access.log",
    "access_combined.log",
    "error.log",
    "php-fpm.log",
    "php-fpm-legacy.log",
    "php-fpm-reports.log",
    "slow.log",
)
FPM_CONFS = [str(LAB / "conf" / c) for c in ("php-fpm.conf", "php-fpm-legacy.conf", "php-fpm-reports.conf")]
CONF_ARGS = ["--nginx-conf", str(LAB / "conf" / "nginx.conf"), *[a for c in FPM_CONFS for a in ("--fpm-conf", c)]]

_ACCESS = re.compile(r"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d) \+0000\]")
_ERROR = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)", re.M)
_FPM = re.compile(r"^\[(\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d)", re.M)


def _local(text: str, fmt: str, zone: ZoneInfo) -> datetime:
    return datetime.strptime(text, fmt).replace(tzinfo=UTC).astimezone(zone)


def shifted(name: str, text: str, zone: ZoneInfo) -> str:
    """One recorded log's text as written in ``zone``."""
    if name.startswith("access"):
        return _ACCESS.sub(
            lambda m: "[" + _local(m[1], "%d/%b/%Y:%H:%M:%S", zone).strftime("%d/%b/%Y:%H:%M:%S %z") + "]", text
        )
    if name == "error.log":
        return _ERROR.sub(lambda m: _local(m[1], "%Y/%m/%d %H:%M:%S", zone).strftime("%Y/%m/%d %H:%M:%S"), text)
    return _FPM.sub(lambda m: "[" + _local(m[1], "%d-%b-%Y %H:%M:%S", zone).strftime("%d-%b-%Y %H:%M:%S"), text)


def lab_copy(dest: Path, zone: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    tz = ZoneInfo(zone)
    for name in FILES:
        (dest / name).write_text(shifted(name, (LAB / "logs" / name).read_text(), tz))
    return dest


# what differs from run to run and driver to driver, as the README names it
RUN_DEPENDENT_BADGATEWAY = ("idle_inputs", "missing_evidence")


def comparable(incident: dict[str, Any], *, late: bool = True, fpm_evidence: bool = True) -> dict[str, Any]:
    """The incident without its run-dependent fields (README, "One answer from every driver")."""
    out = {k: v for k, v in incident.items() if k != "evidence"}
    out["badgateway"] = {k: v for k, v in incident["badgateway"].items() if k not in RUN_DEPENDENT_BADGATEWAY}
    out["event"] = {k: v for k, v in incident["event"].items() if late or k != "late"}
    evidence = incident["evidence"]
    out["evidence"] = {
        "access": _fields(evidence.get("access")),
        "nginx_error": _fields(evidence.get("nginx_error")),
        "php_fpm": [_fields(e) for e in evidence.get("php_fpm") or []] if fpm_evidence else None,
    }
    return out


def _fields(ev: dict[str, Any] | None) -> Any:
    return None if ev is None else {k: v for k, v in ev.items() if k != "source"}


def key(incident: dict[str, Any]) -> tuple[str, str, str | None]:
    return incident["event"]["id"], incident["badgateway"]["cause"], incident["php_fpm"]["pool"]
