"""Record one lab run as an example: ``python -m lab.record [DEST] [--variant json-debug]``.

The default DEST is ``examples/lab`` (``examples/lab-json`` for the json-debug variant). The lab runs into
``/tmp/badgateway-lab`` (``/tmp/badgateway-lab-json``: a fixed OUTDIR per variant, so the paths inside the
recorded logs and configs are stable from one recording to the next); then ``logs/``, ``conf/``, ``ground_truth.jsonl``,
``manifest.json`` and ``lab_report.json`` are copied verbatim into DEST (everything in DEST but README.md is
replaced). ``www/`` (the PHP scripts, generated from lab/configs.py) and ``run/`` (pids, sockets) are not kept.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from lab import run

OUTDIR = Path("/tmp/badgateway-lab")
REPO = Path(__file__).resolve().parents[1]
# variant → (OUTDIR, default DEST)
PLACES = {
    "classic": (OUTDIR, REPO / "examples" / "lab"),
    "json-debug": (Path("/tmp/badgateway-lab-json"), REPO / "examples" / "lab-json"),
}
KEEP = ("logs", "conf", "ground_truth.jsonl", "manifest.json", "lab_report.json")
MAX_BYTES = 1_000_000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.record", description=__doc__.split("\n\n")[0])
    ap.add_argument("dest", type=Path, nargs="?", help="where the recording goes")
    ap.add_argument("--variant", choices=tuple(PLACES), default="classic")
    args = ap.parse_args(argv)
    outdir, default_dest = PLACES[args.variant]
    dest = args.dest or default_dest
    rc = run.main([str(outdir), "--quiet", "--variant", args.variant])
    if rc != 0:
        print(f"lab.record: the lab run failed (exit {rc}); {dest} left as it was", file=sys.stderr)
        return rc
    dest.mkdir(parents=True, exist_ok=True)
    for child in dest.iterdir():
        if child.name == "README.md":
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    for name in KEEP:
        src = outdir / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            shutil.copy2(src, dest / name)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"lab.record: recorded {outdir} into {dest} ({size} bytes)")
    if size > MAX_BYTES:
        print(f"lab.record: WARNING: the example is larger than {MAX_BYTES} bytes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
