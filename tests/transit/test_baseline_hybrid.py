"""Kernel-baseline pieces used by the hybrid model: fast median, basis images, per-fold fits, speed-ups."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter, median_filter

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.physics._kernel_baseline import _median3
from intrepid.transit import (
    KernelBaseline,
    baseline_design,
    fit_baseline,
    fit_baseline_design,
    kernel_basis,
)

N = 48
SPACING_MM = 2.0


def _pair(k: int) -> SimpleNamespace:
    half = (N - 1) / 2 * SPACING_MM
    g = Grid((N, N), (-half, -half, 0.0), (SPACING_MM, SPACING_MM, 1.0))
    a = np.zeros((N, N))
    w = 6 + 3 * (k % 4)
    a[N // 2 - w : N // 2 + w, N // 2 - w : N // 2 + w] = 1.0
    signal = gaussian_filter(a, 2.0) * (1000 + 100 * k) + np.random.default_rng(k).normal(0, 1, (N, N))
    dose = 1e-4 * (signal + 0.3 * gaussian_filter(signal, 5.0)) + 0.001
    return SimpleNamespace(
        epid=Volume(signal, g, Quantity.EPID_SIGNAL, "CU"),
        portal_dose=Volume(dose, g, Quantity.PORTAL_DOSE, "Gy"),
    )


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 9),
    cols=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_median3_equals_scipy_median_filter(rows: int, cols: int, seed: int, dtype: type) -> None:
    # The sorting network must select exactly what scipy selects (edge replication = mode "nearest").
    a = np.random.default_rng(seed).normal(size=(rows, cols)).astype(dtype)
    a[0, 0] = a[-1, -1]  # ties
    assert np.array_equal(_median3(a), median_filter(a, size=3, mode="nearest"))


def test_from_basis_reproduces_predict_array() -> None:
    base = KernelBaseline((2.0, 6.0, 20.0), (1e-4, 2e-5, -1e-5, 3e-6), 0.001)
    s = np.asarray(_pair(3).epid.array)
    direct = base.predict_array(s, SPACING_MM)
    via_basis = np.maximum(base.from_basis(kernel_basis(s, SPACING_MM, base.sigmas_mm)), 0.0)
    # predict_array runs in single precision: relative error ~1e-6 of the maximum; allow 1e-5
    assert np.max(np.abs(direct - via_basis)) <= 1e-5 * float(direct.max())


def test_from_basis_is_linear_after_resampling() -> None:
    # Linear model: combining block-averaged basis images = block-averaging the combined image (closed form).
    base = KernelBaseline((2.0, 6.0), (1.0, 0.5, -0.25), 0.1)
    basis = kernel_basis(np.asarray(_pair(1).epid.array), SPACING_MM, base.sigmas_mm)
    small = basis.reshape(3, N // 4, 4, N // 4, 4).mean(axis=(2, 4))
    full = base.from_basis(basis).reshape(N // 4, 4, N // 4, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(base.from_basis(small), full, rtol=1e-12, atol=1e-9)


def test_design_then_fit_equals_fit_baseline() -> None:
    pairs = [_pair(k) for k in range(5)]
    a = fit_baseline(pairs, pixels_per_image=200, fit_pixels=48, seed=3)
    b = fit_baseline_design(baseline_design(pairs, pixels_per_image=200, fit_pixels=48, seed=3))
    assert a == b  # same rows, same solver: identical parameters


def test_fit_on_a_subset_uses_only_those_images() -> None:
    pairs = [_pair(k) for k in range(6)]
    design = baseline_design(pairs, pixels_per_image=200, fit_pixels=48)
    sub = fit_baseline_design(design, [0, 2, 4])
    assert sub.training["images"] == 3
    assert sub.training["sampled_pixels"] == sum(design.y[i].size for i in (0, 2, 4))
    # the data follow D = 1e-4 S + 3e-5 G5 * S + 0.001 closely: the subset fit recovers the response
    dose = np.asarray(pairs[5].portal_dose.array)
    pred = sub.predict_array(np.asarray(pairs[5].epid.array), SPACING_MM)
    # 5 % of the maximum: the basis (2, 6, 20, 60 mm) represents the data's 5 mm kernel only approximately
    assert np.max(np.abs(pred - dose)) < 0.05 * dose.max()


def test_design_errors() -> None:
    design = baseline_design([_pair(0)], pixels_per_image=100, fit_pixels=48)
    with pytest.raises(ParameterError, match="at least one image"):
        fit_baseline_design(design, [])
    with pytest.raises(ParameterError, match=r"indices must lie in \[0, 1\), got 3"):
        fit_baseline_design(design, [3])
    with pytest.raises(ParameterError, match="design must be a BaselineDesign"):
        fit_baseline_design("x")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="at least one training pair"):
        baseline_design([])
    with pytest.raises(ParameterError, match="pixels_per_image must be an integer >= 10"):
        baseline_design([_pair(0)], pixels_per_image=5)


def test_basis_errors() -> None:
    base = KernelBaseline((2.0,), (1.0, 0.5), 0.0)
    with pytest.raises(ParameterError, match=r"basis must have len\(weights\) = 2"):
        base.from_basis(np.zeros((3, 4, 4)))
    with pytest.raises(ParameterError, match="spacing_mm must be > 0"):
        kernel_basis(np.zeros((4, 4)), -1.0)
    with pytest.raises(ParameterError, match="finite 2D array"):
        kernel_basis(np.zeros(4), 1.0)
    with pytest.raises(ParameterError, match="sigmas_mm must be a non-empty list"):
        kernel_basis(np.zeros((4, 4)), 1.0, ())
