"""Grid: index <-> world (LPS) conventions, DICOM plane attributes, bounds, sub-grids and validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid

# Positions of a few hundred mm computed through one 3 x 3 product: 1e-9 mm is far above float64 round-off.
ATOL_MM = 1e-9


def test_index_to_world_axis_aligned() -> None:
    g = Grid((2, 3, 4), origin_mm=(10.0, 20.0, 30.0), spacing_mm=(1.0, 2.0, 3.0))
    # index (i, j, k) = (column, row, slice) -> x, y, z
    np.testing.assert_allclose(g.index_to_world([3, 2, 1]), [13.0, 24.0, 33.0])
    np.testing.assert_allclose(g.world_to_index([13.0, 24.0, 33.0]), [3, 2, 1])
    assert g.shape_ijk == (4, 3, 2)
    assert g.ndim == 3 and g.size == 24
    assert g.voxel_volume_mm3 == pytest.approx(6.0)
    x, y, z = g.world_axes_mm()
    np.testing.assert_allclose(x, [10, 11, 12, 13])
    np.testing.assert_allclose(y, [20, 22, 24])
    np.testing.assert_allclose(z, [30, 33])
    # world_points is in array order [k, j, i]
    pts = g.world_points()
    assert pts.shape == (2, 3, 4, 3)
    np.testing.assert_allclose(pts[1, 2, 3], [13.0, 24.0, 33.0])


def test_affine_matches_index_to_world() -> None:
    rot = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix()
    g = Grid((5, 6, 7), (1.0, -2.0, 3.0), (0.5, 0.7, 1.1), tuple(rot.ravel()))
    idx = np.array([[1.0, 2.0, 3.0], [6.0, 5.0, 4.0]])
    homog = np.c_[idx, np.ones(2)] @ g.affine.T
    np.testing.assert_allclose(homog[:, :3], g.index_to_world(idx), atol=ATOL_MM)
    assert not g.is_axis_aligned and not g.is_axis_permuted


@settings(max_examples=50, deadline=None)
@given(
    euler=st.tuples(*[st.floats(-180.0, 180.0)] * 3),
    spacing=st.tuples(*[st.floats(0.1, 10.0)] * 3),
    origin=st.tuples(*[st.floats(-500.0, 500.0)] * 3),
    idx=st.tuples(*[st.floats(-50.0, 600.0)] * 3),
)
def test_world_index_round_trip(
    euler: tuple[float, float, float],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
    idx: tuple[float, float, float],
) -> None:
    rot = Rotation.from_euler("zyx", euler, degrees=True).as_matrix()
    g = Grid((3, 4, 5), origin, spacing, tuple(rot.ravel()))
    world = g.index_to_world(idx)
    # Relative 1e-9 on index coordinates of up to ~600 (world up to ~6500 mm).
    np.testing.assert_allclose(g.world_to_index(world), idx, atol=1e-8)


def test_from_dicom_plane_pixel_spacing_is_row_first() -> None:
    # Pixel Spacing (0028,0030) = [row spacing, column spacing]: with non-square pixels, moving one column
    # (i) goes 0.5 mm along the row direction, moving one row (j) goes 2.0 mm down the column.
    g = Grid.from_dicom_plane(
        (3, 10, 20),
        image_position_mm=(-100.0, -50.0, 20.0),
        image_orientation=(1, 0, 0, 0, 1, 0),
        pixel_spacing_mm=(2.0, 0.5),
        slice_spacing_mm=3.0,
    )
    assert g.spacing_mm == (0.5, 2.0, 3.0)
    np.testing.assert_allclose(g.index_to_world([1, 0, 0]), [-99.5, -50.0, 20.0])
    np.testing.assert_allclose(g.index_to_world([0, 1, 0]), [-100.0, -48.0, 20.0])
    np.testing.assert_allclose(g.index_to_world([0, 0, 1]), [-100.0, -50.0, 23.0])


def test_from_dicom_plane_sagittal_orientation() -> None:
    # Sagittal image: rows run posterior (+y), columns run inferior (-z); the normal is row x column = -x.
    g = Grid.from_dicom_plane((4, 5), (0.0, -10.0, 50.0), (0, 1, 0, 0, 0, -1), (1.5, 1.0))
    np.testing.assert_allclose(g.direction_matrix[:, 2], [-1, 0, 0], atol=ATOL_MM)
    np.testing.assert_allclose(g.index_to_world([2, 3]), [0.0, -8.0, 45.5], atol=ATOL_MM)
    assert g.is_axis_permuted and not g.is_axis_aligned


def test_from_bounds() -> None:
    g = Grid.from_bounds((-10.0, -20.0, 0.0), (10.0, 20.0, 9.0), (2.0, 5.0, 3.0))
    assert g.shape == (4, 9, 11)
    lo, hi = g.bounds_mm()
    np.testing.assert_allclose(lo, [-10, -20, 0])
    np.testing.assert_allclose(hi, [10, 20, 9])
    lo, hi = g.bounds_mm(edges=True)
    np.testing.assert_allclose(lo, [-11, -22.5, -1.5])
    np.testing.assert_allclose(hi, [11, 22.5, 10.5])


def test_contains_edges() -> None:
    g = Grid((2, 2, 2), (0.0, 0.0, 0.0), (2.0, 2.0, 2.0))
    pts = [[-1.0, 0.0, 0.0], [-1.01, 0.0, 0.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0], [2.5, 0.0, 0.0]]
    np.testing.assert_array_equal(g.contains(pts), [True, False, True, True, True])
    np.testing.assert_array_equal(g.contains(pts, edges=False), [False, False, True, False, False])


def test_2d_grid() -> None:
    g = Grid((3, 4), (0.0, 0.0, 5.0), (0.5, 0.25, 1.0))
    assert g.ndim == 2 and g.shape_ijk == (4, 3, 1)
    np.testing.assert_allclose(g.index_to_world([[3, 2]]), [[1.5, 0.5, 5.0]])
    lo, hi = g.bounds_mm()
    np.testing.assert_allclose(lo, [0, 0, 5])
    np.testing.assert_allclose(hi, [1.5, 0.5, 5])
    assert g.world_points().shape == (3, 4, 3)
    # contains ignores the distance to the plane of a 2D grid
    assert g.contains([[1.0, 0.25, 40.0]]).all()


def test_subgrid_and_array_slices_agree() -> None:
    g = Grid((5, 6, 7), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0))
    sub = g.subgrid((1, 2, 3), (4, 6, 5))
    assert sub.shape == (2, 4, 3)
    sl = g.array_slices((1, 2, 3), (4, 6, 5))
    pts = g.world_points()[sl]
    np.testing.assert_allclose(sub.world_points(), pts)
    with pytest.raises(
        ParameterError, match=r"along axis j must satisfy 0 <= start < stop <= 6, got \[2, 9\)"
    ):
        g.subgrid((1, 2, 3), (4, 9, 5))
    with pytest.raises(ParameterError, match="must have 3 values for a 3D grid"):
        g.subgrid((1, 2), (3, 4))


def test_with_shape_spacing_and_is_close() -> None:
    g = Grid((5, 6, 7), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0))
    h = g.with_shape_spacing((5, 6, 7), (1.0, 2.0, 3.0))
    assert g.is_close(h) and g == h
    assert not g.is_close(g.with_shape_spacing((5, 6, 8), (1.0, 2.0, 3.0)))
    assert not g.is_close(Grid((5, 6, 7), (1.1, 2.0, 3.0), (1.0, 2.0, 3.0)))
    assert g.is_close(Grid((5, 6, 7), (1.0 + 1e-5, 2.0, 3.0), (1.0, 2.0, 3.0)))
    assert not g.is_close(Grid((5, 6, 7), (1.0, 2.0, 3.0), (1.0, 2.0, 3.01)))
    assert not g.is_close(Grid((5, 6, 7), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1)))


def test_to_dict() -> None:
    d = Grid((2, 3, 4), (1.0, 2.0, 3.0), (0.5, 0.5, 2.0)).to_dict()
    assert d == {
        "shape": [2, 3, 4],
        "origin_mm": [1.0, 2.0, 3.0],
        "spacing_mm": [0.5, 0.5, 2.0],
        "direction": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    }


def test_validation() -> None:
    with pytest.raises(ParameterError, match=r"shape must have 2 or 3 dimensions, got \(4,\)"):
        Grid((4,), (0, 0, 0), (1, 1, 1))
    with pytest.raises(ParameterError, match=r"shape must be positive in every dimension, got \(0, 2, 2\)"):
        Grid((0, 2, 2), (0, 0, 0), (1, 1, 1))
    with pytest.raises(
        ParameterError, match=r"spacing_mm must be > 0 along every axis, got \(1\.0, -1\.0, 1\.0\)"
    ):
        Grid((2, 2, 2), (0, 0, 0), (1, -1, 1))
    with pytest.raises(ParameterError, match=r"origin_mm must have 3 values \(x, y, z\), got 2"):
        Grid((2, 2, 2), (0, 0), (1, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="origin_mm must be finite"):
        Grid((2, 2, 2), (0, np.nan, 0), (1, 1, 1))
    with pytest.raises(GeometryError, match="direction must be orthonormal"):
        Grid((2, 2, 2), (0, 0, 0), (1, 1, 1), (1, 0, 0, 0, 2, 0, 0, 0, 1))
    with pytest.raises(ParameterError, match="direction must be a 3 x 3 matrix, got 4 values"):
        Grid((2, 2, 2), (0, 0, 0), (1, 1, 1), (1, 0, 0, 1))
    g = Grid((2, 2, 2), (0, 0, 0), (1, 1, 1))
    with pytest.raises(
        ParameterError, match=r"points_mm must have 3 components \(x, y, z\), got shape \(2,\)"
    ):
        g.world_to_index([1.0, 2.0])
    with pytest.raises(ParameterError, match="index must have 2 or 3 components"):
        g.index_to_world([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ParameterError, match=r"axis must be 0 \(i\), 1 \(j\) or 2 \(k\), got 3"):
        g.axis_coordinates_mm(3)
    with pytest.raises(GeometryError, match="world_axes_mm needs an axis-aligned grid"):
        Grid((2, 2, 2), (0, 0, 0), (1, 1, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1)).world_axes_mm()
    with pytest.raises(ParameterError, match="image_orientation must have 6 values, got 3"):
        Grid.from_dicom_plane((2, 2), (0, 0, 0), (1, 0, 0), (1, 1))
    with pytest.raises(ParameterError, match=r"pixel_spacing_mm must have 2 values \(row, column\), got 1"):
        Grid.from_dicom_plane((2, 2), (0, 0, 0), (1, 0, 0, 0, 1, 0), (1,))
    with pytest.raises(ParameterError, match="max_mm must be >= min_mm"):
        Grid.from_bounds((0, 0, 0), (-1, 1, 1), (1, 1, 1))
