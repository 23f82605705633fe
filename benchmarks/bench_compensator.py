"""Geometric range compensator: InTrEPID against plastimatch (``plastimatch dose``, passive beam line).

Both programs design the compensator from the same per-ray quantity, the water-equivalent depth (WED) of the
target's distal surface, on the same divergent rays; the maps are compared pixel by pixel.

Phantoms (1 mm voxels, HU; anterior beam, HFS gantry 0, point source 2000 mm from the isocentre,
compensator plane 200 mm upstream of the isocentre, 2 mm pixels there, no margins, no smearing):

* ``sphere``: water (0 HU) below y = -50.5 mm, air (-1000 HU) above; target a sphere of radius 25 mm at the
  isocentre.
* ``heterogeneous``: the water surface steps from y = -50.5 mm (x < 0.5 mm) to y = -40.5 mm (x > 0.5 mm);
  a 10 mm slab at -30.5 < y < -20.5 mm covers the superior half (z > 0.5 mm): lung-like (-500 HU), or bone
  (1000 HU) with plastimatch's own HU conversion given to both programs; target an off-centre ellipsoid
  (semi-axes 24, 20, 16 mm along x, y, z, centre (6, 0, -4) mm). Asymmetric in both directions, so a flipped
  row or column order would show.

plastimatch settings (the cause of the earlier constant map)
-----------------------------------------------------------
``aperture_offset`` is the distance from the *source* to the aperture plane (plastimatch ``aperture.h``:
"the distance from the beam source to closest point on the aperture plane"), not from the isocentre. The
earlier run gave 200 mm, so plastimatch put its 41 x 41 grid 200 mm from the source, where 2 mm pixels
project to 20 mm at the isocentre: only 3 x 3 rays crossed the sphere (184 projected-target samples) and all
others took the no-target value. Here ``aperture_offset = SAD - isocenter_to_compensator_mm`` (1800 mm).
The grid is placed on ours with ``aperture_resolution`` (columns rows), ``aperture_spacing`` (column, row
mm), then ``aperture_origin`` (column, row position of pixel [0, 0] at the aperture plane, mm: rows run along
``-aperture_up``, so the row coordinate is ``-y``); ``aperture_up`` is our beam y axis. The order matters:
plastimatch converts the origin to pixels with the spacing at the time it reads the key, and setting the
resolution resets the centre. The script checks plastimatch's upper-left pixel (``*.rpl``, ``ul_room``)
against our pixel [0, 0] to 1e-3 mm.

plastimatch's definition (``beam_calc.cxx``, ``compute_beam_modifiers``)
---------------------------------------------------------------------
``rc = (max_wed - wed_max) / (PMMA_STPR * PMMA_DENSITY)``, with ``wed_max`` the WED of the last 1 mm ray
sample whose trilinearly interpolated target value is >= 0.2, ``max_wed`` its maximum over the rays, and
``PMMA_STPR * PMMA_DENSITY = 0.98 * 1.19 = 1.1662`` (``rpl_volume.h``): a PMMA thickness in mm. Rays that
miss the target get ``max_wed / 1.1662``; its aperture image (``aperture_out``) is open on every ray (the
minimum-WED map starts at DBL_MAX, > 0, on rays that miss), so target rays are taken from its projected
target (a sample >= 0.2 on the ray, its own criterion). Conversions made here: plastimatch's compensator
WET = ``rc * 1.1662`` mm of water; its distal WED = ``max_wed - rc * 1.1662`` (``max_wed`` from its log, 6
significant digits); our compensator WET = ``thickness * 1.165`` (our PMMA RSP) = ``max(R) - R``.

Run: ``python3 benchmarks/bench_compensator.py`` (plastimatch from ``INTREPID_PLASTIMATCH``, ``PATH`` or
/work/venvs/plastimatch/bin/plastimatch). Prints a markdown table.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from intrepid.devices import BeamGeometry, CompensatorResult, CompensatorSettings, design_compensator
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.physics import HUCalibration

DATA = Path(__file__).parent / "_data" / "compensator"
#: plastimatch's PMMA water-equivalent ratio: PMMA_STPR (0.98, per g/cm³) × PMMA_DENSITY (1.19 g/cm³).
PLASTIMATCH_PMMA_WER = 0.98 * 1.19


def plastimatch_calibration(hu_max: float = 5000.0) -> HUCalibration:
    """The HU → relative stopping power that plastimatch 1.10 applies (``Rt_plan::create_patient_psp``).

    Its table is Schneider's (-1000 HU: 0.00106, 0 HU: 1, 41.46 HU: 1.048674) followed by the pair
    ``(FLT_MAX, 0.005011)``, which ``volume_adjust`` uses as the slope per HU above 41.46 HU: ten times
    Schneider's 0.0005011 (1000 HU → 5.85 instead of 1.53; measured by :func:`measure_plastimatch_rsp`).
    Given to our design so that both programs see the same stopping powers.
    """
    top = 1.048674 + 0.005011 * (hu_max - 41.46)
    return HUCalibration((-1000.0, 0.0, 41.46, hu_max), (0.00106, 1.0, 1.048674, top),
                         Quantity.RELATIVE_STOPPING_POWER, name="plastimatch 1.10 patient_psp (measured)")


def measure_plastimatch_rsp(exe: str, workdir: Path, hus: tuple[float, ...]) -> dict[float, float]:
    """plastimatch's stopping power per HU: WED increments of one ray through 6 mm slabs (1 mm steps)."""
    import SimpleITK as sitk

    workdir.mkdir(parents=True, exist_ok=True)
    depth = 6 * len(hus) + 4
    ct = np.full((11, depth, 11), -1000.0, np.float32)
    for n, h in enumerate(hus):
        ct[:, 2 + 6 * n : 2 + 6 * (n + 1), :] = h
    tgt = np.zeros_like(ct)
    tgt[5, depth - 2, 5] = 1.0
    for arr, name in ((ct, "ct.mha"), (tgt, "target.mha")):
        im = sitk.GetImageFromArray(arr)
        im.SetOrigin((-5.0, 0.0, -5.0))
        sitk.WriteImage(im, str(workdir / name))
    (workdir / "rsp.cfg").write_text(
        "[PLAN]\npatient = ct.mha\ntarget = target.mha\nthreading = single\ndose_out = dose.mha\n\n"
        "[BEAM]\nbeam_line = passive\nsource = 0 -2000 0\nisocenter = 0 0 0\naperture_offset = 1800\n"
        "aperture_resolution = 1 1\naperture_spacing = 1 1\nwed_out = wed.mha\nproj_img_out = img.mha\n"
    )
    subprocess.run([exe, "dose", "--command-file", "rsp.cfg"], cwd=workdir, capture_output=True, text=True,
                   timeout=120, check=True)
    wed = sitk.GetArrayFromImage(sitk.ReadImage(str(workdir / "wed.mha.nrrd")))[:, 0, 0]
    img = sitk.GetArrayFromImage(sitk.ReadImage(str(workdir / "img.mha.nrrd")))[:, 0, 0]
    step = np.diff(wed)
    out = {}
    for h in hus:
        inside = np.isclose(img[1:], h) & np.isclose(img[:-1], h)
        out[h] = float(np.median(step[inside])) if inside.any() else float("nan")
    return out


def find_plastimatch() -> str | None:
    """The plastimatch executable: ``INTREPID_PLASTIMATCH``, then ``PATH``, then the benchmark venv."""
    for cand in (
        os.environ.get("INTREPID_PLASTIMATCH"),
        shutil.which("plastimatch"),
        "/work/venvs/plastimatch/bin/plastimatch",
    ):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def _coords(g: Grid) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    ax = [g.origin_mm[a] + g.axis_coordinates_mm(a) for a in range(3)]
    z, y, x = np.meshgrid(ax[2], ax[1], ax[0], indexing="ij")
    return x, y, z


def sphere_phantom(half_width: int = 40, depth: int = 55, radius_mm: float = 25.0) -> tuple[Volume, Volume]:
    """Water below y = -(depth - 4.5) mm, air above; sphere target at the isocentre (1 mm voxels)."""
    n = 2 * half_width + 1
    g = Grid((n, 2 * depth + 1, n), origin_mm=(-half_width, -depth, -half_width), spacing_mm=(1, 1, 1))
    x, y, z = _coords(g)
    ct = Volume(np.where(y >= -(depth - 4.5), 0.0, -1000.0).astype(np.float32), g, Quantity.CT_NUMBER)
    return ct, Volume(x**2 + y**2 + z**2 <= radius_mm**2, g, Quantity.MASK)


def heterogeneous_phantom(scale: float = 1.0, slab_hu: float = -500.0) -> tuple[Volume, Volume]:
    """Stepped water surface, a 10 mm slab of ``slab_hu`` over the superior half, an off-centre ellipsoid.

    ``scale`` shrinks the phantom (and the target) for the fast test; voxels stay 1 mm and every interface
    lies on a voxel face. The default slab (-500 HU, lung-like, RSP 0.5) has the same stopping power in both
    programs; above 41.46 HU plastimatch's conversion differs (:func:`plastimatch_calibration`).
    """
    hw, dp = round(40 * scale), round(55 * scale)
    n = 2 * hw + 1
    g = Grid((n, 2 * dp + 1, n), origin_mm=(-hw, -dp, -hw), spacing_mm=(1, 1, 1))
    x, y, z = _coords(g)
    surface = np.where(x < 0.5, -round(50 * scale) - 0.5, -round(40 * scale) - 0.5)
    hu = np.where(y >= surface, 0.0, -1000.0)
    slab = (y > -round(30 * scale) - 0.5) & (y < -round(20 * scale) - 0.5) & (z > 0.5)
    hu = np.where(slab, slab_hu, hu)
    cx, cz = round(6 * scale), -round(4 * scale)
    a, b, c = 24 * scale, 20 * scale, 16 * scale
    target = ((x - cx) / a) ** 2 + (y / b) ** 2 + ((z - cz) / c) ** 2 <= 1.0
    return Volume(hu.astype(np.float32), g, Quantity.CT_NUMBER), Volume(target, g, Quantity.MASK)


@dataclass(frozen=True)
class PlastimatchCompensator:
    """plastimatch's design on our grid: its compensator (PMMA mm), WEDs, timing and the grid check."""

    rc_pmma_mm: NDArray[np.float64]
    target_rays: NDArray[np.bool_]
    max_wed_mm: float
    min_wed_mm: float
    seconds: float
    ul_error_mm: float
    projected_target_samples: int

    @property
    def wet_mm(self) -> NDArray[np.float64]:
        """Compensator water-equivalent thickness, mm."""
        return self.rc_pmma_mm * PLASTIMATCH_PMMA_WER

    @property
    def distal_wed_mm(self) -> NDArray[np.float64]:
        """WED of the target's distal surface per ray (NaN off target), mm."""
        return np.where(self.target_rays, self.max_wed_mm - self.wet_mm, np.nan)


def plastimatch_config(res: CompensatorResult, ray_step_mm: float = 1.0) -> str:
    """A ``plastimatch dose`` command file whose aperture grid is ``res``'s compensator grid."""
    geo = res.geometry
    if geo.sad_mm[0] != geo.sad_mm[1]:
        raise ValueError("plastimatch models a point source only (sad_mm must be equal)")
    view = geo.beam_line_view()
    rows, cols = res.shape
    x0, y0 = res.first_pixel_mm

    def vec(v: tuple[float, float, float] | NDArray[np.float64]) -> str:
        return " ".join(f"{float(c):.6f}" for c in v)

    return f"""[PLAN]
patient = ct.mha
target = target.mha
threading = single
dose_out = dose.mha

[BEAM]
beam_line = passive
source = {vec(view.source_x_mm)}
isocenter = {vec(view.isocenter_mm)}
aperture_up = {vec(view.y_axis)}
aperture_offset = {geo.sad_mm[0] - res.isocenter_to_compensator_mm:.6f}
aperture_resolution = {cols} {rows}
aperture_spacing = {res.pixel_spacing_mm[1]:.6f} {res.pixel_spacing_mm[0]:.6f}
aperture_origin = {x0:.6f} {-y0:.6f}
aperture_smearing = 0
proximal_margin = 0
distal_margin = 0
ray_step = {ray_step_mm:g}
rc_out = rc.mha
aperture_out = ap.mha
proj_target_out = pt.mha
"""


def _write_mha(vol: Volume, path: Path) -> None:
    import SimpleITK as sitk

    im = sitk.GetImageFromArray(np.asarray(vol.array, dtype=np.float32))
    im.SetOrigin(vol.grid.origin_mm)
    im.SetSpacing(vol.grid.spacing_mm)
    im.SetDirection(tuple(np.asarray(vol.grid.direction, dtype=float).ravel()))
    sitk.WriteImage(im, str(path))


def run_plastimatch(
    exe: str, workdir: Path, ct: Volume, target: Volume, res: CompensatorResult, ray_step_mm: float = 1.0
) -> PlastimatchCompensator:
    """Run ``plastimatch dose`` in ``workdir`` on our CT, target and compensator grid; read its design."""
    import SimpleITK as sitk

    workdir.mkdir(parents=True, exist_ok=True)
    _write_mha(ct, workdir / "ct.mha")
    _write_mha(Volume(np.asarray(target.array, dtype=np.float32), target.grid, Quantity.MASK),
               workdir / "target.mha")
    (workdir / "rc.cfg").write_text(plastimatch_config(res, ray_step_mm))
    t0 = time.perf_counter()
    proc = subprocess.run([exe, "dose", "--command-file", "rc.cfg"], cwd=workdir, capture_output=True,
                          text=True, timeout=600, check=False)
    seconds = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    (workdir / "plastimatch.log").write_text(log)
    if proc.returncode != 0 or not (workdir / "rc.mha").is_file():
        raise RuntimeError(f"plastimatch failed (exit {proc.returncode}), see {workdir / 'plastimatch.log'}")
    hi = re.search(r"Max wed in the target is ([-0-9.eE+]+)", log)
    lo = re.search(r"Min wed in the target is ([-0-9.eE+]+)", log)
    if hi is None or lo is None:
        raise RuntimeError(f"no 'Max/Min wed in the target' line in {workdir / 'plastimatch.log'}")
    rc = sitk.GetArrayFromImage(sitk.ReadImage(str(workdir / "rc.mha"))).astype(float).reshape(res.shape)
    # target rays: plastimatch's own criterion (compute_target_wepl_min_max), a projected-target sample
    # >= 0.2 on the ray; its aperture image (ap.mha) cannot tell, it is open on every ray (the minimum-WED
    # map starts at DBL_MAX > 0 on rays that miss)
    pt = sitk.GetArrayFromImage(sitk.ReadImage(str(workdir / "pt.mha.nrrd")))  # (steps, rows, columns)
    hit = np.asarray((pt >= 0.2).any(axis=0)).reshape(res.shape)
    # grid check: plastimatch's upper-left aperture pixel against our pixel [0, 0] (world LPS, mm)
    projv = (workdir / "pt.mha.projv").read_text()
    m = re.search(r"ul_room=([-0-9.eE+ ]+)", projv)
    ul = np.array([float(v) for v in m.group(1).split()]) if m else np.full(3, np.nan)
    view = res.geometry.beam_line_view()
    x0, y0 = res.first_pixel_mm
    ours = (np.asarray(view.isocenter_mm) + x0 * np.asarray(view.x_axis) + y0 * np.asarray(view.y_axis)
            - res.isocenter_to_compensator_mm * np.asarray(view.beam_axis))
    return PlastimatchCompensator(
        rc_pmma_mm=rc,
        target_rays=hit,
        max_wed_mm=float(hi.group(1)),
        min_wed_mm=float(lo.group(1)),
        seconds=seconds,
        ul_error_mm=float(np.max(np.abs(ul - ours))),
        projected_target_samples=int(np.count_nonzero(pt >= 0.2)),
    )


def interior_rays(*hits: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Rays that cross the target in every map and whose eight neighbours do too (no grazing edge rays)."""
    from scipy.ndimage import binary_erosion

    both = np.logical_and.reduce([np.asarray(h, dtype=bool) for h in hits])
    return np.asarray(binary_erosion(both, structure=np.ones((3, 3), bool), border_value=0))


def compare(ours: CompensatorResult, pm: PlastimatchCompensator) -> dict[str, float]:
    """Per-ray differences (ours − plastimatch) on interior rays, mm of water unless named ``pmma``."""
    hit = np.isfinite(ours.distal_wepl_mm)
    inner = interior_rays(hit, pm.target_rays)
    d_distal = (ours.distal_wepl_mm - pm.distal_wed_mm)[inner]
    wet_ours = ours.thickness_mm * ours.material.relative_stopping_power
    d_wet = (wet_ours - pm.wet_mm)[inner]
    # the same compensators milled in one PMMA (ours, RSP 1.165): plastimatch's WET / 1.165
    d_pmma = (ours.thickness_mm - pm.wet_mm / ours.material.relative_stopping_power)[inner]
    offset = float(np.median(d_distal))
    return {
        "target_rays_ours": int(hit.sum()),
        "target_rays_plastimatch": int(pm.target_rays.sum()),
        "target_rays_agree_percent": 100.0 * float(np.mean(hit == pm.target_rays)),
        "interior_rays": int(inner.sum()),
        "distal_mean_mm": float(d_distal.mean()),
        "distal_median_mm": offset,
        "distal_std_mm": float(d_distal.std()),
        "distal_max_abs_mm": float(np.abs(d_distal).max()),
        "distal_max_abs_minus_offset_mm": float(np.abs(d_distal - offset).max()),
        "distal_within_1mm_of_offset_percent": 100.0 * float(np.mean(np.abs(d_distal - offset) <= 1.0)),
        "wet_mean_mm": float(d_wet.mean()),
        "wet_max_abs_mm": float(np.abs(d_wet).max()),
        "wet_p95_abs_mm": float(np.percentile(np.abs(d_wet), 95)),
        "pmma_mean_mm": float(d_pmma.mean()),
        "pmma_max_abs_mm": float(np.abs(d_pmma).max()),
    }


@dataclass(frozen=True)
class Case:
    """One comparison: phantom, our calibration, plastimatch's ray step."""

    name: str
    ct: Volume
    target: Volume
    calibration: HUCalibration | None
    ray_step_mm: float
    pixel_spacing_mm: float = 2.0


def main() -> None:
    exe = find_plastimatch()
    if exe is None:
        raise SystemExit("plastimatch not found: set INTREPID_PLASTIMATCH or put it on PATH")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    sphere, bone = sphere_phantom(), heterogeneous_phantom(slab_hu=1000.0)
    cases = [
        Case("sphere", *sphere, None, 1.0),
        Case("sphere, plastimatch ray_step 0.25 mm", *sphere, None, 0.25),
        Case("sphere, 1 mm pixels", *sphere, None, 1.0, pixel_spacing_mm=1.0),
        Case("heterogeneous, lung slab", *heterogeneous_phantom(), None, 1.0),
        Case("heterogeneous, bone slab, plastimatch's HU→RSP in both", *bone, plastimatch_calibration(), 1.0),
    ]
    settings = CompensatorSettings(pixel_spacing_mm=2.0, field_margin_mm=4.0)
    design_compensator(*sphere, geo, settings)  # warm-up (numba compile of the ray tracer)
    rows = []
    for n, case in enumerate(cases):
        t0 = time.perf_counter()
        settings = CompensatorSettings(pixel_spacing_mm=case.pixel_spacing_mm, field_margin_mm=4.0)
        ours = design_compensator(case.ct, case.target, geo, settings, calibration=case.calibration)
        ours_s = time.perf_counter() - t0
        pm = run_plastimatch(exe, DATA / f"case{n}", case.ct, case.target, ours, case.ray_step_mm)
        rows.append((case.name, ours, ours_s, pm, compare(ours, pm)))
    print(f"plastimatch: {exe} ({version})\n")
    print("| quantity | " + " | ".join(r[0] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))

    def line(label: str, values: list[str]) -> None:
        print(f"| {label} | " + " | ".join(values) + " |")

    line("grid (rows x columns), ray pitch at the isocentre", [
        f"{o.shape[0]} x {o.shape[1]}, {o.pixel_spacing_iso_mm[0]:.3f} mm" for _, o, _, _, _ in rows])
    line("plastimatch upper-left pixel − ours (mm, max abs)", [f"{p.ul_error_mm:.1e}" for *_, p, _ in rows])
    line("projected-target samples (plastimatch)", [str(p.projected_target_samples) for *_, p, _ in rows])
    line("target rays: ours / plastimatch / same classification", [
        f"{c['target_rays_ours']} / {c['target_rays_plastimatch']} / {c['target_rays_agree_percent']:.1f} %"
        for *_, c in rows])
    line("interior rays compared", [str(c["interior_rays"]) for *_, c in rows])
    line("max distal WED: ours / plastimatch (mm)", [
        f"{np.nanmax(o.distal_wepl_mm):.2f} / {p.max_wed_mm:.2f}" for _, o, _, p, _ in rows])
    line("Δ distal WED, ours − plastimatch: median (mean ± sd)", [
        f"{c['distal_median_mm']:+.2f} ({c['distal_mean_mm']:+.2f} ± {c['distal_std_mm']:.2f}) mm"
        for *_, c in rows])
    line("Δ distal WED: max abs / max abs about the median", [
        f"{c['distal_max_abs_mm']:.2f} / {c['distal_max_abs_minus_offset_mm']:.2f} mm" for *_, c in rows])
    line("rays within 1 mm of the median offset", [
        f"{c['distal_within_1mm_of_offset_percent']:.1f} %" for *_, c in rows])
    line("Δ compensator WET: mean / p95 abs / max abs", [
        f"{c['wet_mean_mm']:+.2f} / {c['wet_p95_abs_mm']:.2f} / {c['wet_max_abs_mm']:.2f} mm"
        for *_, c in rows])
    line("Δ PMMA thickness (both in RSP 1.165): mean / max abs", [
        f"{c['pmma_mean_mm']:+.2f} / {c['pmma_max_abs_mm']:.2f} mm" for *_, c in rows])
    line("ours: PMMA thickness on target rays (mm)", [
        f"{o.thickness_mm[np.isfinite(o.distal_wepl_mm)].min():.2f}–"
        f"{o.thickness_mm[np.isfinite(o.distal_wepl_mm)].max():.2f}" for _, o, _, _, _ in rows])
    line("plastimatch rc_out on target rays (its PMMA mm, WER 1.1662)", [
        f"{p.rc_pmma_mm[p.target_rays].min():.2f}–{p.rc_pmma_mm[p.target_rays].max():.2f}"
        for *_, p, _ in rows])
    line("time: our design / whole plastimatch run incl. dose (s)", [
        f"{s:.3f} / {p.seconds:.2f}" for _, _, s, p, _ in rows])
    print()
    # the calibration finding, measured, and what it does to the heterogeneous design
    hus = (-500.0, 0.0, 41.46, 200.0, 500.0, 1000.0, 1500.0)
    rsp_pm = measure_plastimatch_rsp(exe, DATA / "rsp", hus)
    from intrepid.physics import hu_to_relative_stopping_power as schneider

    print("| HU | plastimatch 1.10 RSP (measured WED per mm) | InTrEPID default (Schneider 1996) |")
    print("|---|---|---|")
    for h in hus:
        print(f"| {h:g} | {rsp_pm[h]:.4f} | {float(schneider(np.array([h]))[0]):.4f} |")
    own = design_compensator(*bone, geo, CompensatorSettings(pixel_spacing_mm=2.0, field_margin_mm=4.0))
    pm_het = rows[-1][3]
    c = compare(own, pm_het)
    print(f"\nbone-slab phantom with our default calibration instead: Δ distal WED median "
          f"{c['distal_median_mm']:+.2f} mm, max abs {c['distal_max_abs_mm']:.2f} mm "
          f"(the bone rays; {c['interior_rays']} interior rays)")
    print(f"\nplastimatch inputs, command files, logs and outputs: {DATA}/case<n>/")


if __name__ == "__main__":
    main()
