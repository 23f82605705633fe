"""Tests of TriangleMesh and marching-cubes iso-surfaces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, TriangleMesh, Volume, isosurface_mesh


def _tetra() -> TriangleMesh:
    v = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    f = [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]
    return TriangleMesh(v, f)


def test_tetrahedron_closed_forms() -> None:
    m = _tetra()
    assert m.is_closed()
    assert m.volume_mm3() == pytest.approx(1 / 6)
    assert m.area_mm2() == pytest.approx(1.5 + math.sqrt(3) / 2)
    lo, hi = m.bounds
    assert lo.tolist() == [0, 0, 0] and hi.tolist() == [1, 1, 1]
    # Normals point outwards: the face opposite the origin has normal (1, 1, 1)/√3.
    np.testing.assert_allclose(m.face_normals()[3], np.ones(3) / math.sqrt(3))


def test_is_closed_detects_holes_and_inconsistent_orientation() -> None:
    m = _tetra()
    assert not TriangleMesh(m.vertices_mm, m.faces[:3]).is_closed()  # a missing face
    flipped = m.faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert not TriangleMesh(m.vertices_mm, flipped).is_closed()  # one face against the others
    assert not TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), int)).is_closed()


def test_transform_mirror_keeps_outward_orientation() -> None:
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    m = _tetra().transformed(mirror)
    assert m.is_closed() and m.volume_mm3() == pytest.approx(1 / 6)
    shifted = _tetra().transformed(np.array([[1, 0, 0, 5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]))
    assert shifted.bounds[0].tolist() == [5, 0, 0]


def test_mesh_validation() -> None:
    with pytest.raises(ParameterError, match="faces must index vertices"):
        TriangleMesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 3]])
    with pytest.raises(ParameterError, match="vertices_mm must be finite"):
        TriangleMesh([[0, 0, np.nan], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])
    with pytest.raises(ParameterError, match="4 x 4"):
        _tetra().transformed(np.eye(3))


def test_isosurface_of_sphere_volume_area_and_world_position() -> None:
    """Signed-distance-like field of a sphere r = 8 mm centred at (10, -5, 3): iso 0 → the sphere.

    Marching cubes on a 0.5 mm grid: volume within 1 %, area within 2 % of 4/3 π r³ and 4 π r².
    """
    grid = Grid((48, 44, 40), origin_mm=(0.25, -15.75, -8.75), spacing_mm=(0.5, 0.5, 0.5))
    pts = grid.world_points()
    field = 8.0 - np.linalg.norm(pts - np.array([10.0, -5.0, 3.0]), axis=-1)
    mesh = isosurface_mesh(Volume(field, grid, Quantity.GENERIC), 0.0)
    assert mesh.is_closed()
    assert mesh.volume_mm3() == pytest.approx(4 / 3 * math.pi * 8**3, rel=0.01)
    assert mesh.area_mm2() == pytest.approx(4 * math.pi * 8**2, rel=0.02)
    lo, hi = mesh.bounds
    np.testing.assert_allclose((lo + hi) / 2, [10, -5, 3], atol=0.05)


def test_isosurface_closes_at_border_and_handles_flipped_grid() -> None:
    # A constant-1 volume: padding closes the box; with a flipped i axis the volume stays positive.
    grid = Grid((4, 5, 6), (0, 0, 0), (1, 2, 3), direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
    mesh = isosurface_mesh(Volume(np.ones(grid.shape), grid), 0.5)
    assert mesh.is_closed() and mesh.volume_mm3() > 0
    empty = isosurface_mesh(Volume(np.zeros(grid.shape), grid), 0.5)
    assert empty.is_empty and empty.volume_mm3() == 0.0
    with pytest.raises(GeometryError, match="needs a 3D volume"):
        isosurface_mesh(Volume(np.ones((3, 3)), Grid((3, 3), (0, 0, 0), (1, 1, 1))), 0.5)
    with pytest.raises(ParameterError, match="level must be finite"):
        isosurface_mesh(Volume(np.ones(grid.shape), grid), float("nan"))
