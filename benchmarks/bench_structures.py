"""Benchmark: RTSTRUCT ROIs → masks on an RTDOSE grid (InTrEPID vs the usual voxel-centre methods).

Inputs: ../shared/data/dicompyler-example/rtss.dcm (10 ROIs) on the grid of its rtdose.dcm (194 × 129 × 98,
2.5 × 2.5 × 3 mm), plus an analytic sphere (r = 5 mm, contours every 3 mm) on the same voxel size.
Peers, on the same contours in the same run:

* matplotlib ``Path.contains_points`` on every dose-plane voxel centre, plane by plane (what dicompyler-core's
  DVH does), XOR of the contours on a plane;
* scikit-image ``draw.polygon2mask`` per contour on the plane, XOR (rt-utils / OpenCV ``fillPoly`` style).

Both are binary (voxel centre inside, nearest contour plane); InTrEPID is timed for its exact fractional mask
(full grid and cropped to the ROI box) and its binary mask.

    python3 benchmarks/bench_structures.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
from matplotlib.path import Path as MplPath
from skimage.draw import polygon2mask

from intrepid.dicom import read_rtdose, read_rtstruct, roi_fractional_mask, roi_mask
from intrepid.dicom._rtstruct import ROI, Contour, ContourType
from intrepid.geometry import Grid

_DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DATA = Path(os.environ.get("INTREPID_EXTERNAL_DATA", _DEFAULT_DATA))


def _planes(roi: ROI) -> dict[float, list[np.ndarray]]:
    out: dict[float, list[np.ndarray]] = {}
    for c in roi.area_contours:
        out.setdefault(round(c.z_mm, 2), []).append(c.points_mm[:, :2])
    return out


def _nearest_plane_masks(roi: ROI, grid: Grid, fill) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Binary mask: each dose slice takes the nearest contour plane within 1.5 mm (half the spacing)."""
    xs, ys, zs = grid.world_axes_mm()
    planes = _planes(roi)
    mask = np.zeros(grid.shape, dtype=bool)
    if not planes:
        return mask
    keys = np.array(sorted(planes))
    for k, z in enumerate(zs):
        q = int(np.argmin(np.abs(keys - z)))
        if abs(keys[q] - z) <= 1.5 + 1e-6:
            for poly in planes[float(keys[q])]:
                mask[k] ^= fill(poly, xs, ys)
    return mask


def _mpl_fill(poly: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return MplPath(poly).contains_points(np.column_stack([xx.ravel(), yy.ravel()])).reshape(yy.shape)


def _skimage_fill(poly: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    rc = np.column_stack([(poly[:, 1] - ys[0]) / (ys[1] - ys[0]), (poly[:, 0] - xs[0]) / (xs[1] - xs[0])])
    return polygon2mask((ys.size, xs.size), rc)


def _time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ss = read_rtstruct(DATA / "dicompyler-example" / "rtss.dcm")
    dose = read_rtdose(DATA / "dicompyler-example" / "rtdose.dcm")
    volume = getattr(dose, "volume", dose)
    grid = volume.grid
    rois = list(ss.rois)
    roi_mask(rois[0], grid)  # warm-up (imports)
    rows = [
        ("InTrEPID fractional (exact), full grid", lambda: [roi_fractional_mask(r, grid) for r in rois]),
        ("InTrEPID fractional (exact), crop=True",
         lambda: [roi_fractional_mask(r, grid, crop=True) for r in rois]),
        ("InTrEPID binary (voxel centre)", lambda: [roi_mask(r, grid) for r in rois]),
        ("matplotlib Path.contains_points (dicompyler-core style)",
         lambda: [_nearest_plane_masks(r, grid, _mpl_fill) for r in rois]),
        ("scikit-image polygon2mask per contour",
         lambda: [_nearest_plane_masks(r, grid, _skimage_fill) for r in rois]),
    ]
    print(f"Grid {grid.shape} (k, j, i), spacing {grid.spacing_mm} mm, {len(rois)} ROIs; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; best of {args.repeats}\n")
    print("| method | all 10 ROIs (s) |\n|---|---|")
    for name, fn in rows:
        print(f"| {name} | {_time(fn, args.repeats):.3f} |")

    # Volumes per ROI (cc): exact fractional vs voxel-centre.
    print("\n| ROI | contours | fractional cc | binary cc | matplotlib cc |\n|---|---|---|---|---|")
    cc = grid.voxel_volume_mm3 / 1000
    for r in rois:
        f = float(roi_fractional_mask(r, grid).array.sum(dtype=np.float64)) * cc
        b = float(roi_mask(r, grid).array.sum()) * cc
        m = float(_nearest_plane_masks(r, grid, _mpl_fill).sum()) * cc
        print(f"| {r.name} | {len(r.contours)} | {f:.3f} | {b:.3f} | {m:.3f} |")

    # Analytic sphere r = 5 mm, contours every 3 mm, on 2.5 x 2.5 x 3 mm voxels, at several offsets.
    print("\n| sphere r = 5 mm, contour/grid offset (mm) | exact 4/3πr³ (cc) | fractional error % "
          "| binary error % |\n|---|---|---|---|")
    true_cc = 4 / 3 * math.pi * 125 / 1000
    for off in (0.0, 0.4, 0.8, 1.2):
        cs = []
        for z in np.arange(-6, 6.01, 3.0) + off:
            if abs(z) < 5:
                t = np.linspace(0, 2 * np.pi, 360, endpoint=False)
                rr = math.sqrt(25 - z * z)
                cs.append(Contour(np.column_stack([rr * np.cos(t) + off, rr * np.sin(t), np.full(360, z)]),
                                  ContourType.CLOSED_PLANAR))
        roi = ROI(1, "sphere", "PTV", None, tuple(cs))
        g = Grid((12, 20, 20), (-23.75, -23.75, -18.0), (2.5, 2.5, 3.0))
        f = float(roi_fractional_mask(roi, g).array.sum(dtype=np.float64)) * g.voxel_volume_mm3 / 1000
        b = float(roi_mask(roi, g).array.sum()) * g.voxel_volume_mm3 / 1000
        print(f"| {off} | {true_cc:.4f} | {100 * (f / true_cc - 1):+.1f} | {100 * (b / true_cc - 1):+.1f} |")


if __name__ == "__main__":
    main()
