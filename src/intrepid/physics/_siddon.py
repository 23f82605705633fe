"""Numba kernels of the exact (Siddon / Jacobs) ray tracer and of the fast beam's-eye-view depth.

Everything here works in *continuous index space*: a point ``q = (i, j, k)`` (floats) is at the centre of
voxel ``array[k, j, i]`` when ``q`` is integral, and voxel ``(i, j, k)`` covers ``[i - 0.5, i + 0.5)`` along
each axis. A ray is ``q(alpha) = a + alpha * d``; its world length per unit ``alpha`` is ``lw`` (mm), so a
segment ``[alpha_0, alpha_1]`` inside one voxel has length ``(alpha_1 - alpha_0) * lw`` in mm. Working in
index space makes one code path serve every axis-aligned grid (any spacing, flipped or permuted axes).

The traversal is the incremental form of Siddon's algorithm (Siddon 1985, Med Phys 12:252,
doi:10.1118/1.595715) due to Jacobs et al. (1998, Proc. ECSAP, "A fast algorithm to calculate the exact
radiological path through a pixel or voxel space", J Comput Inf Technol 6:89): the next plane crossing along
each axis is kept and advanced by a constant increment, so each voxel on the path costs O(1) and no sorting
of crossing parameters is needed.

The public wrappers live in :mod:`intrepid.physics._raytrace`; these kernels assume validated input.
Values are read as float32 (the tracer never needs more than 7 significant digits of a density) and every
sum is accumulated in float64.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "bev_cumulative",
    "bev_interpolate",
    "radiological_depth_exact",
    "trace_path",
    "trace_rays",
]

_INF = np.inf
#: Direction components (index units per unit alpha) below this are treated as parallel to the planes: the ray
#: moves less than 1e-12 voxel along that axis, and a ray lying in a boundary plane is not lost to rounding.
_PARALLEL = 1e-12
#: Floating-point relaxations of the FAST kernels: no reordering guarantees, but NaN and inf keep their
#: meaning (the kernels test for NaN and rely on 0 / 0 = NaN).
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(cache=True, inline="always")
def _axis_limits(a: float, d: float, n: int) -> tuple[float, float, bool]:
    """Interval ``[lo, hi]`` of alpha where ``a + alpha d`` lies between the edges -0.5 and n - 0.5."""
    if d > _PARALLEL:
        return (-0.5 - a) / d, (n - 0.5 - a) / d, True
    if d < -_PARALLEL:
        return (n - 0.5 - a) / d, (-0.5 - a) / d, True
    inside = a >= -0.5 and a < n - 0.5
    return -_INF, _INF, inside


@numba.njit(cache=True, inline="always")
def _axis_start(a: float, d: float, n: int, alpha: float) -> tuple[int, int, float, float]:
    """Voxel index, step, next crossing parameter and its increment along one axis at entry ``alpha``."""
    c = a + alpha * d
    if d > _PARALLEL:
        i = math.floor(c + 0.5)
        i = min(max(i, 0), n - 1)
        return i, 1, (i + 0.5 - a) / d, 1.0 / d
    if d < -_PARALLEL:
        i = math.ceil(c + 0.5) - 1
        i = min(max(i, 0), n - 1)
        return i, -1, (i - 0.5 - a) / d, -1.0 / d
    i = math.floor(c + 0.5)
    i = min(max(i, 0), n - 1)
    return i, 0, _INF, _INF


@numba.njit(cache=True, inline="always")
def _clip(
    a0: float,
    a1: float,
    a2: float,
    d0: float,
    d1: float,
    d2: float,
    ni: int,
    nj: int,
    nk: int,
    alpha_lo: float,
    alpha_hi: float,
) -> tuple[float, float]:
    """Entry and exit alpha of the ray in the box, clipped to [alpha_lo, alpha_hi] (entry >= exit: miss)."""
    lo0, hi0, in0 = _axis_limits(a0, d0, ni)
    lo1, hi1, in1 = _axis_limits(a1, d1, nj)
    lo2, hi2, in2 = _axis_limits(a2, d2, nk)
    if not (in0 and in1 and in2):
        return 1.0, 0.0
    amin = max(alpha_lo, lo0, lo1, lo2)
    amax = min(alpha_hi, hi0, hi1, hi2)
    return amin, amax


@numba.njit(cache=True)
def trace_path(
    a: NDArray[np.float64],
    d: NDArray[np.float64],
    shape_kji: NDArray[np.int64],
    alpha_lo: float,
    alpha_hi: float,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Voxels crossed by one ray and the parameter at each crossing.

    Returns
    -------
    ijk : (n, 3) int64
        Voxel indices (i, j, k) in path order.
    alphas : (n + 1,) float64
        Parameter of the entry into each voxel, then the exit parameter of the last one.
    """
    nk, nj, ni = shape_kji[0], shape_kji[1], shape_kji[2]
    amin, amax = _clip(a[0], a[1], a[2], d[0], d[1], d[2], ni, nj, nk, alpha_lo, alpha_hi)
    cap = ni + nj + nk + 4
    ijk = np.empty((cap, 3), np.int64)
    alphas = np.empty(cap + 1, np.float64)
    if not amin < amax:
        return ijk[:0], alphas[:0]
    i, si, ax, dax = _axis_start(a[0], d[0], ni, amin)
    j, sj, ay, day = _axis_start(a[1], d[1], nj, amin)
    k, sk, az, daz = _axis_start(a[2], d[2], nk, amin)
    alpha = amin
    n = 0
    while n < cap:
        if ax <= ay and ax <= az:
            nxt = ax
            axis = 0
        elif ay <= az:
            nxt = ay
            axis = 1
        else:
            nxt = az
            axis = 2
        done = nxt >= amax
        if done:
            nxt = amax
        if nxt > alpha:
            ijk[n, 0] = i
            ijk[n, 1] = j
            ijk[n, 2] = k
            alphas[n] = alpha
            n += 1
            alpha = nxt
        if done:
            break
        if axis == 0:
            i += si
            ax += dax
            if i < 0 or i >= ni:
                break
        elif axis == 1:
            j += sj
            ay += day
            if j < 0 or j >= nj:
                break
        else:
            k += sk
            az += daz
            if k < 0 or k >= nk:
                break
    alphas[n] = alpha
    return ijk[:n], alphas[: n + 1]


@numba.njit(cache=True, parallel=True)
def trace_rays(
    values: NDArray[np.float32],
    mask: NDArray[np.uint8],
    use_mask: bool,
    a: NDArray[np.float64],
    d: NDArray[np.float64],
    lw: NDArray[np.float64],
    alpha_lo: NDArray[np.float64],
    alpha_hi: NDArray[np.float64],
    queries: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Line integrals of many rays, with cumulative values at query parameters and mask crossings.

    Parameters
    ----------
    values : (nk, nj, ni) float32
    mask : (nk, nj, ni) uint8
        Only read when ``use_mask``.
    a, d : (N, 3) float64
        Ray start and direction in index space (``q = a + alpha d``).
    lw : (N,) float64
        World length (mm) per unit alpha.
    alpha_lo, alpha_hi : (N,) float64
        Part of each ray that is integrated.
    queries : (N, M) float64
        Parameters, ascending in each row, where the cumulative integral is reported.

    Returns
    -------
    info : (N, 7) float64
        total integral, entry alpha, exit alpha (NaN: ray misses), first alpha inside the mask, last alpha
        inside the mask (NaN: never in the mask), cumulative integral at those two mask parameters.
    cumulative : (N, M) float64
        Integral from ``alpha_lo`` to each query (0 before the entry, the total after the exit).
    """
    nk, nj, ni = values.shape
    n_rays = a.shape[0]
    n_q = queries.shape[1]
    info = np.full((n_rays, 7), np.nan)
    cumulative = np.zeros((n_rays, n_q))
    for r in numba.prange(n_rays):
        a0, a1, a2 = a[r, 0], a[r, 1], a[r, 2]
        d0, d1, d2 = d[r, 0], d[r, 1], d[r, 2]
        amin, amax = _clip(a0, a1, a2, d0, d1, d2, ni, nj, nk, alpha_lo[r], alpha_hi[r])
        if not amin < amax:
            info[r, 0] = 0.0
            continue
        i, si, ax, dax = _axis_start(a0, d0, ni, amin)
        j, sj, ay, day = _axis_start(a1, d1, nj, amin)
        k, sk, az, daz = _axis_start(a2, d2, nk, amin)
        scale = lw[r]
        alpha = amin
        total = 0.0
        q = 0
        while q < n_q and queries[r, q] <= amin:
            q += 1
        m_first = np.nan
        m_last = np.nan
        c_first = np.nan
        c_last = np.nan
        while True:
            if ax <= ay and ax <= az:
                nxt = ax
                axis = 0
            elif ay <= az:
                nxt = ay
                axis = 1
            else:
                nxt = az
                axis = 2
            done = nxt >= amax
            if done:
                nxt = amax
            if nxt > alpha:
                rate = values[k, j, i] * scale
                while q < n_q and queries[r, q] < nxt:
                    cumulative[r, q] = total + rate * (queries[r, q] - alpha)
                    q += 1
                if use_mask and mask[k, j, i] != 0:
                    if m_first != m_first:
                        m_first = alpha
                        c_first = total
                    m_last = nxt
                    c_last = total + rate * (nxt - alpha)
                total += rate * (nxt - alpha)
                alpha = nxt
            if done:
                break
            if axis == 0:
                i += si
                ax += dax
                if i < 0 or i >= ni:
                    break
            elif axis == 1:
                j += sj
                ay += day
                if j < 0 or j >= nj:
                    break
            else:
                k += sk
                az += daz
                if k < 0 or k >= nk:
                    break
        while q < n_q:
            cumulative[r, q] = total
            q += 1
        info[r, 0] = total
        info[r, 1] = amin
        info[r, 2] = alpha
        info[r, 3] = m_first
        info[r, 4] = m_last
        info[r, 5] = c_first
        info[r, 6] = c_last
    return info, cumulative


@numba.njit(cache=True, parallel=True)
def radiological_depth_exact(
    values: NDArray[np.float32],
    src: NDArray[np.float64],
    t0: NDArray[np.float64],
    tx: NDArray[np.float64],
    tz: NDArray[np.float64],
    nx_range: NDArray[np.int64],
    nz_range: NDArray[np.int64],
    bev: NDArray[np.float64],
    plane_mm: float,
    spacing_mm: float,
    entrance: NDArray[np.float32],
    exit_: NDArray[np.float32],
) -> None:
    """matRad-style radiological depth: trace a grid of divergent rays, each voxel from its nearest ray.

    Ray ``(nx, nz)`` runs from the source ``src`` to ``t0 + nx tx + nz tz`` (index space) on the ray plane at
    ``plane_mm`` from the source, beyond the volume. A voxel takes its value from the ray whose position on
    that plane is nearest the central projection of the voxel centre (``nx = ceil(u / spacing - 1/2)``, the
    half-open squares of pyRadPlan's ``select_rad_depth_segments``); the value is the cumulative integral at
    the midpoint of the ray's chord through the voxel; ``exit_`` is the rest of that ray's integral to the
    volume's edge. ``bev`` (3, 4) maps a voxel index ``(i, j, k, 1)`` to beam's-eye-view coordinates
    relative to the source (lateral x, depth along the central axis, lateral z). Voxels whose ray does not
    cross them keep their initial value (NaN).
    """
    nk, nj, ni = values.shape
    nx0 = nx_range[0]
    n_x = nx_range[1] - nx0 + 1
    nz0 = nz_range[0]
    n_z = nz_range[1] - nz0 + 1
    cap = ni + nj + nk + 4
    inv_sp = 1.0 / spacing_mm
    flat_in = entrance.reshape(-1)
    flat_out = exit_.reshape(-1)
    for row in numba.prange(n_z):
        buf = np.empty(cap, np.int64)
        nz = nz0 + row
        for col in range(n_x):
            nx = nx0 + col
            d0 = t0[0] + nx * tx[0] + nz * tz[0] - src[0]
            d1 = t0[1] + nx * tx[1] + nz * tz[1] - src[1]
            d2 = t0[2] + nx * tx[2] + nz * tz[2] - src[2]
            amin, amax = _clip(src[0], src[1], src[2], d0, d1, d2, ni, nj, nk, 0.0, 1.0)
            if not amin < amax:
                continue
            # world length per unit alpha: the ray's length in mm (source -> ray-plane point)
            u = nx * spacing_mm
            v = nz * spacing_mm
            scale = math.sqrt(plane_mm * plane_mm + u * u + v * v)
            i, si, ax, dax = _axis_start(src[0], d0, ni, amin)
            j, sj, ay, day = _axis_start(src[1], d1, nj, amin)
            k, sk, az, daz = _axis_start(src[2], d2, nk, amin)
            alpha = amin
            total = 0.0
            nbuf = 0
            while True:
                if ax <= ay and ax <= az:
                    nxt = ax
                    axis = 0
                elif ay <= az:
                    nxt = ay
                    axis = 1
                else:
                    nxt = az
                    axis = 2
                done = nxt >= amax
                if done:
                    nxt = amax
                if nxt > alpha:
                    seg = values[k, j, i] * scale * (nxt - alpha)
                    by = bev[1, 0] * i + bev[1, 1] * j + bev[1, 2] * k + bev[1, 3]
                    if by > 0.0:
                        f = plane_mm / by * inv_sp
                        bx = bev[0, 0] * i + bev[0, 1] * j + bev[0, 2] * k + bev[0, 3]
                        bz = bev[2, 0] * i + bev[2, 1] * j + bev[2, 2] * k + bev[2, 3]
                        if math.ceil(bx * f - 0.5) == nx and math.ceil(bz * f - 0.5) == nz and nbuf < cap:
                            entrance[k, j, i] = total + 0.5 * seg
                            buf[nbuf] = (k * nj + j) * ni + i
                            nbuf += 1
                    total += seg
                    alpha = nxt
                if done:
                    break
                if axis == 0:
                    i += si
                    ax += dax
                    if i < 0 or i >= ni:
                        break
                elif axis == 1:
                    j += sj
                    ay += day
                    if j < 0 or j >= nj:
                        break
                else:
                    k += sk
                    az += daz
                    if k < 0 or k >= nk:
                        break
            for b in range(nbuf):
                flat_out[buf[b]] = total - flat_in[buf[b]]


@numba.njit(cache=True, inline="always")
def _sample_interior(values: NDArray[np.float32], qi: float, qj: float, qk: float) -> float:
    """Trilinear value at an index point inside the box of voxel centres ``[0, n - 1]`` (n >= 2 per axis)."""
    nk, nj, ni = values.shape
    i0 = min(max(int(qi), 0), ni - 2)
    j0 = min(max(int(qj), 0), nj - 2)
    k0 = min(max(int(qk), 0), nk - 2)
    fi = qi - i0
    fj = qj - j0
    fk = qk - k0
    c00 = values[k0, j0, i0] * (1.0 - fi) + values[k0, j0, i0 + 1] * fi
    c01 = values[k0, j0 + 1, i0] * (1.0 - fi) + values[k0, j0 + 1, i0 + 1] * fi
    c10 = values[k0 + 1, j0, i0] * (1.0 - fi) + values[k0 + 1, j0, i0 + 1] * fi
    c11 = values[k0 + 1, j0 + 1, i0] * (1.0 - fi) + values[k0 + 1, j0 + 1, i0 + 1] * fi
    c0 = c00 * (1.0 - fj) + c01 * fj
    c1 = c10 * (1.0 - fj) + c11 * fj
    return c0 * (1.0 - fk) + c1 * fk


@numba.njit(cache=True, inline="always")
def _sample_clamped(values: NDArray[np.float32], qi: float, qj: float, qk: float) -> float:
    """Trilinear value at index point q; clamped to the edge sample up to the voxel edges, 0 beyond them."""
    nk, nj, ni = values.shape
    if qi < -0.5 or qj < -0.5 or qk < -0.5 or qi > ni - 0.5 or qj > nj - 0.5 or qk > nk - 0.5:
        return 0.0
    qi = min(max(qi, 0.0), ni - 1.0)
    qj = min(max(qj, 0.0), nj - 1.0)
    qk = min(max(qk, 0.0), nk - 1.0)
    i0 = min(int(qi), ni - 2) if ni > 1 else 0
    j0 = min(int(qj), nj - 2) if nj > 1 else 0
    k0 = min(int(qk), nk - 2) if nk > 1 else 0
    fi = qi - i0
    fj = qj - j0
    fk = qk - k0
    i1 = min(i0 + 1, ni - 1)
    j1 = min(j0 + 1, nj - 1)
    k1 = min(k0 + 1, nk - 1)
    c00 = values[k0, j0, i0] * (1.0 - fi) + values[k0, j0, i1] * fi
    c01 = values[k0, j1, i0] * (1.0 - fi) + values[k0, j1, i1] * fi
    c10 = values[k1, j0, i0] * (1.0 - fi) + values[k1, j0, i1] * fi
    c11 = values[k1, j1, i0] * (1.0 - fi) + values[k1, j1, i1] * fi
    c0 = c00 * (1.0 - fj) + c01 * fj
    c1 = c10 * (1.0 - fj) + c11 * fj
    return c0 * (1.0 - fk) + c1 * fk


@numba.njit(cache=True, parallel=True)
def bev_cumulative(
    values: NDArray[np.float32],
    src: NDArray[np.float64],
    w: NDArray[np.float64],
    ex: NDArray[np.float64],
    ez: NDArray[np.float64],
    u0: float,
    v0: float,
    lateral_mm: float,
    d0: float,
    depth_step_mm: float,
    ref_mm: float,
    out: NDArray[np.float32],
    totals: NDArray[np.float32],
) -> None:
    """Cumulative integral along the columns of a divergent beam's-eye-view grid (trapezoid rule).

    Column ``(iv, iu)`` is the ray through ``(u0 + iu * lateral_mm, v0 + iv * lateral_mm)`` on the plane at
    ``ref_mm`` from the source; its samples lie at depths ``d0 + m * depth_step_mm`` along the central axis.
    ``w``, ``ex``, ``ez`` are the central axis and the two lateral axes mapped to index space per mm.
    ``out`` (n_v, n_u, n_d) gets the integral from the column's entry into the volume to each sample inside
    the volume and NaN at the samples outside it; ``totals`` (n_v, n_u) the integral through the whole
    volume. Both are written in full (they may be uninitialised).
    """
    nk, nj, ni = values.shape
    n_v, n_u, n_d = out.shape
    for iv in numba.prange(n_v):
        v = v0 + iv * lateral_mm
        for iu in range(n_u):
            u = u0 + iu * lateral_mm
            r0 = w[0] + (u * ex[0] + v * ez[0]) / ref_mm
            r1 = w[1] + (u * ex[1] + v * ez[1]) / ref_mm
            r2 = w[2] + (u * ex[2] + v * ez[2]) / ref_mm
            stretch = math.sqrt(1.0 + (u * u + v * v) / (ref_mm * ref_mm))
            # depth interval where the column is inside the volume (edges): only those samples are computed
            dmin, dmax = _clip(src[0], src[1], src[2], r0, r1, r2, ni, nj, nk, -_INF, _INF)
            totals[iv, iu] = 0.0
            if not dmin < dmax:
                for m in range(n_d):
                    out[iv, iu, m] = np.nan
                continue
            m_start = min(max(math.ceil((dmin - d0) / depth_step_mm), 0), n_d)
            m_stop = max(min(math.floor((dmax - d0) / depth_step_mm) + 1, n_d), m_start)
            for m in range(m_start):
                out[iv, iu, m] = np.nan
            for m in range(m_stop, n_d):
                out[iv, iu, m] = np.nan
            # samples whose eight trilinear neighbours are all inside the grid (centres box [0, n - 1] on
            # each axis, one sample of margin against rounding) need no clamping
            flo, fhi = _clip(
                src[0] - 0.5, src[1] - 0.5, src[2] - 0.5, r0, r1, r2, ni - 1, nj - 1, nk - 1, -_INF, _INF
            )
            m_fast_lo = m_stop
            m_fast_hi = m_stop
            if flo < fhi:
                m_fast_lo = min(max(math.ceil((flo - d0) / depth_step_mm) + 1, m_start), m_stop)
                m_fast_hi = min(max(math.floor((fhi - d0) / depth_step_mm), m_fast_lo), m_stop)
            total = 0.0
            prev = 0.0
            prev_d = dmin
            half_step = 0.5 * depth_step_mm * stretch
            for m in range(m_start, m_stop):
                dd = d0 + m * depth_step_mm
                qi = src[0] + dd * r0
                qj = src[1] + dd * r1
                qk = src[2] + dd * r2
                if m >= m_fast_lo and m < m_fast_hi:
                    cur = _sample_interior(values, qi, qj, qk)
                    total += (prev + cur) * half_step
                else:
                    cur = _sample_clamped(values, qi, qj, qk)
                    if m == m_start:
                        # from the entry point, at the first sample's value
                        total = cur * (dd - dmin) * stretch
                    else:
                        total += 0.5 * (prev + cur) * (dd - prev_d) * stretch
                out[iv, iu, m] = total
                prev = cur
                prev_d = dd
            if m_stop <= m_start:  # no sample inside: the column clips an edge between two samples
                dd = 0.5 * (dmin + dmax)
                prev = _sample_clamped(values, src[0] + dd * r0, src[1] + dd * r1, src[2] + dd * r2)
            totals[iv, iu] = total + prev * (dmax - prev_d) * stretch


@numba.njit(cache=True, inline="always")
def _gather(
    flat: NDArray[np.float32],
    totals: NDArray[np.float32],
    n_u: int,
    n_v: int,
    n_d: int,
    fu: float,
    fv: float,
    fd: float,
) -> tuple[float, float, bool]:
    """Interpolated value of the (n_v, n_u, n_d) grid ``flat`` and of the column totals at (fv, fu, fd).

    Trilinear, over the samples that are inside the volume (finite): the weights of the others are dropped
    and the rest renormalised, first along depth within each column, then across the four columns.
    """
    iu = math.floor(fu)
    iv = math.floor(fv)
    idd = math.floor(fd)
    if iu < 0 or iv < 0 or idd < 0 or iu + 1 >= n_u or iv + 1 >= n_v or idd + 1 >= n_d:
        return 0.0, 0.0, False
    wu = fu - iu
    wv = fv - iv
    wd = fd - idd
    one = np.uint64(1)
    acc = 0.0
    tot = 0.0
    wsum = 0.0
    for dv in range(2):
        for du in range(2):
            wl = (wv if dv else 1.0 - wv) * (wu if du else 1.0 - wu)
            col = np.uint64((iv + dv) * n_u + iu + du)
            b = col * np.uint64(n_d) + np.uint64(idd)
            c0 = flat[b]
            c1 = flat[b + one]
            val = c0 * (1.0 - wd) + c1 * wd
            if math.isnan(val):  # rare: a sample outside the volume
                if not math.isnan(c0):
                    val = c0
                elif not math.isnan(c1):
                    val = c1
                else:
                    continue
            acc += wl * val
            tot += wl * totals[col]
            wsum += wl
    if wsum <= 0.0:
        return 0.0, 0.0, False
    return acc / wsum, tot / wsum, True


@numba.njit(cache=True, parallel=True, fastmath=_FASTMATH)
def bev_interpolate(
    cumulative: NDArray[np.float32],
    column_totals: NDArray[np.float32],
    bev: NDArray[np.float64],
    u0: float,
    v0: float,
    lateral_mm: float,
    d0: float,
    depth_step_mm: float,
    ref_mm: float,
    snap_plane_mm: float,
    snap_spacing_mm: float,
    shape_kji: NDArray[np.int64],
    entrance: NDArray[np.float32],
    exit_: NDArray[np.float32],
) -> None:
    """Interpolate the beam's-eye-view cumulative grid back to every voxel centre (trilinear).

    With ``snap_spacing_mm > 0`` the lateral position of each voxel is first moved onto the nearest ray of
    the EXACT ray grid (spacing ``snap_spacing_mm`` on the plane at ``snap_plane_mm``), so that the value
    refers to the same ray as :func:`radiological_depth_exact`. ``exit_`` gets the column total (bilinear
    over the same four columns) minus the entrance value. Voxels whose centre is at or behind the source
    plane, or outside the grid, get NaN (every voxel is written: the outputs may be uninitialised).

    When the slices are perpendicular to the lateral axis ``e_z`` (couch at 0, axial CT) a voxel's depth
    and lateral ``u`` depend on ``(j, i)`` only: the depth and ``u`` interpolation is then done once per
    ``(j, i)`` and BEV row, and each voxel interpolates linearly along ``v`` (same weights and result as the
    general trilinear path, about four times fewer memory reads).
    """
    n_v, n_u, n_d = cumulative.shape
    nk, nj, ni = shape_kji[0], shape_kji[1], shape_kji[2]
    flat = cumulative.reshape(-1)
    totals = column_totals.reshape(-1)
    inv_lat = 1.0 / lateral_mm
    inv_step = 1.0 / depth_step_mm
    snap = snap_spacing_mm > 0.0
    h = snap_spacing_mm * ref_mm / snap_plane_mm if snap else 0.0
    gnum = snap_plane_mm / snap_spacing_mm if snap else ref_mm
    separable = bev[0, 2] == 0.0 and bev[1, 2] == 0.0 and bev[2, 0] == 0.0 and bev[2, 1] == 0.0
    if separable:
        # The voxel's depth and lateral u depend on (j, i) only, its lateral v on k as well. So for each
        # (j, i) the depth and u interpolation (and the dropping of samples outside the volume) is done once
        # per BEV row iv, giving profiles along v; each voxel then only interpolates linearly in v:
        # acc / wsum = sum_v w_v A[iv] / sum_v w_v W[iv], the same sums as _gather in another order.
        bzs = bev[2, 2]
        bz0 = bev[2, 3]
        for j in numba.prange(nj):
            prof = np.empty((ni, n_v + 2, 3))  # per (i, iv): sum of w_u val, sum of w_u, sum of w_u total
            for i in range(ni):  # the two zero rows (an explicit loop: slice assignment is slower here)
                for c in range(3):
                    prof[i, n_v, c] = 0.0
                    prof[i, n_v + 1, c] = 0.0
            row_g = np.empty(ni)
            row_lo = np.zeros(ni, np.int64)
            row_hi = np.full(ni, -1, np.int64)
            for i in range(ni):
                by = bev[1, 0] * i + bev[1, 1] * j + bev[1, 3]
                row_g[i] = 0.0
                if by <= 0.0:
                    continue
                bx = bev[0, 0] * i + bev[0, 1] * j + bev[0, 3]
                g = gnum / by
                u = math.ceil(bx * g - 0.5) * h if snap else bx * g
                fu = (u - u0) * inv_lat
                fd = (by - d0) * inv_step
                iu = math.floor(fu)
                idd = math.floor(fd)
                if iu < 0 or idd < 0 or iu + 1 >= n_u or idd + 1 >= n_d:
                    continue
                row_g[i] = g
                # BEV rows reached by k = 0 .. nk - 1 (v is monotonic in k)
                va = math.ceil(bz0 * g - 0.5) * h if snap else bz0 * g
                vb = math.ceil((bzs * (nk - 1) + bz0) * g - 0.5) * h if snap else (bzs * (nk - 1) + bz0) * g
                lo = max(math.floor((min(va, vb) - v0) * inv_lat), 0)
                hi = min(math.floor((max(va, vb) - v0) * inv_lat) + 1, n_v - 1)
                row_lo[i] = lo
                row_hi[i] = hi
                wu = fu - iu
                wd = fd - idd
                for iv in range(lo, hi + 1):
                    sa = 0.0
                    sw = 0.0
                    st = 0.0
                    for du in range(2):
                        wl = wu if du else 1.0 - wu
                        c0 = cumulative[iv, iu + du, idd]
                        c1 = cumulative[iv, iu + du, idd + 1]
                        val = c0 * (1.0 - wd) + c1 * wd
                        if math.isnan(val):  # rare: a sample outside the volume
                            if not math.isnan(c0):
                                val = c0
                            elif not math.isnan(c1):
                                val = c1
                            else:
                                continue
                        sa += wl * val
                        sw += wl
                        st += wl * column_totals[iv, iu + du]
                    prof[i, iv, 0] = sa
                    prof[i, iv, 1] = sw
                    prof[i, iv, 2] = st
            # voxel loop, nearly branch-free: a voxel outside its profile's rows reads the two zero rows at
            # n_v, n_v + 1, and 0 / 0 gives NaN (as does a zero total weight)
            hl = h * inv_lat if snap else inv_lat
            vl = v0 * inv_lat
            for k in range(nk):
                bz = bzs * k + bz0
                for i in range(ni):
                    g = row_g[i]
                    if snap:
                        fv = math.ceil(bz * g - 0.5) * hl - vl
                    else:
                        fv = bz * g * hl - vl
                    iv = math.floor(fv)
                    wv = fv - iv
                    if iv < row_lo[i] or iv >= row_hi[i]:
                        iv = n_v
                    sw = prof[i, iv, 1] * (1.0 - wv) + prof[i, iv + 1, 1] * wv
                    sa = prof[i, iv, 0] * (1.0 - wv) + prof[i, iv + 1, 0] * wv
                    st = prof[i, iv, 2] * (1.0 - wv) + prof[i, iv + 1, 2] * wv
                    r = 1.0 / sw
                    ent = sa * r
                    entrance[k, j, i] = ent
                    exit_[k, j, i] = st * r - ent
        return
    for k in numba.prange(nk):
        for j in range(nj):
            by0 = bev[1, 1] * j + bev[1, 2] * k + bev[1, 3]
            bx0 = bev[0, 1] * j + bev[0, 2] * k + bev[0, 3]
            bz0 = bev[2, 1] * j + bev[2, 2] * k + bev[2, 3]
            for i in range(ni):
                by = bev[1, 0] * i + by0
                entrance[k, j, i] = np.nan
                exit_[k, j, i] = np.nan
                if by <= 0.0:
                    continue
                bx = bev[0, 0] * i + bx0
                bz = bev[2, 0] * i + bz0
                g = gnum / by
                if snap:
                    bx = math.ceil(bx * g - 0.5) * h
                    bz = math.ceil(bz * g - 0.5) * h
                else:
                    bx *= g
                    bz *= g
                acc, tot, ok = _gather(
                    flat,
                    totals,
                    n_u,
                    n_v,
                    n_d,
                    (bx - u0) * inv_lat,
                    (bz - v0) * inv_lat,
                    (by - d0) * inv_step,
                )
                if ok:
                    entrance[k, j, i] = acc
                    exit_[k, j, i] = tot - acc
