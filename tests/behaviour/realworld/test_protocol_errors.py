"""``protocol_mismatch`` and ``invalid_header`` on what nginx 1.22 and php-fpm 8.2 wrote (recorded/PROVENANCE.md).

Two real-world 502s with no cause before: ``fastcgi_pass`` to something that answers HTTP (a web server, an
Istio/Envoy sidecar, a ``php:apache`` container: ``upstream sent unsupported FastCGI protocol version: 72``, the
``H`` of ``HTTP/1.1``), ``proxy_pass`` to a PHP-FPM pool (a reset and no PHP-FPM line: it was ``upstream_reset``,
which asked for the PHP-FPM log that was already there), and a script whose header() line NGINX refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grammars.error import message_parts
from tests.behaviour.realworld.harness import replay

RECORDED = Path(__file__).parent / "recorded" / "protocol-errors"
# the recording's nginx.conf without its include of Debian's fastcgi_params (not on every machine)
NGINX_CONF = (RECORDED / "nginx.conf").read_text().replace("include /etc/nginx/fastcgi_params;", "")


def _run(tmp_path: Path, **confs: Any) -> dict[str, dict[str, Any]]:
    logs = {name: (RECORDED / name).read_text() for name in ("access.log", "error.log", "php-fpm.log")}
    incidents, dead = replay(tmp_path, logs, **confs)
    assert dead == []
    return {i["url"]["original"]: i for i in incidents}


def test_each_recorded_failure_gets_its_cause(tmp_path: Path) -> None:
    by_url = _run(tmp_path, nginx_conf=NGINX_CONF, fpm_confs=((RECORDED / "php-fpm.conf").read_text(),))
    causes = {url: (i["badgateway"]["cause"], i["php_fpm"]["pool"]) for url, i in by_url.items()}
    assert causes == {
        "/api/orders.php": ("protocol_mismatch", None),  # nothing of PHP-FPM's listens there: no pool, no guess
        "/api/orders.php?page=2": ("protocol_mismatch", None),
        "/proxy/index.php": ("protocol_mismatch", "www"),
        "/status.php": ("invalid_header", "www"),
        "/nocolon.php": ("invalid_header", "www"),
    }
    http = by_url["/api/orders.php"]["badgateway"]
    assert "'H' (72)" in http["note"] and http["remediation"].startswith("An HTTP server answers on 127.0.0.1:18281")
    assert "nginx.conf:11" in http["remediation"]  # the fastcgi_pass line
    # check-config predicted it from the configs alone: NGINX's own static.test listens there
    assert (
        "Config check: server shop.test, location ^~ /api/: fastcgi_pass 127.0.0.1:18281: NGINX itself"
        in (http["remediation"])
    )
    proxy = by_url["/proxy/index.php"]["badgateway"]
    assert proxy["note"].startswith("NGINX spoke HTTP to 127.0.0.1:19100, where pool www listens")
    assert "not proxy_pass" in proxy["remediation"]
    assert (
        "Config check: server shop.test, location ^~ /proxy/: proxy_pass http://127.0.0.1:19100: pool [www]"
        in (proxy["remediation"])
    )
    assert by_url["/status.php"]["badgateway"]["note"].endswith('upstream sent invalid status "abc"')
    assert by_url["/nocolon.php"]["badgateway"]["note"].endswith('upstream sent invalid header: "X-Trace\\x20..."')
    assert all(not i["badgateway"]["status_inferred"] for i in by_url.values())


def test_without_configs_a_reset_from_an_http_upstream_stays_a_reset(tmp_path: Path) -> None:
    # nothing says PHP-FPM listens on 127.0.0.1:19100: the reset may be an HTTP backend's own
    by_url = _run(tmp_path)
    assert by_url["/proxy/index.php"]["badgateway"]["cause"] == "upstream_reset"
    assert by_url["/api/orders.php"]["badgateway"]["cause"] == "protocol_mismatch"
    assert by_url["/status.php"]["badgateway"]["cause"] == "invalid_header"


def test_the_http_server_reading_fastcgi_logs_a_400_that_parses(tmp_path: Path) -> None:
    # the binary FastCGI request as NGINX escaped it into the HTTP server's access line: parsed, not a 502
    lines = (RECORDED / "access.log").read_text().splitlines()
    binary = [line for line in lines if '"\\x01\\x01' in line]
    assert len(binary) == 2
    incidents, dead = replay(tmp_path, {"access.log": "\n".join(binary) + "\n"})
    assert incidents == [] and dead == []


def test_the_messages_nginx_writes_for_a_bad_response_are_told_apart() -> None:
    # nginx src/http/modules/ngx_http_fastcgi_module.c and ngx_http_proxy_module.c, header phase
    kinds = {
        "upstream sent unsupported FastCGI protocol version: 72": "protocol_mismatch",
        "upstream sent invalid FastCGI record type: 9": "protocol_mismatch",
        "upstream sent unexpected FastCGI record: 3": "protocol_mismatch",
        "upstream sent unexpected FastCGI request id high byte: 1": "protocol_mismatch",
        "upstream sent no valid HTTP/1.0 header": "protocol_mismatch",
        "upstream sent invalid header": "invalid_header",
        'upstream sent invalid header: "X-A: b\\x00..."': "invalid_header",
        'upstream sent invalid status "abc"': "invalid_header",
        'upstream sent duplicate header line: "Content-Length: 1", previous value: "Content-Length: 2"': "invalid_header",
        'upstream sent invalid "Content-Length" header: "Content-Length: x"': "invalid_header",
        "upstream sent too big header": "too_big_header",
        "upstream sent invalid chunked response": "other",  # the body's: the status was sent already
        'upstream sent more data than specified in "Content-Length" header': "other",
    }
    for message, kind in kinds.items():
        assert message_parts(message + " while reading response header from upstream")["kind"] == kind, message
