"""The collapsed-cone sweeps in PyTorch: the GPU path of the engine (also runs, slowly, on the CPU device).

Same algorithm and arithmetic as :func:`intrepid.dose._ccc.ccc_dose` (float32), vectorised differently: the
directions that share a sweep axis and sense are swept together, one plane at a time, every line of every
direction updated at once. The numba path accumulates the directions in another order, so the two agree to
float32 rounding (tests/dose/test_torch.py). torch is imported inside the functions only (layering rule).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.dose._ccc import dominant_axis, index_directions

__all__ = ["ccc_dose_torch"]

_PERM = {0: (0, 1, 2), 1: (1, 0, 2), 2: (2, 0, 1)}


def ccc_dose_torch(
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
    *,
    device: str | None = None,
) -> NDArray[np.float32]:
    """:func:`intrepid.dose._ccc.ccc_dose` on a torch device (default: CUDA when available, else the CPU)."""
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    d_idx, step = index_directions(dirs_local, z_mm, h_lat_mm, h_z_mm, sad_mm)
    e_all = torch.as_tensor(np.ascontiguousarray(eta, dtype=np.float32), device=dev)
    t_all = torch.as_tensor(np.ascontiguousarray(terma, dtype=np.float32), device=dev)
    dose = torch.zeros_like(e_all)
    axes = np.array([dominant_axis(d) for d in d_idx])
    with torch.no_grad():
        for ax in (0, 1, 2):
            for forward in (True, False):
                members = np.nonzero((axes == ax) & ((d_idx[np.arange(len(axes)), axes] > 0) == forward))[0]
                if members.size:
                    _sweep_group(e_all, t_all, dose, d_idx, step, members, ax, forward,
                                 (amp_a, att_a, amp_b, att_b), torch)  # fmt: skip
    return np.asarray(dose.cpu().numpy(), dtype=np.float32)


def _sweep_group(
    e_all: Any, t_all: Any, dose: Any, d_idx: NDArray[np.float64], step: NDArray[np.float64],
    members: NDArray[np.int64], ax: int, forward: bool, kernel: tuple[NDArray[np.float64], ...], torch: Any,
) -> None:  # fmt: skip
    dev = e_all.device
    perm = _PERM[ax]
    ep, tp, dp_out = e_all.permute(perm), t_all.permute(perm), dose.permute(perm)
    n0, n1, n2 = ep.shape
    pad = n0
    m = members.size
    big = np.abs(d_idx[members, ax])
    u_ax, v_ax = (1, 2) if ax == 0 else ((0, 2) if ax == 1 else (0, 1))
    fu = d_idx[members, u_ax] / big
    fv = d_idx[members, v_ax] / big
    s_range = np.arange(n0, dtype=float)
    o1 = torch.as_tensor(np.floor(s_range[:, None] * fu[None, :] + 0.5).astype(np.int64), device=dev)
    o2 = torch.as_tensor(np.floor(s_range[:, None] * fv[None, :] + 0.5).astype(np.int64), device=dev)
    amp_a, att_a, amp_b, att_b = (np.asarray(k, dtype=np.float64)[members] for k in kernel)

    def col(x: NDArray[np.float64]) -> Any:
        return torch.as_tensor(x.astype(np.float32), device=dev).view(m, 1, 1)

    aa, ab = col(att_a), col(att_b)
    ia, ib = col(1.0 / att_a), col(1.0 / att_b)
    ka, kb = col(amp_a / att_a), col(amp_b / att_b)
    stp_all = torch.as_tensor(step[members].astype(np.float32), device=dev)  # (m, nk)
    ra = torch.zeros((m, n1 + 2 * pad, n2 + 2 * pad), dtype=torch.float32, device=dev)
    rb = torch.zeros_like(ra)
    mi = torch.arange(m, device=dev).view(m, 1, 1)
    uu = torch.arange(n1, device=dev).view(1, n1)
    vv = torch.arange(n2, device=dev).view(1, n2)
    floor = torch.tensor(1e-5, dtype=torch.float32, device=dev)
    one = torch.tensor(1.0, dtype=torch.float32, device=dev)
    for s in range(n0):
        p = s if forward else n0 - 1 - s
        i1 = (uu - o1[s].view(m, 1) + pad).view(m, n1, 1)
        i2 = (vv - o2[s].view(m, 1) + pad).view(m, 1, n2)
        ra_in = ra[mi, i1, i2]
        rb_in = rb[mi, i1, i2]
        stp = stp_all[:, p].view(m, 1, 1) if ax == 0 else stp_all[:, :n1].view(m, n1, 1)
        dpv = torch.maximum(ep[p].unsqueeze(0) * stp, floor)
        t = tp[p].unsqueeze(0)
        ea = torch.exp(-aa * dpv)
        eb = torch.exp(-ab * dpv)
        ga = (one - ea) * ia
        gb = (one - eb) * ib
        # as in the numba sweep: (1 - e^{-a dp}) / a <= dp, clamped against float32 round-off in air
        la = torch.clamp(dpv - ga, min=0.0)
        lb = torch.clamp(dpv - gb, min=0.0)
        dep = (ra_in * ga + t * ka * la + rb_in * gb + t * kb * lb) / dpv
        dp_out[p] += dep.sum(dim=0)
        ra[mi, i1, i2] = ra_in * ea + t * ka * (one - ea)
        rb[mi, i1, i2] = rb_in * eb + t * kb * (one - eb)
