"""Tests of the field apertures and their error-function penumbra."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrepid.errors import ParameterError
from intrepid.physics import Field, FieldShape
from intrepid.physics._fields import PENUMBRA_80_20_PER_SIGMA


def test_names_and_sizes() -> None:
    assert Field.square(10).name == "10x10"
    f = Field.rectangle(2, 10)
    assert (f.name, f.width_mm, f.length_mm, f.area_mm2) == ("2x10", 20.0, 100.0, 2000.0)
    e = Field.ellipse(6, 10)
    assert e.name == "ellipse 6x10" and e.shape is FieldShape.ELLIPSE
    assert e.area_mm2 == pytest.approx(np.pi * 30 * 50)
    # Sterling's equivalent square of a 2 x 10 field: 2 * 20 * 100 / 120 mm.
    assert f.equivalent_square_mm == pytest.approx(2 * 20 * 100 / 120)


def test_sharp_indicator() -> None:
    f = Field.rectangle(4, 10)
    u = np.array([0.0, 19.9, 20.1, 0.0, 0.0])
    v = np.array([0.0, 0.0, 0.0, 49.9, 50.1])
    np.testing.assert_array_equal(f.relative_fluence(u, v), [1, 1, 0, 1, 0])


@settings(max_examples=25, deadline=None)
@given(penumbra=st.floats(0.5, 10.0), side=st.floats(10.0, 30.0))
def test_edge_is_an_error_function(penumbra: float, side: float) -> None:
    # Closed form: a blurred straight edge is 50 % at the edge and its 80-20 % width equals penumbra_mm
    # (exact up to the other edges' contributions: the nearest is side/2 >= 50 mm >= 8.4 sigma away for
    # penumbra <= 10 mm, so below 1e-6; on a 4 cm field with an 8 mm penumbra it would reach 1.3e-5).
    f = Field.square(side)
    edge = 5.0 * side
    sigma = penumbra / PENUMBRA_80_20_PER_SIGMA
    assert float(f.relative_fluence(edge, 0.0, penumbra_mm=penumbra)) == pytest.approx(0.5, abs=1e-6)
    u = np.linspace(edge - 4 * sigma, edge + 4 * sigma, 4001)
    prof = f.relative_fluence(u, 0.0, penumbra_mm=penumbra)
    u80 = np.interp(-0.8, -prof, u)
    u20 = np.interp(-0.2, -prof, u)
    assert u20 - u80 == pytest.approx(penumbra, rel=1e-3)


def test_grid_and_pointwise_evaluation_agree() -> None:
    f = Field.rectangle(3, 7)
    u, v = np.meshgrid(np.linspace(-30, 30, 41), np.linspace(-50, 50, 31))
    grid = f.relative_fluence(u, v, penumbra_mm=3.0)
    points = f.relative_fluence(u.ravel(), v.ravel(), penumbra_mm=3.0).reshape(u.shape)
    np.testing.assert_allclose(grid, points, atol=1e-12)


def test_mlc_aperture_equals_jaws_when_leaves_are_open() -> None:
    bounds = np.arange(-100.0, 101.0, 10.0)  # 20 leaf pairs of 10 mm
    n = bounds.size - 1
    leaves = np.concatenate([np.full(n, -50.0), np.full(n, 50.0)])
    mlc = Field.from_jaws_and_mlc(-200, 200, -50, 50, bounds, leaves)
    jaws = Field.from_jaws_and_mlc(-50, 50, -50, 50)
    u, v = np.meshgrid(np.linspace(-80, 80, 65), np.linspace(-80, 80, 65))
    # Linearity of the blur: the union of disjoint leaf-pair rectangles gives the same fluence.
    np.testing.assert_allclose(
        mlc.relative_fluence(u, v, penumbra_mm=3), jaws.relative_fluence(u, v, penumbra_mm=3), atol=1e-12
    )
    assert mlc.area_mm2 == pytest.approx(100 * 100)


def test_polygon_matches_rectangle_along_straight_edges() -> None:
    square = Field.from_polygon([(-50, -50), (50, -50), (50, 50), (-50, 50)])
    rect = Field.square(10)
    u = np.linspace(-60, 60, 121)
    # On the central profile, far from the corners, the signed-distance edge equals the exact blur.
    np.testing.assert_allclose(
        square.relative_fluence(u, 0.0, penumbra_mm=4),
        rect.relative_fluence(u, 0.0, penumbra_mm=4),
        atol=1e-6,
    )


def test_ellipse_edge() -> None:
    e = Field.ellipse(6, 10)
    assert float(e.relative_fluence(30.0, 0.0, penumbra_mm=3)) == pytest.approx(0.5, abs=1e-6)
    assert float(e.relative_fluence(0.0, 50.0, penumbra_mm=3)) == pytest.approx(0.5, abs=1e-6)
    assert float(e.relative_fluence(0.0, 0.0, penumbra_mm=3)) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Field.square(0), "side_cm must be > 0"),
        (lambda: Field.square(45), "side_cm must be > 0 and <= 40"),
        (lambda: Field.rectangle(2, -1), "y_cm must be > 0"),
        (lambda: Field.from_polygon([(0, 0), (1, 1)]), "points_mm must have shape"),
        (lambda: Field.from_polygon([(0, 0), (10, 10), (10, 0), (0, 10)]), "simple polygon"),
        (lambda: Field.from_jaws_and_mlc(10, -10, -5, 5), "x1 < x2"),
        (lambda: Field.from_jaws_and_mlc(-10, 10, -5, 5, [0, 1], [1.0, 2.0, 3.0]), "2 x 1 values"),
        (lambda: Field.from_jaws_and_mlc(-10, 10, -5, 5, [-5, 5], [3.0, 1.0]), "bank A position"),
        (lambda: Field.from_jaws_and_mlc(-10, 10, -5, 5, [-5, 5], [0.0, 0.0]), "no open aperture"),
        (lambda: Field.square(10).relative_fluence(0, 0, penumbra_mm=-1), "penumbra_mm must be >= 0"),
    ],
)
def test_bad_input(call: object, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        call()  # type: ignore[operator]
