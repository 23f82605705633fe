"""Tests of contour rasterisation: binary (voxel-centre) and exact fractional masks, end caps, holes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.path import Path as MplPath

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, end_cap_slabs, polygon_stack_mask, polygon_stack_occupancy


def _circle(r: float, z: float, n: int = 720, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)])


def _rect(x0: float, y0: float, x1: float, y1: float, z: float) -> np.ndarray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)


def _shoelace(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def _star(rng: np.random.Generator, n: int, z: float) -> np.ndarray:
    """Random simple polygon, star-shaped about its centre: n >= 4 vertices, angular gaps < 180°."""
    ang = (np.arange(n) + rng.uniform(0.0, 0.4, n)) * (2 * np.pi / n)
    r = rng.uniform(2.0, 9.0, n)
    return np.column_stack([r * np.cos(ang) + 0.37, r * np.sin(ang) - 0.21, np.full(n, z)])


# ----------------------------------------------------------------------------------------------- end caps
def test_end_cap_slabs_half_slice_caps_and_gaps() -> None:
    lo, hi = end_cap_slabs([0.0, 3.0, 6.0, 18.0, 21.0])
    # Runs {0, 3, 6} and {18, 21}: caps of half the 3 mm contour spacing, the 12 mm gap stays empty.
    assert lo.tolist() == [-1.5, 1.5, 4.5, 16.5, 19.5]
    assert hi.tolist() == [1.5, 4.5, 7.5, 19.5, 22.5]


def test_end_cap_slabs_single_plane_and_errors() -> None:
    lo, hi = end_cap_slabs([5.0], single_plane_thickness_mm=2.0)
    assert (lo.tolist(), hi.tolist()) == ([4.0], [6.0])
    with pytest.raises(ParameterError, match="single_plane_thickness_mm must be > 0"):
        end_cap_slabs([5.0])
    with pytest.raises(ParameterError, match="strictly increasing"):
        end_cap_slabs([0.0, 0.0, 1.0])


# ----------------------------------------------------------------------------------------------- exact area
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(4, 25), dx=st.floats(0.3, 3.0), dy=st.floats(0.3, 3.0))
def test_occupancy_sums_to_exact_polygon_area(seed: int, n: int, dx: float, dy: float) -> None:
    """Σ occupancy × pixel area equals the shoelace area of any simple polygon (exact method, round-off)."""
    rng = np.random.default_rng(seed)
    poly = _star(rng, n, 0.0)
    if rng.random() < 0.5:
        poly = poly[::-1]  # orientation must not matter
    nx, ny = int(24 / dx) + 2, int(24 / dy) + 2
    grid = Grid((1, ny, nx), origin_mm=(-12.0, -12.0, 0.0), spacing_mm=(dx, dy, 2.0))
    occ = polygon_stack_occupancy([poly], grid).array
    assert occ.dtype == np.float32 and occ.min() >= 0.0 and occ.max() <= 1.0
    # float32 storage: relative 1e-5 on the total.
    assert float(occ.sum(dtype=np.float64)) * dx * dy == pytest.approx(_shoelace(poly), rel=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(4, 25))
def test_binary_mask_is_voxel_centre_rule(seed: int, n: int) -> None:
    """The binary mask equals an independent point-in-polygon test at voxel centres (matplotlib)."""
    rng = np.random.default_rng(seed)
    poly = _star(rng, n, 0.0)
    grid = Grid((1, 23, 21), origin_mm=(-10.1, -11.3, 0.0), spacing_mm=(1.01, 1.03, 1.0))
    mask = polygon_stack_mask([poly], grid).array[0]
    pts = grid.world_points()[0][..., :2].reshape(-1, 2)
    expected = MplPath(poly[:, :2]).contains_points(pts).reshape(mask.shape)
    assert np.array_equal(mask, expected)


def test_pixel_fully_and_partly_covered_closed_form() -> None:
    # Square [0, 1.5]² on 1 mm pixels centred at 0.5, 1.5, 2.5: one full, two halves, one quarter pixel.
    grid = Grid((1, 3, 3), origin_mm=(0.5, 0.5, 0.0), spacing_mm=(1, 1, 1))
    occ = polygon_stack_occupancy([_rect(0, 0, 1.5, 1.5, 0)], grid).array[0]
    np.testing.assert_allclose(occ, [[1, 0.5, 0], [0.5, 0.25, 0], [0, 0, 0]], atol=1e-7)


def test_hole_nested_island_and_keyhole() -> None:
    grid = Grid((1, 40, 40), origin_mm=(-19.5, -19.5, 0), spacing_mm=(1, 1, 1))
    outer, hole, island = _rect(-15, -15, 15, 15, 0), _rect(-10, -10, 10, 10, 0), _rect(-4, -4, 4, 4, 0)
    # Same orientation for all three: the nesting rule, not the orientation, makes the hole.
    occ = polygon_stack_occupancy([outer, hole, island], grid).array
    assert float(occ.sum()) == pytest.approx(900 - 400 + 64, abs=1e-3)
    mask = polygon_stack_mask([outer, hole, island], grid).array
    assert int(mask.sum()) == 900 - 400 + 64
    assert mask[0, 20, 20] and not mask[0, 20, 12] and mask[0, 20, 6]
    # Keyhole: one polygon around the outer square, in through a zero-width channel, around the hole.
    keyhole = np.array([[-15, -15], [15, -15], [15, 15], [0, 15], [0, 10], [10, 10], [10, -10], [-10, -10],
                        [-10, 10], [0, 10], [0, 15], [-15, 15]], dtype=float)
    keyhole = np.column_stack([keyhole, np.zeros(len(keyhole))])
    assert float(polygon_stack_occupancy([keyhole], grid).array.sum()) == pytest.approx(500, abs=1e-3)
    assert int(polygon_stack_mask([keyhole], grid).array.sum()) == 500


# ----------------------------------------------------------------------------------------------- 3D volumes
@pytest.mark.parametrize("offset_mm", [0.0, 0.7, 1.5])
def test_sphere_volume_on_dose_grid(offset_mm: float) -> None:
    """Sphere r = 5 mm contoured every 3 mm, on 2.5 × 2.5 × 3 mm voxels: volume within 3 % of 4/3 π r³.

    The fractional mask integrates the end-capped model exactly; the model itself (3 mm slabs) differs from
    the sphere by at most 2.6 % (planes at 0, ±3 mm: 3π(25 + 2·16) = 537.2 mm³ vs 523.6 mm³).
    """
    r = 5.0
    z_planes = np.arange(-6, 6.01, 3.0) + offset_mm
    polys = [_circle(math.sqrt(r * r - z * z), z) for z in z_planes if abs(z) < r]
    grid = Grid((12, 20, 20), origin_mm=(-23.75, -23.75, -18 + offset_mm), spacing_mm=(2.5, 2.5, 3.0))
    occ = polygon_stack_occupancy(polys, grid)
    model = 3.0 * sum(math.pi * (r * r - z * z) for z in z_planes if abs(z) < r)
    volume = float(occ.array.sum(dtype=np.float64)) * grid.voxel_volume_mm3
    # 720-gon area is π r² (1 - 1.3e-5): 1e-4 relative covers it and float32 sums.
    assert volume == pytest.approx(model, rel=1e-4)
    assert volume == pytest.approx(4 / 3 * math.pi * r**3, rel=0.03)


def test_cylinder_and_cube_volumes_with_slices_between_planes() -> None:
    """Closed forms: cylinder r = 7 mm, cube 12 mm; grid slices fall between contour planes."""
    spacing = 2.0
    z_planes = np.arange(-9.0, 9.01, spacing)  # slabs cover [-10, 10]: height 20 mm
    cyl = [_circle(7.0, z) for z in z_planes]
    grid = Grid((16, 24, 24), origin_mm=(-17.25, -17.25, -16.7), spacing_mm=(1.5, 1.5, 2.5))
    v_cyl = float(polygon_stack_occupancy(cyl, grid).array.sum(dtype=np.float64)) * grid.voxel_volume_mm3
    assert v_cyl == pytest.approx(math.pi * 49 * 20 * (1 - 1.3e-5), rel=1e-4)
    cube = [_rect(-6, -6, 6, 6, z) for z in np.arange(-5.0, 5.01, 2.0)]  # slabs [-6, 6]
    v_cube = float(polygon_stack_occupancy(cube, grid).array.sum(dtype=np.float64)) * grid.voxel_volume_mm3
    assert v_cube == pytest.approx(12**3, rel=1e-5)


def test_binary_mask_uses_nearest_plane_within_slab() -> None:
    # Planes at z = 0 (big square) and z = 2 (small square); slabs [-1, 1) and [1, 3).
    polys = [_rect(-5, -5, 5, 5, 0.0), _rect(-2, -2, 2, 2, 2.0)]
    grid = Grid((5, 12, 12), origin_mm=(-5.5, -5.5, -1.6), spacing_mm=(1, 1, 1.0))  # z = -1.6 ... 2.4
    mask = polygon_stack_mask(polys, grid).array
    assert [int(m.sum()) for m in mask] == [0, 100, 100, 16, 16]  # z -1.6, -0.6, 0.4 | 1.4, 2.4


def test_supersample_converges_to_exact() -> None:
    polys = [_circle(3.2, z) for z in (0.0, 2.0, 4.0)]
    grid = Grid((4, 10, 10), origin_mm=(-4.5, -4.5, -1.0), spacing_mm=(1, 1, 2))
    exact = polygon_stack_occupancy(polys, grid).array.sum(dtype=np.float64)
    coarse = polygon_stack_occupancy(polys, grid, supersample=1).array.sum(dtype=np.float64)
    fine = polygon_stack_occupancy(polys, grid, supersample=8).array.sum(dtype=np.float64)
    assert coarse == polygon_stack_mask(polys, grid).array.sum()
    assert abs(fine - exact) < abs(coarse - exact) + 1e-9
    assert fine == pytest.approx(exact, rel=0.02)  # 8 × 8 points per pixel: ~1 % sampling error
    with pytest.raises(ParameterError, match="supersample must be an integer >= 1"):
        polygon_stack_occupancy(polys, grid, supersample=0)


# ----------------------------------------------------------------------------------------------- grids
def test_permuted_and_flipped_grid_matches_axis_aligned() -> None:
    """A coronal-layout grid with flipped axes gives the same world occupancy as the axis-aligned grid."""
    polys = [_circle(4.0, z, cx=1.0, cy=-2.0) for z in (-2.0, 0.0, 2.0)] + [_rect(-8, -8, -6, 6, 0.0)]
    ref_grid = Grid((6, 20, 20), origin_mm=(-9.5, -11.5, -3.5), spacing_mm=(1, 1.2, 1.4))
    ref = polygon_stack_occupancy(polys, ref_grid)
    # i along -x, j along +z, k along -y.
    direction = np.array([[-1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=float)
    xs = ref_grid.origin_mm[0] + 19 * 1.0
    ys = ref_grid.origin_mm[1] + 19 * 1.2
    perm = Grid((20, 6, 20), origin_mm=(xs, ys, -3.5), spacing_mm=(1.0, 1.4, 1.2),
                direction=tuple(direction.reshape(-1)))
    occ = polygon_stack_occupancy(polys, perm)
    assert occ.grid is perm and occ.quantity is Quantity.MASK
    # Compare voxel by voxel through world coordinates.
    idx = np.rint(ref_grid.world_to_index(perm.world_points())).astype(int)
    np.testing.assert_allclose(occ.array, ref.array[idx[..., 2], idx[..., 1], idx[..., 0]], atol=1e-6)
    mask = polygon_stack_mask(polys, perm).array
    ref_mask = polygon_stack_mask(polys, ref_grid).array
    assert np.array_equal(mask, ref_mask[idx[..., 2], idx[..., 1], idx[..., 0]])


def test_crop_returns_subgrid_with_same_values() -> None:
    polys = [_circle(3.0, z, cx=4.0) for z in (0.0, 1.0)]
    grid = Grid((10, 30, 30), origin_mm=(-14.5, -14.5, -4.5), spacing_mm=(1, 1, 1))
    full = polygon_stack_occupancy(polys, grid)
    crop = polygon_stack_occupancy(polys, grid, crop=True)
    assert crop.array.size < full.array.size
    start = np.rint(grid.world_to_index(crop.grid.origin_mm)).astype(int)
    stop = start + np.array(crop.grid.shape_ijk)
    np.testing.assert_array_equal(full.array[grid.array_slices(start, stop)], crop.array)
    assert float(full.array.sum()) == pytest.approx(float(crop.array.sum()))


def test_two_d_grid_and_outside_and_empty() -> None:
    grid2d = Grid((10, 10), origin_mm=(-4.5, -4.5, 0.0), spacing_mm=(1, 1, 1))
    occ = polygon_stack_occupancy([_rect(-2, -2, 2, 2, 0.0)], grid2d)
    assert occ.array.shape == (10, 10) and float(occ.array.sum()) == pytest.approx(16)
    grid = Grid((3, 5, 5), origin_mm=(0, 0, 0), spacing_mm=(1, 1, 1))
    assert not polygon_stack_mask([_rect(50, 50, 60, 60, 1.0)], grid).array.any()
    assert polygon_stack_occupancy([], grid).array.sum() == 0
    assert polygon_stack_occupancy([], grid, crop=True).array.shape == (1, 1, 1)
    # Partly outside: only the part inside the grid counts (box [0, 4] covers x, y edges -0.5 ... 4.5).
    part = polygon_stack_occupancy([_rect(-10, 0, 2, 4, 1.0)], grid).array
    assert float(part.sum()) == pytest.approx(2.5 * 4)


def test_refuses_oblique_grid_and_non_axial_polygons() -> None:
    c, s = math.cos(0.3), math.sin(0.3)
    oblique = Grid((2, 4, 4), (0, 0, 0), (1, 1, 1), direction=(c, s, 0, -s, c, 0, 0, 0, 1))
    with pytest.raises(GeometryError, match="oblique"):
        polygon_stack_mask([_rect(0, 0, 1, 1, 0)], oblique)
    tilted = np.array([[0, 0, 0], [1, 0, 0.5], [1, 1, 1.0]])
    grid = Grid((2, 4, 4), (0, 0, 0), (1, 1, 1))
    with pytest.raises(GeometryError, match="polygon 0 is not in a plane of constant z"):
        polygon_stack_occupancy([tilted], grid)
    with pytest.raises(ParameterError, match=r"polygon 0 must have shape \(points, 3\)"):
        polygon_stack_occupancy([np.zeros((4, 2))], grid)
