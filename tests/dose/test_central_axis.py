"""intrepid.dose.central_axis_depth_dose: the depth-dose helper of water_phantom doses."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.dose import central_axis_depth_dose, water_phantom
from intrepid.errors import GeometryError
from intrepid.geometry import Grid, Quantity, Volume


def test_central_axis_of_a_synthetic_water_phantom_volume() -> None:
    ct = water_phantom((55.0, 40.0, 35.0), 5.0)  # odd x, z counts: a voxel column on the axis
    a = np.zeros(ct.grid.shape, dtype=np.float32)
    iz, ix = a.shape[0] // 2, a.shape[2] // 2
    a[iz, :, ix] = np.arange(a.shape[1], dtype=np.float32) + 1.0
    a[iz, :, ix - 1] = -1.0  # a neighbouring column must not be picked
    depth, dose = central_axis_depth_dose(Volume(a, ct.grid, Quantity.DOSE, "Gy"))
    np.testing.assert_allclose(depth, 2.5 + 5.0 * np.arange(8))  # surface at y = 0, voxel centres
    np.testing.assert_allclose(dose, np.arange(1, 9))


def test_central_axis_refuses_a_2d_grid() -> None:
    grid = Grid((4, 4), origin_mm=(0.0, 0.0, 0.0), spacing_mm=(1.0, 1.0, 1.0))
    v = Volume(np.zeros((4, 4), np.float32), grid, Quantity.DOSE, "Gy")
    with pytest.raises(GeometryError, match="3D"):
        central_axis_depth_dose(v)
