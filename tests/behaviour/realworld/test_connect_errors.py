"""connect() errors from real threads: what the errno allows, and which upstream it was (issue #19).

- ``(113: No route to host)`` / ``(101: Network is unreachable)``: NGINX never reached the host. The label is
  ``unknown`` (docs/causes.md, "A connect() error no cause follows from"); the remediation says what the errno
  does tell (a route, an address that moved, a firewall), never "ship the NGINX error log" for a request whose
  error entry is right there.
- engintron#1198: one request, two error lines (IPv4 refused, then IPv6 unreachable): one incident,
  ``tcp_refused`` at the address NGINX wrote, not that address with the proxied URI glued to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from grammars.fpm_conf import listen_address_key
from tests.behaviour.realworld.harness import replay

CORPUS = Path(__file__).parents[2] / "corpus" / "nginx-error"
LEMP_3 = "https://github.com/atillay/docker-lemp/issues/3"
ENGINTRON_1198 = "https://github.com/engintron/engintron/issues/1198"


def lines(name: str, *needles: str) -> str:
    """The lines of a corpus file that contain every needle, as the thread pasted them."""
    text = (CORPUS / name).read_text(encoding="utf-8")
    picked = [line for line in text.splitlines() if all(n in line for n in needles)]
    assert picked, (name, needles)
    return "\n".join(picked) + "\n"


def only_incident(tmp_path: Path, error_log: str) -> dict[str, Any]:
    incidents, dead = replay(tmp_path, {"error.log": error_log})
    assert dead == []
    [incident] = incidents
    return incident


def test_no_route_to_a_fastcgi_host_is_unknown_with_what_113_tells(tmp_path: Path) -> None:
    # atillay/docker-lemp#3: NGINX's container could not route to the PHP container at 172.25.0.2:9000
    inc = only_incident(tmp_path, lines("issue-atillay-docker-lemp-3.log", "(113: No route to host)"))
    bg = inc["badgateway"]
    assert (bg["cause"], inc["http"]["response"]["status_code"], inc["nginx"]["upstream"]["address"]) == (
        "unknown",
        502,
        "172.25.0.2:9000",
    ), LEMP_3
    assert (inc["php_fpm"]["pool"], inc["php_fpm"]["pool_source"]) == ("www", "distro_default")  # port 9000: a guess
    assert "no route to 172.25.0.2:9000 (113: No route to host)" in bg["remediation"]
    assert "cannot be told" in bg["remediation"] and "ship the NGINX error log" not in bg["remediation"]
    assert bg["note"].startswith("connect() to 172.25.0.2:9000 failed (113: No route to host)")


def test_network_unreachable_alone_is_unknown_with_what_101_tells(tmp_path: Path) -> None:
    # engintron#1198's second line on its own: the IPv6 address has no route from that server
    inc = only_incident(tmp_path, lines("issue-engintron-engintron-1198.log", "(101: Network is unreachable)"))
    bg = inc["badgateway"]
    assert (bg["cause"], inc["nginx"]["upstream"]["address"]) == ("unknown", "2606:4700:3030::681c:31a:8080")
    assert (inc["php_fpm"]["pool"], inc["php_fpm"]["pool_source"]) == (None, None)
    assert "(101: Network is unreachable)" in bg["remediation"] and "IPv6" in bg["remediation"]
    assert "ship the NGINX error log" not in bg["remediation"]


def test_engintron_1198_one_request_two_error_lines_one_incident(tmp_path: Path) -> None:
    inc = only_incident(tmp_path, (CORPUS / "issue-engintron-engintron-1198.log").read_text(encoding="utf-8"))
    assert (inc["badgateway"]["cause"], inc["php_fpm"]["pool"], inc["http"]["response"]["status_code"]) == (
        "tcp_refused",
        None,
        502,
    ), ENGINTRON_1198
    assert inc["url"]["original"] == "/wp/wp-content/uploads/2015/03/itunes_image.jpg"
    # the address NGINX connected to; the URI after it in `upstream: "http://…"` is the proxied request's
    assert inc["nginx"]["upstream"]["address"] == "104.28.3.26:8080"
    assert inc["badgateway"]["remediation"].startswith("Nothing accepts connections on 104.28.3.26:8080:")
    [second] = inc["evidence"]["duplicates"]
    assert second["fields"]["errno"] == 101 and second["source"].endswith("error.log:2")


# `upstream: "…"` fields of real error entries → the address they name
UPSTREAM_FIELDS = [
    (
        "engintron#1198, proxied, IPv4",
        "http://104.28.3.26:8080/wp/wp-content/uploads/2015/03/itunes_image.jpg",
        "104.28.3.26:8080",
    ),
    (
        "engintron#1198, proxied, IPv6",
        ("http://[2606:4700:3030::681c:31a]:8080/wp/wp-content/uploads/2015/03/itunes_image.jpg"),
        "2606:4700:3030::681c:31a:8080",
    ),
    ("docker-lemp#3, FastCGI over TCP", "fastcgi://172.25.0.2:9000", "172.25.0.2:9000"),
    ("FastCGI over a unix socket", "fastcgi://unix:/var/run/php/php7.4-fpm.sock:", "unix:/var/run/php/php7.4-fpm.sock"),
    ("proxied over a unix socket", "http://unix:/run/app.sock:/api/v1?x=1", "unix:/run/app.sock"),
    ("proxied over TLS", "https://[2a04:4e42:200::644]:443/releases/24.10.6/Packages.sig", "2a04:4e42:200::644:443"),
]


@pytest.mark.parametrize(("description", "field", "address"), UPSTREAM_FIELDS, ids=[u[0] for u in UPSTREAM_FIELDS])
def test_upstream_field_names_its_address(description: str, field: str, address: str) -> None:
    assert listen_address_key(field) == address


def test_engintron_1198_with_its_access_line_is_still_refused(tmp_path: Path) -> None:
    # the access line engintron's NGINX would have written for `*6552` (combined; the thread pasted only errors)
    access = (
        '96.75.63.10 - - [01/Jun/2020:08:53:59 +0000] "GET /wp/wp-content/uploads/2015/03/itunes_image.jpg '
        'HTTP/1.1" 502 166 "-" "Mozilla/5.0"\n'
    )
    incidents, dead = replay(
        tmp_path, {"error.log": (CORPUS / "issue-engintron-engintron-1198.log").read_text(), "access.log": access}
    )
    assert dead == []
    [inc] = incidents
    assert (inc["badgateway"]["cause"], inc["nginx"]["upstream"]["address"]) == ("tcp_refused", "104.28.3.26:8080")
