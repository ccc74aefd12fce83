"""A pool that recycles its children: ``child N exited with code 0 after … seconds from start``.

PHP-FPM writes this NOTICE each time a child ends normally: ``pm.max_requests`` reached, or an idle child
stopped by ``pm = dynamic``/``ondemand`` (php-src sapi/fpm/fpm/fpm_children.c, ``fpm_children_bury``: "child %d
exited %s after %ld.%06d seconds from start", with "with code %d"; the lab's grammar test holds the line as
php8.2-fpm wrote it). A busy production pool writes thousands a day. The line is no evidence of a failure;
holding it and pruning it a minute (of event time) later raised ValueError and stopped every driver (#23).
"""

from __future__ import annotations

from pathlib import Path

from tests.behaviour.realworld.harness import replay


def test_recycled_children_an_hour_long(tmp_path: Path) -> None:
    fpm, access = [], []
    for minute in range(60):
        stamp = f"24-Nov-2026 05:{minute:02d}:00"
        fpm.append(
            f"[{stamp}] NOTICE: [pool www] child {4200 + minute} exited with code 0 after 61.002 seconds from start"
        )
        fpm.append(f"[{stamp}] NOTICE: [pool www] child {5200 + minute} started")
        access.append(
            f'10.0.0.7 - - [24/Nov/2026:05:{minute:02d}:00 +0000] "GET /index.php HTTP/1.1" 200 612 "-" "curl/8.5.0"'
        )
    access.append('10.0.0.7 - - [24/Nov/2026:05:59:30 +0000] "GET /slow.php HTTP/1.1" 502 157 "-" "curl/8.5.0"')
    incidents, dead = replay(tmp_path, {"php-fpm.log": "\n".join(fpm) + "\n", "access.log": "\n".join(access) + "\n"})
    assert dead == []
    assert [i["url"]["original"] for i in incidents] == ["/slow.php"]
    assert incidents[0]["badgateway"]["cause"] == "unknown"
