"""The incident record: the output contract (README, docs/contracts.md) as ECS-style nested dicts (orjson)."""

from __future__ import annotations

import hashlib
from typing import Any

from processor.core.events import Event, Fields
from processor.core.timefmt import MS_Z, iso_ms, iso_second
from processor.diagnosis.causes import Diagnosis, Failure

DATASET = "badgateway.incident"


def event_id(host: str, anchor: Event, repeat: int = 0) -> str:
    """Stable id: the same input line on the same host always gives the same id (replay or Kafka alike).
    ``repeat``: the line is the (``repeat`` + 1)-th of that very text in its stream's second, another request
    (``HostState.repeat_of``); the first keeps the plain id."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(host.encode("utf-8", "surrogateescape"))
    digest.update(b"\x00" + anchor.log_type.encode() + b"\x00")
    digest.update(anchor.raw.encode("utf-8", "surrogateescape"))
    if repeat:
        digest.update(b"\x00#%d" % repeat)
    return "bgw-" + digest.hexdigest()


def evidence(ev: Event | None) -> Fields | None:
    if ev is None:
        return None
    # str(ev.source) and iso_ms(ev.ts_ms), inlined: an incident in an outage formats three to five of these
    name, offset, partition = ev.source
    second, ms = divmod(ev.ts_ms, 1000)
    return {
        "source": f"{name}:{offset}" if partition is None else f"{name}[{partition}]@{offset}",
        "log_type": ev.log_type,
        "@timestamp": iso_second(second) + MS_Z[ms],
        "fields": ev.fields,
    }


def build_incident(
    failure: Failure,
    diagnosis: Diagnosis,
    remediation: str,
    *,
    late: bool,
    evicted: bool,
    missing_evidence: list[str],
    idle_inputs: list[str],
    duplicates: list[Event],
    anchor_id: str | None = None,
) -> dict[str, Any]:
    """``anchor_id``: ``event_id`` of the anchor (the access line, else the error line), when the caller has it."""
    anchor = failure.access if failure.access is not None else failure.error
    assert anchor is not None  # a Failure always has one of the two
    source_fields = anchor.fields
    method = source_fields.get("method")
    uri = source_fields.get("uri")
    if uri is None and failure.error is not None:
        uri = failure.error.fields.get("uri")
        method = method or failure.error.fields.get("method")
    client = source_fields.get("remote_addr") or source_fields.get("client")
    if client is None and failure.error is not None:
        client = failure.error.fields.get("client")
    badgateway: Fields = {
        "cause": diagnosis.cause,
        "remediation": remediation,
        "status_inferred": diagnosis.status_inferred,
        "missing_evidence": missing_evidence,
    }
    if diagnosis.note:
        badgateway["note"] = diagnosis.note
    if idle_inputs:
        badgateway["idle_inputs"] = idle_inputs
    if evicted:
        badgateway["evicted"] = True
    record: dict[str, Any] = {
        "@timestamp": iso_ms(failure.ts_ms),
        "event": {
            "id": anchor_id or event_id(failure.host, anchor),
            "kind": "event",
            "category": ["web"],
            "type": ["error"],
            "dataset": DATASET,
            "late": late,
        },
        "http": {"request": {"method": method}, "response": {"status_code": diagnosis.status}},
        "url": {"original": uri},
        "source": {"ip": client},
        "host": {"name": failure.host or None},
        "badgateway": badgateway,
        "php_fpm": {"pool": diagnosis.pool, "pool_source": diagnosis.pool_source},
        "nginx": {"upstream": {"address": diagnosis.upstream}},
        "evidence": {
            "access": evidence(failure.access),
            "nginx_error": evidence(failure.error),
            "php_fpm": list(map(evidence, diagnosis.fpm_evidence)),
        },
    }
    if duplicates:
        record["evidence"]["duplicates"] = list(map(evidence, duplicates))
    return record
