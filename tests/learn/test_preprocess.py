"""Tests of the preprocessing (``intrepid.learn._preprocess``): signal, resampling, scaling, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrepid.errors import ModelError, ParameterError
from intrepid.geometry import Grid
from intrepid.learn import (
    AugmentConfig,
    PreprocessConfig,
    Scaling,
    augment_batch,
    epid_signal,
    fit_preprocess,
    from_working_grid,
    resampling_matrix,
    to_working_grid,
    working_grid,
)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 80), st.integers(1, 80))
def test_resampling_rows_sum_to_one(n_in, n_out):
    m = resampling_matrix(n_in, n_out)
    assert m.shape == (n_out, n_in)
    # float32 weights: sums exact to a few ulp
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(m >= 0)


def test_area_down_is_the_block_mean():
    rng = np.random.default_rng(1)
    a = rng.random((64, 48))
    w = to_working_grid(a, (16, 12))
    expected = a.reshape(16, 4, 12, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(w, expected, rtol=1e-5)  # float32 arithmetic


def test_area_down_non_integer_factor_keeps_the_integral():
    rng = np.random.default_rng(2)
    a = rng.random((30, 30))
    w = to_working_grid(a, (16, 16))
    # each output pixel covers (30/16)^2 input pixels: the total signal is conserved
    np.testing.assert_allclose(w.sum() * (30 / 16) ** 2, a.sum(), rtol=1e-5)


def test_down_and_up_reproduce_a_linear_ramp_inside():
    yy, xx = np.mgrid[0:64, 0:64].astype(float)
    ramp = 3.0 * xx - 2.0 * yy + 500.0
    back = from_working_grid(to_working_grid(ramp, (16, 16)), (64, 64))
    # area mean of a linear function is its value at the block centre and linear interpolation between
    # centres is exact, so away from the clamped border (2 px) the ramp comes back to float32 precision
    np.testing.assert_allclose(back[4:-4, 4:-4], ramp[4:-4, 4:-4], rtol=1e-5)


def test_batches_resample_like_single_images():
    rng = np.random.default_rng(3)
    a = rng.random((3, 40, 24))
    batch = to_working_grid(a, (16, 16))
    for n in range(3):
        np.testing.assert_allclose(batch[n], to_working_grid(a[n], (16, 16)), rtol=1e-6)


def test_resampling_rejects_bad_input():
    with pytest.raises(ParameterError, match="n_out must be an integer >= 1, got 0"):
        resampling_matrix(4, 0)
    with pytest.raises(ParameterError, match="at least 2 dimensions"):
        to_working_grid(np.ones(5), (2, 2))


def test_working_grid_covers_the_same_detector_area():
    det = Grid(
        (1024, 768),
        origin_mm=(-155.0, 207.0, 0.0),
        spacing_mm=(0.405, 0.405, 1.0),
        direction=(1, 0, 0, 0, -1, 0, 0, 0, -1),
    )
    w = working_grid(det, (256, 256))
    assert w.shape == (256, 256)
    np.testing.assert_allclose(w.spacing_mm[:2], (0.405 * 3, 0.405 * 4))
    # the centre of the image is the same world point (to 1e-9 mm)
    np.testing.assert_allclose(
        det.index_to_world([383.5, 511.5]), w.index_to_world([127.5, 127.5]), atol=1e-9
    )
    with pytest.raises(ParameterError, match="detector grid must be 2D"):
        working_grid(Grid((2, 2, 2), (0, 0, 0), (1, 1, 1)), (2, 2))


def test_epid_signal_dark_and_flood():
    dark = np.full((4, 4), 100.0)
    gain = np.array([[1.0, 2.0, 1.0, 2.0]] * 4)
    flood = dark + 1000.0 * gain
    true = np.full((4, 4), 50.0)
    raw = dark + true * gain  # a pixel with twice the gain sees twice the signal
    out = epid_signal(raw, dark, flood)
    # closed form: (raw - dark) / (gain / mean(gain)) = 50 * mean(gain) = 75
    np.testing.assert_allclose(out, 75.0)
    np.testing.assert_allclose(epid_signal(raw, dark), raw - dark)
    np.testing.assert_allclose(epid_signal(raw), raw)


def test_epid_signal_rejects_bad_calibrations():
    with pytest.raises(ParameterError, match="dark field shape"):
        epid_signal(np.ones((4, 4)), np.ones((3, 4)))
    with pytest.raises(ParameterError, match="flood field shape"):
        epid_signal(np.ones((4, 4)), None, np.ones((4, 3)))
    with pytest.raises(
        ParameterError, match="flood field minus dark field must be > 0 everywhere, 16 pixels"
    ):
        epid_signal(np.ones((4, 4)), np.ones((4, 4)), np.ones((4, 4)))


@pytest.mark.parametrize("scaling", [Scaling.LINEAR, Scaling.LOG])
def test_target_normalisation_round_trip(scaling):
    pre = PreprocessConfig(scaling=scaling, target_scale=0.5, input_offset=100.0, input_scale=1000.0)
    dose = np.array([0.0, 0.01, 0.5, 1.2])
    np.testing.assert_allclose(pre.denormalise_target(pre.normalise_target(dose)), dose, rtol=1e-6, atol=1e-8)
    x = pre.normalise_input(np.array([100.0, 1100.0]))
    np.testing.assert_allclose(x, [0.0, 1.0] if scaling is Scaling.LINEAR else [0.0, np.log(2.0)], rtol=1e-6)


def test_negative_doses_are_clipped_unless_asked():
    assert PreprocessConfig().denormalise_target(np.array([-1.0]))[0] == 0.0
    assert PreprocessConfig(clip_negative=False).denormalise_target(np.array([-1.0]))[0] == -1.0


def test_fit_preprocess_closed_form():
    # constant images: every percentile is the constant
    epids = [np.full((8, 8), 600.0), np.full((8, 8), 600.0)]
    epids[0][:4] = 100.0
    epids[1][:4] = 100.0
    epids[1][4:] = 1100.0
    doses = [np.full((8, 8), 0.2), np.full((8, 8), 0.6)]
    pre = fit_preprocess(
        epids, doses, PreprocessConfig(working_shape=(16, 16)), detector_spacing_mm=(1.0, 1.0)
    )
    assert pre.fitted and pre.working_shape == (16, 16)
    assert pre.input_offset == pytest.approx(100.0)
    # 99.9th percentiles of signal - offset: 500 and 1000, mean 750
    assert pre.input_scale == pytest.approx(750.0)
    assert pre.target_scale == pytest.approx(0.4)
    assert pre.detector_shape == (8, 8) and pre.detector_spacing_mm == (1.0, 1.0)


def test_fit_preprocess_rejects_empty_or_blank_data():
    with pytest.raises(ParameterError, match="at least one training pair"):
        fit_preprocess([], [])
    with pytest.raises(ParameterError, match="same length"):
        fit_preprocess([np.ones((2, 2))], [])
    with pytest.raises(ParameterError, match="no signal above their dark level"):
        fit_preprocess([np.ones((4, 4))], [np.ones((4, 4))])
    with pytest.raises(ParameterError, match="no positive dose"):
        fit_preprocess([np.arange(16.0).reshape(4, 4)], [np.zeros((4, 4))])


def test_preprocess_config_round_trip_and_errors():
    pre = PreprocessConfig(
        working_shape=(128, 64),
        scaling=Scaling.LOG,
        input_offset=3.0,
        input_scale=2.0,
        target_scale=0.1,
        fitted=True,
        detector_spacing_mm=(0.4, 0.4),
        detector_shape=(1024, 1024),
    )
    assert PreprocessConfig.from_dict(pre.to_dict()) == pre
    with pytest.raises(ModelError, match="unknown preprocessing key"):
        PreprocessConfig.from_dict({"mean": 1.0})
    with pytest.raises(ModelError, match="invalid preprocessing"):
        PreprocessConfig.from_dict({"scaling": "sqrt"})
    with pytest.raises(ParameterError, match=r"input_scale must be > 0, got 0\.0"):
        PreprocessConfig(input_scale=0.0)
    with pytest.raises(ParameterError, match="working_shape must be two integers >= 1"):
        PreprocessConfig(working_shape=(0, 4))


def test_check_detector_warns_about_other_panels():
    pre = PreprocessConfig(detector_shape=(1024, 1024), detector_spacing_mm=(0.405, 0.405))
    assert pre.check_detector((1024, 1024), (0.405, 0.405)) == []
    notes = pre.check_detector((768, 1024), (0.392, 0.392))
    assert len(notes) == 1 and "differs from the training detector" in notes[0]
    assert len(pre.check_detector((1024, 1024), (0.2, 0.2))) == 1


def test_augmentation_transforms_input_and_target_together():
    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 8, 8)).astype(np.float32)
    y = (2.0 * x + 1.0).astype(np.float32)  # a pixel-wise relation any joint flip / rotation keeps
    cfg = AugmentConfig(flip_columns=True, flip_rows=True, rotate_90=True)
    xa, ya, counts = augment_batch(x, y, cfg, np.random.default_rng(5))
    np.testing.assert_allclose(ya, 2.0 * xa + 1.0, rtol=1e-6)
    assert counts["flip_columns"] > 0 and counts["flip_rows"] > 0 and counts["rotate_90"] > 0
    assert not np.array_equal(xa, x)
    # the inputs are left alone, and the same generator seed gives the same augmentation
    np.testing.assert_array_equal(y, 2.0 * x + 1.0)
    xb, _, counts_b = augment_batch(x, y, cfg, np.random.default_rng(5))
    np.testing.assert_array_equal(xa, xb)
    assert counts == counts_b


def test_default_augmentation_only_mirrors_columns():
    x = np.arange(2 * 64, dtype=np.float32).reshape(2, 1, 8, 8)
    xa, _, counts = augment_batch(x, x.copy(), AugmentConfig(), np.random.default_rng(1))
    assert counts["flip_rows"] == 0 and counts["rotate_90"] == 0
    for n in range(2):
        # each sample is itself or its left-right mirror: rows (in-plane, arm side) never move
        assert np.array_equal(xa[n], x[n]) or np.array_equal(xa[n], x[n][..., ::-1])
        np.testing.assert_array_equal(np.sort(xa[n], axis=-1), np.sort(x[n], axis=-1))


def test_noise_augmentation_touches_only_the_input():
    x = np.ones((3, 1, 8, 8), np.float32)
    cfg = AugmentConfig(flip_columns=False, noise_percent=5.0)
    xa, ya, counts = augment_batch(x, x.copy(), cfg, np.random.default_rng(2))
    assert counts["noise"] == 3
    np.testing.assert_array_equal(ya, x)
    # sigma 5 % of the maximum 1: 192 samples have a standard deviation near 0.05 (loose: ±40 %)
    assert 0.03 < float(np.std(xa - x)) < 0.07
    with pytest.raises(ParameterError, match="noise_percent must be >= 0, got -1"):
        AugmentConfig(noise_percent=-1)
    with pytest.raises(ParameterError, match="matching images"):
        augment_batch(x, x[:2], cfg, np.random.default_rng(0))
