"""The kernel baseline: closed-form recovery of known linear responses, metamorphic scaling, files."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from intrepid.errors import ModelError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.transit import KernelBaseline, fit_baseline, load_baseline

N = 64
SPACING_MM = 2.0


def _grid(n: int = N, spacing: float = SPACING_MM) -> Grid:
    half = (n - 1) / 2 * spacing
    return Grid((n, n), (-half, -half, 0.0), (spacing, spacing, 1.0))


def _field(width_px: int, height_px: int, shift: int = 0) -> np.ndarray:
    a = np.zeros((N, N))
    r0, c0 = N // 2 - height_px // 2 + shift, N // 2 - width_px // 2 - shift
    a[r0 : r0 + height_px, c0 : c0 + width_px] = 1.0
    return gaussian_filter(a, 3.0)  # 6 mm penumbra: smooth enough for the 3 x 3 median filter to be ~identity


def _pair(dose: np.ndarray, signal: np.ndarray, name: str = "p") -> SimpleNamespace:
    g = _grid()
    return SimpleNamespace(
        epid=Volume(signal, g, Quantity.EPID_SIGNAL, "CU"),
        portal_dose=Volume(dose, g, Quantity.PORTAL_DOSE, "Gy"),
        record=SimpleNamespace(name=name, family="OMG", field_group="10x10", field="10x10"),
    )


def _doses() -> list[np.ndarray]:
    return [0.5 * _field(20, 20), 0.8 * _field(8, 30, 3), 0.3 * _field(40, 12, -2), 1.1 * _field(12, 12, 5)]


def test_recovers_a_pure_calibration_factor() -> None:
    # signal = dose / 0.002 exactly: the fit must give weight 0.002 Gy/CU on the signal and ~0 elsewhere.
    pairs = [_pair(d, d / 0.002) for d in _doses()]
    bl = fit_baseline(pairs, pixels_per_image=2000, fit_pixels=N)
    pred = bl.predict(pairs[0].epid)
    ref = pairs[0].portal_dose.array
    # Exact up to round-off, except where the 3 x 3 median filter (dead-pixel removal) rounds the field
    # corners: there a 6 mm penumbra on 2 mm pixels moves by up to ~2.5 % of the maximum.
    assert np.max(np.abs(pred.array - ref)) < 0.03 * ref.max()
    assert pred.array[N // 2, N // 2] == pytest.approx(
        ref[N // 2, N // 2], rel=0.01
    )  # flat centre: within 1 %
    assert pred.quantity is Quantity.PORTAL_DOSE and pred.units == "Gy"
    assert bl.training["images"] == 4


def test_deconvolves_a_glare_tail() -> None:
    # signal = dose + 30 % of a 20 mm Gaussian tail: the kernel model must undo the tail.
    glare = [d + 0.3 * gaussian_filter(d, 20.0 / SPACING_MM, mode="nearest") for d in _doses()]
    pairs = [_pair(d, s * 1000.0) for d, s in zip(_doses(), glare, strict=True)]
    bl = fit_baseline(pairs, pixels_per_image=3000, fit_pixels=N)
    naive = KernelBaseline(bl.sigmas_mm, (1e-3, 0, 0, 0, 0))
    errs, naive_errs = [], []
    for p in pairs:
        d = p.portal_dose.array
        errs.append(np.max(np.abs(bl.predict(p.epid).array - d)) / d.max())
        naive_errs.append(np.max(np.abs(naive.predict(p.epid).array - d)) / d.max())
    assert max(errs) < 0.03  # as above: the median filter's corner rounding, no tail left
    assert max(naive_errs) > 0.08  # the tail really was there (up to ~9 % of the maximum)


@settings(max_examples=10, deadline=None)
@given(k=st.floats(min_value=0.01, max_value=100.0))
def test_scaling_the_signal_scales_the_weights_only(k: float) -> None:
    # Metamorphic: the model is linear, so signal x k gives weights / k and the same predictions.
    doses = _doses()[:2]
    pairs = [_pair(d, d * 500.0) for d in doses]
    scaled = [_pair(d, d * 500.0 * k) for d in doses]
    a = fit_baseline(pairs, pixels_per_image=500, fit_pixels=N)
    b = fit_baseline(scaled, pixels_per_image=500, fit_pixels=N)
    np.testing.assert_allclose(a.predict(pairs[1].epid).array, b.predict(scaled[1].epid).array, atol=1e-6)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    bl = KernelBaseline((2.0, 8.0), (1e-3, -1e-4, 2e-5), -0.01, {"images": 3})
    path = bl.save(tmp_path / "baseline.json")
    again = load_baseline(path)
    assert again == bl and again.training == {"images": 3}


def test_prediction_is_clipped_at_zero() -> None:
    bl = KernelBaseline((2.0,), (1e-3, 0.0), -1.0)
    pred = bl.predict_array(np.ones((8, 8)), 1.0)
    assert np.all(pred == 0.0)


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="sigmas_mm must be a non-empty list of values > 0"):
        KernelBaseline((0.0,), (1.0, 1.0))
    with pytest.raises(ParameterError, match="weights must have len"):
        KernelBaseline((2.0,), (1.0,))
    with pytest.raises(ParameterError, match="needs at least one training pair"):
        fit_baseline([])
    pair = _pair(_doses()[0], _doses()[0])
    with pytest.raises(ParameterError, match="pixels_per_image must be an integer >= 10"):
        fit_baseline([pair], pixels_per_image=5)
    with pytest.raises(ParameterError, match="seed must be an integer >= 0"):
        fit_baseline([pair], seed=-1)
    with pytest.raises(ParameterError, match="no positive value"):
        fit_baseline([_pair(np.zeros((N, N)), np.ones((N, N)))])
    bl = KernelBaseline((2.0,), (1e-3, 0.0))
    with pytest.raises(ParameterError, match="spacing_mm must be > 0"):
        bl.predict_array(np.ones((8, 8)), -1.0)
    with pytest.raises(ParameterError, match="signal must be 2D"):
        bl.predict_array(np.ones(8), 1.0)
    with pytest.raises(ParameterError, match="NaN or infinite"):
        bl.predict_array(np.full((8, 8), np.nan), 1.0)
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelError, match="not a kernel-baseline description"):
        load_baseline(bad)
    with pytest.raises(ModelError, match="baseline file not found"):
        load_baseline(tmp_path / "missing.json")
