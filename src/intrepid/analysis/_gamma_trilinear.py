"""Compiled (numba) gamma kernel on the multi-linear (bi-/tri-linear) interpolant, by branch and bound.

The evaluated dose is interpolated multi-linearly in each cell of its grid (linear in 1D, bilinear in 2D,
trilinear in 3D), the interpolant of pymedphys and of most published converged references. On a box ``B``
(a cell or a part of one) with corner values ``v_p`` the interpolant is ``f = Σ_S b_S Π_{a∈S} σ_a`` in the
centred coordinates ``σ ∈ [−1, 1]^n``, with ``b_S = 2^−n Σ_p v_p Π_{a∈S} (2 p_a − 1)``. Its affine
part ``L = b_∅ + Σ_a b_a σ_a`` is within ``e = Σ_{|S|≥2} |b_S|`` of ``f`` everywhere on ``B``; ``e`` falls
four-fold at each halving of the box. In the scaled space ``(x / DTA, D / ΔD)`` the graph of ``f`` over ``B``
lies in the convex set ``C = {(y, z) : y ∈ B, |z − L(y)| ≤ e}``, so each of these bounds γ² over ``B`` from
below:

- the squared distance from the reference point to the box plus the squared gap between the reference dose
  and the range of the corner values (the interpolant's range on ``B``);
- the squared distance to ``C`` along any direction ``n``: ``(n·P − h_C(n))² / |n|²`` (``h_C`` the support
  function of ``C``, a sum over the box's half-widths in closed form), with ``n`` pointing from the candidate
  point below to the reference point ``P`` (tight when the candidate is the projection of ``P`` on ``C``);
- where γ² is convex on the box (its Hessian ``2(I + ∇f∇fᵀ + f H_f)`` is positive semi-definite when
  ``max|f| · ‖H_f‖ < 1``, ``max|f|`` from the corners and ``‖H_f‖`` from the mixed coefficients by
  Gershgorin's theorem), the tangent plane at a projected Newton minimiser ``y``:
  ``γ²(y) + min over the box of ∇γ²(y) · (x − y)`` (exact at the box's minimiser).

An upper bound comes from evaluating γ² at a candidate: the minimiser of the distance to the affine part,
clamped to the box. Cells are visited in order of their distance bound (as in
:mod:`intrepid.analysis._gamma_kernels`); a box is discarded when its lower bound reaches
``(γ_best − GAMMA_TOLERANCE)²`` and otherwise halved along every axis, depth first. Hence the reported γ is
attained by the interpolant (an upper bound of the true minimum) and exceeds the true minimum by at most
:data:`GAMMA_TOLERANCE`. Pass / fail is decided exactly (to rounding): while the best value found exceeds the
pass limit, boxes are kept until their bound reaches 1. Boxes are never split below 2^−:data:`MAX_DEPTH` of a
cell, where the bounds equal the interpolant to rounding.

References
----------
Low DA, Harms WB, Mutic S, Purdy JA. A technique for the quantitative evaluation of dose distributions.
Med Phys 25(5):656-661, 1998. doi:10.1118/1.598248
Wendling M et al. A fast algorithm for gamma evaluation in 3D. Med Phys 34(5):1647-1654, 2007.
doi:10.1118/1.2721657 (the search on the multi-linear interpolant, sampled there, bounded here)
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = ["GAMMA_TOLERANCE", "MAX_DEPTH", "trilinear_kernel"]

#: Largest excess (dimensionless) of a reported γ over the exact minimum on the multi-linear interpolant.
GAMMA_TOLERANCE = 1e-4
#: Deepest halving of a cell (its boxes are then 2^-MAX_DEPTH of a cell wide; bounds exact to rounding).
MAX_DEPTH = 24
#: Projected Newton steps from the candidate on a box where γ² is convex (bound 3).
NEWTON_STEPS = 3


@numba.njit(cache=True, parallel=True, fastmath=False)
def trilinear_kernel(
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
    axes: NDArray[np.int64],
    tolerance: float,
    out: NDArray[np.float64],
    task_stats: NDArray[np.float64],
    task_hist: NDArray[np.int64],
    pass_limit: float,
) -> None:  # pragma: no cover - compiled
    """Fill ``out`` (reference shape) with γ on the multi-linear interpolant, capped at ``sqrt(max_gamma2)``.

    Arguments as in :func:`intrepid.analysis._gamma_kernels.gamma_kernel`; ``offsets`` and ``bounds`` from
    :func:`~intrepid.analysis._gamma_kernels.search_offsets` (point anywhere in its cell); ``axes`` lists the
    array axes (0 = i, 1 = j, 2 = k) along which the evaluated grid has cells (at least two nodes); the
    others are single nodes. ``tolerance`` is the largest excess of a reported γ over the exact minimum.
    """
    nk, nj, ni = ref.shape
    mk, mj, mi = ev.shape
    mdim = (mi, mj, mk)
    na = axes.shape[0]
    nc = 1 << na
    n3 = 1
    for _ in range(na):
        n3 *= 3
    n_rows = nk * nj
    n_off = offsets.shape[0]
    n_tasks = task_stats.shape[0]
    n_bins = task_hist.shape[1]
    cap = np.sqrt(max_gamma2)
    pass2 = pass_limit * pass_limit
    # sign[S, p] = Π_{a∈S} (2 p_a − 1): the centred expansion coefficients b_S = Σ_p sign[S, p] v_p / 2^na
    sign = np.ones((nc, nc))
    for s_mask in range(nc):
        for p in range(nc):
            for b in range(na):
                if s_mask & (1 << b) and not p & (1 << b):
                    sign[s_mask, p] = -sign[s_mask, p]
    # lattice weights: the value at the point (l_b / 2) of the box, l_b ∈ {0, 1, 2}, from its corners
    lat_w = np.zeros((n3, nc))
    for lidx in range(n3):
        for p in range(nc):
            wgt = 1.0
            rest = lidx
            for b in range(na):
                digit = rest % 3
                rest //= 3
                pb = (p >> b) & 1
                if digit == 1:
                    wgt *= 0.5
                elif digit != 2 * pb:
                    wgt = 0.0
            lat_w[lidx, p] = wgt
    # child c's corner q is lattice point Σ_b (c_b + q_b) 3^b
    child_lat = np.zeros((nc, nc), dtype=np.int64)
    for cmask in range(nc):
        for q in range(nc):
            idx = 0
            mul = 1
            for b in range(na):
                idx += (((cmask >> b) & 1) + ((q >> b) & 1)) * mul
                mul *= 3
            child_lat[cmask, q] = idx
    n_stack = (nc - 1) * (MAX_DEPTH + 1) + 2
    convex_margin = 1.0 - 1e-6
    for task in numba.prange(n_tasks):
        n_eval = 0
        n_pass = 0
        g_sum = 0.0
        g_max = -np.inf
        u = np.empty(3)
        c0 = np.empty(3, dtype=np.int64)
        c = np.empty(3, dtype=np.int64)
        sa = np.empty(3)  # scale of the active axes
        yr = np.empty(3)  # reference point in the cell's scaled coordinates (origin at its first corner)
        corner = np.empty(nc)
        coef = np.empty(nc)
        lat = np.empty(n3)
        grad = np.empty(3)
        yq = np.empty(3)
        half_v = np.empty(3)
        centre_v = np.empty(3)
        sig = np.empty(3)
        df = np.empty(3)
        gr = np.empty(3)
        rhs = np.empty(3)
        hm = np.empty((3, 3))
        mat = np.empty((3, 3))
        free = np.empty(3, dtype=np.bool_)
        rows = np.empty(3)
        st_lo = np.empty((n_stack, 3))
        st_h = np.empty(n_stack)
        st_depth = np.empty(n_stack, dtype=np.int64)
        st_v = np.empty((n_stack, nc))
        for b in range(na):
            sa[b] = scale[axes[b]]
        for row in range(task, n_rows, n_tasks):
            k = row // nj
            j = row - k * nj
            for i in range(ni):
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
                    top = mdim[a] - 2 if mdim[a] > 1 else 0
                    f = np.floor(u[a])
                    if f < 0.0:
                        f = 0.0
                    if f > top:
                        f = float(top)
                    c0[a] = np.int64(f)
                best = max_gamma2
                for o in range(n_off):
                    # pruning threshold: within `tolerance` of the best, and below 1 until the point passes
                    gb = np.sqrt(best) - tolerance
                    thr = gb * gb if gb > 0.0 else 0.0
                    if best > pass2 and thr < 1.0:
                        thr = min(1.0, best)
                    if bounds[o] >= thr:
                        break
                    inside = True
                    for a in range(3):
                        c[a] = c0[a] + offsets[o, a]
                        if mdim[a] > 1:
                            if c[a] < 0 or c[a] > mdim[a] - 2:
                                inside = False
                        elif c[a] != 0:
                            inside = False
                    if not inside:
                        continue
                    # non-active axes: the point's offset from the single node adds a fixed distance
                    fixed = 0.0
                    for a in range(3):
                        active = False
                        for b in range(na):
                            if axes[b] == a:
                                active = True
                        if not active:
                            d = (u[a] - c[a]) * scale[a]
                            fixed += d * d
                    for b in range(na):
                        yr[b] = (u[axes[b]] - c[axes[b]]) * sa[b]
                    for p in range(nc):
                        ci = c[0]
                        cj = c[1]
                        ck = c[2]
                        for b in range(na):
                            if p & (1 << b):
                                if axes[b] == 0:
                                    ci += 1
                                elif axes[b] == 1:
                                    cj += 1
                                else:
                                    ck += 1
                        corner[p] = (ev[ck, cj, ci] - dr) * inv
                    top_s = 0
                    st_h[0] = 1.0
                    st_depth[0] = 0
                    for b in range(na):
                        st_lo[0, b] = 0.0
                    for p in range(nc):
                        st_v[0, p] = corner[p]
                    top_s = 1
                    while top_s > 0:
                        top_s -= 1
                        h = st_h[top_s]
                        depth = st_depth[top_s]
                        gb = np.sqrt(best) - tolerance
                        thr = gb * gb if gb > 0.0 else 0.0
                        if best > pass2 and thr < 1.0:
                            thr = min(1.0, best)
                        # bound 1: distance to the box plus the gap to the range of the corner values
                        vmin = st_v[top_s, 0]
                        vmax = vmin
                        for p in range(1, nc):
                            vmin = min(vmin, st_v[top_s, p])
                            vmax = max(vmax, st_v[top_s, p])
                        lb = fixed
                        if vmin > 0.0:
                            lb += vmin * vmin
                        elif vmax < 0.0:
                            lb += vmax * vmax
                        for b in range(na):
                            lo_b = st_lo[top_s, b] * sa[b]
                            hi_b = lo_b + h * sa[b]
                            if yr[b] < lo_b:
                                lb += (lo_b - yr[b]) * (lo_b - yr[b])
                            elif yr[b] > hi_b:
                                lb += (yr[b] - hi_b) * (yr[b] - hi_b)
                        if lb >= thr:
                            continue
                        # centred expansion: affine part b_∅ + Σ b_a σ_a, remainder within e
                        for s_mask in range(nc):
                            acc = 0.0
                            for p in range(nc):
                                acc += sign[s_mask, p] * st_v[top_s, p]
                            coef[s_mask] = acc / nc
                        e = 0.0
                        for s_mask in range(nc):
                            if s_mask & (s_mask - 1):  # two or more axes
                                e += abs(coef[s_mask])
                        # affine part in scaled coordinates: L(y) = l0 + grad · (y − centre)
                        l0 = coef[0]
                        g2 = 0.0
                        lr = l0
                        for b in range(na):
                            half = 0.5 * h * sa[b]
                            grad[b] = coef[1 << b] / half
                            g2 += grad[b] * grad[b]
                            lr += grad[b] * (yr[b] - (st_lo[top_s, b] * sa[b] + half))
                        # candidate: the projection of P on C (approximately: the affine part's minimiser
                        # clamped to the box, then re-minimised over the coordinates left free, twice)
                        tq = lr / (1.0 + g2)
                        for b in range(na):
                            lo_b = st_lo[top_s, b] * sa[b]
                            yq[b] = min(max(yr[b] - tq * grad[b], lo_b), lo_b + h * sa[b])
                            free[b] = yq[b] == yr[b] - tq * grad[b]
                        for _ in range(2):
                            lq = l0
                            for b in range(na):
                                lq += grad[b] * (yq[b] - (st_lo[top_s, b] + 0.5 * h) * sa[b])
                            if -e <= lq <= e:
                                break
                            target = e if lq > e else -e
                            acc = l0 - target
                            gf2 = 0.0
                            for b in range(na):
                                centre = (st_lo[top_s, b] + 0.5 * h) * sa[b]
                                if free[b]:
                                    acc += grad[b] * (yr[b] - centre)
                                    gf2 += grad[b] * grad[b]
                                else:
                                    acc += grad[b] * (yq[b] - centre)
                            tq = acc / (1.0 + gf2)
                            moved = False
                            for b in range(na):
                                if free[b]:
                                    lo_b = st_lo[top_s, b] * sa[b]
                                    step = yr[b] - tq * grad[b]
                                    yq[b] = min(max(step, lo_b), lo_b + h * sa[b])
                                    if yq[b] != step:
                                        free[b] = False
                                        moved = True
                            if not moved:
                                break
                        # its exact value on the interpolant (upper bound), multilinear in the box
                        fq = 0.0
                        for p in range(nc):
                            wgt = 1.0
                            for b in range(na):
                                t = (yq[b] / sa[b] - st_lo[top_s, b]) / h
                                wgt *= t if p & (1 << b) else 1.0 - t
                            fq += wgt * st_v[top_s, p]
                        val = fixed + fq * fq
                        for b in range(na):
                            val += (yq[b] - yr[b]) * (yq[b] - yr[b])
                        if val < best:
                            best = val
                            gb = np.sqrt(best) - tolerance
                            thr = gb * gb if gb > 0.0 else 0.0
                            if best > pass2 and thr < 1.0:
                                thr = min(1.0, best)
                        # bound 2: distance to the convex hull set C along n = P − q (q in C)
                        lq = l0
                        for b in range(na):
                            lq += grad[b] * (yq[b] - (st_lo[top_s, b] * sa[b] + 0.5 * h * sa[b]))
                        zq = 0.0
                        if lq > e:
                            zq = lq - e
                        elif lq < -e:
                            zq = lq + e
                        nz = -zq
                        norm2 = nz * nz
                        support = nz * l0 + abs(nz) * e
                        dot = 0.0
                        for b in range(na):
                            ny = yr[b] - yq[b]
                            norm2 += ny * ny
                            half = 0.5 * h * sa[b]
                            centre = st_lo[top_s, b] * sa[b] + half
                            slope = ny + nz * grad[b]
                            support += slope * centre + abs(slope) * half - nz * grad[b] * centre
                            dot += ny * yr[b]
                        if norm2 > 0.0:
                            gap = dot - support
                            if gap > 0.0:
                                lb = max(lb, fixed + gap * gap / norm2)
                        if lb >= thr:
                            continue
                        # bound 3: where γ² is convex on the box (Hessian 2(I + ∇f∇fᵀ + f H_f) ⪰ 0, shown
                        # by max|f| · ‖H_f‖ < 1, ‖H_f‖ by Gershgorin), a projected Newton minimiser y and the
                        # tangent plane there
                        fabs = max(abs(vmin), abs(vmax))
                        for b in range(na):
                            rows[b] = 0.0
                        for b1 in range(na):
                            for b2 in range(b1 + 1, na):
                                pair = (1 << b1) | (1 << b2)
                                acc = 0.0
                                for s_mask in range(nc):
                                    if s_mask & pair == pair:
                                        acc += abs(coef[s_mask])
                                acc /= 0.25 * h * h * sa[b1] * sa[b2]
                                rows[b1] += acc
                                rows[b2] += acc
                        hnorm = 0.0
                        for b in range(na):
                            hnorm = max(hnorm, rows[b])
                        if fabs * hnorm < convex_margin:
                            for b in range(na):
                                half_v[b] = 0.5 * h * sa[b]
                                centre_v[b] = st_lo[top_s, b] * sa[b] + half_v[b]
                            for it in range(NEWTON_STEPS + 1):
                                # f, ∇f, H_f at yq from the centred expansion
                                for b in range(na):
                                    sig[b] = (yq[b] - centre_v[b]) / half_v[b]
                                fv = 0.0
                                for b in range(na):
                                    df[b] = 0.0
                                    for b2 in range(na):
                                        hm[b, b2] = 0.0
                                for s_mask in range(nc):
                                    term = coef[s_mask]
                                    for b in range(na):
                                        if s_mask & (1 << b):
                                            term *= sig[b]
                                    fv += term
                                    for b in range(na):
                                        if s_mask & (1 << b):
                                            t1 = coef[s_mask] / half_v[b]
                                            for b2 in range(na):
                                                if b2 != b and s_mask & (1 << b2):
                                                    t1 *= sig[b2]
                                            df[b] += t1
                                            for b2 in range(b + 1, na):
                                                if s_mask & (1 << b2):
                                                    t2 = coef[s_mask] / (half_v[b] * half_v[b2])
                                                    for b3 in range(na):
                                                        if b3 != b and b3 != b2 and s_mask & (1 << b3):
                                                            t2 *= sig[b3]
                                                    hm[b, b2] += t2
                                                    hm[b2, b] += t2
                                for b in range(na):
                                    gr[b] = 2.0 * (yq[b] - yr[b]) + 2.0 * fv * df[b]
                                if it == NEWTON_STEPS:
                                    break
                                # Newton step on the free coordinates (not held at a face by the gradient)
                                for b in range(na):
                                    lo_b = centre_v[b] - half_v[b]
                                    hi_b = centre_v[b] + half_v[b]
                                    free[b] = not (
                                        (yq[b] <= lo_b and gr[b] > 0.0) or (yq[b] >= hi_b and gr[b] < 0.0)
                                    )
                                for b in range(na):
                                    for b2 in range(na):
                                        if free[b] and free[b2]:
                                            mat[b, b2] = 2.0 * (
                                                (1.0 if b == b2 else 0.0) + df[b] * df[b2] + fv * hm[b, b2]
                                            )
                                        else:
                                            mat[b, b2] = 1.0 if b == b2 else 0.0
                                    rhs[b] = -gr[b] if free[b] else 0.0
                                # Gaussian elimination (the matrix is positive definite: no pivoting)
                                for b in range(na):
                                    for b2 in range(b + 1, na):
                                        ratio = mat[b2, b] / mat[b, b]
                                        for b3 in range(b, na):
                                            mat[b2, b3] -= ratio * mat[b, b3]
                                        rhs[b2] -= ratio * rhs[b]
                                for b in range(na - 1, -1, -1):
                                    acc = rhs[b]
                                    for b2 in range(b + 1, na):
                                        acc -= mat[b, b2] * rhs[b2]
                                    rhs[b] = acc / mat[b, b]
                                for b in range(na):
                                    step = yq[b] + rhs[b]
                                    yq[b] = min(max(step, centre_v[b] - half_v[b]), centre_v[b] + half_v[b])
                            val = fixed + fv * fv
                            cert = 0.0
                            for b in range(na):
                                val += (yq[b] - yr[b]) * (yq[b] - yr[b])
                                lo_b = centre_v[b] - half_v[b]
                                hi_b = centre_v[b] + half_v[b]
                                cert += min(gr[b] * (lo_b - yq[b]), gr[b] * (hi_b - yq[b]))
                            if val < best:
                                best = val
                                gb = np.sqrt(best) - tolerance
                                thr = gb * gb if gb > 0.0 else 0.0
                                if best > pass2 and thr < 1.0:
                                    thr = min(1.0, best)
                            lb = max(lb, val + cert)
                        if lb >= thr or depth >= MAX_DEPTH:
                            continue
                        # halve along every axis: corner values of the children from the 3^n lattice
                        for lidx in range(n3):
                            acc = 0.0
                            for p in range(nc):
                                wl = lat_w[lidx, p]
                                if wl != 0.0:
                                    acc += wl * st_v[top_s, p]
                            lat[lidx] = acc
                        h2 = 0.5 * h
                        base = top_s
                        lo0 = st_lo[base, 0]
                        lo1 = st_lo[base, 1]
                        lo2 = st_lo[base, 2]
                        for cmask in range(nc):
                            slot = top_s + cmask
                            st_lo[slot, 0] = lo0 + (h2 if cmask & 1 else 0.0)
                            st_lo[slot, 1] = lo1 + (h2 if cmask & 2 else 0.0)
                            st_lo[slot, 2] = lo2 + (h2 if cmask & 4 else 0.0)
                            st_h[slot] = h2
                            st_depth[slot] = depth + 1
                            for q in range(nc):
                                st_v[slot, q] = lat[child_lat[cmask, q]]
                        top_s += nc
                if best > max_gamma2:
                    best = max_gamma2
                gam = np.sqrt(best)
                out[k, j, i] = gam
                n_eval += 1
                if gam <= pass_limit:
                    n_pass += 1
                g_sum += gam
                if gam > g_max:
                    g_max = gam
                bi = np.int64(gam / cap * n_bins)
                task_hist[task, min(max(bi, 0), n_bins - 1)] += 1
        task_stats[task, 0] = n_eval
        task_stats[task, 1] = n_pass
        task_stats[task, 2] = g_sum
        task_stats[task, 3] = g_max
