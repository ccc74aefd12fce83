"""Time and size values as nginx and PHP-FPM write them in their configs.

nginx (``ngx_parse_time``, ``ngx_parse_size``): ``60``, ``60s``, ``1m30s``, ``500ms``, ``1h``;
``4k``, ``16K``, ``1m``. PHP-FPM (``fpm_conf_set_time``): ``30``, ``30s``, ``5m``, ``1h``, ``1d``.
A value that does not fit raises ``ValueError``; the loaders turn it into a located ``ConfigError``.
"""

from __future__ import annotations

import re
from typing import Final

# nginx time units; "M" is a month, "y" a year (ngx_parse_time), bare numbers are seconds.
_NGINX_TIME_S: Final = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "M": 2592000,
    "y": 31536000,
    "": 1,
}
# nginx_time ::= (digits unit?)+ ;   "1m30s", "500ms", "60"
_NGINX_TIME_PART: Final = re.compile(r"(\d+)(ms|[smhdwMy]?)")
# nginx_size ::= digits [kKmMgG]? ;  "4k", "16K", "1m"
_NGINX_SIZE: Final = re.compile(r"(\d+)([kKmMgG]?)")
_SIZE_FACTOR: Final = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# php_time ::= digits [smhd]? ;      "30s", "5m", "0"
PHP_TIME: Final = re.compile(r"\s*(\d+)([smhd]?)\s*")
_PHP_TIME_S: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ATOI: Final = re.compile(r"\s*[+-]?\d+")


def nginx_time_s(text: str) -> float:
    """nginx time ``1m30s`` → 90.0 seconds."""
    pos, total = 0, 0.0
    while pos < len(text):
        m = _NGINX_TIME_PART.match(text, pos)
        if m is None or (pos and not m.group(2) and m.end() < len(text)):
            raise ValueError(f"invalid time {text!r}")
        total += int(m.group(1)) * _NGINX_TIME_S[m.group(2)]
        pos = m.end()
    if not text:
        raise ValueError("empty time")
    return total


def nginx_size(text: str) -> int:
    """nginx size ``4k`` → 4096 bytes."""
    m = _NGINX_SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid size {text!r}")
    return int(m.group(1)) * _SIZE_FACTOR[m.group(2).lower()]


def php_time_s(text: str) -> float:
    """PHP-FPM time ``5m`` → 300.0 seconds, read exactly as ``fpm_conf_set_time`` reads it.

    FPM looks at the last character only and ``atoi``s the rest, so ``1m30s`` is 1 second and
    ``abc`` with no suffix is rejected while ``xs`` is 0 ("off"); ``PHP_TIME`` tells the sane
    spellings from those. A value FPM rejects raises ``ValueError``.
    """
    value = text.strip()
    if not value:
        raise ValueError("invalid time value")
    suffix = value[-1]
    if suffix in _PHP_TIME_S:
        number = value[:-1]
    elif suffix.isdigit():
        number, suffix = value, ""
    else:
        raise ValueError(f"unknown suffix used in time value {text!r}")
    m = _ATOI.match(number)
    return float((int(m.group()) if m else 0) * _PHP_TIME_S[suffix])
