"""Target meshes: from ROIs, from a dose iso-level, unions and centre lines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from intrepid.devices import (
    BeamGeometry,
    combine_meshes,
    project_mesh,
    structure_centerline,
    target_mesh_from_dose,
    target_mesh_from_roi,
)
from intrepid.dicom import ROI, Contour, ContourType
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, TriangleMesh, Volume, isosurface_mesh


def _sphere_roi(radius: float = 20.0, dz: float = 2.0, name: str = "PTV") -> ROI:
    t = np.linspace(0.0, 2 * np.pi, 180, endpoint=False)
    contours = []
    for z in np.arange(-radius + dz / 2, radius, dz):
        rho = math.sqrt(radius**2 - z**2)
        pts = np.column_stack([rho * np.cos(t), rho * np.sin(t), np.full_like(t, z)])
        contours.append(Contour(pts, ContourType.CLOSED_PLANAR))
    return ROI(1, name, "PTV", None, tuple(contours))


def _blob(centre: tuple[float, float, float], radius: float, spacing: float = 1.0) -> TriangleMesh:
    c = np.asarray(centre)
    g = Grid.from_bounds(c - radius - 3, c + radius + 3, (spacing,) * 3)
    d = np.linalg.norm(g.world_points() - c, axis=-1)
    return isosurface_mesh(Volume(radius - d, g), 0.0)


def test_mesh_from_roi_encloses_the_roi_volume() -> None:
    roi = _sphere_roi(20.0, 2.0)
    mesh = target_mesh_from_roi(roi, min_spacing_mm=1.0)
    assert mesh.is_closed()
    # Half-slice end caps: slabs of 2 mm, each with the disc area of its plane (a stepped sphere); marching
    # cubes at 1 mm bevels the steps. 3 % covers both.
    slab = sum(math.pi * (20.0**2 - z**2) * 2.0 for z in np.arange(-19.0, 20.0, 2.0))
    assert mesh.volume_mm3() == pytest.approx(slab, rel=0.03)


def test_mesh_from_roi_coarser_spacing_has_fewer_faces() -> None:
    roi = _sphere_roi(15.0, 2.0)
    assert target_mesh_from_roi(roi, min_spacing_mm=2.0).n_faces < target_mesh_from_roi(roi).n_faces


def test_mesh_from_empty_roi_is_refused() -> None:
    with pytest.raises(GeometryError, match="'EMPTY' encloses no volume"):
        target_mesh_from_roi(ROI(2, "EMPTY", "", None, ()))
    with pytest.raises(ParameterError, match="min_spacing_mm must be > 0"):
        target_mesh_from_roi(_sphere_roi(), min_spacing_mm=0.0)


def _radial_dose(spacing: float = 2.0) -> Volume:
    g = Grid.from_bounds((-40.0, -40.0, -40.0), (40.0, 40.0, 40.0), (spacing,) * 3)
    r = np.linalg.norm(g.world_points() - np.array([4.0, -6.0, 2.0]), axis=-1)
    return Volume(60.0 * np.exp(-((r / 25.0) ** 2)), g, Quantity.DOSE, "Gy")


def test_mesh_from_dose_level_is_the_iso_surface() -> None:
    dose = _radial_dose()
    level = 30.0
    mesh = target_mesh_from_dose(dose, level)
    expected_r = 25.0 * math.sqrt(math.log(2.0))  # 60 exp(-(r/25)^2) = 30
    r = np.linalg.norm(mesh.vertices_mm - np.array([4.0, -6.0, 2.0]), axis=1)
    # marching cubes on a smooth dose sampled every 2 mm: the surface is within 0.1 mm of the analytic one
    assert np.max(np.abs(r - expected_r)) < 0.1
    assert mesh.is_closed() and mesh.volume_mm3() > 0


def test_mesh_from_dose_min_spacing_coarsens() -> None:
    dose = _radial_dose(1.0)
    fine = target_mesh_from_dose(dose, 30.0)
    coarse = target_mesh_from_dose(dose, 30.0, min_spacing_mm=3.0)
    assert coarse.n_faces < fine.n_faces / 4
    # Still the same surface: linear interpolation along 3 mm voxel edges errs by about
    # h²/8 · |f''| / |f'| ≈ 9/8 · 0.13 / 2.0 ≈ 0.08 mm here (dose 30 Gy, gradient 2 Gy/mm, radius 20.8 mm).
    r = np.linalg.norm(coarse.vertices_mm - np.array([4.0, -6.0, 2.0]), axis=1)
    assert np.max(np.abs(r - 25.0 * math.sqrt(math.log(2.0)))) < 0.1


def test_mesh_from_dose_errors() -> None:
    dose = _radial_dose()
    with pytest.raises(ParameterError, match="level_gy must be reached by the dose"):
        target_mesh_from_dose(dose, 100.0)
    with pytest.raises(ParameterError, match="level_gy must be > 0"):
        target_mesh_from_dose(dose, -1.0)
    with pytest.raises(ParameterError, match=r"dose must have Quantity\.DOSE"):
        target_mesh_from_dose(dose.with_array(dose.array, quantity=Quantity.CT_NUMBER), 10.0)
    with pytest.raises(ParameterError, match="dose must be a Volume"):
        target_mesh_from_dose(np.zeros((3, 3, 3)), 1.0)  # type: ignore[arg-type]


def test_combine_meshes_projects_to_the_union() -> None:
    a, b = _blob((-15.0, 0.0, 0.0), 10.0), _blob((12.0, 0.0, 5.0), 8.0)
    both = combine_meshes([a, b])
    assert both.n_faces == a.n_faces + b.n_faces
    assert both.volume_mm3() == pytest.approx(a.volume_mm3() + b.volume_mm3(), rel=1e-12)
    g = BeamGeometry((2000.0, 2000.0))
    union = project_mesh(a, g, 0.0).union(project_mesh(b, g, 0.0))
    assert project_mesh(both, g, 0.0).symmetric_difference(union).area < 1e-6
    assert combine_meshes([a]) is a
    with pytest.raises(ParameterError, match="at least one TriangleMesh"):
        combine_meshes([])
    with pytest.raises(ParameterError, match=r"meshes\[1\] must be a TriangleMesh"):
        combine_meshes([a, "b"])  # type: ignore[list-item]


def _cylinder(centre_xy: tuple[float, float], radius: float, z_range: tuple[float, float]) -> TriangleMesh:
    g = Grid.from_bounds(
        (centre_xy[0] - radius - 3, centre_xy[1] - radius - 3, z_range[0] - 3),
        (centre_xy[0] + radius + 3, centre_xy[1] + radius + 3, z_range[1] + 3),
        (1.0, 1.0, 1.0),
    )
    p = g.world_points()
    rho = np.hypot(p[..., 0] - centre_xy[0], p[..., 1] - centre_xy[1])
    inside = np.minimum(radius - rho, np.minimum(p[..., 2] - z_range[0], z_range[1] - p[..., 2]))
    return isosurface_mesh(Volume(inside, g), 0.0)


def test_centerline_of_a_cylinder_is_its_axis() -> None:
    mesh = _cylinder((10.0, -5.0), 6.0, (-40.0, 40.0))
    line = structure_centerline(mesh, step_mm=5.0)
    # cross-sections of a marching-cubes cylinder are symmetric polygons: centroids within 0.05 mm of the axis
    np.testing.assert_allclose(line[:, 0], 10.0, atol=0.05)
    np.testing.assert_allclose(line[:, 1], -5.0, atol=0.05)
    assert (line[0, 2] < -30.0 and line[-1, 2] > 30.0) or (line[0, 2] > 30.0 and line[-1, 2] < -30.0)
    assert len(line) == 16
    explicit = structure_centerline(mesh, axis=(0.0, 0.0, 1.0), step_mm=5.0)
    np.testing.assert_allclose(np.sort(explicit[:, 2]), np.sort(line[:, 2]), atol=1e-6)


def test_centerline_errors() -> None:
    mesh = _cylinder((0.0, 0.0), 5.0, (-10.0, 10.0))
    with pytest.raises(ParameterError, match="step_mm must be > 0"):
        structure_centerline(mesh, step_mm=0.0)
    with pytest.raises(ParameterError, match="axis must be a non-zero 3-vector"):
        structure_centerline(mesh, axis=(0.0, 0.0, 0.0))
    with pytest.raises(GeometryError, match="use a smaller step"):
        structure_centerline(mesh, axis=(0.0, 0.0, 1.0), step_mm=100.0)
