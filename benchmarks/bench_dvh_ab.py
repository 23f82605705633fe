"""Same-run timing of ``compute_dvhs`` on the dicompyler example for two source trees (A/B), alternating.

Run: ``python3 benchmarks/bench_dvh_ab.py OTHER_SRC`` from the project root, with ``OTHER_SRC`` the ``src``
folder of another checkout (e.g. ``mkdir -p /tmp/base && git archive b4151fc src | tar -x -C /tmp/base`` then
``/tmp/base/src``). Each tree runs in its own process: files read once, one warm-up, then ``compute_dvhs``
× 7; prints the median wall and process-CPU seconds and the load average. Two rounds, alternating, so that
both trees see the same machine load.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("INTREPID_EXTERNAL_DATA", ROOT.parent / "shared" / "data")) / "dicompyler-example"

SCRIPT = r"""
import logging, os, statistics, sys, time
from pathlib import Path
logging.disable(logging.WARNING)
sys.path.insert(0, sys.argv[1])
from intrepid.analysis import compute_dvhs
from intrepid.dicom import read_rtdose, read_rtstruct
d = Path(sys.argv[2])
dose = read_rtdose(d / "rtdose.dcm").volume
ss = read_rtstruct(d / "rtss.dcm")
compute_dvhs(dose, ss)
wall, cpu = [], []
for _ in range(7):
    t, c = time.perf_counter(), time.process_time()
    compute_dvhs(dose, ss)
    wall.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
print(f"{statistics.median(wall):.3f} {statistics.median(cpu):.3f} {os.getloadavg()[0]:.1f}")
"""


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: bench_dvh_ab.py OTHER_SRC", file=sys.stderr)
        return 2
    trees = {"other": sys.argv[1], "this": str(ROOT / "src")}
    print("| tree | round | wall median s | process CPU median s | load average |")
    print("|---|---:|---:|---:|---:|")
    for rnd in (1, 2):
        for label, src in trees.items():
            cmd = [sys.executable, "-c", SCRIPT, src, str(DATA)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
            print(f"| {label} ({src}) | {rnd} | {out[0]} | {out[1]} | {out[2]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
