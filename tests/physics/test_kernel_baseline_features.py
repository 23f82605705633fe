"""The kernel baseline's field-size- and level-dependent weights (format version 2)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.physics._kernel_baseline import (
    KernelBaseline,
    baseline_design,
    fit_baseline,
    fit_baseline_design,
    image_features,
    kernel_basis,
    load_baseline,
)

N = 96
SP = 2.0


def _grid() -> Grid:
    half = (N - 1) / 2 * SP
    return Grid((N, N), (-half, -half, 0.0), (SP, SP, 1.0))


def _square(side_px: int) -> np.ndarray:
    a = np.zeros((N, N))
    lo = N // 2 - side_px // 2
    a[lo : lo + side_px, lo : lo + side_px] = 1.0
    return gaussian_filter(a, 2.0)


def _pair(signal: np.ndarray, dose: np.ndarray) -> SimpleNamespace:
    g = _grid()
    return SimpleNamespace(
        epid=Volume(signal, g, Quantity.EPID_SIGNAL, "CU/MU"),
        portal_dose=Volume(dose, g, Quantity.PORTAL_DOSE, "Gy/MU"),
        record=SimpleNamespace(name="p", family="SLAB", field_group="", field=""),
    )


def _gain(side_mm: float, level: float) -> float:
    """A calibration factor that grows 6 % per e-fold of field size and falls 4 % per e-fold of level:
    what a stationary kernel cannot represent."""
    return 0.01 * (1.0 + 0.06 * np.log(side_mm / 100.0) - 0.04 * np.log(level))


def _pairs() -> list[SimpleNamespace]:
    out = []
    for side_px in (10, 25, 40, 60):
        for level in (0.2, 0.6, 1.0):
            s = level * _square(side_px)
            out.append(_pair(s, _gain(side_px * SP, level) * s))
    return out


def test_image_features_measure_field_size_and_level() -> None:
    s = 0.5 * _square(50)
    f, g = image_features(s, (SP, SP))
    assert np.exp(f) * 100.0 == pytest.approx(100.0, rel=0.05)  # 50 px of 2 mm
    assert np.exp(g) == pytest.approx(0.5, rel=0.01)


def test_field_level_weights_recover_a_field_and_level_dependent_gain() -> None:
    pairs = _pairs()
    flat = fit_baseline(pairs, features="none", pixels_per_image=1500, fit_pixels=N)
    feat = fit_baseline(pairs, features="field_level", pixels_per_image=1500, fit_pixels=N)
    assert flat.features == "none" and feat.features == "field_level"
    c = N // 2
    err_flat, err_feat = [], []
    for p in pairs:
        ref = p.portal_dose.array[c, c]
        err_flat.append(abs(flat.predict(p.epid).array[c, c] / ref - 1))
        err_feat.append(abs(feat.predict(p.epid).array[c, c] / ref - 1))
    assert max(err_flat) > 0.04  # the gain really varies (about 13 % over the set)
    assert max(err_feat) < 0.01


def test_from_basis_with_features_equals_predict_array_and_files_round_trip(tmp_path: Path) -> None:
    pairs = _pairs()
    design = baseline_design(pairs, pixels_per_image=800, fit_pixels=N)
    bl = fit_baseline_design(design, input_units="CU/MU")
    s = np.asarray(pairs[4].epid.array)
    feats = image_features(np.asarray(kernel_basis(s, SP)[0], dtype=np.float32), (SP, SP))
    via_basis = np.maximum(bl.from_basis(kernel_basis(s, SP), feats), 0.0)
    np.testing.assert_allclose(via_basis, bl.predict_array(s, SP), atol=1e-6 * float(via_basis.max()))
    again = load_baseline(bl.save(tmp_path / "b.json"))
    assert again == bl and again.input_units == "CU/MU" and again.to_dict()["format_version"] == 2
    with pytest.raises(ParameterError, match="pass features"):
        bl.from_basis(kernel_basis(s, SP))


def test_feature_settings_are_checked() -> None:
    design = baseline_design(_pairs()[:2], pixels_per_image=100, fit_pixels=N)
    with pytest.raises(ParameterError, match="features must be one of"):
        fit_baseline_design(design, features="thickness")
    with pytest.raises(ParameterError, match="field_weights and level_weights must both have 2 values"):
        KernelBaseline((2.0,), (1.0, 0.0), field_weights=(0.1, 0.0))
