"""The outputs badgateway gives on the project's own recordings and on the real-world corpus, as digests.

`tests/behaviour/test_golden.py` replays the same inputs and compares: a refactor that moves code must leave every
incident, event, dead letter, summary and report byte-identical. A change that alters an answer on purpose
regenerates the digests with `python -m tests.behaviour.golden` and shows the change in the diff of
`tests/behaviour/golden.json` (incident files are kept whole, so the diff names the records that changed).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden.json")
# paths relative to the repository (the runs' working directory): sources, summaries and reports name the files,
# and a checkout elsewhere (a worktree) must give the same digests
LAB = Path("examples") / "lab"
LAB_CONF = ["--nginx-conf", str(LAB / "conf" / "nginx.conf")] + [
    a
    for name in ("php-fpm.conf", "php-fpm-legacy.conf", "php-fpm-reports.conf")
    for a in ("--fpm-conf", str(LAB / "conf" / name))
]

# name -> (configuration arguments, inputs); every run writes incidents, events, dead letters, a report and the
# terminal summary.
RUNS: dict[str, tuple[list[str], list[Path]]] = {
    "lab": (LAB_CONF, [LAB / "logs"]),
    "lab-no-config": ([], [LAB / "logs"]),
    "corpus-nginx-access": ([], [Path("tests") / "corpus" / "nginx-access"]),
    "corpus-nginx-error": ([], [Path("tests") / "corpus" / "nginx-error"]),
    "corpus-php-fpm": ([], [Path("tests") / "corpus" / "php-fpm"]),
}
NEWLINE = b"\n"
SPEED_LINE = re.compile(rb"read [0-9,]+ lines .* lines/s$")
SPEED_CARD = re.compile(rb'<div class="card"><b>[0-9,]+</b><span>lines/s</span></div>')
OUTPUTS = ("incidents", "events", "dead_letters", "report", "summary")


def produce(name: str) -> dict[str, bytes]:
    """Replay one run through the installed command line; its outputs by kind."""
    conf, inputs = RUNS[name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "processor.cli",
                "replay",
                *conf,
                "--timezone",
                "UTC",
                "-o",
                str(out / "incidents"),
                "--events",
                str(out / "events"),
                "--dead-letter",
                str(out / "dead_letters"),
                "--report",
                str(out / "report"),
                *map(str, inputs),
            ],
            capture_output=True,
            cwd=REPO,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"replay {name} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
        found = {kind: (out / kind).read_bytes() for kind in OUTPUTS if kind != "summary"}
    # the summary (on stderr when incidents go to a file) and the report's speed card carry the run's duration
    # and speed; the rest of both is a function of the logs
    found["summary"] = b"\n".join(line for line in proc.stderr.splitlines() if not SPEED_LINE.match(line))
    found["report"] = SPEED_CARD.sub(b"", found["report"])
    return found


def digest(outputs: dict[str, bytes]) -> dict[str, str]:
    return {kind: f"{hashlib.sha256(data).hexdigest()} {data.count(NEWLINE)} lines" for kind, data in outputs.items()}


def record() -> dict[str, object]:
    golden: dict[str, object] = {}
    for name in RUNS:
        outputs = produce(name)
        golden[name] = {"digests": digest(outputs), "incidents": outputs["incidents"].decode().splitlines()}
    return golden


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(record(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {GOLDEN.relative_to(REPO)}")
