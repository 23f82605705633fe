"""Compiled z-buffer of the entry depth of triangles (numba; imported on first use, cached on disk)."""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = ["zbuffer_max"]


@numba.njit(cache=True)
def zbuffer_max(
    u: NDArray[np.float64],
    v: NDArray[np.float64],
    z: NDArray[np.float64],
    faces: NDArray[np.int64],
    u0: float,
    v0: float,
    pixel: float,
    nu: int,
    nv: int,
) -> NDArray[np.float64]:  # pragma: no cover - compiled
    """Largest interpolated z of the triangles covering each ray (u0 + i·pixel, v0 + j·pixel); -inf: none."""
    depth = np.full((nv, nu), -np.inf)
    for t in range(faces.shape[0]):
        a, b, c = faces[t, 0], faces[t, 1], faces[t, 2]
        ua, va, ub, vb, uc, vc = u[a], v[a], u[b], v[b], u[c], v[c]
        det = (ub - ua) * (vc - va) - (uc - ua) * (vb - va)
        if det == 0.0:
            continue
        i0 = max(int(np.ceil((min(ua, ub, uc) - u0) / pixel)), 0)
        i1 = min(int(np.floor((max(ua, ub, uc) - u0) / pixel)), nu - 1)
        j0 = max(int(np.ceil((min(va, vb, vc) - v0) / pixel)), 0)
        j1 = min(int(np.floor((max(va, vb, vc) - v0) / pixel)), nv - 1)
        for j in range(j0, j1 + 1):
            pv = v0 + j * pixel
            for i in range(i0, i1 + 1):
                pu = u0 + i * pixel
                w1 = ((pu - ua) * (vc - va) - (uc - ua) * (pv - va)) / det
                w2 = ((ub - ua) * (pv - va) - (pu - ua) * (vb - va)) / det
                w0 = 1.0 - w1 - w2
                if w0 < -1e-9 or w1 < -1e-9 or w2 < -1e-9:
                    continue
                zz = w0 * z[a] + w1 * z[b] + w2 * z[c]
                if zz > depth[j, i]:
                    depth[j, i] = zz
    return depth
