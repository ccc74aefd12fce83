"""The cause registry is the one list of causes: the classifier, remediation, report, docs and README read it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.cli.report_html import render_html
from processor.cli.summary import ReplayStats
from processor.diagnosis import registry
from processor.diagnosis.causes import Diagnosis
from processor.diagnosis.registry import Cause, RegistryError
from processor.diagnosis.topology import Topology

REPO = Path(__file__).resolve().parents[2]


def _diagnosis(cause: str) -> Diagnosis:
    return Diagnosis(cause, 502, False, "www", "config", "unix:/run/php/www.sock", (), None)


def _incident(cause: str, n: int) -> dict[str, object]:
    return {
        "@timestamp": f"2026-11-24T07:41:{40 + n:02d}.000Z",
        "event": {"id": f"bgw-{cause}-{n}"},
        "http": {"response": {"status_code": 502}, "request": {"method": "GET"}},
        "url": {"original": "/x.php"},
        "badgateway": {"cause": cause, "pool": "www", "remediation": "r"},
    }


@pytest.fixture
def opcache_cause() -> Iterator[Cause]:
    """A 14th cause, as CONTRIBUTING.md's recipe adds one."""

    def remedy(d: Diagnosis, topology: Topology) -> str:
        return f"The OPcache of pool {d.pool} is full: raise opcache.memory_consumption."

    added = registry.register(Cause("opcache_full", "the OPcache ran out of shared memory", "#123abc", 502, remedy))
    yield added
    registry.unregister("opcache_full")


def test_every_cause_has_a_row_in_the_docs_and_the_readme() -> None:
    causes_md = (REPO / "docs" / "causes.md").read_text()
    readme = (REPO / "README.md").read_text()
    for label in registry.BUILT_IN:
        assert f"| `{label}` |" in causes_md, label
        assert f"| `{label}` |" in readme, label
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", causes_md, re.MULTILINE))
    assert documented == set(registry.BUILT_IN)


def test_each_cause_has_its_own_remediation_never_another_causes_sentence() -> None:
    texts = {label: registry.remediation(_diagnosis(label), Topology()) for label in registry.BUILT_IN}
    assert len(set(texts.values())) == len(texts)
    with pytest.raises(KeyError, match="unknown cause 'not_a_cause'"):
        registry.remediation(_diagnosis("not_a_cause"), Topology())


def test_an_added_cause_renders_in_the_report_with_its_colour(opcache_cause: Cause) -> None:
    assert registry.labels()[-1] == "opcache_full" and len(registry.labels()) == len(registry.BUILT_IN) + 1
    incidents = [_incident("opcache_full", n) for n in range(3)] + [_incident("fpm_down", 9)]
    html = render_html(incidents, ReplayStats(), "t")
    assert ".cause-opcache_full{fill:#123abc;background:#123abc}" in html
    assert ".cause-fpm_down{fill:#c0392b" in html
    assert registry.remediation(_diagnosis("opcache_full"), Topology()).startswith("The OPcache of pool www")


def test_a_cause_from_a_newer_file_still_gets_a_colour() -> None:
    html = render_html([_incident("from_the_future", 1)], ReplayStats(), "t")
    assert ".cause-from_the_future{fill:#" in html


@pytest.mark.parametrize(
    ("cause", "message"),
    [
        (Cause("Bad Label", "s", "#000000", 502, registry.cause("unknown").remediation), "cause label"),
        (Cause("ok_label", "s", "red", 502, registry.cause("unknown").remediation), "colour"),
        (Cause("ok_label", "s", "#000000", 500, registry.cause("unknown").remediation), "default_status"),
        (Cause("fpm_down", "s", "#000000", 502, registry.cause("unknown").remediation), "already registered"),
    ],
)
def test_register_refuses_what_would_break_a_reader(cause: Cause, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        registry.register(cause)


def test_built_in_causes_cannot_be_removed() -> None:
    with pytest.raises(RegistryError):
        registry.unregister("fpm_down")


def test_the_status_a_cause_implies_comes_from_the_registry() -> None:
    assert registry.cause("nginx_timeout").default_status == 504
    assert {registry.cause(c).default_status for c in registry.BUILT_IN if c != "nginx_timeout"} == {502}
