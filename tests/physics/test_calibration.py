"""HU calibrations: Schneider 1996 stopping power, the electron-density table, tables from files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.physics import HUCalibration, hu_to_relative_electron_density, hu_to_relative_stopping_power


def _schneider(hu: float) -> float:
    """The piecewise formula of ../shared/REFERENCES.md, written independently of the table."""
    if hu <= -1000:
        return 0.00106
    if hu <= 0:
        return 1 + 0.99894 * hu / 1000
    if hu <= 41.46:
        return 1 + 0.001174 * hu
    return 1.0279 + 0.0005011 * hu


@pytest.mark.parametrize(
    "hu", [-3000, -1000, -999.5, -700, -1e-6, 0, 20, 41.46, 41.5, 300, 1500, 3071, 20000]
)
def test_schneider_formula_values(hu: float) -> None:
    # the table holds the break points: piecewise-linear interpolation is exact (float rounding only)
    assert hu_to_relative_stopping_power(hu) == pytest.approx(_schneider(hu), abs=1e-12)


def test_schneider_known_points() -> None:
    np.testing.assert_allclose(
        hu_to_relative_stopping_power([-1000, 0, 1000]), [0.00106, 1.0, 1.5290], atol=1e-4
    )
    assert hu_to_relative_stopping_power.quantity is Quantity.RELATIVE_STOPPING_POWER


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-2000, 5000), min_size=2, max_size=20))
def test_default_calibrations_are_monotone(hus: list[float]) -> None:
    h = np.sort(np.asarray(hus))
    for cal in (hu_to_relative_stopping_power, hu_to_relative_electron_density):
        assert np.all(np.diff(cal(h)) >= 0)


def test_electron_density_table_anchors() -> None:
    cal = hu_to_relative_electron_density
    np.testing.assert_allclose(cal([-1000, 0, 920]), [0.001, 1.0, 1.456])
    assert cal(-5000) == pytest.approx(0.001) and cal(5000) == pytest.approx(
        1.695
    )  # constant beyond the ends
    assert cal(-400) == pytest.approx(0.489 + (0.949 - 0.489) * 100 / 410)  # linear between points


def test_from_table_sorts_and_validates() -> None:
    cal = HUCalibration.from_table([1000, -1000, 0], [1.5, 0.0, 1.0])
    assert cal.hu == (-1000.0, 0.0, 1000.0)
    with pytest.raises(ParameterError, match="strictly increasing"):
        HUCalibration.from_table([0, 0, 100], [1.0, 1.0, 1.1])
    with pytest.raises(ParameterError, match="same length"):
        HUCalibration.from_table([0, 100], [1.0])
    with pytest.raises(ParameterError, match="at least 2"):
        HUCalibration((0.0,), (1.0,))
    with pytest.raises(ParameterError, match=">= 0"):
        HUCalibration((0.0, 1.0), (1.0, -1.0))
    with pytest.raises(ParameterError, match="finite"):
        HUCalibration((0.0, np.nan), (1.0, 1.0))
    with pytest.raises(ParameterError, match="quantity"):
        HUCalibration((0.0, 1.0), (1.0, 1.0), Quantity.DOSE)


def test_matrad_hlut() -> None:
    table = np.array([[-1024, 0.00324], [200, 1.2], [449, 1.2], [2000, 2.49066]])
    cal = HUCalibration.from_matrad_hlut(table)
    assert cal(-1024) == pytest.approx(0.00324) and cal(300) == pytest.approx(1.2)
    with pytest.raises(ParameterError, match=r"\(n, 2\)"):
        HUCalibration.from_matrad_hlut(np.ones((3, 3)))


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "scanner.csv"
    path.write_text("hu,value\n# water and bone\n-1000, 0.0\n0,1.0\n\n1000,1.6\n", encoding="utf-8")
    cal = HUCalibration.from_csv(path, quantity=Quantity.RELATIVE_STOPPING_POWER)
    assert cal.hu == (-1000.0, 0.0, 1000.0) and cal.values == (0.0, 1.0, 1.6)
    assert cal.name == "scanner" and cal.quantity is Quantity.RELATIVE_STOPPING_POWER
    np.testing.assert_array_equal(cal.table(), [[-1000, 0.0], [0, 1.0], [1000, 1.6]])


def test_csv_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("-1000,0\n0,abc\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"bad.csv: line 2"):
        HUCalibration.from_csv(bad)
    one = tmp_path / "one.csv"
    one.write_text("0\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="two columns"):
        HUCalibration.from_csv(one)
    dup = tmp_path / "dup.csv"
    dup.write_text("0,1\n0,1\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"dup.csv: .*strictly increasing"):
        HUCalibration.from_csv(dup)
    with pytest.raises(OSError):
        HUCalibration.from_csv(tmp_path / "missing.csv")


def test_to_volume_keeps_the_grid_and_sets_the_quantity() -> None:
    grid = Grid((2, 3, 4), (0, 0, 0), (1, 1, 1))
    ct = Volume(np.full(grid.shape, 1000.0), grid, Quantity.CT_NUMBER, "HU", "1.2.3")
    rsp = hu_to_relative_stopping_power.to_volume(ct)
    assert rsp.grid is grid and rsp.array.dtype == np.float32
    assert rsp.quantity is Quantity.RELATIVE_STOPPING_POWER and rsp.units == "relative"
    assert rsp.frame_of_reference_uid == "1.2.3"
    np.testing.assert_allclose(rsp.array, 1.0279 + 0.5011, rtol=1e-6)
    with pytest.raises(ParameterError, match="CT_NUMBER"):
        hu_to_relative_stopping_power.to_volume(Volume(np.zeros(grid.shape), grid, Quantity.DOSE, "Gy"))
    nan_ct = Volume(np.full(grid.shape, np.nan), grid, Quantity.CT_NUMBER, "HU")
    with pytest.raises(ParameterError, match="NaN"):
        hu_to_relative_stopping_power.to_volume(nan_ct)
