"""Optional PyTorch implementation of the exact gamma search (GPU when one is present).

Same interpolant, same face formulas and the same search limit as the numba kernel
(:mod:`intrepid.analysis._gamma_kernels`), vectorised over reference points instead of looping: for every cell
offset (in order of its distance bound) and every face of the Kuhn triangulation the affine-hull minimum and
its feasibility are computed for all points at once, and the loop stops when no point can still improve.
Torch is imported inside the function, so ``import intrepid`` never imports it. Computation is in float64 on
every device, so pass / fail decisions match the CPU kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.analysis._gamma_kernels import FEASIBILITY_TOLERANCE

__all__ = ["gamma_torch"]

#: Reference points processed together (bounds the temporary memory to a few hundred MB).
_CHUNK_POINTS = 1 << 17


def gamma_torch(
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
    device: str | None = None,
) -> NDArray[np.float64]:
    """γ² capped at ``max_gamma2`` on the reference shape (NaN below ``threshold``); see ``gamma_kernel``."""
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    f64 = torch.float64
    out = np.full(ref.shape, np.nan)
    dr_all = ref.reshape(-1)
    with np.errstate(invalid="ignore"):
        dd_all = np.full(dr_all.shape, global_dd) if global_dd > 0 else local_fraction * dr_all
        selected = np.flatnonzero((dr_all >= threshold) & (dd_all > 0))
    nk, nj, ni = ref.shape
    mdim = torch.tensor([ev.shape[2], ev.shape[1], ev.shape[0]], device=dev)
    ev_t = torch.as_tensor(ev, dtype=f64, device=dev)
    scale_t = torch.as_tensor(scale, dtype=f64, device=dev)
    inv_s2 = torch.zeros(8, dtype=f64, device=dev)
    for mask in range(1, 8):
        inv_s2[mask] = 1.0 / sum(float(scale[a]) ** 2 for a in range(3) if mask & (1 << a))
    offsets_t = torch.as_tensor(offsets, device=dev)
    bits = torch.tensor([[m & 1, (m >> 1) & 1, (m >> 2) & 1] for m in range(8)], device=dev)
    for start in range(0, selected.size, _CHUNK_POINTS):
        flat = selected[start : start + _CHUNK_POINTS]
        k, j, i = np.unravel_index(flat, (nk, nj, ni))
        idx = np.stack([i, j, k], axis=1).astype(float)
        u = torch.as_tensor(alpha[None, :] + beta[None, :] * idx, dtype=f64, device=dev)
        dr = torch.as_tensor(dr_all[flat], dtype=f64, device=dev)
        inv = 1.0 / torch.as_tensor(dd_all[flat], dtype=f64, device=dev)
        c0 = torch.floor(u).clamp(min=torch.zeros_like(mdim), max=mdim - 1).long()
        best = torch.full_like(dr, max_gamma2)
        o = 0
        while o < offsets.shape[0]:
            active = torch.nonzero(best > float(bounds[o])).squeeze(1)
            if active.numel() == 0:
                break
            # a group of offsets evaluated together, sized so that the (point, offset) pairs stay bounded
            group = max(1, min(offsets.shape[0] - o, _CHUNK_POINTS // int(active.numel())))
            pts = active.repeat(group)
            c = c0[pts] + offsets_t[o : o + group].repeat_interleave(active.numel(), dim=0)
            o += group
            inside = ((c >= 0) & (c <= mdim - 1)).all(dim=1)
            if not bool(inside.any()):
                continue
            pts, c = pts[inside], c[inside]
            cand = _cell_minimum(
                ev_t, c, u[pts], dr[pts], inv[pts], best[pts], mdim, bits, scale_t, inv_s2, blocks, counts
            )
            best = best.scatter_reduce(0, pts, cand, reduce="amin")
        out.reshape(-1)[flat] = best.cpu().numpy()
    return out


def _cell_minimum(
    ev_t: Any,
    c: Any,
    u: Any,
    dr: Any,
    inv: Any,
    best: Any,
    mdim: Any,
    bits: Any,
    scale_t: Any,
    inv_s2: Any,
    blocks: NDArray[np.int64],
    counts: NDArray[np.int64],
) -> Any:
    """Minimum of ``best`` and γ² over the faces based in cells ``c`` (one cell per point); torch tensors."""
    import torch

    corners = c[:, None, :] + bits[None, :, :]  # (P, 8, 3)
    valid = (corners < mdim).all(dim=2)
    cc = torch.minimum(corners, mdim - 1)
    corner = ev_t[cc[..., 2], cc[..., 1], cc[..., 0]]  # (P, 8)
    wz = (dr - corner[:, 0]) * inv
    ws = (u - c) * scale_t
    ww = wz * wz + (ws * ws).sum(dim=1)
    sw = torch.zeros((u.shape[0], 8), dtype=torch.float64, device=ev_t.device)
    for mask in range(1, 8):
        for a in range(3):
            if mask & (1 << a):
                sw[:, mask] += scale_t[a] * ws[:, a]
    cand = torch.minimum(best, ww)
    for fidx in range(blocks.shape[0]):
        m = int(counts[fidx])
        if m == 0:
            continue
        big_a = torch.zeros_like(dr)
        big_b = torch.zeros_like(dr)
        ys, zs, bs = [], [], []
        prev = 0
        for level in range(m):
            blk = int(blocks[fidx, level])
            cur = prev | blk
            delta = (corner[:, cur] - corner[:, prev]) * inv
            b = sw[:, blk] + delta * wz
            ys.append(b * inv_s2[blk])
            zs.append(delta * inv_s2[blk])
            bs.append(b)
            big_a = big_a + delta * ys[-1]
            big_b = big_b + delta * zs[-1]
            prev = cur
        kk = big_a / (1.0 + big_b)
        val = ww.clone()
        prev_tau = torch.full_like(dr, 1.0 + FEASIBILITY_TOLERANCE)
        feasible = valid[:, int(blocks[fidx, 3])].clone()
        for level in range(m):
            tau = ys[level] - zs[level] * kk
            feasible &= tau <= prev_tau
            prev_tau = tau + FEASIBILITY_TOLERANCE
            val = val - tau * bs[level]
        feasible &= prev_tau >= 0.0
        cand = torch.where(feasible, torch.minimum(cand, torch.clamp(val, min=0.0)), cand)
    return cand
