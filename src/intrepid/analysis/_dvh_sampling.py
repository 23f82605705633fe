"""Dose over a contoured structure's volume, sampled finely enough for Dmin, Dmax and the Dx.

Used by :func:`intrepid.analysis.compute_dvh` for ROIs given as contours (``supersample="auto"``) when the
structure is small enough (:data:`FINE_MAX_CC`); the method, in four steps:

1. **Model.** The contours become a continuous solid
   (:class:`~intrepid.analysis._contour_interp.ContourStack`: shape-based interpolation between planes,
   half-slice end caps).
2. **Occupancy lattice.** The solid is cut into slabs and each slab sampled on an in-plane lattice whose step
   is chosen so that the structure holds about :data:`TARGET_SAMPLES` samples (never coarser than half the
   dose spacing, never finer than :data:`MIN_STEP_MM`). Near the surface the lattice adapts: a cell's
   occupancy is the part of it on the inner side of the local surface, ``clip(1/2 - d / h_n, 0, 1)`` (``d``
   the signed distance of its centre, ``h_n`` the cell's extent along the surface normal), and the cell is
   represented by the centroid of that part, not by its centre.
3. **Dose.** The dose is interpolated trilinearly at every sample; each sample stands for a cell across which
   the dose varies, so its volume is spread uniformly over ``dose ± w/2``, with ``w`` the dose change across
   the cell (from the trilinear gradient; uniform is exact when the gradient is along one lattice axis, and
   has the right variance otherwise). The cumulative DVH is then continuous, not a staircase of cell doses.
4. **Extremes.** A trilinear dose has no strict extremum inside a dose-grid cell, so over a solid its minimum
   and maximum lie on the solid's surface or at dose-grid nodes inside it. Dmin and Dmax are the extremes of
   the dose at the sample centroids (interior) and at points on the surface: where the signed distance changes
   sign between lattice neighbours on every slab mid-plane, on every contour plane, and over the end-cap
   faces.

References
----------
Nelms B. E. et al., "Methods, software and datasets to verify DVH calculations against analytical values:
twenty years late(r)", Med. Phys. 42 (2015) 4435-4448, doi:10.1118/1.4923175.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from intrepid.analysis._contour_interp import ContourStack
from intrepid.geometry import Volume

__all__ = [
    "FINE_MAX_CC",
    "MAX_LATTICE_POINTS",
    "MIN_STEP_MM",
    "TARGET_SAMPLES",
    "FineSamples",
    "cumulative_from_spread",
    "lattice_points",
    "lattice_step_mm",
    "planar_volume_cc",
    "sample_structure",
]

_log = logging.getLogger(__name__)

#: Structures (planar volume estimate) up to this many cm³ are sampled by this module under ``"auto"``.
FINE_MAX_CC = 50.0
#: Samples aimed at inside the structure.
TARGET_SAMPLES = 15_000.0
#: Finest lattice step, mm.
MIN_STEP_MM = 0.05
#: A structure whose bounding box would hold more lattice points than this (a thin shell spread over a large
#: box) is left to the stepwise model, whose cost grows with its dose voxels instead.
MAX_LATTICE_POINTS = 4_000_000


@dataclass(frozen=True, eq=False)
class FineSamples:
    """Dose samples of a structure: dose (Gy), volume (cm³) and dose spread (Gy) per sample, and extremes."""

    dose_gy: NDArray[np.float64]
    volume_cc: NDArray[np.float64]
    spread_gy: NDArray[np.float64]
    min_gy: float
    max_gy: float
    step_mm: float
    outside_fraction: float


def lattice_step_mm(polygons_mm: Sequence[NDArray[np.float64]], dose: Volume,
                    target_samples: float = TARGET_SAMPLES) -> float:
    """Lattice step (mm) for a structure: about ``target_samples`` inside, between the module's bounds."""
    v_mm3 = max(planar_volume_cc(polygons_mm) * 1000.0, 1e-6)
    max_step = max(0.5 * min(dose.grid.spacing_mm), MIN_STEP_MM)
    return float(np.clip((v_mm3 / target_samples) ** (1.0 / 3.0), MIN_STEP_MM, max_step))


def lattice_points(polygons_mm: Sequence[NDArray[np.float64]], step_mm: float, cap_mm: float) -> float:
    """Number of lattice points of the structure's bounding box (end caps ``cap_mm`` included)."""
    pts = np.concatenate([np.asarray(p, dtype=float).reshape(-1, 3) for p in polygons_mm])
    ext = np.ptp(pts, axis=0) + np.array([4 * step_mm, 4 * step_mm, 2 * cap_mm])
    return float(np.prod(np.ceil(ext / step_mm)))


def planar_volume_cc(polygons_mm: Sequence[NDArray[np.float64]]) -> float:
    """Rough volume (cm³): Σ |polygon area| × median plane spacing (holes not subtracted)."""
    zs, areas = [], []
    for p in polygons_mm:
        if p.shape[0] < 3:
            continue
        x, y = p[:, 0], p[:, 1]
        areas.append(0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))))
        zs.append(float(p[:, 2].mean()))
    if not zs:
        return 0.0
    uz = np.unique(np.round(np.asarray(zs), 2))
    spacing = float(np.median(np.diff(uz))) if uz.size > 1 else 3.0
    return float(sum(areas)) * spacing / 1000.0


def _trilinear(dose: Volume, points_mm: NDArray[np.float64], gradient: bool = True) -> tuple[
    NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]
]:
    """Trilinear dose (Gy), its world gradient (Gy/mm, shape (n, 3); zeros unless ``gradient``) and
    inside-the-grid flags at points."""
    from scipy.ndimage import map_coordinates

    grid = dose.grid
    idx = grid.world_to_index(points_mm)
    n_ijk = np.asarray(grid.shape_ijk)
    inside = np.all((idx >= -0.5) & (idx <= n_ijk - 0.5), axis=1)
    # work on the box of the dose grid around the points only
    lo = np.clip(np.floor(idx.min(axis=0)).astype(int) - 1, 0, n_ijk - 1)
    hi = np.clip(np.ceil(idx.max(axis=0)).astype(int) + 2, lo + 1, n_ijk)
    a = np.asarray(dose.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]], dtype=float)
    idx = idx - lo
    coords = np.clip(np.stack([idx[:, 2], idx[:, 1], idx[:, 0]]), 0.0, (np.asarray(a.shape) - 1)[:, None])
    vals = map_coordinates(a, coords, order=1, mode="nearest")
    grads = np.zeros((points_mm.shape[0], 3))
    if gradient:
        # The trilinear interpolant's gradient along an index axis is the linear interpolation, along the
        # other two axes, of the forward differences at the cell's floor index: the exact derivative inside
        # the cell.
        for axis, col in ((2, 0), (1, 1), (0, 2)):
            n = a.shape[axis]
            if n < 2:
                continue
            fwd = np.diff(a, axis=axis)
            c = coords.copy()
            c[axis] = np.minimum(np.floor(coords[axis]), n - 2)
            grads[:, col] = map_coordinates(fwd, c, order=1, mode="nearest")
    g_world = (grid.direction_matrix @ (grads / np.asarray(grid.spacing_mm)).T).T
    return vals, g_world, inside


def _surface_crossings(d: NDArray[np.float64], xs: NDArray[np.float64], ys: NDArray[np.float64]) -> tuple[
    NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]
]:
    """Where the signed distance ``d`` (m, ny, nx) changes sign between lattice neighbours (linear zero
    crossing): slab index, x and y of each crossing."""
    out_s, out_x, out_y = [], [], []
    a, b = d[:, :, :-1], d[:, :, 1:]
    s, r, c = np.nonzero((a < 0) != (b < 0))
    t = a[s, r, c] / (a[s, r, c] - b[s, r, c])
    out_s.append(s)
    out_x.append(xs[c] + t * (xs[c + 1] - xs[c]))
    out_y.append(ys[r])
    a, b = d[:, :-1, :], d[:, 1:, :]
    s, r, c = np.nonzero((a < 0) != (b < 0))
    t = a[s, r, c] / (a[s, r, c] - b[s, r, c])
    out_s.append(s)
    out_x.append(xs[c])
    out_y.append(ys[r] + t * (ys[r + 1] - ys[r]))
    return np.concatenate(out_s), np.concatenate(out_x), np.concatenate(out_y)


def sample_structure(
    polygons_mm: Sequence[NDArray[np.float64]],
    dose: Volume,
    *,
    single_plane_thickness_mm: float,
    target_samples: float = TARGET_SAMPLES,
    interpolate: bool = True,
) -> FineSamples:
    """Sample the dose over the interpolated, end-capped solid of a contoured structure (module notes).

    Parameters
    ----------
    polygons_mm : sequence of ndarray, each (n, 3)
        Closed axial polygons of the structure, world mm.
    dose : Volume
        3D dose, Gy, any grid of the structure's Frame of Reference.
    single_plane_thickness_mm : float
        Thickness of a structure on one plane, mm.
    target_samples : float
        Number of samples aimed at inside the structure (sets the lattice step).
    interpolate : bool
        False: stepwise (extruded) contours between planes instead of shape-based interpolation.
    """
    max_step = 0.5 * min(dose.grid.spacing_mm)
    step = lattice_step_mm(polygons_mm, dose, target_samples)
    stack = ContourStack(polygons_mm, step, single_plane_thickness_mm=single_plane_thickness_mm,
                         interpolate=interpolate)
    xs, ys = stack.xs, stack.ys
    px, py, pz, pw, hz_l = [], [], [], [], []
    sx, sy, sz = [], [], []
    for slab in stack.sections(step):
        d = slab.distance_mm
        if not np.any(d < step):
            continue
        if d.shape[1] > 1 and d.shape[2] > 1:
            gy_d, gx_d = np.gradient(d, step, axis=(1, 2))
        else:
            gy_d, gx_d = np.zeros_like(d), np.ones_like(d)
        gn = np.hypot(gx_d, gy_d)
        ok = gn > 1e-6
        safe = np.where(ok, gn, 1.0)
        nx_ = np.where(ok, gx_d / safe, 1.0)
        ny_ = np.where(ok, gy_d / safe, 0.0)
        hn = step * (np.abs(nx_) + np.abs(ny_))
        phi = np.clip(0.5 - d / np.maximum(gn, 0.25) / hn, 0.0, 1.0)
        s_, r, c = np.nonzero(phi > 0)
        f = phi[s_, r, c]
        shift = (1.0 - f) * 0.5 * hn[s_, r, c]
        px.append(xs[c] - shift * nx_[s_, r, c])
        py.append(ys[r] - shift * ny_[s_, r, c])
        pz.append(slab.z_mm[s_])
        pw.append(f * (step * step * slab.thickness_mm))
        hz_l.append(np.full(r.size, slab.thickness_mm))
        cs, cx, cy = _surface_crossings(d, xs, ys)
        sx.append(cx)
        sy.append(cy)
        sz.append(slab.z_mm[cs])
    # contour planes and end-cap faces: surface crossings, and the cap faces' interiors
    faces = stack.cap_faces()
    for i, d in enumerate(stack.plane_distance_mm):
        _, cx, cy = _surface_crossings(d[None], xs, ys)
        for z in [float(stack.z_mm[i])] + [zf for zf, j in faces if j == i]:
            sx.append(cx)
            sy.append(cy)
            sz.append(np.full(cx.size, z))
    # the contour vertices lie on the surface exactly (a section smaller than a lattice cell has no other)
    for i, verts in enumerate(stack.plane_vertices_mm):
        for z in [float(stack.z_mm[i])] + [zf for zf, j in faces if j == i]:
            sx.append(verts[:, 0])
            sy.append(verts[:, 1])
            sz.append(np.full(verts.shape[0], z))
    # cap-face interiors: a trilinear dose is bilinear on a face, so a lattice at the dose spacing suffices
    every = max(int(max_step / step), 1)
    for zf, j in faces:
        r, c = np.nonzero(stack.plane_distance_mm[j][::every, ::every] < 0)
        r, c = r * every, c * every
        sx.append(xs[c])
        sy.append(ys[r])
        sz.append(np.full(r.size, zf))
    pts = np.column_stack([np.concatenate(px), np.concatenate(py), np.concatenate(pz)])
    w = np.concatenate(pw) / 1000.0
    hz = np.concatenate(hz_l)
    dose_s, grad, inside = _trilinear(dose, pts)
    total = float(w.sum())
    w_in = w * inside
    outside = 1.0 - float(w_in.sum()) / total if total > 0 else 0.0
    spread = np.sqrt((grad[:, 0] * step) ** 2 + (grad[:, 1] * step) ** 2 + (grad[:, 2] * hz) ** 2)
    surf = np.column_stack([np.concatenate(sx), np.concatenate(sy), np.concatenate(sz)])
    extremes = dose_s[inside]
    if surf.shape[0]:
        d_surf, _, in_surf = _trilinear(dose, surf, gradient=False)
        extremes = np.concatenate([extremes, d_surf[in_surf]])
    keep = w_in > 0
    if not np.any(keep):
        nan = float("nan")
        return FineSamples(np.zeros(0), np.zeros(0), np.zeros(0), nan, nan, step, outside)
    return FineSamples(
        dose_s[keep], w_in[keep], spread[keep], float(extremes.min()), float(extremes.max()), step, outside
    )


def cumulative_from_spread(
    dose_gy: NDArray[np.float64],
    volume_cc: NDArray[np.float64],
    spread_gy: NDArray[np.float64],
    min_gy: float,
    max_gy: float,
    bin_width_gy: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bin edges and cumulative volumes (cm³) of samples, each spread uniformly over ``dose ± spread/2``.

    The spread is clipped to ``[min_gy, max_gy]``. Samples with a spread under a tenth of a bin are points.
    """
    bw = bin_width_gy
    n_bins = math.floor(max_gy / bw) + 1
    edges = np.arange(n_bins + 1, dtype=float) * bw
    a = np.clip(dose_gy - 0.5 * spread_gy, min_gy, max_gy)
    b = np.clip(dose_gy + 0.5 * spread_gy, min_gy, max_gy)
    ramp = (b - a) > 0.1 * bw
    cum = np.zeros(n_bins + 1)
    # point samples: V(>= e_k) counts samples with bin index >= k
    pt = ~ramp
    if np.any(pt):
        idx = np.minimum((dose_gy[pt] / bw).astype(np.int64), n_bins - 1)
        diff = np.bincount(idx, weights=volume_cc[pt], minlength=n_bins)
        cum[:-1] += np.cumsum(diff[::-1])[::-1]
    if np.any(ramp):
        aa, bb, ww = a[ramp], b[ramp], volume_cc[ramp]
        c = ww / (bb - aa)
        # G(e) = Σ c ((e - a)+ - (e - b)+) is the volume below e; V(>= e) = W - G(e)
        g = np.zeros(n_bins + 1)
        for x, sign in ((aa, 1.0), (bb, -1.0)):
            k = np.minimum(np.floor(x / bw).astype(np.int64) + 1, n_bins + 1)
            s1 = np.cumsum(np.bincount(k, weights=c, minlength=n_bins + 2))[: n_bins + 1]
            s2 = np.cumsum(np.bincount(k, weights=c * x, minlength=n_bins + 2))[: n_bins + 1]
            g += sign * (edges * s1 - s2)
        cum += float(ww.sum()) - np.clip(g, 0.0, float(ww.sum()))
    cum = np.minimum.accumulate(np.clip(cum, 0.0, None))
    cum[-1] = 0.0
    return edges, cum
