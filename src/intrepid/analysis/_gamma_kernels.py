"""Compiled (numba) kernel of the exact gamma index on the Freudenthal (Kuhn) simplex interpolant.

The evaluated distribution is interpolated linearly on the Kuhn simplices of its grid (each cell of the
regular grid cut into ``n!`` simplices along its main diagonal; Ju et al. 2008). In the scaled space
``(x / DTA, D / ΔD)`` the interpolant is a union of simplices and γ² is the squared distance of the
reference point to that union. The minimum over a union of closed simplices is attained in the relative
interior of exactly one face ``F`` (of any dimension) and there it equals the unconstrained minimum over
the affine hull of ``F``. Hence

    γ² = min over faces F whose affine-hull minimiser lies in F of that affine-hull minimum,

and because an affine-hull minimum is never larger than the minimum over the face itself, faces whose
minimiser lies outside can simply be skipped. Every face of the triangulation is visited once, in the cell
of its lowest vertex ("base cell"). For a face with vertex chain ``c, c + e_B1, c + e_B1 + e_B2, ...``
(``B_l`` disjoint sets of axes) the Gram matrix in the increment basis is ``diag(P) + δ δᵀ`` (diagonal
spatial part, rank-one dose part), so the minimiser follows in closed form from the Sherman–Morrison
formula in ``O(m)`` operations, with the simplex constraints ``1 ≥ τ_1 ≥ … ≥ τ_m ≥ 0``.

Cells are visited in order of a lower bound on their distance from the reference point and the search stops
as soon as that bound reaches the current best γ² (each cell is also skipped when the sum of its spatial
and dose-range bounds cannot beat the best): the result is the exact minimum, not a sampled one.

References
----------
Ju T, Simpson T, Deasy JO, Low DA. Geometric interpretation of the γ dose distribution comparison technique:
interpolation-free calculation. Med Phys 35(3):879-887, 2008. doi:10.1118/1.2836952
"""

from __future__ import annotations

import itertools

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = ["face_table", "gamma_kernel", "search_offsets"]

#: Slack (dimensionless, on the simplex coordinates τ) accepted when testing that a minimiser is in its face.
FEASIBILITY_TOLERANCE = 1e-12


def face_table(ndim: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Faces of the Kuhn triangulation based at one cell corner, as chains of axis blocks.

    Parameters
    ----------
    ndim : int
        1, 2 or 3 (axes i, j, k are bits 0, 1, 2 of a block mask).

    Returns
    -------
    blocks : ndarray of int64, shape (F, 5)
        Columns 0-2: bit masks of the blocks ``B_1 … B_m`` (unused entries 0); column 3: union of the blocks
        (the face's last vertex); column 4: bit set of the full-dimensional simplices (the first rows) that
        contain the face.
    counts : ndarray of int64, shape (F,)
        ``m`` (the face dimension) of each face. 1D: 2 faces, 2D: 6, 3D: 26.
    """
    axes = list(range(ndim))
    chains: list[tuple[int, ...]] = [()]

    def extend(chain: tuple[int, ...], used: int) -> None:
        free = [a for a in axes if not used & (1 << a)]
        for r in range(1, len(free) + 1):
            for subset in itertools.combinations(free, r):
                mask = sum(1 << a for a in subset)
                new = (*chain, mask)
                chains.append(new)
                extend(new, used | mask)

    extend((), 0)
    chains.sort(key=len, reverse=True)  # simplices of full dimension first: they bound their faces
    n_full = sum(1 for chain in chains if len(chain) == ndim)
    blocks = np.zeros((len(chains), 5), dtype=np.int64)
    counts = np.zeros(len(chains), dtype=np.int64)
    vertex_sets = [_vertex_masks(chain) for chain in chains]
    for f, chain in enumerate(chains):
        counts[f] = len(chain)
        blocks[f, : len(chain)] = chain
        blocks[f, 3] = 0 if not chain else int(np.bitwise_or.reduce(np.asarray(chain)))
        # bit t set when full simplex t contains this face: its affine minimum bounds the face's from below
        blocks[f, 4] = sum(1 << t for t in range(n_full) if vertex_sets[f] <= vertex_sets[t])
    return blocks, counts


def _vertex_masks(chain: tuple[int, ...]) -> set[int]:
    masks = {0}
    cum = 0
    for blk in chain:
        cum |= blk
        masks.add(cum)
    return masks


def search_offsets(
    scale: NDArray[np.float64], max_gamma: float, ndim: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Cell offsets around the cell holding the reference point, sorted by a lower bound of γ².

    Parameters
    ----------
    scale : ndarray, shape (3,)
        Evaluated spacing divided by DTA along i, j, k (dimensionless).
    max_gamma : float
        Search limit: offsets whose bound reaches ``max_gamma**2`` are dropped.
    ndim : int
        Number of axes searched (the others get offset 0).

    Returns
    -------
    offsets : ndarray of int64, shape (O, 3)
        ``(di, dj, dk)`` cell offsets.
    bounds : ndarray of float64, shape (O,)
        ``Σ_a (max(0, |d_a| - 1) · scale_a)²``, a lower bound of the squared scaled distance between any
        point of the central cell and any point of the offset cell.
    """
    reach = [int(np.ceil(max_gamma / scale[a])) + 1 if a < ndim else 0 for a in range(3)]
    ranges = [np.arange(-r, r + 1) for r in reach]
    di, dj, dk = np.meshgrid(ranges[0], ranges[1], ranges[2], indexing="ij")
    offsets = np.stack([di.ravel(), dj.ravel(), dk.ravel()], axis=1).astype(np.int64)
    gaps = np.maximum(np.abs(offsets) - 1, 0) * scale[None, :]
    bounds = np.sum(gaps**2, axis=1)
    # Ties broken by the full distance, so that the cells around the point come first.
    order = np.lexsort((np.sum((np.abs(offsets) * scale[None, :]) ** 2, axis=1), bounds))
    keep = bounds[order] < max_gamma**2
    return offsets[order][keep], bounds[order][keep]


@numba.njit(cache=True, inline="always")
def _interpolate(
    ev: NDArray[np.float64],
    pos: NDArray[np.float64],
    scale: NDArray[np.float64],
    dr: float,
    inv: float,
    grad: NDArray[np.float64],
) -> float:  # pragma: no cover - compiled
    """(D(pos) − dr) / ΔD on the Kuhn interpolant at evaluated index ``pos`` (i, j, k); NaN outside the grid.

    ``grad`` receives the gradient of the simplex holding ``pos`` in the scaled space (per unit of x / DTA).
    Axes of length 1 contribute nothing (their position must be 0).
    """
    mk, mj, mi = ev.shape
    ci, wi = _cell_of(pos[0], mi)
    cj, wj = _cell_of(pos[1], mj)
    ck, wk = _cell_of(pos[2], mk)
    if not (wi == wi and wj == wj and wk == wk):
        return np.nan
    # axes by decreasing fractional coordinate: the Kuhn simplex w_p0 >= w_p1 >= w_p2
    p0, p1, p2 = 0, 1, 2
    w0, w1, w2 = wi, wj, wk
    if w1 > w0:
        p0, p1, w0, w1 = p1, p0, w1, w0
    if w2 > w1:
        p1, p2, w1, w2 = p2, p1, w2, w1
    if w1 > w0:
        p0, p1, w0, w1 = p1, p0, w1, w0
    value = ev[ck, cj, ci]
    v_prev = value
    for level in range(3):
        a = p0 if level == 0 else (p1 if level == 1 else p2)
        wa = w0 if level == 0 else (w1 if level == 1 else w2)
        if a == 0:
            ci = min(ci + 1, mi - 1)
        elif a == 1:
            cj = min(cj + 1, mj - 1)
        else:
            ck = min(ck + 1, mk - 1)
        v = ev[ck, cj, ci]
        step = v - v_prev
        value += step * wa
        grad[a] = step * inv / scale[a]
        v_prev = v
    return (value - dr) * inv


@numba.njit(cache=True, inline="always")
def _cell_of(x: float, n: int) -> tuple[int, float]:  # pragma: no cover - compiled
    """Cell index (clamped to the grid's cells) and fractional coordinate of index position x; NaN outside."""
    top = max(n - 2, 0)
    f = np.floor(x)
    if f > top:
        f = float(top)
    if f < 0.0:
        f = 0.0
    w = x - f
    if not (w >= -1e-12 and w <= (1.0 if n > 1 else 0.0) + 1e-12):
        return 0, np.nan
    return int(f), w


@numba.njit(cache=True, parallel=True, fastmath=False)
def gamma_kernel(
    ref: NDArray[np.float64],
    ev: NDArray[np.float64],
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    scale: NDArray[np.float64],
    global_dd: float,
    local_fraction: float,
    threshold: float,
    max_gamma2: float,
    offsets: NDArray[np.int64],
    bounds: NDArray[np.float64],
    blocks: NDArray[np.int64],
    counts: NDArray[np.int64],
    out: NDArray[np.float64],
    n_threads: int,
    descent_steps: int,
    ndim: int,
) -> None:  # pragma: no cover - compiled
    """Fill ``out`` (reference shape) with γ² capped at ``max_gamma2``; NaN below ``threshold``.

    ``ref`` and ``out`` are (nk, nj, ni); ``ev`` is (mk, mj, mi). The evaluated continuous index of reference
    node ``(i, j, k)`` along axis a is ``alpha[a] + beta[a] * index_a``. ``global_dd > 0`` is the dose
    difference criterion (Gy) of global normalisation; otherwise ΔD = ``local_fraction`` × reference dose.
    ``descent_steps`` steps of projected descent give the first upper bound (0: start from the cap).
    ``ndim`` (1, 2 or 3) is the number of axes that vary; the others have length 1.
    """
    nk, nj, ni = ref.shape
    mk, mj, mi = ev.shape
    mdim = (mi, mj, mk)
    n_points = nk * nj * ni
    n_faces = blocks.shape[0]
    n_off = offsets.shape[0]
    chunk = 256
    n_chunks = (n_points + chunk - 1) // chunk
    n_tasks = min(n_chunks, 64 * max(n_threads, 1))
    inv_s2 = np.zeros(8)
    for mask in range(1, 8):
        acc = 0.0
        for a in range(3):
            if mask & (1 << a):
                acc += scale[a] * scale[a]
        inv_s2[mask] = 1.0 / acc
    n_full = 0
    for fidx in range(n_faces):
        if counts[fidx] == counts[0]:
            n_full += 1
    n_corners = 1 << ndim
    for task in numba.prange(n_tasks):
        corner = np.empty(8)
        valid = np.empty(8, dtype=np.bool_)
        sw = np.empty(8)
        box_u = np.empty(8)
        d_in = np.zeros(3)
        d_out = np.zeros(3)
        u = np.empty(3)
        w = np.zeros(3)
        yv = np.empty(3)
        zv = np.empty(3)
        bv = np.empty(3)
        pos = np.empty(3)
        grad = np.zeros(3)
        c = np.empty(3, dtype=np.int64)
        c0 = np.empty(3, dtype=np.int64)
        vfull = np.empty(max(n_full, 1))
        for ch in range(task, n_chunks, n_tasks):  # interleaved chunks balance the load between threads
            stop = min((ch + 1) * chunk, n_points)
            for flat in range(ch * chunk, stop):
                i = flat % ni
                j = (flat // ni) % nj
                k = flat // (ni * nj)
                dr = ref[k, j, i]
                if not (dr >= threshold):
                    out[k, j, i] = np.nan
                    continue
                dd = global_dd if global_dd > 0.0 else local_fraction * dr
                if not (dd > 0.0):
                    out[k, j, i] = np.nan
                    continue
                inv = 1.0 / dd
                u[0] = alpha[0] + beta[0] * i
                u[1] = alpha[1] + beta[1] * j
                u[2] = alpha[2] + beta[2] * k
                for a in range(3):
                    f = np.floor(u[a])
                    if f < 0.0:
                        f = 0.0
                    if f > mdim[a] - 1:
                        f = mdim[a] - 1.0
                    c0[a] = np.int64(f)
                best = max_gamma2
                # Upper bound: γ² at the point itself, then at the minimiser of the affine extension of the
                # simplex reached (projected descent). Every value is attained by the interpolant, so it is
                # a valid bound; the exhaustive search below makes the result exact.
                for a in range(3):
                    pos[a] = u[a]
                for _step in range(descent_steps):
                    gv = _interpolate(ev, pos, scale, dr, inv, grad)
                    if not (gv == gv):
                        break
                    d2 = 0.0
                    ext = gv
                    s_g = 0.0
                    for a in range(3):
                        da = (u[a] - pos[a]) * scale[a]
                        d2 += da * da
                        ext += grad[a] * da
                        s_g += grad[a] * grad[a]
                    phi = d2 + gv * gv
                    if phi < best:
                        best = phi
                    t = ext / (1.0 + s_g)
                    for a in range(3):
                        pos[a] = u[a] - t * grad[a] / scale[a]
                for o in range(n_off):
                    if bounds[o] >= best:
                        break
                    inside = True
                    for a in range(3):
                        c[a] = c0[a] + offsets[o, a]
                        if c[a] < 0 or c[a] > mdim[a] - 1:
                            inside = False
                    if not inside:
                        continue
                    # spatial distance from the point to the cell box (scaled by DTA), per axis
                    box = 0.0
                    for a in range(ndim):
                        w[a] = u[a] - c[a]
                        top = 1.0 if c[a] < mdim[a] - 1 else 0.0
                        g = 0.0
                        if w[a] < 0.0:
                            g = -w[a]
                        elif w[a] > top:
                            g = w[a] - top
                        g *= scale[a]
                        d_in[a] = g * g
                        d_out[a] = w[a] * scale[a] * w[a] * scale[a]
                        box += g * g
                    if box >= best:
                        continue
                    dmin = np.inf
                    dmax = -np.inf
                    for mask in range(n_corners):
                        ci = c[0] + (mask & 1)
                        cj = c[1] + ((mask >> 1) & 1)
                        ck = c[2] + ((mask >> 2) & 1)
                        ok = ci < mi and cj < mj and ck < mk
                        valid[mask] = ok
                        if ok:
                            v = ev[ck, cj, ci]
                            corner[mask] = v
                            if v < dmin:
                                dmin = v
                            if v > dmax:
                                dmax = v
                    gap = 0.0
                    if dr < dmin:
                        gap = (dmin - dr) * inv
                    elif dr > dmax:
                        gap = (dr - dmax) * inv
                    if box + gap * gap >= best:
                        continue
                    # box distance of the faces whose last vertex is corner `mask`: axes in mask span [0, 1],
                    # the others sit at 0
                    for mask in range(n_corners):
                        acc = 0.0
                        for a in range(ndim):
                            acc += d_in[a] if mask & (1 << a) else d_out[a]
                        box_u[mask] = acc
                    wz = (dr - corner[0]) * inv
                    ww = wz * wz
                    for a in range(ndim):
                        w[a] *= scale[a]
                        ww += w[a] * w[a]
                    for mask in range(n_corners):
                        acc = 0.0
                        for a in range(ndim):
                            if mask & (1 << a):
                                acc += scale[a] * w[a]
                        sw[mask] = acc
                    for fidx in range(n_faces):
                        m = counts[fidx]
                        if m == 0:
                            if ww < best:
                                best = ww
                            continue
                        last = blocks[fidx, 3]
                        if not valid[last]:
                            if fidx < n_full:
                                vfull[fidx] = -np.inf
                            continue
                        tets = blocks[fidx, 4]
                        if fidx >= n_full:
                            bound = -np.inf
                            for t in range(n_full):
                                if (tets >> t) & 1 and vfull[t] > bound:
                                    bound = vfull[t]
                            if bound >= best:
                                continue
                        big_a = 0.0
                        big_b = 0.0
                        prev_mask = 0
                        lo = corner[0]
                        hi = corner[0]
                        for l in range(m):
                            blk = blocks[fidx, l]
                            cur_mask = prev_mask | blk
                            vc = corner[cur_mask]
                            lo = min(lo, vc)
                            hi = max(hi, vc)
                            delta = (vc - corner[prev_mask]) * inv
                            b = sw[blk] + delta * wz
                            p_inv = inv_s2[blk]
                            yv[l] = b * p_inv
                            zv[l] = delta * p_inv
                            bv[l] = b
                            big_a += delta * yv[l]
                            big_b += delta * zv[l]
                            prev_mask = cur_mask
                        # the face's bounding box and dose range bound its minimum from below
                        fgap = 0.0
                        if dr < lo:
                            fgap = (lo - dr) * inv
                        elif dr > hi:
                            fgap = (dr - hi) * inv
                        fbound = box_u[last] + fgap * fgap
                        if fbound >= best:
                            if fidx < n_full:
                                vfull[fidx] = fbound
                            continue
                        kk = big_a / (1.0 + big_b)
                        val = ww
                        prev_tau = 1.0 + FEASIBILITY_TOLERANCE
                        feasible = True
                        for l in range(m):
                            tau = yv[l] - zv[l] * kk
                            if tau > prev_tau:
                                feasible = False
                            prev_tau = tau + FEASIBILITY_TOLERANCE
                            val -= tau * bv[l]
                        if fidx < n_full:
                            vfull[fidx] = max(val, fbound)
                        if not feasible or prev_tau < 0.0:
                            continue
                        if val < 0.0:
                            val = 0.0
                        if val < best:
                            best = val
                out[k, j, i] = best
