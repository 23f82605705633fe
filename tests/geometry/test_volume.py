"""Volume: an array that carries its grid, quantity, units and Frame of Reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume


def _grid() -> Grid:
    return Grid((2, 3, 4), (0.0, 0.0, 0.0), (1.0, 1.0, 2.0))


def test_construction_and_properties() -> None:
    v = Volume(np.arange(24.0).reshape(2, 3, 4), _grid(), Quantity.DOSE, "Gy", "1.2.3", {"source": "x.dcm"})
    assert v.ndim == 3 and v.shape == (2, 3, 4)
    assert v.quantity is Quantity.DOSE and v.units == "Gy" and v.frame_of_reference_uid == "1.2.3"
    # lists are accepted and stored as arrays
    w = Volume([[1.0, 2.0], [3.0, 4.0]], Grid((2, 2), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))  # type: ignore[arg-type]
    assert isinstance(w.array, np.ndarray) and w.ndim == 2


def test_shape_must_match_grid() -> None:
    with pytest.raises(GeometryError, match=r"array shape \(3, 2, 4\) does not match grid shape \(2, 3, 4\)"):
        Volume(np.zeros((3, 2, 4)), _grid())
    with pytest.raises(ParameterError, match="quantity must be a Quantity, got 'dose'"):
        Volume(np.zeros((2, 3, 4)), _grid(), "dose")  # type: ignore[arg-type]


def test_with_array_keeps_geometry_and_revalidates() -> None:
    v = Volume(np.zeros((2, 3, 4)), _grid(), Quantity.DOSE, "Gy", "1.2.3")
    w = v.with_array(np.ones((2, 3, 4)), units="cGy")
    assert w.grid == v.grid and w.frame_of_reference_uid == "1.2.3" and w.units == "cGy"
    assert v.units == "Gy"  # the original is unchanged (frozen)
    with pytest.raises(GeometryError, match="does not match grid shape"):
        v.with_array(np.ones((4, 3, 2)))


def test_statistics_and_describe() -> None:
    arr = np.arange(24.0).reshape(2, 3, 4)
    arr[0, 0, 0] = np.nan
    v = Volume(arr, _grid(), Quantity.DOSE, "Gy", "1.2.3")
    s = v.statistics()
    assert s["min"] == 1.0 and s["max"] == 23.0
    assert s["mean"] == pytest.approx(np.arange(1.0, 24.0).mean())
    d = v.describe()
    assert d["quantity"] == "dose" and d["units"] == "Gy" and d["frame_of_reference_uid"] == "1.2.3"
    assert d["shape"] == [2, 3, 4] and d["spacing_mm"] == [1.0, 1.0, 2.0]
    json.dumps(d)  # JSON-ready
    empty = Volume(np.full((2, 3, 4), np.nan), _grid())
    assert all(np.isnan(x) for x in empty.statistics().values())
    assert "frame_of_reference_uid" not in empty.describe()


def test_check_finite_names_the_volume() -> None:
    arr = np.zeros((2, 3, 4))
    arr[1, 1, 1] = np.inf
    arr[0, 1, 1] = np.nan
    with pytest.raises(ParameterError, match="planned dose contains 2 NaN or infinite values"):
        Volume(arr, _grid()).check_finite("planned dose")
    Volume(np.zeros((2, 3, 4), dtype=np.int16), _grid()).check_finite()  # integers are always finite
