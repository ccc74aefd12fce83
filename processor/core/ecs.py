"""Parsed events as ECS-style documents (comparable to Filebeat's nginx module output)."""

from __future__ import annotations

from typing import Any

from processor.core.events import NGINX_ACCESS, NGINX_ERROR, PHP_FPM, PHP_FPM_ACCESS, PHP_FPM_SLOWLOG, Event
from processor.core.timefmt import iso_ms

_DATASETS = {
    NGINX_ACCESS: "nginx.access",
    NGINX_ERROR: "nginx.error",
    PHP_FPM: "php_fpm.log",
    PHP_FPM_SLOWLOG: "php_fpm.slowlog",
    PHP_FPM_ACCESS: "php_fpm.access",
}


def _put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    if value is None:
        return
    *path, last = dotted.split(".")
    node = doc
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value


def to_ecs(ev: Event) -> dict[str, Any]:
    """One parsed event → an ECS document; the grammar's typed fields stay under ``<dataset>``."""
    f = ev.fields
    doc: dict[str, Any] = {
        "@timestamp": iso_ms(ev.ts_ms),
        "event": {"dataset": _DATASETS.get(ev.log_type, ev.log_type), "original": ev.raw},
        "log": {"source": str(ev.source)},
    }
    _put(doc, "host.name", ev.host or None)
    if ev.log_type == NGINX_ACCESS:
        _put(doc, "source.ip", f.get("remote_addr"))
        _put(doc, "user.name", f.get("remote_user"))
        _put(doc, "http.request.method", f.get("method"))
        _put(doc, "http.version", (f.get("protocol") or "").removeprefix("HTTP/") or None)
        _put(doc, "url.original", f.get("uri"))
        _put(doc, "http.response.status_code", f.get("status"))
        _put(doc, "http.response.body.bytes", f.get("body_bytes_sent"))
        _put(doc, "http.request.referrer", f.get("http_referer"))
        _put(doc, "user_agent.original", f.get("http_user_agent"))
    elif ev.log_type == NGINX_ERROR:
        _put(doc, "log.level", f.get("level"))
        _put(doc, "process.pid", f.get("pid"))
        _put(doc, "process.thread.id", f.get("tid"))
        _put(doc, "message", f.get("message"))
        _put(doc, "source.ip", f.get("client"))
        _put(doc, "url.original", f.get("uri"))
        _put(doc, "http.request.method", f.get("method"))
    elif ev.log_type in (PHP_FPM, PHP_FPM_SLOWLOG):
        _put(doc, "log.level", (f.get("level") or "").lower() or None)
        _put(doc, "message", f.get("message"))
        _put(doc, "php_fpm.pool", f.get("pool"))
    elif ev.log_type == PHP_FPM_ACCESS:
        _put(doc, "source.ip", f.get("remote_addr"))
        _put(doc, "http.request.method", f.get("method"))
        _put(doc, "url.original", f.get("uri"))
        _put(doc, "http.response.status_code", f.get("status"))
    doc["badgateway"] = {"log_type": ev.log_type, "fields": f}
    return doc
