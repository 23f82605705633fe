"""Benchmark of the exact gamma index against pymedphys.gamma on the same synthetic inputs, in one run.

Run as ``python3 benchmarks/bench_gamma.py`` (``--quick`` times pymedphys at its defaults on the two 3D cases
on a random subset of reference points instead of all, extrapolating per point: stated in the table).
``--hard`` runs the two hard cases of issue 13 instead (see :func:`hard_main`): both interpolants, pymedphys
at its defaults and pymedphys at a converged fine search on a crop of the reference.
Prints a markdown table; every case uses full γ maps, 3 %/2 mm global, 10 % cut-off, max γ 2. The synthetic
cases are built so that the pass rates fall in the clinical 90-99 % range, which tests accuracy as well.

Cases
-----
- ``2d-epid``: 1024 x 1024 at 0.4 mm, an IMRT-like EPID field (four overlapping segments, 2.5 mm penumbrae,
  modulation, scatter tails); evaluated shifted by (0.8, -0.5) mm, output +1 %, 1 % Gaussian pixel noise
  (seeded) and a leaf-pair error (a 15 mm band over 80 mm delivering 7 % more).
- ``3d-2mm``: 268 x 145 x 79 at 2 mm, five-beam plan in an elliptic body with a 2 % inhomogeneity; evaluated
  shifted by (2, 0, 1) mm, output +2 % and a ±3.5 % local ripple.
- ``3d-1mm``: the same plan on a 1 mm grid cropped to about 1 M evaluated points.
- ``steep``: 2D erf edges of σ 0.5 mm on a 0.25 mm grid, shifted by 2.25 mm (accuracy case, where
  pymedphys's DTA/10 search step matters); pymedphys also run at interp_fraction 30 and 100.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from intrepid.analysis import gamma
from intrepid.geometry import Grid, Volume


@dataclass
class Case:
    name: str
    reference: Volume
    evaluated: Volume
    description: str


def _axes(grid: Grid) -> tuple[np.ndarray, ...]:
    x, y, z = grid.world_axes_mm()
    return (y, x) if grid.ndim == 2 else (z, y, x)


def _field(x: np.ndarray, half: float, sigma: float) -> np.ndarray:
    return 0.5 * (erf((x + half) / (np.sqrt(2) * sigma)) - erf((x - half) / (np.sqrt(2) * sigma)))


def case_2d(rng: np.random.Generator) -> Case:
    """EPID-like IMRT field: four overlapping segments with 2.5 mm penumbra, modulated, with scatter tails.

    Evaluated: set-up shift (0.8, -0.5) mm, output +1 %, 1 % per-pixel noise, and a leaf-pair error (a 15 mm
    band over 80 mm delivering 7 % more), so that the 3 %/2 mm pass rate lands in the 90-99 % range.
    """
    n, h = 1024, 0.4
    grid = Grid((n, n), origin_mm=(-(n - 1) * h / 2, -(n - 1) * h / 2, 0.0), spacing_mm=(h, h, 1.0))
    y, x = _axes(grid)

    def dose(shift_x: float, shift_y: float) -> np.ndarray:
        xx = x[None, :] - shift_x
        yy = y[:, None] - shift_y
        segments = (
            (0.0, 0.0, 70.0, 70.0, 1.0),
            (-20.0, 10.0, 35.0, 45.0, 0.5),
            (25.0, -15.0, 30.0, 25.0, 0.4),
            (5.0, 40.0, 50.0, 15.0, -0.3),
        )
        fluence = np.zeros((n, n))
        for cx, cy, hx, hy, weight in segments:
            fluence += weight * _field(xx - cx, hx, 2.5) * _field(yy - cy, hy, 2.5)
        modulation = 1.0 + 0.15 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
        scatter = 0.05 * np.exp(-(xx**2 + yy**2) / (2 * 80.0**2))
        return 2.0 * (fluence * modulation + scatter)

    ref = dose(0.0, 0.0)
    ev = 1.01 * dose(0.8, -0.5)
    leaf = _field(x[None, :] - 10.0, 40.0, 1.0) * _field(y[:, None] + 20.0, 7.5, 1.0)
    ev *= 1.0 + 0.07 * leaf
    ev += rng.normal(0.0, 0.01 * ref.max(), ref.shape)
    return Case("2d-epid", Volume(ref, grid), Volume(ev, grid), "1024 x 1024, 0.4 mm, IMRT-like EPID field")


def _plan_dose(grid: Grid, shift_mm: tuple[float, float, float], scale: float, ripple: float) -> np.ndarray:
    """Five-beam plan in an elliptic body: 3 mm penumbrae, attenuation with depth, a 2 % inhomogeneity."""
    z, y, x = _axes(grid)
    zz = z[:, None, None] - shift_mm[2]
    yy = y[None, :, None] - shift_mm[1]
    xx = x[None, None, :] - shift_mm[0]
    body = _field(np.sqrt((xx / 200.0) ** 2 + (yy / 120.0) ** 2) - 1.0, 1.0, 0.01)
    dose = np.zeros(np.broadcast_shapes(zz.shape, yy.shape, xx.shape))
    for angle in (0.0, 72.0, 144.0, 216.0, 288.0):
        a = np.deg2rad(angle)
        lateral = xx * np.cos(a) + yy * np.sin(a)
        depth = -xx * np.sin(a) + yy * np.cos(a) + 150.0
        beam = _field(lateral, 35.0, 3.0) * _field(zz, 40.0, 3.0) * np.exp(-0.005 * np.clip(depth, 0, None))
        dose += beam
    dose *= body
    dose *= 1.0 + 0.02 * np.cos(xx / 31.0) * np.cos(yy / 27.0)
    dose *= 1.0 + ripple * np.sin(xx / 7.0) * np.sin(yy / 9.0) * np.cos(zz / 8.0)
    return 0.4 * scale * dose


def case_3d(spacing: float, shape: tuple[int, int, int], name: str) -> Case:
    """Evaluated: shifted 2 mm laterally and 1 mm longitudinally, +2 % output, ±3.5 % local ripple."""
    nz, ny, nx = shape
    origin = (-(nx - 1) * spacing / 2, -(ny - 1) * spacing / 2, -(nz - 1) * spacing / 2)
    grid = Grid(shape, origin_mm=origin, spacing_mm=(spacing, spacing, spacing))
    ref = _plan_dose(grid, (0.0, 0.0, 0.0), 1.0, 0.0)
    ev = _plan_dose(grid, (2.0, 0.0, 1.0), 1.02, 0.035)
    return Case(name, Volume(ref, grid), Volume(ev, grid), f"{nx} x {ny} x {nz}, {spacing} mm, five beams")


def case_steep() -> Case:
    n, h = 400, 0.25
    grid = Grid((n, n), origin_mm=(-(n - 1) * h / 2, -(n - 1) * h / 2, 0.0), spacing_mm=(h, h, 1.0))
    y, x = _axes(grid)

    def dose(s: float) -> np.ndarray:
        return _field(x[None, :] - s, 25.0, 0.5) * _field(y[:, None] - s, 25.0, 0.5) + 0.2 * _field(
            x[None, :] - s, 5.0, 0.5
        )

    return Case(
        "steep", Volume(dose(0.0), grid), Volume(dose(2.25), grid), "400 x 400, 0.25 mm, σ 0.5 mm, shift 2.25"
    )


def run_ours(case: Case, repeats: int = 7) -> tuple[float, float, float, float, float, int, float]:
    """Best and median wall and CPU (process) seconds over ``repeats`` calls, pass rate, points, memory."""
    kwargs = dict(dd_percent=3.0, dta_mm=2.0, cutoff_percent=10.0, max_gamma=2.0)
    gamma(case.reference, case.evaluated, **kwargs)  # warm-up (compilation is timed separately)
    times = []
    cpu = []
    for _ in range(repeats):
        t = time.perf_counter()
        c = time.process_time()
        res = gamma(case.reference, case.evaluated, **kwargs)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(f"  {case.name}: wall {[round(x, 3) for x in times]} s, CPU {[round(x, 3) for x in cpu]} s")
    tracemalloc.start()
    gamma(case.reference, case.evaluated, **kwargs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    inputs = case.reference.array.nbytes + case.evaluated.array.nbytes
    return (
        min(times),
        float(np.median(times)),
        min(cpu),
        float(np.median(cpu)),
        res.pass_rate_percent,
        res.evaluated_points,
        peak / inputs,
    )


def run_pymedphys(
    case: Case, interp_fraction: int, subset: int | None, seed: int = 0
) -> tuple[float, float, float, int]:
    import pymedphys

    ref, ev = case.reference, case.evaluated
    kwargs = dict(
        dose_percent_threshold=3.0,
        distance_mm_threshold=2.0,
        lower_percent_dose_cutoff=10.0,
        interp_fraction=interp_fraction,
        max_gamma=2.0,
        quiet=True,
    )
    if subset is not None:
        np.random.seed(seed)  # noqa: NPY002 - pymedphys draws its subset from NumPy's global RNG
        kwargs["random_subset"] = subset
    t = time.perf_counter()
    c = time.process_time()
    g = pymedphys.gamma(_axes(ref.grid), ref.array, _axes(ev.grid), ev.array, **kwargs)
    seconds = time.perf_counter() - t
    cpu = time.process_time() - c
    valid = np.isfinite(g)
    n = int(np.count_nonzero(valid))
    return seconds, cpu, 100.0 * float(np.count_nonzero(g[valid] <= 1)) / max(n, 1), n


def case_hard_2d() -> Case:
    """The EPID field of :func:`case_2d`, evaluated 5 % high and shifted (2, −1) mm, no noise (~70 % pass)."""
    n, h = 1024, 0.4
    grid = Grid((n, n), origin_mm=(-(n - 1) * h / 2, -(n - 1) * h / 2, 0.0), spacing_mm=(h, h, 1.0))
    y, x = _axes(grid)

    def dose(shift_x: float, shift_y: float) -> np.ndarray:
        xx = x[None, :] - shift_x
        yy = y[:, None] - shift_y
        segments = (
            (0.0, 0.0, 70.0, 70.0, 1.0),
            (-20.0, 10.0, 35.0, 45.0, 0.5),
            (25.0, -15.0, 30.0, 25.0, 0.4),
            (5.0, 40.0, 50.0, 15.0, -0.3),
        )
        fluence = np.zeros((n, n))
        for cx, cy, hx, hy, weight in segments:
            fluence += weight * _field(xx - cx, hx, 2.5) * _field(yy - cy, hy, 2.5)
        modulation = 1.0 + 0.15 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
        scatter = 0.05 * np.exp(-(xx**2 + yy**2) / (2 * 80.0**2))
        return 2.0 * (fluence * modulation + scatter)

    ref, ev = dose(0.0, 0.0), 1.05 * dose(2.0, -1.0)
    return Case("hard-2d", Volume(ref, grid), Volume(ev, grid), "1024 x 1024, 0.4 mm, 5 % high, shift 2.2 mm")


def case_hard_3d() -> Case:
    """Five-beam plan, 100 x 100 x 80 at 2 mm; reference: the plan x 1.04 shifted 2 mm; evaluated: plan."""
    shape, spacing = (80, 100, 100), 2.0
    nz, ny, nx = shape
    origin = (-(nx - 1) * spacing / 2, -(ny - 1) * spacing / 2, -(nz - 1) * spacing / 2)
    grid = Grid(shape, origin_mm=origin, spacing_mm=(spacing, spacing, spacing))
    ref = _plan_dose(grid, (2.0, 0.0, 0.0), 1.04, 0.0)
    ev = _plan_dose(grid, (0.0, 0.0, 0.0), 1.0, 0.0)
    return Case("hard-3d", Volume(ref, grid), Volume(ev, grid), "100 x 100 x 80, 2 mm, x 1.04, shift 2 mm")


def _crop(volume: Volume, size: int) -> Volume:
    """The central ``size`` points along each in-plane axis (all slices up to ``size // 4`` in 3D)."""
    a = volume.array
    idx = tuple(
        slice(max(0, (n - m) // 2), max(0, (n - m) // 2) + m)
        for n, m in zip(a.shape, (size,) * a.ndim if a.ndim == 2 else (size // 4, size, size), strict=True)
    )
    start = [sl.start for sl in idx]
    ijk = start[::-1] + [0] * (3 - len(start))
    origin = volume.grid.index_to_world(np.asarray(ijk, dtype=float))
    sub = a[idx]
    grid = Grid(sub.shape, origin_mm=tuple(origin), spacing_mm=volume.grid.spacing_mm)
    return Volume(np.ascontiguousarray(sub), grid)


def hard_main(case_names: list[str], crop: int, fraction: int) -> int:
    """Hard cases: ours (simplex, trilinear) and pymedphys (defaults; converged fine search on a crop).

    3 %/3 mm in 3D and 3 %/2 mm in 2D, global, 10 % cut-off of the full reference maximum, max γ 2. The
    converged comparison uses the central ``crop`` points of the reference (every evaluated point), with
    pymedphys at ``interp_fraction=fraction`` and ours on the same reference points.
    """
    import numba
    import pymedphys

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numba threads "
        f"{numba.get_num_threads()}, {datetime.date.today()}, load average {os.getloadavg()[0]:.1f}\n"
    )
    builders = {"hard-2d": case_hard_2d, "hard-3d": case_hard_3d}
    for name in case_names:
        case = builders[name]()
        dta = 3.0 if name == "hard-3d" else 2.0
        norm = float(case.reference.array.max())
        kw = dict(dd_percent=3.0, dta_mm=dta, cutoff_percent=10.0, max_gamma=2.0, normalisation_dose=norm)
        gamma(case.reference, case.evaluated, **kw)  # warm-up
        walls, cpus = [], []
        for _ in range(5):
            t, c = time.perf_counter(), time.process_time()
            simplex = gamma(case.reference, case.evaluated, **kw)
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        print(f"{name}: {case.description}; {simplex.evaluated_points} points")
        print(f"  ours simplex: wall {[round(x, 3) for x in walls]} s, CPU {[round(x, 3) for x in cpus]} s, "
              f"pass {simplex.pass_rate_percent:.3f} %")  # fmt: skip
        sys.stdout.flush()
        t, c = time.perf_counter(), time.process_time()
        full_tri = gamma(case.reference, case.evaluated, interpolant="trilinear", **kw)
        print(f"  ours trilinear (one run): wall {time.perf_counter() - t:.2f} s, CPU "
              f"{time.process_time() - c:.2f} s, pass {full_tri.pass_rate_percent:.3f} %; simplex - "
              f"trilinear {simplex.pass_rate_percent - full_tri.pass_rate_percent:+.3f} pp")  # fmt: skip
        sys.stdout.flush()
        t = time.perf_counter()
        pm_kw = dict(
            dose_percent_threshold=3.0, distance_mm_threshold=dta, lower_percent_dose_cutoff=10.0,
            max_gamma=2.0, global_normalisation=norm, quiet=True,
        )  # fmt: skip
        ref_axes, ev_axes = _axes(case.reference.grid), _axes(case.evaluated.grid)
        if name == "hard-2d":
            g = pymedphys.gamma(ref_axes, case.reference.array, ev_axes, case.evaluated.array, **pm_kw)
            valid = np.isfinite(g)
            print(f"  pymedphys defaults: wall {time.perf_counter() - t:.2f} s, pass "
                  f"{100.0 * np.count_nonzero(g[valid] <= 1) / valid.sum():.3f} %; speed-up (best wall) "
                  f"{(time.perf_counter() - t) / min(walls):.0f}x")  # fmt: skip
        sys.stdout.flush()
        sub = _crop(case.reference, crop) if crop > 0 else case.reference
        kw_sub = dict(kw)
        ours = {}
        for interp in ("simplex", "trilinear"):
            t = time.perf_counter()
            ours[interp] = gamma(sub, case.evaluated, interpolant=interp, **kw_sub)
            print(f"  crop {sub.shape}: ours {interp} {time.perf_counter() - t:.2f} s wall, "
                  f"pass {ours[interp].pass_rate_percent:.3f} % of "
                  f"{ours[interp].evaluated_points}")  # fmt: skip
            sys.stdout.flush()
        t = time.perf_counter()
        g = pymedphys.gamma(_axes(sub.grid), sub.array, ev_axes, case.evaluated.array,
                            interp_fraction=fraction, **pm_kw)  # fmt: skip
        valid = np.isfinite(g)
        pm_pass = 100.0 * np.count_nonzero(g[valid] <= 1) / valid.sum()
        tri = ours["trilinear"].gamma_map.array
        both = valid & np.isfinite(tri)
        diff = g[both] - tri[both]
        print(f"  crop: pymedphys interp_fraction {fraction}: {time.perf_counter() - t:.1f} s, pass "
              f"{pm_pass:.3f} % of {int(valid.sum())}; pymedphys - ours trilinear: pass "
              f"{pm_pass - ours['trilinear'].pass_rate_percent:+.3f} pp, γ max {diff.max():+.4f} min "
              f"{diff.min():+.4f} mean {diff.mean():+.5f}; - ours simplex: pass "
              f"{pm_pass - ours['simplex'].pass_rate_percent:+.3f} pp")  # fmt: skip
        sys.stdout.flush()
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="pymedphys on a subset of points in 3D (extrapolated)"
    )
    parser.add_argument("--hard", nargs="*", choices=("hard-2d", "hard-3d"), help="the hard cases only")
    parser.add_argument("--crop", type=int, default=64, help="--hard: reference crop per axis (0: all)")
    parser.add_argument(
        "--fraction", type=int, default=50, help="--hard: pymedphys converged interp_fraction"
    )
    args = parser.parse_args()
    if args.hard is not None:
        return hard_main(args.hard or ["hard-2d", "hard-3d"], args.crop, args.fraction)
    import numba

    rng = np.random.default_rng(20240611)
    t = time.perf_counter()
    cases = [
        case_2d(rng),
        case_3d(2.0, (79, 145, 268), "3d-2mm"),
        case_3d(1.0, (60, 130, 130), "3d-1mm"),
        case_steep(),
    ]
    print(f"inputs built in {time.perf_counter() - t:.1f} s")
    compile_t = time.perf_counter()
    small = cases[3]
    gamma(small.reference, small.evaluated, dd_percent=3.0, dta_mm=2.0)
    print(f"first call (numba cache load or compile): {time.perf_counter() - compile_t:.2f} s")
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numba threads "
        f"{numba.get_num_threads()}, {datetime.date.today()}, load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| case | evaluated points | ours wall best / median (s) | ours CPU best / median (s) | "
        "ours pass % | "
        "peak extra mem / inputs | pymedphys defaults wall (s) | pymedphys CPU (s) | pymedphys pass % | "
        "speed-up wall (best) | speed-up CPU (best) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        ours_s, ours_med, ours_cpu, ours_cpu_med, ours_pass, n, mem = run_ours(case)
        if args.quick and case.name.startswith("3d"):
            subset = 20000
            pm_s, pm_cpu, pm_pass, pm_n = run_pymedphys(case, 10, subset)
            pm_total, pm_cpu = pm_s / pm_n * n, pm_cpu / pm_n * n
            pm_label = f"{pm_total:.1f} (extrapolated from {pm_n} points)"
        else:
            pm_total, pm_cpu, pm_pass, _ = run_pymedphys(case, 10, None)
            pm_label = f"{pm_total:.2f}"
        print(
            f"| {case.name}: {case.description} | {n} | {ours_s:.3f} / {ours_med:.3f} | "
            f"{ours_cpu:.3f} / {ours_cpu_med:.3f} | {ours_pass:.3f} | "
            f"{mem:.2f} | {pm_label} | {pm_cpu:.1f} | {pm_pass:.3f} | {pm_total / ours_s:.0f}x | "
            f"{pm_cpu / ours_cpu:.0f}x |"
        )
        sys.stdout.flush()
    case = cases[3]
    print("\nAccuracy on the steep case: pymedphys pass rate against its interp_fraction\n")
    print("| interp_fraction | pymedphys (s) | pymedphys pass % |")
    print("|---|---|---|")
    for frac in (10, 30, 100):
        s, _, p, _ = run_pymedphys(case, frac, None)
        print(f"| {frac} | {s:.2f} | {p:.3f} |")
        sys.stdout.flush()
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
