"""Tests of isodose lines and surfaces (intrepid.analysis._isodose)."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.analysis import (
    PlaneAxis,
    dose_plane,
    isodose_levels_gy,
    isodose_lines,
    isodose_surfaces,
)
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume


def _cone_dose(grid: Grid, peak: float = 20.0) -> Volume:
    """Dose falling 1 Gy per mm from a peak at the world origin: isodose d is a sphere of radius peak - d."""
    r = np.linalg.norm(grid.world_points(), axis=-1)
    return Volume(peak - r, grid, Quantity.DOSE, "Gy", "1.2.3")


GRID3 = Grid((41, 41, 41), (-20.0, -20.0, -20.0), (1.0, 1.0, 1.0))


def test_lines_are_circles_in_world_mm() -> None:
    dose = _cone_dose(GRID3)
    plane = dose_plane(
        dose, PlaneAxis.AXIAL, 6.0
    )  # z = 6 mm: isodose d is a circle of radius √((20-d)² - 36)
    assert plane.ndim == 2
    assert plane.metadata["plane_position_mm"] == pytest.approx(6.0)
    (line,) = isodose_lines(plane, [10.0])
    radius = np.sqrt(100.0 - 36.0)
    pts = np.concatenate(line.polygons_mm)
    np.testing.assert_allclose(pts[:, 2], 6.0, atol=1e-9)
    # Linear interpolation of the cone between 1 mm samples: radial error below 0.05 mm at r = 8 mm.
    np.testing.assert_allclose(np.hypot(pts[:, 0], pts[:, 1]), radius, atol=0.05)
    assert line.total_length_mm == pytest.approx(2 * np.pi * radius, rel=0.01)


def test_lines_in_percent_and_off_voxel_plane() -> None:
    dose = _cone_dose(GRID3)
    plane = dose_plane(dose, PlaneAxis.SAGITTAL, 2.5)  # x = 2.5 mm, between two sample planes
    lines = isodose_lines(plane, [50.0, 200.0], percent_of_gy=20.0)
    assert lines[0].level_gy == pytest.approx(10.0)
    assert lines[0].level_percent == pytest.approx(50.0)
    assert lines[1].polygons_mm == ()  # above the maximum: no line
    pts = np.concatenate(lines[0].polygons_mm)
    np.testing.assert_allclose(pts[:, 0], 2.5, atol=1e-9)
    # The plane is interpolated linearly between x = 2 and 3: radius from the cone, looser (0.1 mm).
    np.testing.assert_allclose(np.linalg.norm(pts, axis=1), 10.0, atol=0.1)


def test_plane_default_through_maximum_and_coronal() -> None:
    g = Grid((21, 21, 21), (-10.0, -10.0, -10.0), (1.0, 1.0, 1.0))
    p = g.world_points()
    dose = Volume(30 - np.linalg.norm(p - np.array([3.0, -4.0, 5.0]), axis=-1), g, Quantity.DOSE, "Gy")
    assert dose_plane(dose).metadata["plane_position_mm"] == pytest.approx(5.0)
    cor = dose_plane(dose, PlaneAxis.CORONAL)
    assert cor.metadata["plane_position_mm"] == pytest.approx(-4.0)
    assert float(cor.array.max()) == pytest.approx(30.0)


def test_surface_sphere_area_and_volume() -> None:
    dose = _cone_dose(GRID3)
    (surf,) = isodose_surfaces(dose, [10.0])  # sphere of radius 10 mm
    r = np.linalg.norm(surf.vertices_mm, axis=1)
    np.testing.assert_allclose(r, 10.0, atol=0.05)
    # Marching cubes on 1 mm voxels: chordal faces under-estimate a 10 mm sphere by < 1.5 %.
    assert surf.area_mm2 == pytest.approx(4 * np.pi * 100, rel=0.015)
    assert surf.enclosed_volume_cc == pytest.approx(4 / 3 * np.pi * 1000 / 1000, rel=0.015)


def test_surface_closed_at_grid_edge_and_empty_level() -> None:
    dose = _cone_dose(GRID3, peak=30.0)
    # Level 5 Gy = sphere of radius 25 mm, cut by the grid (outer sample centres at ±20 mm): the padding
    # closes the mesh there; level 40 Gy is above the maximum: empty mesh.
    cut, empty = isodose_surfaces(dose, [5.0, 40.0])
    assert empty.faces.shape == (0, 3) and empty.enclosed_volume_cc == 0.0
    assert np.all(np.abs(cut.vertices_mm) <= 20.0 + 1e-9)
    # The closed mesh holds the 40 mm cube less its corners outside the sphere (exact: ~62.9 cm³ of 64);
    # clamped caps and chordal faces keep it within 2 %.
    assert cut.enclosed_volume_cc == pytest.approx(_cube_ball_volume_cc(20.0, 25.0), rel=0.02)


def _cube_ball_volume_cc(half_mm: float, radius_mm: float) -> float:
    """Volume (cm³) of the cube [-h, h]³ intersected with the ball of radius r, by midpoint quadrature."""
    n = 400
    x = (np.arange(n) + 0.5) / n * 2 * half_mm - half_mm
    xx, yy = np.meshgrid(x, x, indexing="ij")
    zmax = np.sqrt(np.clip(radius_mm**2 - xx**2 - yy**2, 0.0, None))
    height = 2 * np.minimum(zmax, half_mm)
    return float(height.sum() * (2 * half_mm / n) ** 2 / 1000.0)


def test_levels_and_errors() -> None:
    gy, pct = isodose_levels_gy([95, 50], percent_of_gy=60.0)
    np.testing.assert_allclose(gy, [57.0, 30.0])
    assert pct is not None and pct.tolist() == [95.0, 50.0]
    with pytest.raises(ParameterError, match="levels must be finite and > 0"):
        isodose_levels_gy([-1.0])
    with pytest.raises(ParameterError, match="at least one level"):
        isodose_levels_gy([])
    with pytest.raises(ParameterError, match="percent_of_gy must be > 0"):
        isodose_levels_gy([50], percent_of_gy=0.0)
    dose = _cone_dose(GRID3)
    with pytest.raises(GeometryError, match="must be 2D"):
        isodose_lines(dose, [1.0])
    with pytest.raises(GeometryError, match="must be 3D"):
        isodose_surfaces(dose_plane(dose), [1.0])
    with pytest.raises(ParameterError, match="step must be an integer"):
        isodose_surfaces(dose, [1.0], step=0)
    with pytest.raises(GeometryError, match="outside the volume"):
        dose_plane(dose, PlaneAxis.AXIAL, 100.0)
    with pytest.raises(ParameterError, match="axis must be a PlaneAxis"):
        dose_plane(dose, "axial")  # type: ignore[arg-type]
