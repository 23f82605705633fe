"""CUDA (numba-cuda) kernel of the exact gamma index: the numba CPU search, one GPU thread per point.

Same interpolant (linear on the Kuhn simplices of the evaluated grid, Ju et al. 2008), same face formulas,
same search limit and the same float64 arithmetic as :mod:`intrepid.analysis._gamma_kernels`:

- where every reference node is an evaluated node, the *star* of the node (every face that contains it) is
  minimised first in closed form (:class:`~intrepid.analysis._gamma_kernels.StarTable`); when the best γ²
  found there is at most ``ρ²`` it is exact and the point is done;
- otherwise the cells around the point are searched in order of their distance bound (the table of
  :func:`~intrepid.analysis._gamma_kernels.search_offsets`), starting from the best value already found and
  stopped when the bound reaches it; full simplices are bounded by their hull minimum, faces by their box and
  dose range, and the winning value is recomputed from its residuals, exactly as on the CPU.

The CPU kernel's *ring* tables (a faster path between the star and the cell search) are not used here: they
only prune, so leaving them out changes the work, not the minimum. Values agree with the CPU kernel to
rounding (≤ 1e-12 relative in tests), and pass / fail decisions are the same (a point passes when
γ ≤ 1 + :data:`~intrepid.analysis._gamma.PASS_TOLERANCE`).

Batches of 2D images with one geometry run in one launch: image ``b`` is slice ``k = b`` of a stacked
reference and evaluated array (the slice index maps to itself, no search across slices), each with its own
ΔD and cut-off.

This module imports ``numba.cuda``; :mod:`intrepid.analysis._gamma` imports it only when the ``"cuda"``
backend is chosen, so ``import intrepid`` never imports it. On a machine
without an NVIDIA GPU the functions raise a one-line :class:`~intrepid.errors.ParameterError`; with
``NUMBA_ENABLE_CUDASIM=1`` (set before numba is imported) the same kernel runs on numba's CUDA simulator,
which is how the CPU tests check it (slowly: tiny images only).

References
----------
Ju T, Simpson T, Deasy JO, Low DA. Geometric interpretation of the γ dose distribution comparison technique:
interpolation-free calculation. Med Phys 35(3):879-887, 2008. doi:10.1118/1.2836952
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import Any

import numpy as np
from numba import cuda, float64, int64
from numpy.typing import NDArray

from intrepid.errors import ParameterError

__all__ = ["cuda_available", "gamma_cuda"]

_log = logging.getLogger(__name__)

#: Threads per block (a multiple of the 32-thread warp).
_THREADS_PER_BLOCK = 128
#: Upper bounds of the star table sizes in 3D (15 nodes, 38 edges, 74 faces) for the threads' local arrays.
_MAX_STAR_NODES = 16
_MAX_STAR_EDGES = 40
#: Edge arrays hold one more entry: the zero padding step of faces with fewer than three steps.
_STAR_EDGE_SLOTS = 41
#: Slack on the simplex coordinates τ, the same as the CPU kernel's (FEASIBILITY_TOLERANCE there).
_FEASIBILITY_TOLERANCE = 1e-12


def cuda_available() -> bool:
    """Whether numba can launch CUDA kernels here (a GPU and driver, or the simulator); never raises."""
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken CUDA installation counts as none
        return False


def _require_cuda() -> None:
    if not cuda_available():
        raise ParameterError(
            "gamma backend 'cuda' needs an NVIDIA GPU with its driver (numba.cuda finds none here); "
            "use backend 'numba' (CPU)"
        )


def gamma_cuda(
    ref: NDArray[np.float64],
    ev: NDArray[np.float64],
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    scale: NDArray[np.float64],
    global_dd: NDArray[np.float64],
    local_fraction: float,
    threshold: NDArray[np.float64],
    max_gamma2: float,
    offsets: NDArray[np.int64],
    bounds: NDArray[np.float64],
    ndim: int,
    on_nodes: bool,
) -> tuple[NDArray[np.float64], float]:
    """γ capped at ``sqrt(max_gamma2)`` on the reference shape (NaN below the cut-off), and the seconds taken.

    Parameters
    ----------
    ref, ev : ndarray, shape (nk, nj, ni) and (mk, mj, mi)
        Reference and evaluated doses (Gy). A batch of 2D images is stacked along k (``beta[2] = 1``).
    alpha, beta : ndarray, shape (3,)
        Evaluated continuous index of reference node ``(i, j, k)`` along axis a:
        ``alpha[a] + beta[a] * index``.
    scale : ndarray, shape (3,)
        Evaluated spacing / DTA along i, j, k (dimensionless).
    global_dd, threshold : ndarray, shape (nk,)
        Per reference slice: the global ΔD (Gy; 0 for local normalisation) and the cut-off dose (Gy).
    local_fraction : float
        dd % / 100 for local normalisation.
    max_gamma2 : float
        Square of the search limit.
    offsets, bounds : ndarray
        The cell search table of :func:`~intrepid.analysis._gamma_kernels.search_offsets` (built with
        ``on_nodes``).
    ndim : int
        Axes searched (1, 2 or 3).
    on_nodes : bool
        Every reference node is an evaluated node (integer ``alpha``, ``beta`` 1 along the searched axes).

    Returns
    -------
    gamma : ndarray, shape (nk, nj, ni)
        γ (NaN where not evaluated).
    seconds : float
        Wall time of the transfers and the kernel (compilation excluded after the first call).

    Raises
    ------
    ParameterError
        No CUDA device.
    """
    _require_cuda()
    _prepare()
    args = _arguments(ref, ev, alpha, beta, scale, global_dd, threshold, offsets, bounds, ndim)
    start = time.perf_counter()
    result = _launch(args, local_fraction, max_gamma2, ndim, on_nodes, float(star_table_rho2(scale, ndim)))
    seconds = time.perf_counter() - start
    _log.info("gamma (cuda): %d reference points searched in %.3f s", ref.size, seconds)
    return result, seconds


def star_table_rho2(scale: NDArray[np.float64], ndim: int) -> float:
    """``ρ²`` of the star of a node (see :class:`~intrepid.analysis._gamma_kernels.StarTable`)."""
    from intrepid.analysis._gamma_kernels import star_table

    return star_table(scale, ndim).rho2


def _arguments(
    ref: NDArray[np.float64],
    ev: NDArray[np.float64],
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    scale: NDArray[np.float64],
    global_dd: NDArray[np.float64],
    threshold: NDArray[np.float64],
    offsets: NDArray[np.int64],
    bounds: NDArray[np.float64],
    ndim: int,
) -> tuple[NDArray[Any], ...]:
    """The kernel's array arguments (host, contiguous), with the face, star and 1/P tables."""
    from intrepid.analysis._gamma_kernels import face_table, star_table

    blocks, counts = face_table(ndim)
    star = star_table(scale, ndim)
    inv_s2 = np.zeros(8)
    for mask in range(1, 8):
        inv_s2[mask] = 1.0 / sum(float(scale[a]) ** 2 for a in range(3) if mask & (1 << a))
    # star faces padded to three chain steps: the padding step is an extra zero edge (indicator 0)
    n_star_edges = star.edge_nodes.shape[0]
    if star.nodes.shape[0] > _MAX_STAR_NODES or n_star_edges > _MAX_STAR_EDGES:  # pragma: no cover
        raise AssertionError(f"star table larger than the kernel arrays ({star.nodes.shape[0]} nodes)")
    star_fe = np.full((star.face_m.size, 3), n_star_edges, dtype=np.int64)
    star_ind = np.zeros((star.face_m.size, 3))
    for face in range(star.face_m.size):
        for level in range(int(star.face_m[face])):
            star_fe[face, level] = star.face_edges[face, level]
            star_ind[face, level] = 1.0 if level < star.face_k[face] else 0.0
    arrays = (
        ref, ev, alpha, beta, scale, global_dd, threshold, offsets, bounds, blocks, counts, inv_s2,
        star.nodes, star.edge_nodes, star.edge_inv_p, star_fe, star_ind,
    )  # fmt: skip
    return tuple(np.ascontiguousarray(a) for a in arrays)


def _launch(
    args: tuple[NDArray[Any], ...],
    local_fraction: float,
    max_gamma2: float,
    ndim: int,
    on_nodes: bool,
    star_rho2: float,
) -> NDArray[np.float64]:
    """Copy the arguments to the device, run one thread per reference point, copy γ back."""
    counts = args[10]
    n_full = int(np.count_nonzero(counts == counts[0]))
    dev = [cuda.to_device(a) for a in args]
    shape = args[0].shape
    out = cuda.device_array(shape, dtype=np.float64)
    grid = max(1, math.ceil(int(np.prod(shape)) / _THREADS_PER_BLOCK))
    _kernel[grid, _THREADS_PER_BLOCK](
        *dev[:7], float(local_fraction), float(max_gamma2), *dev[7:], n_full, int(ndim), bool(on_nodes),
        float(star_rho2), out,
    )  # fmt: skip
    result: NDArray[np.float64] = out.copy_to_host()
    return result


@functools.lru_cache(maxsize=1)
def _prepare() -> float:
    """Compile the kernel once (a two-node launch) so that timings exclude it; seconds taken."""
    from intrepid.analysis._gamma_kernels import search_offsets

    start = time.perf_counter()
    one = np.ones((1, 1, 2))
    scale = np.ones(3)
    offsets, bounds = search_offsets(scale, 2.0, 1, True, (2, 1, 1))
    args = _arguments(
        one, one, np.zeros(3), np.ones(3), scale, np.ones(1), np.zeros(1), offsets, bounds, 1
    )
    _launch(args, 0.0, 4.0, 1, True, star_table_rho2(scale, 1))
    seconds = time.perf_counter() - start
    _log.info("gamma (cuda): kernel compiled in %.2f s", seconds)
    return seconds


@cuda.jit(cache=False)
def _kernel(  # type: ignore[no-untyped-def]
    ref, ev, alpha, beta, scale, global_dd, threshold, local_fraction, max_gamma2, offsets, bounds,
    blocks, counts, inv_s2, star_nodes, star_edge_nodes, star_edge_inv_p, star_fe, star_ind, n_full,
    ndim, on_nodes, star_rho2, out,
):  # pragma: no cover - compiled for the device  # fmt: skip
    idx = cuda.grid(1)  # type: ignore[call-arg, var-annotated]
    nk, nj, ni = ref.shape
    if idx >= nk * nj * ni:
        return
    i = idx % ni
    j = (idx // ni) % nj
    k = idx // (ni * nj)
    mk, mj, mi = ev.shape
    dr = ref[k, j, i]
    if not (dr >= threshold[k]):
        out[k, j, i] = math.nan
        return
    dd = global_dd[k] if global_dd[k] > 0.0 else local_fraction * dr
    if not (dd > 0.0):
        out[k, j, i] = math.nan
        return
    inv = 1.0 / dd
    u = cuda.local.array(3, float64)
    c0 = cuda.local.array(3, int64)
    c = cuda.local.array(3, int64)
    mdim = cuda.local.array(3, int64)
    mdim[0] = mi
    mdim[1] = mj
    mdim[2] = mk
    u[0] = alpha[0] + beta[0] * i
    u[1] = alpha[1] + beta[1] * j
    u[2] = alpha[2] + beta[2] * k
    for a in range(3):
        f = math.floor(u[a])
        if f < 0.0:
            f = 0.0
        if f > mdim[a] - 1:
            f = mdim[a] - 1.0
        c0[a] = int(f)
    best = max_gamma2
    n_search = offsets.shape[0]
    star_ok = on_nodes
    for a in range(ndim):
        if c0[a] < 1 or c0[a] > mdim[a] - 2:
            star_ok = False
    if star_ok:
        # Star search: every face containing the node, in closed form (StarTable), branch-free.
        node_g = cuda.local.array(_MAX_STAR_NODES, float64)
        edge_d = cuda.local.array(_STAR_EDGE_SLOTS, float64)
        edge_t = cuda.local.array(_STAR_EDGE_SLOTS, float64)
        for q in range(star_nodes.shape[0]):
            v = ev[c0[2] + star_nodes[q, 2], c0[1] + star_nodes[q, 1], c0[0] + star_nodes[q, 0]]
            node_g[q] = (v - dr) * inv
        g0 = node_g[0]
        g02 = g0 * g0
        if g02 < best:
            best = g02
        n_edges = star_edge_nodes.shape[0]
        for e in range(n_edges):
            delta = node_g[star_edge_nodes[e, 1]] - node_g[star_edge_nodes[e, 0]]
            edge_d[e] = delta * star_edge_inv_p[e]
            edge_t[e] = delta * edge_d[e]
        edge_d[n_edges] = 0.0
        edge_t[n_edges] = 0.0
        for fidx in range(star_fe.shape[0]):
            e_1 = star_fe[fidx, 0]
            e_2 = star_fe[fidx, 1]
            e_3 = star_fe[fidx, 2]
            den = 1.0 + edge_t[e_1] + edge_t[e_2] + edge_t[e_3]
            t_1 = star_ind[fidx, 0] * den - g0 * edge_d[e_1]
            t_2 = star_ind[fidx, 1] * den - g0 * edge_d[e_2]
            t_3 = star_ind[fidx, 2] * den - g0 * edge_d[e_3]
            slack = _FEASIBILITY_TOLERANCE * den
            if (
                t_1 <= den + slack
                and t_2 <= t_1 + slack
                and t_3 <= t_2 + slack
                and t_3 >= -slack
                and g02 < best * den
            ):
                best = g02 / den
        if best <= star_rho2:
            n_search = 0
    n_faces = blocks.shape[0]
    n_corners = 1 << ndim
    corner = cuda.local.array(8, float64)
    valid = cuda.local.array(8, int64)
    sw = cuda.local.array(8, float64)
    box_u = cuda.local.array(8, float64)
    wu = cuda.local.array(8, float64)
    d_in = cuda.local.array(3, float64)
    d_out = cuda.local.array(3, float64)
    w = cuda.local.array(3, float64)
    yv = cuda.local.array(3, float64)
    zv = cuda.local.array(3, float64)
    bv = cuda.local.array(3, float64)
    dv = cuda.local.array(3, float64)
    res = cuda.local.array(3, float64)
    vfull = cuda.local.array(6, float64)
    for a in range(8):
        wu[a] = 0.0
    for a in range(3):
        w[a] = 0.0
        d_in[a] = 0.0
        d_out[a] = 0.0
    # Exhaustive search: cells in order of their distance bound, stopped when it reaches the best.
    for o in range(n_search):
        if bounds[o] >= best:
            break
        inside = True
        for a in range(3):
            c[a] = c0[a] + offsets[o, a]
            if c[a] < 0 or c[a] > mdim[a] - 1:
                inside = False
        if not inside:
            continue
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
        dmin = math.inf
        dmax = -math.inf
        for mask in range(n_corners):
            ci = c[0] + (mask & 1)
            cj = c[1] + ((mask >> 1) & 1)
            ck = c[2] + ((mask >> 2) & 1)
            if ci < mi and cj < mj and ck < mk:
                valid[mask] = 1
                v = ev[ck, cj, ci]
                corner[mask] = v
                if v < dmin:
                    dmin = v
                if v > dmax:
                    dmax = v
            else:
                valid[mask] = 0
        gap = 0.0
        if dr < dmin:
            gap = (dmin - dr) * inv
        elif dr > dmax:
            gap = (dr - dmax) * inv
        if box + gap * gap >= best:
            continue
        for mask in range(n_corners):
            acc = 0.0
            for a in range(ndim):
                acc += d_in[a] if mask & (1 << a) else d_out[a]
            box_u[mask] = acc
        wz = (dr - corner[0]) * inv
        ww = wz * wz
        for a in range(ndim):
            wu[1 << a] = w[a]
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
            if valid[last] == 0:
                if fidx < n_full:
                    vfull[fidx] = -math.inf
                continue
            if fidx < n_full:
                # a full simplex: its hull minimum g_T(r)² / (1 + |∇g_T|²) first
                g_t = -wz
                big_s = 0.0
                prev_mask = 0
                for level in range(m):
                    blk = blocks[fidx, level]
                    cur_mask = prev_mask | blk
                    delta = (corner[cur_mask] - corner[prev_mask]) * inv
                    g_t += delta * wu[blk]
                    big_s += delta * delta * inv_s2[blk]
                    prev_mask = cur_mask
                if g_t * g_t >= best * (1.0 + big_s):
                    vfull[fidx] = best
                    continue
            else:
                tets = blocks[fidx, 4]
                bound = -math.inf
                for t in range(n_full):
                    if (tets >> t) & 1 and vfull[t] > bound:
                        bound = vfull[t]
                if bound >= best:
                    continue
            lo = corner[0]
            hi = corner[0]
            cur_mask = 0
            for level in range(m):
                cur_mask |= blocks[fidx, level]
                lo = min(lo, corner[cur_mask])
                hi = max(hi, corner[cur_mask])
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
            big_a = 0.0
            big_b = 0.0
            prev_mask = 0
            for level in range(m):
                blk = blocks[fidx, level]
                cur_mask = prev_mask | blk
                delta = (corner[cur_mask] - corner[prev_mask]) * inv
                b = sw[blk] + delta * wz
                p_inv = inv_s2[blk]
                yv[level] = b * p_inv
                zv[level] = delta * p_inv
                bv[level] = b
                dv[level] = delta
                big_a += delta * yv[level]
                big_b += delta * zv[level]
                prev_mask = cur_mask
            kk = big_a / (1.0 + big_b)
            val = ww
            prev_tau = 1.0 + _FEASIBILITY_TOLERANCE
            feasible = True
            for level in range(m):
                tau = yv[level] - zv[level] * kk
                if tau > prev_tau:
                    feasible = False
                prev_tau = tau + _FEASIBILITY_TOLERANCE
                val -= tau * bv[level]
            if fidx < n_full:
                vfull[fidx] = max(val, fbound)
            if not feasible or prev_tau < 0.0 or not (val < best + 1e-9 * (1.0 + ww)):
                continue
            # the candidate's value again, from its residuals (ww − Σ τ b cancels badly for small γ)
            for a in range(ndim):
                res[a] = w[a]
            rz = wz
            for level in range(m):
                tau = yv[level] - zv[level] * kk
                blk = blocks[fidx, level]
                rz -= tau * dv[level]
                for a in range(ndim):
                    if blk & (1 << a):
                        res[a] -= tau * scale[a]
            val = 0.0
            for a in range(ndim):
                val += res[a] * res[a]
            val += rz * rz
            if val < best:
                best = val
    out[k, j, i] = math.sqrt(best)
