"""Tests of dose differences, sums on a common grid and profiles (intrepid.analysis._dose_ops)."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.analysis import DifferenceMode, dose_difference, dose_profile, sum_doses
from intrepid.errors import FrameOfReferenceError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume


def _ramp(
    grid: Grid,
    gx: float = 0.1,
    gy: float = 0.05,
    gz: float = -0.02,
    c: float = 5.0,
    uid: str | None = "1.2.3",
) -> Volume:
    p = grid.world_points()
    return Volume(c + gx * p[..., 0] + gy * p[..., 1] + gz * p[..., 2], grid, Quantity.DOSE, "Gy", uid)


GRID = Grid((10, 12, 14), (-13.0, -11.0, -9.0), (2.0, 2.0, 2.0))


def test_difference_absolute_and_percent() -> None:
    ref = _ramp(GRID)
    ev = ref.with_array(ref.array + 0.25)
    d = dose_difference(ev, ref)
    np.testing.assert_allclose(d.array, 0.25, atol=1e-12)
    assert d.units == "Gy"
    p = dose_difference(ev, ref, mode=DifferenceMode.PERCENT, normalisation_gy=5.0)
    np.testing.assert_allclose(p.array, 5.0, atol=1e-10)
    assert p.units == "%"
    g = dose_difference(ev, ref, mode=DifferenceMode.PERCENT)  # global: % of the reference maximum
    np.testing.assert_allclose(g.array, 25.0 / float(ref.array.max()), atol=1e-10)


def test_difference_resamples_linear_dose_exactly() -> None:
    # A linear dose is reproduced exactly by trilinear interpolation (inside the evaluated grid's centres),
    # so the difference of two samplings of the same linear field is 0 to round-off.
    ref = _ramp(GRID)
    fine = Grid((19, 23, 27), (-13.0, -11.0, -9.0), (1.0, 1.0, 1.0))
    ev = _ramp(fine)
    d = dose_difference(ev, ref)
    assert d.grid.is_close(ref.grid)
    np.testing.assert_allclose(d.array, 0.0, atol=1e-5)  # float32 resampling output: ~1e-6 Gy round-off


def test_difference_refuses_other_frame_and_units() -> None:
    ref = _ramp(GRID)
    with pytest.raises(FrameOfReferenceError, match="different Frames of Reference"):
        dose_difference(_ramp(GRID, uid="9.9"), ref)
    with pytest.raises(ParameterError, match="same units"):
        dose_difference(ref.with_array(ref.array, units="cGy"), ref)
    with pytest.raises(ParameterError, match="normalisation_gy must be > 0"):
        dose_difference(ref, ref, mode=DifferenceMode.PERCENT, normalisation_gy=-1.0)
    with pytest.raises(ParameterError, match="only used with"):
        dose_difference(ref, ref, normalisation_gy=2.0)
    with pytest.raises(ParameterError, match="mode must be a DifferenceMode"):
        dose_difference(ref, ref, mode="percent")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="evaluated must be a Volume"):
        dose_difference(np.zeros(3), ref)  # type: ignore[arg-type]


def test_sum_of_fractions_and_beams() -> None:
    a = _ramp(GRID, c=1.0)
    b = _ramp(GRID, gx=0.0, gy=0.0, gz=0.0, c=2.0)
    s = sum_doses([a, b], weights=[7, 7])
    np.testing.assert_allclose(s.array, 7 * (a.array + 2.0), atol=1e-12)
    assert s.frame_of_reference_uid == "1.2.3"
    assert s.metadata["summed_doses"] == 2


def test_sum_on_other_grid_resamples() -> None:
    a = _ramp(GRID)
    fine = Grid((19, 23, 27), (-13.0, -11.0, -9.0), (1.0, 1.0, 1.0))
    b = _ramp(fine)
    s = sum_doses([a, b])  # onto a's grid
    np.testing.assert_allclose(s.array, 2 * a.array, atol=1e-5)
    s2 = sum_doses([a, b], grid=fine)  # onto the fine grid: a is interpolated, exact for a linear field
    np.testing.assert_allclose(s2.array, 2 * b.array, atol=1e-5)


def test_sum_errors() -> None:
    a = _ramp(GRID)
    with pytest.raises(ParameterError, match="at least one dose"):
        sum_doses([])
    with pytest.raises(FrameOfReferenceError, match="different Frames of Reference"):
        sum_doses([a, _ramp(GRID, uid="4.5.6")])
    with pytest.raises(ParameterError, match="one value per dose"):
        sum_doses([a, a], weights=[1.0])
    with pytest.raises(ParameterError, match="weights must be finite"):
        sum_doses([a], weights=[np.nan])
    with pytest.raises(ParameterError, match="contains 1 NaN"):
        arr = a.array.copy()
        arr[0, 0, 0] = np.nan
        sum_doses([a.with_array(arr)])


def test_profile_closed_form_on_linear_dose() -> None:
    dose = _ramp(GRID)
    start, stop = np.array([-10.0, -8.0, -6.0]), np.array([10.0, 8.0, 6.0])
    prof = dose_profile(dose, start, stop, step_mm=0.5)
    expected = 5.0 + 0.1 * prof.points_mm[:, 0] + 0.05 * prof.points_mm[:, 1] - 0.02 * prof.points_mm[:, 2]
    np.testing.assert_allclose(prof.dose, expected, atol=1e-12)  # trilinear is exact on a linear field
    np.testing.assert_allclose(np.diff(prof.distance_mm), 0.5)
    assert prof.distance_mm[-1] <= np.linalg.norm(stop - start) + 1e-9
    d = prof.to_dict()
    assert set(d) >= {"distance_mm", "x_mm", "y_mm", "z_mm", "dose", "step_mm"}


def test_profile_outside_is_nan_and_edges_clamped() -> None:
    dose = _ramp(GRID)
    # x from -20 to 20 mm: the grid's voxel edges are at x = -14 and +14 mm.
    prof = dose_profile(dose, (-20, 0, 0), (20, 0, 0), step_mm=1.0)
    x = prof.points_mm[:, 0]
    assert np.all(np.isnan(prof.dose[(x < -14) | (x > 14)]))
    assert np.all(np.isfinite(prof.dose[(x >= -14) & (x <= 14)]))
    # Between the last centre (x = 13) and the edge (14) the edge sample's value is used.
    assert prof.dose[x == 14][0] == pytest.approx(prof.dose[x == 13][0])


def test_profile_on_2d_image() -> None:
    g = Grid((5, 11), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    img = Volume(np.broadcast_to(np.arange(11.0) * 2, g.shape).copy(), g, Quantity.DOSE, "Gy")
    prof = dose_profile(img, (0, 2, 0), (10, 2, 0), step_mm=0.25)
    np.testing.assert_allclose(prof.dose, 2 * prof.distance_mm, atol=1e-12)


def test_profile_errors() -> None:
    dose = _ramp(GRID)
    with pytest.raises(ParameterError, match="step_mm must be > 0"):
        dose_profile(dose, (0, 0, 0), (1, 0, 0), step_mm=0)
    with pytest.raises(ParameterError, match="must differ"):
        dose_profile(dose, (0, 0, 0), (0, 0, 0))
    with pytest.raises(ParameterError, match="start_mm must be 3 finite"):
        dose_profile(dose, (0, 0), (1, 0, 0))
