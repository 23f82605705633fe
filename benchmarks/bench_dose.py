"""Photon dose engine (collapsed cone) speed and water accuracy beside pyRadPlan's SVD pencil beam.

Run: ``python3 benchmarks/bench_dose.py`` from the project root. pyRadPlan runs in a subprocess in its own
virtual environment (it pins pydantic 2.12.5), by default ``benchmarks/_data/venv-pyradplan``:
``python3 -m venv benchmarks/_data/venv-pyradplan && benchmarks/_data/venv-pyradplan/bin/pip install
pyRadPlan==0.5.0 pydantic==2.12.5`` (``--pyradplan-python`` for another one; ``--no-peer`` to skip it).

Case (issue 10): one 10 × 10 cm² 6 MV beam, gantry 0, on a 200 × 200 × 120 CT at 2.5 mm (a synthetic thorax:
water ellipse 36 × 24 cm with two lungs and a spine, air around), dose on the CT grid. Both engines get
the same HU cube. Reported: wall time (median of ``--repeats`` after a warm-up that compiles the numba
kernels), CPU time, peak memory of a process that only computes the dose (``ru_maxrss``), the machine's
load average, and in water the central-axis depth dose of both engines normalised at their maxima.

``python3 benchmarks/bench_dose.py --water-study`` instead measures, for the kernel as fitted, for the
spectrum-consistent primary share (docs/dose.md, "Spectrum consistency"), for the spectrum-built kernel
(``kernel_source="spectrum"``, "Spectrum-built kernel") and two diagnostic spectra, the water PDDs
(5, 10, 20 cm) of 5 × 5, 10 × 10 and 20 × 20 cm² fields at SSD 100 cm, d_max, output factors, the 10 × 10
profile at 10 cm (flatness at 80 % of the half-width, 80/20 penumbra), TPR20,10 from PDD20,10 (IAEA
TRS-398 eq. for 10 × 10 at SSD 100) and the spectrum's TERMA attenuation; same phantom and settings as
``tests/dose/test_water.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHAPE = (120, 200, 200)  # slices, rows, columns
SPACING = 2.5
FIELD_MM = 100.0


def thorax_hu() -> np.ndarray:
    """The synthetic thorax (HU), [slice, row, column]: LPS x along columns, y (posterior) along rows."""
    _, ny, nx = SHAPE
    x = (np.arange(nx) - (nx - 1) / 2) * SPACING
    y = (np.arange(ny) - (ny - 1) / 2) * SPACING
    yy, xx = np.meshgrid(y, x, indexing="ij")
    hu = np.full((ny, nx), -1000.0, dtype=np.float32)
    hu[(xx / 180.0) ** 2 + (yy / 120.0) ** 2 <= 1] = 0.0
    for cx in (-80.0, 80.0):
        hu[((xx - cx) / 55.0) ** 2 + (yy / 75.0) ** 2 <= 1] = -750.0
    hu[(xx**2 + (yy - 80.0) ** 2) <= 20.0**2] = 700.0
    return np.broadcast_to(hu[None], SHAPE).copy()


def water_hu() -> np.ndarray:
    """Water everywhere below y = -100 mm (the surface, SSD 90 cm for the beam from the anterior)."""
    ny = SHAPE[1]
    y = (np.arange(ny) - (ny - 1) / 2) * SPACING
    hu = np.where(y[None, :, None] >= -100.0, 0.0, -1000.0).astype(np.float32)
    return np.broadcast_to(hu, SHAPE).copy()


def _volume(hu: np.ndarray):
    from intrepid.geometry import Grid, Quantity, Volume

    nz, ny, nx = hu.shape
    origin = (-(nx - 1) / 2 * SPACING, -(ny - 1) / 2 * SPACING, -(nz - 1) / 2 * SPACING)
    return Volume(hu, Grid(hu.shape, origin, (SPACING,) * 3), Quantity.CT_NUMBER, "HU")


def ours(hu: np.ndarray, repeats: int) -> dict:
    """Compute with InTrEPID; returns timings and the central-axis dose."""
    import numba

    from intrepid.dose import compute_dose, open_field_plan

    ct = _volume(hu)
    plan = open_field_plan(FIELD_MM, FIELD_MM, mu=100.0)
    t = time.perf_counter()
    result = compute_dose(ct, plan)  # warm-up: numba compilation (cached on disk) and the MU calibration
    first = time.perf_counter() - t
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        result = compute_dose(ct, plan)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    d = result.total.array
    return {
        "first_s": first,
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "threads": numba.get_num_threads(),
        "axis": d[SHAPE[0] // 2, :, SHAPE[2] // 2].astype(float).tolist(),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def peer_worker(hu_path: str, repeats: int) -> dict:
    """Inside the pyRadPlan environment: SVDPB dose of a 10 x 10 cm2 field (5 mm bixels, all weights 1)."""
    import SimpleITK as sitk
    from pyRadPlan import PhotonPlan, calc_dose_influence, generate_stf
    from pyRadPlan.cst import create_cst, create_voi
    from pyRadPlan.ct import create_ct

    hu = np.load(hu_path)
    nz, ny, nx = hu.shape
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing((SPACING,) * 3)
    img.SetOrigin((-(nx - 1) / 2 * SPACING, -(ny - 1) / 2 * SPACING, -(nz - 1) / 2 * SPACING))
    ct = create_ct(cube_hu=img)
    # The target: a 10 x 10 cm prism along the beam (y) through the whole body: its projection is the field;
    # the body (everything not air) is an OAR, so that the dose is computed in all of it.
    import logging

    logging.disable(logging.CRITICAL)
    target = np.zeros(hu.shape, dtype=np.uint8)
    zc, xc = nz // 2, nx // 2
    half = round(FIELD_MM / 2 / SPACING)
    target[zc - half : zc + half, :, xc - half : xc + half] = 1
    target &= (hu > -900).astype(np.uint8)
    body = (hu > -900).astype(np.uint8)
    vois = []
    for name, kind, mask in (("target", "TARGET", target), ("body", "OAR", body)):
        m = sitk.GetImageFromArray(mask)
        m.CopyInformation(img)
        vois.append(create_voi(name=name, voi_type=kind, mask=m, ct_image=ct))
    cst = create_cst(vois=vois, ct=ct)
    pln = PhotonPlan(machine="Generic")
    pln.prop_stf = {"gantry_angles": [0.0], "couch_angles": [0.0], "bixel_width": 5.0}
    walls = []
    dose = None
    for _ in range(repeats):
        t = time.perf_counter()
        stf = generate_stf(ct, cst, pln)
        dij = calc_dose_influence(ct, cst, stf, pln)
        res = dij.compute_result_ct_grid(np.ones(dij.total_num_of_bixels))
        walls.append(time.perf_counter() - t)
        phys = res["physical_dose"]
        dose = phys if isinstance(phys, np.ndarray) else sitk.GetArrayFromImage(phys)
    assert dose is not None
    return {
        "wall_s": statistics.median(walls),
        "axis": np.asarray(dose)[nz // 2, :, nx // 2].astype(float).tolist(),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def _run_child(args: list[str], python: str) -> dict:
    out = subprocess.run([python, __file__, *args], capture_output=True, text=True, check=False, timeout=3000)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _water_metrics(settings, head) -> dict:  # type: ignore[no-untyped-def]
    """Water PDDs, d_max, output factors and the 10 x 10 profile for one engine configuration."""
    from intrepid.dose import central_axis_depth_dose, compute_dose, open_field_plan, water_phantom

    out: dict = {"pdd": {}, "dmax_mm": {}, "peak": {}}
    profile = None
    for f in (50, 100, 200):
        ct = water_phantom((max(f, 100) + 150.0, 300.0, max(f, 100) + 150.0), 2.5)
        dose = compute_dose(ct, open_field_plan(float(f), float(f), mu=100.0), settings=settings, head=head)
        y, ax = central_axis_depth_dose(dose.total)
        d, g = dose.total.array, dose.total.grid
        x = g.origin_mm[0] + np.arange(d.shape[2]) * g.spacing_mm[0]
        z = g.origin_mm[2] + np.arange(d.shape[0]) * g.spacing_mm[2]
        iz = int(np.argmin(np.abs(z)))
        out["peak"][f] = float(ax.max())
        out["dmax_mm"][f] = float(y[int(np.argmax(ax))])
        out["pdd"][f] = {dep: float(100 * np.interp(dep, y, ax) / ax.max()) for dep in (50, 100, 200)}
        if f == 100:
            profile = (x, d[iz, int(np.argmin(np.abs(y - 100.0))), :].astype(float))
    out["output_factor"] = {f: out["peak"][f] / out["peak"][100] for f in (50, 200)}
    x, p = profile  # type: ignore[misc]
    q = p / float(np.interp(0.0, x, p))
    out["flatness_80pct"] = float(np.min(q[np.abs(x) <= 0.8 * 55.0]))
    fine = np.linspace(0, 100, 4001)
    qq = np.interp(fine, x, q)
    out["penumbra_80_20_mm"] = float(fine[np.argmin(np.abs(qq - 0.2))] - fine[np.argmin(np.abs(qq - 0.8))])
    pdd = out["pdd"][100]
    out["tpr20_10"] = 1.2661 * pdd[200] / pdd[100] - 0.0595
    return out


def water_study() -> None:
    """Print the water validation of the default engine and of three variants (docs/dose.md)."""
    from intrepid.dose import DoseSettings
    from intrepid.dose._kernel import cone_kernel, spectrum_primary_share
    from intrepid.physics import LinacHead, water_mass_attenuation_cm2_g

    head = LinacHead()
    e, w = head.spectrum.energies, head.spectrum.weights
    mu = water_mass_attenuation_cm2_g(e)

    def terma(depth_cm: float) -> float:
        return float(np.sum(w * mu * np.exp(-mu * depth_cm)))

    share = spectrum_primary_share(e, w)
    print(f"spectrum: mean energy {head.spectrum.mean_energy_mev:.3f} MeV; TERMA mu_eff 1.5-10 cm "
          f"{np.log(terma(1.5) / terma(10.0)) / 8.5:.4f} /cm, "
          f"10-20 cm {np.log(terma(10.0) / terma(20.0)) / 10:.4f} /cm; "
          f"spectrum-consistent primary share {share:.3f}; fitted table short-range share "
          f"{cone_kernel().primary_fraction():.3f}")  # fmt: skip
    # Diagnostic only (not the shipped beam model): the spectrum commissioned to the 10 x 10 depth dose by
    # tools/commission_spectrum.py (filtration c2 = 8.87 instead of 5.147), with its own consistent share.
    from dataclasses import replace

    from intrepid.physics import BeamModel

    hard = replace(head, spectrum=BeamModel.six_mv(filtration_c2=8.87))
    hard_share = spectrum_primary_share(hard.spectrum.energies, hard.spectrum.weights)
    ref = {50: (84.5, 63.0, 35.0), 100: (86.7, 66.8, 38.6), 200: (88.5, 70.8, 43.0)}
    from intrepid.dose._kernel_mono import spectrum_cone_kernel, terma_share_below

    spec_k = spectrum_cone_kernel(head.spectrum.energies_mev, head.spectrum.energy_fluence_weights)
    print(f"spectrum-built kernel (monoenergetic EDKnrc 1-6 MeV, TERMA-weighted): short-range share "
          f"{spec_k.primary_fraction():.3f}; TERMA share below 1 MeV (1 MeV kernel used) "
          f"{terma_share_below(e, w, 1.0):.3f}")  # fmt: skip
    variants = (
        ("table as fitted (default)", DoseSettings(), head),
        (f"primary share {share:.3f}", DoseSettings(kernel_primary_share=round(share, 3)), head),
        ("spectrum-built kernel (kernel_source='spectrum')", DoseSettings(kernel_source="spectrum"), head),
        (
            f"DIAGNOSTIC spectrum commissioned to the 10 x 10 PDD (c2 = 8.87), share {hard_share:.3f}",
            DoseSettings(kernel_primary_share=round(hard_share, 3)),
            hard,
        ),
        (
            "DIAGNOSTIC spectrum-built kernel, spectrum commissioned with it (c2 = 6.32, "
            "tools/commission_spectrum.py --kernel spectrum)",
            DoseSettings(kernel_source="spectrum"),
            replace(head, spectrum=BeamModel.six_mv(filtration_c2=6.32)),
        ),
    )
    for label, settings, hd in variants:
        t0 = time.perf_counter()
        m = _water_metrics(settings, hd)
        print(
            f"\n{label} ({time.perf_counter() - t0:.0f} s): d_max {m['dmax_mm']}, OF 5x5 "
            f"{m['output_factor'][50]:.3f} 20x20 {m['output_factor'][200]:.3f}, flatness "
            f"{m['flatness_80pct']:.3f}, penumbra {m['penumbra_80_20_mm']:.1f} mm, "
            f"TPR20,10 {m['tpr20_10']:.3f}"
        )
        print("| field | PDD 5 / 10 / 20 cm | reference | deviation (%) |")
        print("|---|---|---|---|")
        for f in (50, 100, 200):
            got = [m["pdd"][f][d] for d in (50, 100, 200)]
            dev = " / ".join(f"{100 * (g / r - 1):+.1f}" for g, r in zip(got, ref[f], strict=True))
            print(
                f"| {f // 10} × {f // 10} | {' / '.join(f'{g:.1f}' for g in got)} | "
                f"{' / '.join(str(r) for r in ref[f])} | {dev} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyradplan-python", default="benchmarks/_data/venv-pyradplan/bin/python")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--worker", choices=("ours", "peer"), default=None)
    parser.add_argument("--case", choices=("thorax", "water"), default="thorax")
    parser.add_argument("--water-study", action="store_true", help="water PDD/profile study of the kernel")
    args = parser.parse_args()
    if args.water_study:
        water_study()
        return
    if args.worker is not None:
        hu = thorax_hu() if args.case == "thorax" else water_hu()
        if args.worker == "ours":
            print(json.dumps(ours(hu, args.repeats)))
        else:
            path = Path("benchmarks/_data") / f"bench_dose_{args.case}.npy"
            np.save(path, hu)
            print(json.dumps(peer_worker(str(path), args.repeats)))
        return
    load0 = os.getloadavg()[0]
    rows = {}
    for case in ("thorax", "water"):
        rows[case] = {"ours": _run_child(["--worker", "ours", "--case", case, "--repeats", str(args.repeats)],
                                         sys.executable)}  # fmt: skip
        if not args.no_peer and Path(args.pyradplan_python).exists():
            rows[case]["peer"] = _run_child(["--worker", "peer", "--case", case, "--repeats", "1"],
                                            args.pyradplan_python)  # fmt: skip
    load1 = os.getloadavg()[0]
    print(f"load average (1 min) before / after: {load0:.1f} / {load1:.1f} on {os.cpu_count()} cores")
    print(
        "| case | InTrEPID wall (s) | InTrEPID CPU (s) | first call (s) | peak RSS (MB) | "
        "pyRadPlan SVDPB (s) | "
        "pyRadPlan RSS (MB) | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case, r in rows.items():
        o, p = r["ours"], r.get("peer")
        ratio = f"{p['wall_s'] / o['wall_s']:.1f}×" if p else "—"
        print(
            f"| {case} | {o['wall_s']:.2f} | {o['cpu_s']:.2f} | {o['first_s']:.1f} | {o['maxrss_mb']:.0f} | "
            f"{p['wall_s']:.1f} | {p['maxrss_mb']:.0f} | {ratio} |"
            if p
            else f"| {case} | {o['wall_s']:.2f} | {o['cpu_s']:.2f} | {o['first_s']:.1f} | "
            f"{o['maxrss_mb']:.0f} | — | — | — |"
        )
    w = rows["water"]
    y = (np.arange(SHAPE[1]) - (SHAPE[1] - 1) / 2) * SPACING + 100.0  # depth below the water surface, mm
    a = np.asarray(w["ours"]["axis"])
    print("\nwater, central axis, % of maximum (surface at SSD 90 cm):")
    print("| depth (mm) | InTrEPID | pyRadPlan SVDPB |")
    print("|---|---|---|")
    pk = np.asarray(w["peer"]["axis"]) if "peer" in w else None
    for depth in (15.0, 50.0, 100.0, 150.0, 200.0):
        o = 100 * np.interp(depth, y, a) / a.max()
        p = f"{100 * np.interp(depth, y, pk) / pk.max():.1f}" if pk is not None else "—"
        print(f"| {depth:.0f} | {o:.1f} | {p} |")


if __name__ == "__main__":
    main()
