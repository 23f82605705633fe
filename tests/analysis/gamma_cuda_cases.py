"""Small gamma cases shared by the CUDA tests: run on numba's CUDA simulator (CPU) or on a real GPU.

Run as a script (``python gamma_cuda_cases.py [scale]``) it prints, as JSON, the comparison of the numba and
cuda backends on every case; the simulator test runs it in a subprocess with ``NUMBA_ENABLE_CUDASIM=1`` so
that the simulated ``numba.cuda`` never enters the pytest process.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from intrepid.analysis import Normalisation, gamma, gamma_batch
from intrepid.geometry import Grid, Volume


def _field(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1.0 + gaussian_filter(rng.random(shape), 1.2) * 4.0


def cases(n: int) -> Iterator[tuple[str, Volume, Volume, dict[str, Any]]]:
    """(name, reference, evaluated, criteria) for 2D / 3D, on and off the evaluated nodes, global / local.

    ``n`` scales the sizes (5 on the simulator; 64 or more on a GPU).
    """
    g2 = Grid((2 * n, 2 * n + 1), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    ref2 = Volume(_field(g2.shape, 1), g2)
    yield "2d_nodes", ref2, ref2.with_array(_field(g2.shape, 2)), {"dd_percent": 3.0, "dta_mm": 2.0}
    g2e = Grid((2 * n + 2, 2 * n + 3), (-0.7, -0.4, 0.0), (0.9, 0.8, 1.0))
    yield "2d_offgrid_local", ref2, Volume(_field(g2e.shape, 3), g2e), {
        "dd_percent": 2.0, "dta_mm": 1.5, "normalisation": Normalisation.LOCAL, "max_gamma": 1.5,
    }  # fmt: skip
    g3 = Grid((n, n + 1, n + 2), (0.0, 0.0, 0.0), (2.0, 1.5, 2.5))
    ref3 = Volume(_field(g3.shape, 4), g3)
    yield "3d_nodes", ref3, ref3.with_array(_field(g3.shape, 5)), {"dd_percent": 3.0, "dta_mm": 3.0}
    g3e = Grid((n + 1, n + 2, n + 2), (-0.9, -0.4, -0.7), (1.8, 1.35, 2.25))
    yield "3d_offgrid", ref3, Volume(_field(g3e.shape, 6), g3e), {"dd_percent": 3.0, "dta_mm": 2.0}


def batch(n: int) -> tuple[list[Volume], list[Volume]]:
    """Three pairs of one geometry (one launch) and one of another (a second launch)."""
    g = Grid((2 * n, 2 * n), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    refs = [Volume(_field(g.shape, 10 + b) * (1 + b), g) for b in range(3)]
    evs = [r.with_array(_field(g.shape, 20 + b) * (1 + b)) for b, r in enumerate(refs)]
    other = Grid((n + 3, n + 1), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    refs.append(Volume(_field(other.shape, 30), other))
    evs.append(refs[-1].with_array(_field(other.shape, 31)))
    return refs, evs


def compare(n: int) -> dict[str, dict[str, Any]]:
    """Per case: same NaN map, same pass/fail map, largest |Δγ|, pass rates of both backends."""
    out: dict[str, dict[str, Any]] = {}

    def entry(a: Any, b: Any) -> dict[str, Any]:
        ga, gb = a.gamma_map.array, b.gamma_map.array
        both = np.isfinite(ga) & np.isfinite(gb)
        return {
            "same_nan": bool(np.array_equal(np.isnan(ga), np.isnan(gb))),
            "same_decisions": bool(np.array_equal(a.passed, b.passed)),
            "max_abs_diff": float(np.max(np.abs(ga[both] - gb[both]))) if both.any() else 0.0,
            "points": int(both.sum()),
            "pass_rate_numba": a.pass_rate_percent,
            "pass_rate_cuda": b.pass_rate_percent,
            "backend": b.settings.backend.value,
        }

    for name, ref, ev, criteria in cases(n):
        a = gamma(ref, ev, backend="numba", **criteria)
        b = gamma(ref, ev, backend="cuda", **criteria)
        out[name] = entry(a, b)
    refs, evs = batch(n)
    batched = gamma_batch(refs, evs, dd_percent=3.0, dta_mm=2.0, backend="cuda")
    for b, (ref, ev) in enumerate(zip(refs, evs, strict=True)):
        out[f"batch_{b}"] = entry(gamma(ref, ev, dd_percent=3.0, dta_mm=2.0), batched[b])
    return out


if __name__ == "__main__":
    json.dump(compare(int(sys.argv[1]) if len(sys.argv) > 1 else 5), sys.stdout)
