"""Radiological depth on the TG-119 phantom: InTrEPID (EXACT, FAST) against pyRadPlan's Siddon ray tracer.

Run: ``python3 benchmarks/bench_raytrace.py`` (pyRadPlan must be installed in a separate virtual environment,
by default ``/work/venvs/pyradplan``: ``python3 -m venv /work/venvs/pyradplan --system-site-packages &&
/work/venvs/pyradplan/bin/pip install pyradplan pydantic==2.12.5``; another one with ``--pyradplan-python``).

Both tools get the same input: the TG-119 CT converted with the phantom's own HLUT (``ct.hlut``) to a float32
cube, SAD 1000 mm, isocentre at the centre of mass of the OuterTarget, one beam at gantry 0 and at gantry 45,
the whole CT traced. pyRadPlan runs in a subprocess (this script in ``--worker`` mode inside its environment)
and saves its depth cubes to ``benchmarks/_data``; differences are taken inside BODY. Times are the best of a
few repetitions after a warm-up call (numba compilation excluded and reported separately), wall clock and
process CPU time (all threads: on an otherwise idle 2-core machine the wall time is about half of it);
memory is the tracemalloc peak of the call (NumPy allocations, including the output arrays).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "_data"
SAD_MM = 1000.0
GANTRIES = (0.0, 45.0)


def _tg119() -> Path:
    base = Path(os.environ.get("INTREPID_EXTERNAL_DATA", ROOT.parent / "shared" / "data"))
    return base / "tg119" / "TG119.mat"


# ------------------------------------------------------------------------------------ pyRadPlan side
def worker(rsp_file: Path, geometry_file: Path, out_prefix: Path, repeats: int) -> None:
    """Run inside the pyRadPlan environment: trace the cube, save the depth cubes, print timings as JSON."""
    import logging
    import resource

    import SimpleITK as sitk
    from pyRadPlan.raytracer import RayTracerSiddon
    from pyRadPlan.stf import Beam

    logging.disable(logging.CRITICAL)
    geo = json.loads(geometry_file.read_text())
    rsp = np.load(rsp_file)
    img = sitk.GetImageFromArray(rsp)
    img.SetSpacing(geo["spacing_mm"])
    img.SetOrigin(geo["origin_mm"])
    iso = np.asarray(geo["isocenter_mm"])
    results = {}
    for gantry in geo["gantries"]:
        beam = Beam.model_validate(
            {
                "gantry_angle": gantry,
                "couch_angle": 0.0,
                "SAD": geo["sad_mm"],
                "iso_center": iso,
                "rays": [{"ray_pos_bev": [0.0, 0.0, 0.0], "ray_pos": [0.0, 0.0, 0.0], "beamlets": []}],
            }
        )
        tracer = RayTracerSiddon([img])
        # trace the whole CT: one reference ray at the axis, a ray grid wide enough for the projected cube
        half = float(geo["ray_half_width_mm"][str(int(gantry))])
        tracer.fixed_ray_spacing_length = half
        tracer.lateral_cut_off = half * 1.5
        times = []
        peak = 0
        depth = None
        for _ in range(repeats):
            tracemalloc.start()
            t0 = time.perf_counter()
            cube = tracer.trace_cubes(beam)[0]
            times.append(time.perf_counter() - t0)
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            depth = sitk.GetArrayFromImage(cube)
        assert depth is not None
        np.save(f"{out_prefix}_g{int(gantry)}.npy", depth.astype(np.float32))
        results[str(int(gantry))] = {"times_s": times, "peak_mb": peak / 1e6}
    results["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(json.dumps(results))


# ---------------------------------------------------------------------------------------------- our side
MEDIANS: dict[str, tuple[float, float]] = {}


def _timed(fn, repeats: int, label: str = "") -> tuple[float, float, float, object]:
    """Best wall time (s), best process CPU time (s, all threads), tracemalloc peak (MB), last result.

    The median wall and CPU times are kept in ``MEDIANS[label]``.
    """
    walls = []
    cpus = []
    peak = 0
    out = None
    for _ in range(repeats):
        tracemalloc.start()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    MEDIANS[label] = (float(np.median(walls)), float(np.median(cpus)))
    return min(walls), min(cpus), peak / 1e6, out


def _compile_time() -> float:
    """Seconds of the first EXACT + FAST call in a fresh process with an empty numba cache."""
    code = (
        "import time, numpy as np\n"
        "from intrepid.geometry import Grid, Volume\n"
        "from intrepid.physics import radiological_depth, RayTraceMode\n"
        "v = Volume(np.ones((8, 9, 10), np.float32), Grid((8, 9, 10), (0, 0, 0), (1, 1, 1)))\n"
        "t = time.perf_counter()\n"
        "radiological_depth(v, (5, -1000, 4)); radiological_depth(v, (5, -1000, 4), mode=RayTraceMode.FAST)\n"
        "print(time.perf_counter() - t)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pyradplan-python",
        default="/work/venvs/pyradplan/bin/python",
        help="python of the environment where pyRadPlan is installed",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions of our calls")
    parser.add_argument("--peer-repeats", type=int, default=2, help="timed repetitions of pyRadPlan")
    parser.add_argument(
        "--worker", nargs=3, metavar=("RSP", "GEOMETRY", "OUT_PREFIX"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), Path(args.worker[1]), Path(args.worker[2]), args.peer_repeats)
        return 0

    from intrepid.dicom import read_matrad_phantom
    from intrepid.geometry import MachineAngles, source_position_mm
    from intrepid.physics import HUCalibration, RayTraceMode, radiological_depth

    DATA.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    phantom = read_matrad_phantom(_tg119())
    hlut = HUCalibration.from_matrad_hlut(phantom.hlut)
    rsp = hlut.to_volume(phantom.ct)  # float32, shared with pyRadPlan
    body = phantom.structures["BODY"].array
    target = phantom.structures["OuterTarget"].array
    grid = rsp.grid
    kji = np.argwhere(target).mean(axis=0)
    iso = grid.index_to_world(kji[::-1])
    print(
        f"TG-119: {grid.shape} voxels, spacing {grid.spacing_mm} mm, "
        f"isocentre {np.round(iso, 2).tolist()} mm, "
        f"BODY {int(body.sum())} voxels"
    )

    # ray-grid half width for pyRadPlan: the projection of the whole cube on its ray plane (its own geometry)
    half_width = {}
    corners = np.array(
        [
            grid.index_to_world([i, j, k])
            for i in (0, grid.shape[2] - 1)
            for j in (0, grid.shape[1] - 1)
            for k in (0, grid.shape[0] - 1)
        ]
    )
    for g in GANTRIES:
        src = source_position_mm(MachineAngles(g), SAD_MM, iso)
        w = (iso - src) / np.linalg.norm(iso - src)
        ex = np.cross(w, [0.0, 0.0, 1.0])
        depth = (corners - src) @ w
        plane = depth.max() + max(grid.spacing_mm)
        lat = (
            np.abs(np.column_stack([(corners - src) @ ex, corners[:, 2] - src[2]])) * (plane / depth)[:, None]
        )
        half_width[str(int(g))] = float(lat.max() + 5.0)
    rsp_file = DATA / "tg119_rsp.npy"
    np.save(rsp_file, rsp.array)
    geo_file = DATA / "tg119_geometry.json"
    geo_file.write_text(
        json.dumps(
            {
                "spacing_mm": list(grid.spacing_mm),
                "origin_mm": list(grid.origin_mm),
                "isocenter_mm": iso.tolist(),
                "sad_mm": SAD_MM,
                "gantries": list(GANTRIES),
                "ray_half_width_mm": half_width,
            }
        )
    )
    prefix = DATA / "pyradplan_depth"
    print("running pyRadPlan ...", flush=True)
    proc = subprocess.run(
        [
            args.pyradplan_python,
            __file__,
            "--peer-repeats",
            str(args.peer_repeats),
            "--worker",
            str(rsp_file),
            str(geo_file),
            str(prefix),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        return 1
    peer = json.loads(proc.stdout.strip().splitlines()[-1])

    # warm-up (numba cache load / compilation), then timings
    radiological_depth(rsp, source_position_mm(MachineAngles(0.0), SAD_MM, iso), isocenter_mm=iso)
    radiological_depth(
        rsp, source_position_mm(MachineAngles(0.0), SAD_MM, iso), isocenter_mm=iso, mode=RayTraceMode.FAST
    )
    compile_s = _compile_time()

    rows = []
    for g in GANTRIES:
        src = source_position_mm(MachineAngles(g), SAD_MM, iso)
        ref = np.load(f"{prefix}_g{int(g)}.npy")
        t_ex, c_ex, m_ex, res_ex = _timed(
            lambda src=src: radiological_depth(rsp, src, isocenter_mm=iso), args.repeats, f"EXACT {g:.0f}°"
        )
        t_fa, c_fa, m_fa, res_fa = _timed(
            lambda src=src: radiological_depth(rsp, src, isocenter_mm=iso, mode=RayTraceMode.FAST),
            args.repeats,
            f"FAST {g:.0f}°",
        )
        ex = res_ex.entrance_mm.array  # type: ignore[attr-defined]
        fa = res_fa.entrance_mm.array  # type: ignore[attr-defined]
        pk = peer[str(int(g))]
        in_body = body & np.isfinite(ref)
        d_ex = np.abs(ex[in_body].astype(float) - ref[in_body])
        d_fa = np.abs(fa[in_body].astype(float) - ref[in_body])
        nan_ours = int(np.count_nonzero(body & ~np.isfinite(ex)))
        nan_peer = int(np.count_nonzero(body & ~np.isfinite(ref)))
        rows.append(
            {
                "gantry_deg": g,
                "pyradplan_s": min(pk["times_s"]),
                "pyradplan_mb": pk["peak_mb"],
                "exact_s": t_ex,
                "exact_cpu_s": c_ex,
                "exact_mb": m_ex,
                "fast_s": t_fa,
                "fast_cpu_s": c_fa,
                "fast_mb": m_fa,
                "exact_max_mm": float(d_ex.max()),
                "exact_mean_mm": float(d_ex.mean()),
                "fast_max_mm": float(d_fa.max()),
                "fast_mean_mm": float(d_fa.mean()),
                "nan_body_ours": nan_ours,
                "nan_body_peer": nan_peer,
            }
        )

    print()
    print(
        f"Date: {datetime.date.today().isoformat()}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average at start {load[0]:.1f} (1 min); numba compile (first call, "
        f"empty cache): {compile_s:.1f} s; pyRadPlan process peak RSS {peer['maxrss_mb']:.0f} MB"
    )
    print()
    print(
        "| gantry | pyRadPlan time (s) | pyRadPlan memory (MB) | EXACT time (s) | EXACT CPU (s) | "
        "EXACT memory (MB) | speed-up | EXACT max / mean diff (mm) | FAST time (s) | FAST CPU (s) | "
        "FAST memory (MB) | FAST max / mean diff (mm) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['gantry_deg']:.0f}° | {r['pyradplan_s']:.2f} | {r['pyradplan_mb']:.0f} | "
            f"{r['exact_s']:.3f} | {r['exact_cpu_s']:.3f} | "
            f"{r['exact_mb']:.1f} | {r['pyradplan_s'] / r['exact_s']:.0f}× | "
            f"{r['exact_max_mm']:.4f} / {r['exact_mean_mm']:.5f} | "
            f"{r['fast_s']:.3f} | {r['fast_cpu_s']:.3f} | "
            f"{r['fast_mb']:.1f} | {r['fast_max_mm']:.2f} / {r['fast_mean_mm']:.3f} |"
        )
    print()
    print(
        "Differences are |ours - pyRadPlan| of the entrance radiological depth inside BODY "
        f"(NaN voxels inside BODY: ours {[r['nan_body_ours'] for r in rows]}, "
        f"pyRadPlan {[r['nan_body_peer'] for r in rows]})."
    )
    print(
        "Median wall / CPU (s) over the repetitions: "
        + "; ".join(f"{k} {w:.3f} / {c:.3f}" for k, (w, c) in MEDIANS.items())
    )
    (DATA / "bench_raytrace.json").write_text(
        json.dumps(
            {"rows": rows, "medians_s": MEDIANS, "compile_s": compile_s, "peer_maxrss_mb": peer["maxrss_mb"]},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
