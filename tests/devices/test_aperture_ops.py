"""2D aperture manipulations: half and corner planes, mount, mill radius, smoothing, islands, feature size."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, Polygon, box

from intrepid.devices import (
    CornerPlane,
    HalfPlane,
    MillMode,
    Mount,
    MountShape,
    apply_mill_radius,
    corner_plane_region,
    fill_islands,
    half_plane_region,
    min_feature_size_mm,
    mount_region,
    smooth_outline,
)
from intrepid.devices._aperture_ops import QUAD_SEGS
from intrepid.errors import ParameterError

# Offsets approximate a quarter circle by 16 chords: the expected areas below use the same polygonal arcs,
# so they agree to rounding; 1e-6 mm² is far above it.
AREA_TOL = 1e-6
QUARTER_ARC_AREA = 8.0 * math.sin(math.pi / 32.0)  # area of a 16-chord quarter disc of radius 1


def _star(seed: int, n: int = 9) -> Polygon:
    rng = np.random.default_rng(seed)
    angles = np.sort(rng.uniform(0.0, 2 * np.pi, n))
    radii = rng.uniform(8.0, 30.0, n)
    return shapely.make_valid(Polygon(np.column_stack([radii * np.cos(angles), radii * np.sin(angles)])))


def test_half_plane_removes_its_positive_side() -> None:
    square = box(-50, -50, 50, 50)
    right = square.difference(half_plane_region(HalfPlane((10.0, 0.0), 0.0)))
    assert right.bounds == pytest.approx((-50, -50, 10, 50), abs=1e-9)
    up = square.difference(half_plane_region(HalfPlane((0.0, -20.0), 90.0)))
    assert up.area == pytest.approx(100 * 30, abs=1e-6)
    diagonal = square.difference(half_plane_region(HalfPlane((0.0, 0.0), 45.0)))
    assert diagonal.area == pytest.approx(5000.0, abs=1e-6)
    assert diagonal.contains(Point(-10, -10)) and not diagonal.contains(Point(10, 10))


def test_corner_plane_removes_where_both_sides_are_positive() -> None:
    square = box(-50, -50, 50, 50)
    cut = square.difference(corner_plane_region(CornerPlane((0.0, 0.0), 0.0, 90.0)))
    assert cut.area == pytest.approx(0.75 * 10000.0, abs=1e-6)
    assert not cut.contains(Point(10, 10))
    assert cut.contains(Point(10, -10)) and cut.contains(Point(-10, 10))
    shifted = square.difference(corner_plane_region(CornerPlane((20.0, -10.0), 0.0, 90.0)))
    assert shifted.area == pytest.approx(10000.0 - 30 * 60, abs=1e-6)


def test_plane_validation() -> None:
    with pytest.raises(ParameterError, match="origin_mm must be 2 finite values"):
        HalfPlane((1.0,), 0.0)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="angle_deg must be finite"):
        HalfPlane((0.0, 0.0), float("inf"))
    with pytest.raises(ParameterError, match="angle1_deg and angle2_deg must differ"):
        CornerPlane((0.0, 0.0), 30.0, 390.0)


def test_mount_regions() -> None:
    circle = mount_region(Mount.circle(60.0))
    assert circle.area == pytest.approx(math.pi * 3600.0, rel=2e-4)  # 64 chords per quarter
    rect = mount_region(Mount.rectangle(80.0, 40.0))
    assert rect.bounds == (-40.0, -20.0, 40.0, 20.0)
    assert Mount("rectangle", width_mm=1, height_mm=2).shape is MountShape.RECTANGLE  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="radius_mm is required for a circle mount"):
        Mount(MountShape.CIRCLE)
    with pytest.raises(ParameterError, match="height_mm must be > 0"):
        Mount.rectangle(10.0, -1.0)
    with pytest.raises(ParameterError, match="shape must be 'circle' or 'rectangle'"):
        Mount("hexagon", radius_mm=3)  # type: ignore[arg-type]


def test_mill_open_rounds_the_pocket_corners() -> None:
    """O ⊖ r ⊕ r of a square: each corner loses (1 − π/4) r² (polygonal arc: 1 − 8 sin(π/32)) and gets the
    tool radius."""
    r = 5.0
    milled = apply_mill_radius(box(0, 0, 40, 40), r, MillMode.OPEN)
    assert milled.area == pytest.approx(1600.0 - 4 * (1 - QUARTER_ARC_AREA) * r * r, abs=AREA_TOL)
    # the corner is now an arc of radius r centred at (r, r)
    corner = np.asarray(milled.exterior.coords)
    near = corner[(corner[:, 0] < r) & (corner[:, 1] < r)]
    np.testing.assert_allclose(np.hypot(near[:, 0] - r, near[:, 1] - r), r, atol=1e-9)


def test_mill_open_removes_strips_narrower_than_the_tool() -> None:
    shape = box(0, 0, 40, 40).union(box(40, 18, 60, 22))  # a 4 mm wide, 20 mm long slot
    milled = apply_mill_radius(shape, 3.0, MillMode.OPEN)
    # The slot is gone; the tool still enters its mouth until it touches the slot's corners (40, 18) and
    # (40, 22): centre at x = 40 − √(3² − 2²), reach 3 mm further (0.01 mm: chord sag of the polygonal arc).
    assert milled.bounds[2] == pytest.approx(40.0 - math.sqrt(5.0) + 3.0, abs=0.01)


def test_mill_close_fills_narrow_notches_and_keeps_the_opening() -> None:
    notched = box(0, 0, 40, 40).difference(box(18, 20, 22, 41))  # a 4 mm notch of material
    closed = apply_mill_radius(notched, 3.0, MillMode.CLOSE)
    # closing never removes opening, up to the chord approximation: a sliver of about 0.0003 mm² at each of
    # the six corners of the shape for r = 3 mm
    assert notched.difference(closed).area < 0.005
    # The notch is filled, except where it opens on the outside (y = 40): there the rolling disc of radius 3
    # dips into the 4 mm gap, leaving a circular segment of r² acos(d/r) − d √(r² − d²), d = √5.
    d = math.sqrt(5.0)
    segment = 9.0 * math.acos(d / 3.0) - d * 2.0
    assert closed.area == pytest.approx(1600.0 - segment, abs=0.02)  # 0.02 mm²: chord approximation
    both = apply_mill_radius(notched, 3.0, MillMode.BOTH)
    assert both.area < closed.area  # then opened: the outer corners get the tool radius


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), r=st.floats(0.5, 6.0), mode=st.sampled_from(list(MillMode)))
def test_mill_radius_is_idempotent(seed: int, r: float, mode: MillMode) -> None:
    """Openings, closings and open∘close are idempotent: a second pass changes nothing.

    The second pass re-approximates the arcs by chords in each of its two offsets (inward, outward); each
    moves the outline by at most the chord sag r (1 − cos(π / (4 QUAD_SEGS))) ≈ 0.0012 r, so the area changes
    by at most 2 × sag × perimeter (seed 377, r = 5 mm needs more than one sag: 0.58 mm² for 0.56 mm²).
    """
    sag = 1.0 - math.cos(math.pi / (4 * QUAD_SEGS))
    once = apply_mill_radius(_star(seed), r, mode)
    twice = apply_mill_radius(once, r, mode)
    assert once.symmetric_difference(twice).area <= 2 * sag * r * max(once.length, 1.0) + 1e-6


def test_mill_zero_radius_and_errors() -> None:
    shape = box(0, 0, 10, 10)
    assert apply_mill_radius(shape, 0.0) is shape
    with pytest.raises(ParameterError, match="mill radius_mm must be >= 0"):
        apply_mill_radius(shape, -1.0)
    with pytest.raises(ParameterError, match="mode must be a MillMode"):
        apply_mill_radius(shape, 1.0, "open")  # type: ignore[arg-type]


def test_smoothing_moves_each_vertex_exactly_as_defined() -> None:
    """Square of side L: at corner v with neighbours a, b the midpoints are (a+v)/2, (v+b)/2; the centre of
    the segment joining them is (a + 2v + b)/4, and v moves there by the fraction f."""
    side, f = 40.0, 0.5
    smoothed = smooth_outline(box(0, 0, side, side), f, 1)
    coords = np.asarray(smoothed.exterior.coords)[:-1]
    # every corner moves by f * (L/4, L/4) towards the inside
    expected = {
        (side / 8, side / 8),
        (side - side / 8, side / 8),
        (side - side / 8, side - side / 8),
        (side / 8, side - side / 8),
    }
    assert {(round(x, 9), round(y, 9)) for x, y in coords} == expected


def test_smoothing_fraction_one_reaches_line1_and_iterations_compose() -> None:
    tri = Polygon([(0, 0), (30, 0), (0, 30)])
    full = smooth_outline(tri, 1.0, 1)
    c = np.asarray(full.exterior.coords)[:-1]
    # vertex (0, 0): neighbours (0, 30) and (30, 0) -> (0+0+2*0... )/4 = (7.5, 7.5)
    assert any(np.allclose(p, (7.5, 7.5)) for p in c)
    three = smooth_outline(tri, 0.3, 3)
    stepwise = smooth_outline(smooth_outline(smooth_outline(tri, 0.3, 1), 0.3, 1), 0.3, 1)
    assert three.symmetric_difference(stepwise).area < 1e-9


def test_smoothing_identity_cases_and_holes() -> None:
    shape = box(0, 0, 10, 10)
    assert smooth_outline(shape, 0.0, 5) is shape
    assert smooth_outline(shape, 0.7, 0) is shape
    holed = Polygon([(0, 0), (40, 0), (40, 40), (0, 40)], [[(10, 10), (30, 10), (30, 30), (10, 30)]])
    out = smooth_outline(holed, 0.5, 1)
    assert len(out.interiors) == 1  # holes are smoothed too (they grow: their corners move inwards)
    assert Polygon(out.interiors[0]).area < 400.0


@pytest.mark.parametrize(
    ("fraction", "iterations", "match"),
    [
        (1.5, 1, r"smoothing fraction must be in \[0, 1\]"),
        (-0.1, 1, r"smoothing fraction must be in \[0, 1\]"),
        (0.5, -1, "iterations must be an integer >= 0"),
        (0.5, 1.5, "iterations must be an integer >= 0"),
    ],
)
def test_smoothing_errors(fraction: float, iterations: int, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        smooth_outline(box(0, 0, 1, 1), fraction, iterations)


def test_fill_islands() -> None:
    holed = Polygon([(0, 0), (40, 0), (40, 40), (0, 40)], [[(10, 10), (30, 10), (30, 30), (10, 30)]])
    filled = fill_islands(holed)
    assert filled.area == pytest.approx(1600.0) and len(filled.interiors) == 0
    two = shapely.union_all([holed, box(100, 0, 110, 10)])
    assert fill_islands(two).area == pytest.approx(1700.0)


def test_min_feature_size() -> None:
    # a 10 mm wide slot milled with a 3 mm tool: the tightest features are the 3 mm corner arcs -> 6 mm
    slot = apply_mill_radius(box(0, 0, 100, 10), 3.0)
    assert min_feature_size_mm(slot) == pytest.approx(6.0, abs=0.15)
    # a milled pocket with a 4 mm wide round-ended arm: the arm
    arm = apply_mill_radius(box(0, 0, 40, 40), 3.0).union(
        shapely.LineString([(40, 20), (80, 20)]).buffer(2.0)
    )
    assert min_feature_size_mm(arm) == pytest.approx(4.0, abs=0.15)
    # a round opening reports a lower bound: 1.8 × its inscribed radius (the search stops at 90 %)
    assert min_feature_size_mm(Point(0, 0).buffer(10.0)) == pytest.approx(18.0, abs=0.05)
    # sharp corners cannot be cut by any tool
    assert min_feature_size_mm(box(0, 0, 50, 50)) < 0.2
    # two openings 2 mm apart: the wall between them
    two = apply_mill_radius(shapely.union_all([box(0, 0, 30, 30), box(32, 0, 62, 30)]), 5.0)
    assert min_feature_size_mm(two) == pytest.approx(2.0, abs=1e-6)
    assert min_feature_size_mm(Polygon()) is None
