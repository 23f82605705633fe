"""Compiled (numba) kernels of the collapsed-cone engine: TERMA along fan lines, the cone sweeps, sampling.

All three work on the *divergent* (fan) grid of one beam, indexed ``[k, j, i]``: k along the central axis
(distance
z from the source), j and i the isocentre-plane coordinates b (IEC Y_b) and a (IEC X_b) of the ray through the
voxel, so the voxel centre is at X_b = a z / SAD, Y_b = b z / SAD. Fan lines are straight along k.

Cone sweeps (the collapsed-cone transport of Ahnesjö 1989, Med Phys 16:577, doi:10.1118/1.596360): for each
direction the grid is swept plane by plane along the direction's dominant index axis; transport lines start
at every voxel of an (extended) entry plane and move by the same fractional offset per plane, so rounding puts
exactly one line through every voxel per direction. Along a line, with voxel radiological step Δp = η Δr and
TERMA T, each exponential kernel term (A, a) carries

    R_out = R_in e^{−aΔp} + T A/a (1 − e^{−aΔp}),
    D_voxel += [R_in (1 − e^{−aΔp})/a + T A/a (Δp − (1 − e^{−aΔp})/a)] / Δp,

the exact line integral of the kernel over a voxel of constant T and η (density scaling: distances are
radiological). Because the directions are fixed in the fan grid, whose k axis follows the diverging rays, the
kernel is tilted with the beam divergence automatically (as in the BEV-grid engines of Jacques et al. 2011,
Med Phys 38:1248? [recall]); the lateral index spacing scales with z/SAD, which skews the cone angles by at
most ±(z/SAD − 1) (±15 % in tan θ for a 30 cm deep patient) — a documented approximation.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange
from numpy.typing import NDArray

__all__ = ["ccc_dose", "dominant_axis", "fan_terma", "index_directions", "sample_density", "sample_fan"]


@numba.njit(cache=True, parallel=True, fastmath=True)
def fan_terma(
    eta: NDArray[np.float32],
    fluence: NDArray[np.float64],
    spectrum: NDArray[np.float64],
    mu_cm2_g: NDArray[np.float64],
    z_mm: NDArray[np.float64],
    ray_step_cm: NDArray[np.float64],
    sad_mm: float,
) -> NDArray[np.float32]:
    """TERMA (relative energy per mass) on the fan grid.

    T = ψ(a, b) (SAD/z)² Σ_E w_E(a, b) (μ/ρ)_E exp(−(μ/ρ)_E d), d the radiological depth (g/cm²) at the voxel
    centre along its fan line from the source (midpoint rule), ψ the energy fluence at the isocentre plane and
    w_E the (off-axis) energy-fluence spectrum.
    """
    nk, nj, ni = eta.shape
    ne = mu_cm2_g.size
    out = np.zeros((nk, nj, ni), dtype=np.float32)
    for j in prange(nj):
        for i in range(ni):
            psi = fluence[j, i]
            if psi <= 0.0:
                continue
            d = 0.0
            for k in range(nk):
                half = 0.5 * eta[k, j, i] * ray_step_cm[j, i]
                d += half
                s = 0.0
                for e in range(ne):
                    s += spectrum[j, i, e] * mu_cm2_g[e] * math.exp(-mu_cm2_g[e] * d)
                d += half
                r = sad_mm / z_mm[k]
                out[k, j, i] = psi * r * r * s
    return out


@numba.njit(cache=True, fastmath=True)
def _sweep(
    eta: NDArray[np.float32],
    terma: NDArray[np.float32],
    dose: NDArray[np.float32],
    fu: float,
    fv: float,
    forward: bool,
    depth_axis: int,
    step_cm: NDArray[np.float64],
    amp_a: float,
    att_a: float,
    amp_b: float,
    att_b: float,
) -> None:
    n0, n1, n2 = eta.shape
    pad = n0
    ra = np.zeros((n1 + 2 * pad, n2 + 2 * pad), dtype=np.float32)
    rb = np.zeros((n1 + 2 * pad, n2 + 2 * pad), dtype=np.float32)
    ka = np.float32(amp_a / att_a)
    kb = np.float32(amp_b / att_b)
    aa = np.float32(att_a)
    ab = np.float32(att_b)
    ia = np.float32(1.0 / att_a)
    ib = np.float32(1.0 / att_b)
    for s in range(n0):
        p = s if forward else n0 - 1 - s
        o1 = int(math.floor(s * fu + 0.5))  # noqa: RUF046 (numba)
        o2 = int(math.floor(s * fv + 0.5))  # noqa: RUF046 (numba)
        for u in range(n1):
            l1 = u - o1 + pad
            stp = np.float32(step_cm[p] if depth_axis == 0 else step_cm[u])
            row_a = ra[l1]
            row_b = rb[l1]
            for v in range(n2):
                l2 = v - o2 + pad
                # Δp floored at 1e-5 g/cm² (vacuum): the formulas below then tend to "deposit R_in, carry
                # R_in".
                dp = max(eta[p, u, v] * stp, np.float32(1e-5))
                t = terma[p, u, v]
                ra_in = row_a[l2]
                rb_in = row_b[l2]
                ea = math.exp(-aa * dp)
                eb = math.exp(-ab * dp)
                ga = (np.float32(1.0) - ea) * ia
                gb = (np.float32(1.0) - eb) * ib
                # (1 - e^{-a dp}) / a <= dp exactly; in float32 it can exceed dp by an ulp where a dp is tiny
                # (air), which would deposit a negative dose: clamp the local terms at 0
                la = max(dp - ga, np.float32(0.0))
                lb = max(dp - gb, np.float32(0.0))
                dose[p, u, v] += (ra_in * ga + t * ka * la + rb_in * gb + t * kb * lb) / dp
                row_a[l2] = ra_in * ea + t * ka * (np.float32(1.0) - ea)
                row_b[l2] = rb_in * eb + t * kb * (np.float32(1.0) - eb)


@numba.njit(cache=True, parallel=True)
def _all_directions(
    eta: NDArray[np.float32],
    terma: NDArray[np.float32],
    dirs_idx: NDArray[np.float64],
    step_cm: NDArray[np.float64],
    amp_a: NDArray[np.float64],
    att_a: NDArray[np.float64],
    amp_b: NDArray[np.float64],
    att_b: NDArray[np.float64],
    n_chunks: int,
) -> NDArray[np.float32]:
    nk, nj, ni = eta.shape
    nd = dirs_idx.shape[0]
    buf = np.zeros((n_chunks, nk, nj, ni), dtype=np.float32)
    for c in prange(n_chunks):
        for m in range(c, nd, n_chunks):
            d = dirs_idx[m]
            ax = 0
            if abs(d[1]) > abs(d[ax]):
                ax = 1
            if abs(d[2]) > abs(d[ax]):
                ax = 2
            fwd = d[ax] > 0
            big = abs(d[ax])
            if ax == 0:
                e3, t3, d3 = eta, terma, buf[c]
                fu, fv, dax = d[1] / big, d[2] / big, 0
            elif ax == 1:
                e3, t3, d3 = eta.transpose(1, 0, 2), terma.transpose(1, 0, 2), buf[c].transpose(1, 0, 2)
                fu, fv, dax = d[0] / big, d[2] / big, 1
            else:
                e3, t3, d3 = eta.transpose(2, 0, 1), terma.transpose(2, 0, 1), buf[c].transpose(2, 0, 1)
                fu, fv, dax = d[0] / big, d[1] / big, 1
            _sweep(e3, t3, d3, fu, fv, fwd, dax, step_cm[m], amp_a[m], att_a[m], amp_b[m], att_b[m])
    out = np.zeros((nk, nj, ni), dtype=np.float32)
    for c in range(n_chunks):
        out += buf[c]
    return out


def index_directions(
    dirs_local: NDArray[np.float64], z_mm: NDArray[np.float64], h_lat_mm: float, h_z_mm: float, sad_mm: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Cone directions in fan-grid index space and the physical step length per plane.

    Returns
    -------
    d_idx : ndarray (n, 3)
        Direction in index units along (k, j, i) with the isocentre-plane lateral spacing, scaled so that the
        largest component is ±1 (one plane per step along the dominant axis).
    step_cm : ndarray (n, nk)
        Physical length (cm) of one step at each depth plane k (lateral steps scale with z / SAD).
    """
    d_idx = np.stack(
        [dirs_local[:, 2] / h_z_mm, dirs_local[:, 1] / h_lat_mm, dirs_local[:, 0] / h_lat_mm], axis=1
    )
    d_idx /= np.max(np.abs(d_idx), axis=1, keepdims=True)
    scale = np.asarray(z_mm, dtype=float)[None, :] / sad_mm
    lateral = (d_idx[:, 2:3] * h_lat_mm * scale) ** 2 + (d_idx[:, 1:2] * h_lat_mm * scale) ** 2
    step = np.sqrt(lateral + (d_idx[:, 0:1] * h_z_mm) ** 2) / 10.0
    return np.ascontiguousarray(d_idx), np.ascontiguousarray(step)


def dominant_axis(d: NDArray[np.float64]) -> int:
    """The sweep axis of an index-space direction (ties resolved as in the compiled sweep)."""
    ax = 0
    if abs(d[1]) > abs(d[ax]):
        ax = 1
    if abs(d[2]) > abs(d[ax]):
        ax = 2
    return ax


def ccc_dose(
    eta: NDArray[np.float32],
    terma: NDArray[np.float32],
    dirs_local: NDArray[np.float64],
    amp_a: NDArray[np.float64],
    att_a: NDArray[np.float64],
    amp_b: NDArray[np.float64],
    att_b: NDArray[np.float64],
    z_mm: NDArray[np.float64],
    h_lat_mm: float,
    h_z_mm: float,
    sad_mm: float,
) -> NDArray[np.float32]:
    """Collapsed-cone superposition of ``terma`` on the fan grid (energy per mass, same units as TERMA).

    Parameters
    ----------
    eta : ndarray (nk, nj, ni)
        Relative electron density on the fan grid.
    terma : ndarray (nk, nj, ni)
    dirs_local : ndarray (n, 3)
        Cone directions (x, y, z) in the local beam frame (z along the ray, away from the source).
    amp_a, att_a, amp_b, att_b : ndarray (n,)
        Kernel terms per direction (cm²/g units, radiological distances in g/cm²).
    z_mm : ndarray (nk,)
        Distance from the source of each k plane.
    h_lat_mm, h_z_mm : float
        Lateral spacing at the isocentre plane and the spacing along k.
    sad_mm : float
    """
    d_idx, step = index_directions(dirs_local, z_mm, h_lat_mm, h_z_mm, sad_mm)
    n_chunks = max(1, min(int(numba.get_num_threads()), dirs_local.shape[0]))
    return _all_directions(
        np.ascontiguousarray(eta, dtype=np.float32), np.ascontiguousarray(terma, dtype=np.float32),
        d_idx, step, amp_a, att_a, amp_b, att_b, n_chunks,
    )  # fmt: skip


@numba.njit(cache=True, parallel=True, fastmath=True)
def sample_fan(
    fan: NDArray[np.float32],
    index_to_bld: NDArray[np.float64],
    shape: tuple[int, int, int],
    sad_mm: float,
    z0_mm: float,
    h_z_mm: float,
    a0_mm: float,
    b0_mm: float,
    h_lat_mm: float,
) -> NDArray[np.float32]:
    """Trilinear interpolation of the fan-grid ``fan`` at the voxel centres of an output grid; 0 outside.

    ``index_to_bld`` (3 × 4) maps an output index (i, j, k) (column, row, slice) to IEC beam-limiting-device
    coordinates (mm, origin at the isocentre, Z_b towards the source); ``shape`` is (slices, rows, columns).
    """
    nz, ny, nx = shape
    nk, nj, ni = fan.shape
    out = np.zeros((nz, ny, nx), dtype=np.float32)
    m = index_to_bld
    for kz in prange(nz):
        for jy in range(ny):
            for ix in range(nx):
                xb = m[0, 0] * ix + m[0, 1] * jy + m[0, 2] * kz + m[0, 3]
                yb = m[1, 0] * ix + m[1, 1] * jy + m[1, 2] * kz + m[1, 3]
                zb = m[2, 0] * ix + m[2, 1] * jy + m[2, 2] * kz + m[2, 3]
                z = sad_mm - zb
                if z <= 1.0:
                    continue
                k = (z - z0_mm) / h_z_mm
                j = (yb * sad_mm / z - b0_mm) / h_lat_mm
                i = (xb * sad_mm / z - a0_mm) / h_lat_mm
                if not (k >= 0 and j >= 0 and i >= 0 and k <= nk - 1 and j <= nj - 1 and i <= ni - 1):
                    continue
                k0 = min(int(k), nk - 2)
                j0 = min(int(j), nj - 2)
                i0 = min(int(i), ni - 2)
                tk, tj, ti = k - k0, j - j0, i - i0
                c00 = fan[k0, j0, i0] * (1 - ti) + fan[k0, j0, i0 + 1] * ti
                c01 = fan[k0, j0 + 1, i0] * (1 - ti) + fan[k0, j0 + 1, i0 + 1] * ti
                c10 = fan[k0 + 1, j0, i0] * (1 - ti) + fan[k0 + 1, j0, i0 + 1] * ti
                c11 = fan[k0 + 1, j0 + 1, i0] * (1 - ti) + fan[k0 + 1, j0 + 1, i0 + 1] * ti
                out[kz, jy, ix] = (c00 * (1 - tj) + c01 * tj) * (1 - tk) + (c10 * (1 - tj) + c11 * tj) * tk
    return out


@numba.njit(cache=True, parallel=True, fastmath=True)
def sample_density(
    red: NDArray[np.float32],
    bld_to_index: NDArray[np.float64],
    a_mm: NDArray[np.float64],
    b_mm: NDArray[np.float64],
    z_mm: NDArray[np.float64],
    sad_mm: float,
) -> NDArray[np.float32]:
    """Relative electron density of the CT (trilinear) at the fan-grid voxel centres; 0 outside the CT.

    ``bld_to_index`` (3 × 4) maps beam-limiting-device coordinates (mm) to CT index (i, j, k). Inside half a
    voxel of the CT edge the edge voxel's value is used (the CT voxels fill their whole extent).
    """
    nz, ny, nx = red.shape
    nk, nj, ni = z_mm.size, b_mm.size, a_mm.size
    out = np.zeros((nk, nj, ni), dtype=np.float32)
    m = bld_to_index
    for k in prange(nk):
        z = z_mm[k]
        zb = sad_mm - z
        for j in range(nj):
            yb = b_mm[j] * z / sad_mm
            for i in range(ni):
                xb = a_mm[i] * z / sad_mm
                fi = m[0, 0] * xb + m[0, 1] * yb + m[0, 2] * zb + m[0, 3]
                fj = m[1, 0] * xb + m[1, 1] * yb + m[1, 2] * zb + m[1, 3]
                fk = m[2, 0] * xb + m[2, 1] * yb + m[2, 2] * zb + m[2, 3]
                if fi < -0.5 or fj < -0.5 or fk < -0.5 or fi > nx - 0.5 or fj > ny - 0.5 or fk > nz - 0.5:
                    continue
                fi = min(max(fi, 0.0), nx - 1.0)
                fj = min(max(fj, 0.0), ny - 1.0)
                fk = min(max(fk, 0.0), nz - 1.0)
                i0 = min(int(fi), max(nx - 2, 0))
                j0 = min(int(fj), max(ny - 2, 0))
                k0 = min(int(fk), max(nz - 2, 0))
                i1, j1, k1 = min(i0 + 1, nx - 1), min(j0 + 1, ny - 1), min(k0 + 1, nz - 1)
                ti, tj, tk = fi - i0, fj - j0, fk - k0
                c00 = red[k0, j0, i0] * (1 - ti) + red[k0, j0, i1] * ti
                c01 = red[k0, j1, i0] * (1 - ti) + red[k0, j1, i1] * ti
                c10 = red[k1, j0, i0] * (1 - ti) + red[k1, j0, i1] * ti
                c11 = red[k1, j1, i0] * (1 - ti) + red[k1, j1, i1] * ti
                out[k, j, i] = (c00 * (1 - tj) + c01 * tj) * (1 - tk) + (c10 * (1 - tj) + c11 * tj) * tk
    return out
