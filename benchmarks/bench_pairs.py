"""Benchmark: synthetic EPID / portal-dose pairs (``intrepid simulate pairs``).

Times, in one run: building each phantom family (2.5 mm voxels); one full 1024 x 1024 Elekta pair (phantom,
``simulate_transit``, two DICOM RT Image files), median of several; and, with ``--paper``, the whole paper
composition (213 pairs) with 1 and 2 worker processes. Targets (issue 4): one pair <= 1 s, the paper
composition <= 5 min on 2 cores. No peer package generates such data sets, so there is no peer column.
Output goes to benchmarks/_data/pairs/ (git-ignored). Prints a markdown table.

    python3 benchmarks/bench_pairs.py [--repeats 5] [--paper]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

from intrepid.simulate import (
    IsocenterMode,
    make_insert_slab_phantom,
    make_multiplug_phantom,
    make_patient_phantom,
    make_slab_phantom,
    make_thorax_phantom,
    paper_composition,
)
from intrepid.simulate._pairs import GenerationSettings, _simulate_one, generate_pairs

DATA = Path(__file__).resolve().parent / "_data" / "pairs"


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--paper", action="store_true", help="also time the 213-pair paper composition")
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []

    makers = {
        "slab 6s10b3": lambda: make_slab_phantom(100.0, buildup_mm=30.0),
        "CIRS thorax, lesion": lambda: make_thorax_phantom(rotation_deg=90, isocenter=IsocenterMode.LESION),
        "SLAB bone inserts": lambda: make_insert_slab_phantom(n_inserts=2),
        "multi-plug Ti": lambda: make_multiplug_phantom(),
        "TG-119 patient": lambda: make_patient_phantom(),
    }
    for name, fn in makers.items():
        fn()
        t = statistics.median(timed(fn, args.repeats))
        rows.append((f"phantom: {name} (2.5 mm)", f"{t * 1000:.1f} ms", "-"))

    specs = paper_composition(0)
    folder = DATA / "single"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "epid").mkdir(parents=True)
    (folder / "portal_dose").mkdir(parents=True)
    settings = GenerationSettings()
    by_name = {s.name: s for s in specs}
    for name in ("6s20_4", "CIRS_0gradi_ISOlesione_3", "Multiplug_PMMA_90g_3"):
        spec = by_name[name]
        _simulate_one(0, spec, settings, str(folder))  # warm-up (imports, numba cache, kernels)
        times = timed(lambda spec=spec: _simulate_one(0, spec, settings, str(folder)), args.repeats)
        median = statistics.median(times)
        rows.append((f"1024 x 1024 pair {name} ({spec.field})", f"{median:.2f} s", "<= 1 s"))

    if args.paper:
        for workers in (1, 2):
            out = DATA / f"paper_w{workers}"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            generate_pairs(specs, out, seed=0, progress=False, workers=workers)
            dt = time.perf_counter() - t
            rows.append((f"paper composition, {len(specs)} pairs, workers={workers}", f"{dt:.0f} s",
                         "<= 300 s"))

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    print("| what | InTrEPID | target |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
