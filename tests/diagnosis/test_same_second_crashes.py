"""Two crashes in the same second (issue #19): each incident must quote its own worker's exit line.

The bundled lab recording has three workers of pool `crash` dying in one second (07:41:42: SIGSEGV, SIGKILL,
SIGABRT), each request naming the signal it asked for (`sig=KILL`). Nothing in the logs ties an exit line to a
request (no pid in NGINX's entry, no URI in PHP-FPM's exit line): only the order within the second does, the
requests' error entries and the workers' exit lines being written in the same order. The join used to finalize the
failures of one second in the order of their ids (a hash), and the evidence index broke ties by the greatest raw
line, so the pairing was a coin toss. Both now follow log order (`processor.diagnosis.evidence.log_position`).
"""

from __future__ import annotations

from pathlib import Path

from tests.behaviour.realworld.harness import replay

LAB = Path(__file__).parents[2] / "examples" / "lab"


def test_each_crash_quotes_its_own_signal(tmp_path: Path) -> None:
    logs = {name: (LAB / "logs" / name).read_text() for name in ("access.log", "error.log", "php-fpm.log")}
    conf = LAB / "conf"
    incidents, _ = replay(
        tmp_path, logs, extra=("--nginx-conf", str(conf / "nginx.conf"), "--fpm-conf", str(conf / "php-fpm.conf"))
    )
    quoted = {}
    for incident in incidents:
        uri = incident["url"]["original"]
        if "sig=" in uri and incident["@timestamp"].startswith("2026-11-24T07:41:42"):
            signals = [e["fields"].get("signal_name") for e in incident["evidence"]["php_fpm"]]
            quoted[uri.rsplit("sig=", 1)[1]] = signals
    assert quoted == {"SEGV": ["SIGSEGV"], "KILL": ["SIGKILL"], "ABRT": ["SIGABRT"]}
