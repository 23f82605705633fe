"""Tests of the EPID model: presets, ghosting, noise, dead pixels and the vendor encodings."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.physics import DetectorModel, Vendor, ghosting_factor
from intrepid.physics._epid import add_noise, encode_raw


def test_presets() -> None:
    e = DetectorModel.elekta_iview()
    assert (e.vendor, e.rows, e.columns, e.pixel_mm, e.sid_mm) == (Vendor.ELEKTA, 1024, 1024, 0.405, 1600.0)
    v = DetectorModel.varian_as1000()
    assert (v.vendor, v.rows, v.columns, v.pixel_mm, v.sid_mm) == (Vendor.VARIAN, 768, 1024, 0.392, 1500.0)
    assert DetectorModel.varian_as1000(sid_mm=1000.0).sid_mm == 1000.0


def test_ghosting_under_response() -> None:
    # McDermott et al. 2006 / Alshanqity 2016: 4-10 % under-response at a few MU, linear above ~100 MU.
    for mu in (2.0, 3.0, 5.0):
        assert 0.04 <= 1 - ghosting_factor(mu, 0.1, 5.0) <= 0.10
    assert 1 - ghosting_factor(100.0, 0.1, 5.0) < 0.006
    mus = np.array([1, 2, 5, 10, 100, 1000.0])
    assert np.all(np.diff([ghosting_factor(m, 0.1, 5.0) for m in mus]) > 0)
    with pytest.raises(ParameterError, match="mu must be > 0"):
        ghosting_factor(0.0, 0.1, 5.0)


@pytest.mark.parametrize("detector", [DetectorModel.elekta_iview(), DetectorModel.varian_as1000()])
def test_encoding_round_trip(detector: DetectorModel) -> None:
    rng = np.random.default_rng(1)
    s = rng.uniform(0, 120, (detector.rows, detector.columns))
    enc = encode_raw(s, detector)
    assert enc.raw.dtype == np.uint16
    decoded = enc.rescale_slope * enc.raw.astype(float) + enc.rescale_intercept
    # Rounding to integer counts: error <= half a count = |slope| / 2.
    assert np.max(np.abs(decoded - s)) <= abs(enc.rescale_slope) / 2 + 1e-9
    assert enc.rescale_slope < 0  # both encodings are inverted (higher signal -> lower raw)


def test_elekta_background_and_varian_rescale() -> None:
    e = encode_raw(np.zeros((8, 8)), DetectorModel.elekta_iview())
    assert int(e.raw[0, 0]) == 65000  # open background ~65,000 as real iView files
    v = DetectorModel.varian_as1000()
    enc = encode_raw(np.full((8, 8), 100.0), v)
    assert enc.rescale_slope == pytest.approx(-0.0156)  # as the real aS1000 files
    big = encode_raw(np.full((8, 8), 1000.0), v)  # would saturate: the slope adapts
    assert int(big.raw.min()) > 0 and big.rescale_slope < -0.0156


def test_noise_statistics() -> None:
    det = DetectorModel.elekta_iview(dead_pixel_fraction=0.0)
    s = np.full((256, 256), 40.0)
    noisy = add_noise(s, det, np.random.default_rng(7))
    expected = np.sqrt(40.0 * det.quantum_cu2_per_cu + det.electronic_noise_cu**2)
    # 65,536 samples: the standard deviation is known to ~0.3 %; mean to ~expected/256.
    assert noisy.std() == pytest.approx(expected, rel=0.02)
    assert noisy.mean() == pytest.approx(40.0, abs=4 * expected / 256)


def test_dead_pixels_fixed_per_panel() -> None:
    det = DetectorModel.elekta_iview(dead_pixel_fraction=1e-3)
    m1, m2 = det.dead_pixel_mask(), DetectorModel.elekta_iview(dead_pixel_fraction=1e-3).dead_pixel_mask()
    np.testing.assert_array_equal(m1, m2)
    assert int(m1.sum()) == round(1e-3 * 1024 * 1024)
    noisy = add_noise(np.full((1024, 1024), 10.0), det, np.random.default_rng(0))
    assert np.all(noisy[m1] == 0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(rows=4), "rows must be in"),
        (dict(pixel_mm=0.0), "pixel_mm must be > 0"),
        (dict(backscatter_fraction=1.5), "backscatter_fraction must be in"),
        (dict(electronic_noise_cu=-1.0), "electronic_noise_cu must be >= 0"),
        (dict(raw_offset=70000.0), "raw_offset must be in"),
        (dict(vendor="elekta"), "vendor must be a Vendor"),
    ],
)
def test_bad_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        DetectorModel.elekta_iview(**kwargs)
