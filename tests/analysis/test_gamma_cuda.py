"""The CUDA gamma kernel against the numba CPU kernel: same γ to rounding, same pass / fail decisions.

Without a GPU the kernel runs on numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) in a subprocess, so the
simulated ``numba.cuda`` never enters this process (the other tests' numba kernels stay untouched); the cases
are tiny because the simulator runs every GPU thread in Python. The same cases, larger, run on a real GPU
with ``--run-gpu``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from intrepid.analysis import GammaBackend, gamma, gamma_batch
from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Volume

CASES = Path(__file__).with_name("gamma_cuda_cases.py")
#: γ of the two backends may differ by rounding only (same float64 formulas, other operation order on a GPU).
ATOL = 1e-9


def _run_cases(n: int, simulator: bool) -> dict[str, dict]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    proc = subprocess.run(
        [sys.executable, str(CASES), str(n)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def _check(results: dict[str, dict]) -> None:
    assert {"2d_nodes", "2d_offgrid_local", "3d_nodes", "3d_offgrid", "batch_0", "batch_3"} <= set(results)
    for name, r in results.items():
        assert r["backend"] == "cuda", name
        assert r["same_nan"], name
        assert r["same_decisions"], name
        assert r["max_abs_diff"] <= ATOL, (name, r["max_abs_diff"])
        assert r["pass_rate_cuda"] == r["pass_rate_numba"], name
        assert r["points"] > 0, name
    # the cases are not trivial: points pass and fail in each
    assert all(0.0 < r["pass_rate_numba"] < 100.0 for r in results.values())


def test_cuda_kernel_on_the_simulator_matches_numba() -> None:
    _check(_run_cases(5, simulator=True))


@pytest.mark.gpu
def test_cuda_kernel_on_the_gpu_matches_numba() -> None:
    _check(_run_cases(48, simulator=False))


def test_import_intrepid_does_not_import_numba_cuda() -> None:
    code = "import sys, intrepid, intrepid.analysis, intrepid.cli; sys.exit('numba.cuda' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _pair(seed: int, shape: tuple[int, int] = (12, 13)) -> tuple[Volume, Volume]:
    rng = np.random.default_rng(seed)
    grid = Grid(shape, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    ref = Volume(1.0 + rng.random(shape), grid)
    return ref, ref.with_array(1.0 + rng.random(shape))


def test_cuda_backend_without_a_gpu_is_refused_in_one_line() -> None:
    from intrepid.analysis._gamma_cuda import cuda_available

    if cuda_available():
        pytest.skip("a CUDA device is present: the refusal cannot be observed here")
    with pytest.raises(ParameterError, match="needs an NVIDIA GPU") as info:
        gamma(*_pair(1), dd_percent=3.0, dta_mm=2.0, backend=GammaBackend.CUDA)
    assert "\n" not in str(info.value)


def test_gamma_batch_on_the_cpu_equals_one_call_per_pair() -> None:
    pairs = [_pair(2), _pair(3), _pair(4, (9, 15))]
    out = gamma_batch([p[0] for p in pairs], [p[1] for p in pairs], dd_percent=3.0, dta_mm=2.0)
    for (ref, ev), res in zip(pairs, out, strict=True):
        one = gamma(ref, ev, dd_percent=3.0, dta_mm=2.0)
        assert np.array_equal(res.gamma_map.array, one.gamma_map.array, equal_nan=True)
        assert res.pass_rate_percent == one.pass_rate_percent


def test_gamma_batch_refuses_unequal_lists_and_3d() -> None:
    ref, ev = _pair(5)
    with pytest.raises(ParameterError, match="as many evaluated images as references"):
        gamma_batch([ref, ref], [ev], dd_percent=3.0, dta_mm=2.0)
    grid3 = Grid((3, 4, 5), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    vol = Volume(np.ones(grid3.shape), grid3)
    with pytest.raises(ParameterError, match="pair 0: reference and evaluated must be 2D"):
        gamma_batch([vol], [vol], dd_percent=3.0, dta_mm=2.0)
