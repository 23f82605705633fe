"""Time one simulated 1024 x 1024 EPID / portal-dose pair (open field, 20 cm water slab, thorax phantom).

Run: ``python3 benchmarks/bench_simulate.py``. There is no peer package that simulates transit EPID images, so
the table reports our wall-clock times (median of repeats after one warm-up call that compiles and caches
kernels) against the issue's budget of 1 s per pair on 2 cores.
"""

from __future__ import annotations

import datetime
import os
import platform
import time

import numpy as np

from intrepid.geometry import Grid, Quantity, Volume
from intrepid.physics import DetectorModel, Field, simulate_transit

REPEATS = 5


def slab(thickness_mm: float) -> Volume:
    grid = Grid((120, 100, 120), origin_mm=(-297.5, -247.5, -297.5), spacing_mm=(5.0, 5.0, 5.0))
    hu = np.full(grid.shape, -1000.0)
    y = grid.origin_mm[1] + 5.0 * np.arange(grid.shape[1])
    hu[:, np.abs(y) < thickness_mm / 2, :] = 0.0
    return Volume(hu, grid, Quantity.CT_NUMBER, "HU")


def thorax() -> Volume:
    """A CT-like thorax (2.5 mm voxels): elliptical body, two lungs, a spine, a bone insert."""
    grid = Grid((96, 128, 160), origin_mm=(-198.75, -158.75, -118.75), spacing_mm=(2.5, 2.5, 2.5))
    _z, y, x = (
        np.asarray(a)
        for a in np.meshgrid(
            *(grid.origin_mm[i] + 2.5 * np.arange(grid.shape[2 - i]) for i in (2, 1, 0)), indexing="ij"
        )
    )
    hu = np.full(grid.shape, -1000.0)
    hu[(x / 160) ** 2 + (y / 110) ** 2 <= 1] = 20.0
    hu[((np.abs(x) - 65) / 45) ** 2 + (y / 70) ** 2 <= 1] = -750.0
    hu[(x**2 + (y - 80) ** 2) <= 18**2] = 700.0
    return Volume(hu, grid, Quantity.CT_NUMBER, "HU")


def main() -> None:
    det = DetectorModel.elekta_iview()
    cases = {
        "open field, 10x10 cm2": (None, Field.square(10)),
        "20 cm water slab, 10x10 cm2": (slab(200.0), Field.square(10)),
        "20 cm water slab, 20x20 cm2": (slab(200.0), Field.square(20)),
        "thorax phantom, gantry 90, 2x10 cm2": (thorax(), Field.rectangle(2, 10)),
    }
    rows = []
    for name, (phantom, field) in cases.items():
        gantry = 90.0 if "gantry 90" in name else 0.0
        t0 = time.perf_counter()
        simulate_transit(phantom, field, detector=det, gantry_deg=gantry, seed=0)
        first = time.perf_counter() - t0
        times, cpu = [], []
        for s in range(REPEATS):
            t0, c0 = time.perf_counter(), time.process_time()
            simulate_transit(phantom, field, detector=det, gantry_deg=gantry, seed=s + 1)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        rows.append((name, first, float(np.median(times)), float(np.min(times)), float(np.median(cpu))))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = platform.processor() or platform.machine()
    print(
        f"# simulate_transit, 1024 x 1024 pair — {datetime.date.today()} — {machine}, {os.cpu_count()} CPUs"
    )
    print(f"(1-minute load average at the end of the run: {load:.1f})")
    print()
    print(
        "| case | first call (s) | median wall (s) | min wall (s) | median CPU (s, all thr.) | budget (s) |"
    )
    print("|---|---|---|---|---|---|")
    for name, first, med, mn, cpu_s in rows:
        print(f"| {name} | {first:.2f} | {med:.3f} | {mn:.3f} | {cpu_s:.3f} | 1.0 |")


if __name__ == "__main__":
    main()
