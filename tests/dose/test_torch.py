"""The PyTorch sweep equals the numba sweep (CPU device here; the CUDA device in the gpu-marked test)."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.dose import DoseSettings, compute_dose, cone_kernel, open_field_plan, water_phantom
from intrepid.dose._ccc import ccc_dose

torch = pytest.importorskip("torch")


def _random_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    eta = rng.uniform(0.1, 1.8, (14, 11, 9)).astype(np.float32)
    terma = rng.random((14, 11, 9)).astype(np.float32)
    return eta, terma, 950.0 + np.arange(14) * 2.5


def test_torch_cpu_sweep_equals_numba() -> None:
    from intrepid.dose._torch import ccc_dose_torch

    k = cone_kernel()
    eta, terma, z = _random_case()
    args = (eta, terma, k.directions, k.amp_a, k.att_a, k.amp_b, k.att_b, z, 2.5, 2.5, 1000.0)
    a = ccc_dose(*args)
    b = ccc_dose_torch(*args, device="cpu")
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * float(a.max()))


@pytest.mark.gpu
def test_cuda_engine_equals_numba_engine() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    ct = water_phantom((200.0, 200.0, 200.0), 5.0)
    plan = open_field_plan(80.0, 80.0)
    s = DoseSettings(fan_spacing_mm=5.0)
    a = compute_dose(ct, plan, settings=s, engine="numba")
    b = compute_dose(ct, plan, settings=s, engine="torch")
    assert b.engine == "ccc-torch-cuda"
    np.testing.assert_allclose(b.total.array, a.total.array, atol=1e-4 * a.max_gy)
