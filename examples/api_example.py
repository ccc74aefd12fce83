"""Embedding badgateway in your own stream processor: the Python API in 30 lines.

    python examples/api_example.py

Feeds the recorded lab logs (examples/lab) record by record, as a consumer loop would, and prints one line per
incident. Swap the file loop for your Kafka / Quix Streams / Bytewax source: give each record its source
coordinates (topic, partition, offset) and the host it came from.
"""

from __future__ import annotations

from pathlib import Path

from processor import DiagnosisSettings, Record, SourceRef, build

LAB = Path(__file__).parent / "lab"
FILES = {
    "error.log": "nginx_error",
    "access.log": "nginx_access",
    "php-fpm.log": "php_fpm",
    "php-fpm-legacy.log": "php_fpm",
    "php-fpm-reports.log": "php_fpm",
}


def main() -> None:
    # the files are fed one after the other here, so the allowed lateness must cover the whole 14 s recording;
    # a live consumer gets the streams interleaved and keeps the default (5 s)
    pipeline, _ = build(
        DiagnosisSettings(
            nginx_conf=str(LAB / "conf" / "nginx.conf"),
            fpm_conf=tuple(str(p) for p in sorted((LAB / "conf").glob("php-fpm*.conf"))),
            allowed_lateness_s=60.0,
        )
    )
    for name, log_type in FILES.items():
        fmt = "lab" if name == "access.log" else None
        for offset, line in enumerate((LAB / "logs" / name).read_text().splitlines()):
            for out in pipeline.feed(Record(line, SourceRef(name, offset, 0), log_type, "lab-host", fmt)):
                show(out.value) if out.kind == "incident" else None
    # a service also calls pipeline.tick(int(time.time() * 1000)) every ~250 ms: idle inputs stop holding windows
    for out in pipeline.flush():
        if out.kind == "incident":
            show(out.value)
    c = pipeline.counters
    print(f"records in {c.lines_in} = parsed {c.lines_parsed} + dead-lettered {c.lines_dead_lettered}")


def show(incident: dict) -> None:  # type: ignore[type-arg]
    print(
        incident["http"]["response"]["status_code"],
        incident["badgateway"]["cause"],
        incident["php_fpm"]["pool"],
        incident["url"]["original"],
    )


if __name__ == "__main__":
    main()
