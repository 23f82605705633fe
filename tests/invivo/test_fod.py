"""First-order dose back-projection: closed-form cases in water."""

from __future__ import annotations

import math

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.invivo import FODSettings, PortalImage, back_project, first_order_dose


def _slab(thickness_mm: float = 200.0, spacing: float = 4.0) -> Volume:
    n = round(300 / spacing)
    ny = round(thickness_mm / spacing)
    g = Grid(
        (20, ny, n), (-(n - 1) * spacing / 2, -(ny - 1) * spacing / 2, -38.0), (spacing, spacing, spacing)
    )
    return Volume(np.zeros(g.shape, np.float32), g, Quantity.CT_NUMBER, "HU", "1.2.3")


def _image(value: float = 0.5, gantry: float = 0.0) -> PortalImage:
    return PortalImage(np.full((256, 256), value), (1.62, 1.62), gantry, 1600.0, 1000.0, (0.0, 0.0, 0.0), 1)


def test_fod_on_the_axis_matches_equation_3_in_water() -> None:
    ct = _slab()
    mu = 0.005
    fod, entrance = back_project(_image(0.5), ct, settings=FODSettings(mu_water_per_mm=mu))
    g = ct.grid
    # along the central axis (x = 0, z = 2 mm), gantry 0: the beam enters at y = -100 and exits at y = +100
    xs, ys, zs = g.world_axes_mm()
    i = int(np.argmin(np.abs(xs)))
    k = int(np.argmin(np.abs(zs - 2.0)))
    for j in (5, 25, 45):
        y = ys[j]
        r = 1000.0 + y  # source at y = -1000
        exit_path = 100.0 - y  # water (density 1) from the voxel to the exit surface
        expected = 0.5 * (1600.0 / r) ** 2 * math.exp(mu * exit_path)
        assert fod.array[k, j, i] == pytest.approx(expected, rel=0.02)
        assert entrance[k, j, i] == pytest.approx(y + 100.0, abs=2.5)


def test_fod_is_zero_outside_the_projected_image_and_in_air() -> None:
    ct = _slab()
    small = np.zeros((256, 256))
    small[118:138, 118:138] = 1.0  # 32 mm at the detector = 20 mm at the isocentre
    fod = first_order_dose(PortalImage(small, (1.62, 1.62), 0.0, 1600.0, 1000.0, (0.0, 0.0, 0.0)), ct)
    k = 10
    row = fod.array[k, 25]
    xs = ct.grid.world_axes_mm()[0]
    assert np.all(row[np.abs(xs) > 20] == 0) and np.all(row[np.abs(xs) < 6] > 0)
    air = ct.with_array(np.full(ct.shape, -1000.0, np.float32))
    assert float(np.abs(first_order_dose(_image(), air).array).max()) == 0.0


def test_fod_follows_the_gantry() -> None:
    ct = _slab()
    a = first_order_dose(_image(1.0, 0.0), ct).array
    b = first_order_dose(_image(1.0, 180.0), ct).array
    # opposed beams: the FOD profile along y is mirrored
    np.testing.assert_allclose(a[10, :, 37], b[10, ::-1, 37], rtol=0.03)


def test_bad_inputs() -> None:
    with pytest.raises(ParameterError, match="finite 2D"):
        PortalImage(np.full((4, 4), np.nan), (1.0, 1.0), 0.0, 1600.0, 1000.0, (0.0, 0.0, 0.0))
    with pytest.raises(ParameterError, match="sid_mm"):
        PortalImage(np.ones((4, 4)), (1.0, 1.0), 0.0, 900.0, 1000.0, (0.0, 0.0, 0.0))
    with pytest.raises(ParameterError, match="mu_water_per_mm"):
        FODSettings(mu_water_per_mm=-1.0)
