"""Unit tests of the contour solid (analysis._contour_interp) and the fine DVH sampler (_dvh_sampling)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pytest

from intrepid.analysis import compute_dvh
from intrepid.analysis._contour_interp import ContourStack
from intrepid.analysis._dvh_sampling import cumulative_from_spread, sample_structure
from intrepid.geometry import Grid, Quantity, Volume


def _circle(r: float, z: float, cx: float = 0.0, cy: float = 0.0, n: int = 256) -> np.ndarray:
    t = np.arange(n) * 2 * np.pi / n
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)])


def _dose(grid: Grid, g: tuple[float, float, float], d0: float = 20.0) -> Volume:
    return Volume(d0 + grid.world_points() @ np.asarray(g), grid, Quantity.DOSE, "Gy")


GRID = Grid.from_bounds((-20, -20, -20), (20, 20, 20), (2.0, 2.0, 2.0))


def test_sphere_sections_between_planes_are_exact() -> None:
    # Contours of a sphere of radius 6 mm every 3 mm: between planes the interpolated section is the sphere's
    # (the power field |x|² - r² is quadratic in z), not the chord of the linear interpolation (which would be
    # 0.3 mm inside it at z = -3 mm).
    r = 6.0
    planes = [-4.5, -1.5, 1.5, 4.5]
    polys = [_circle(math.sqrt(r * r - z * z), z) for z in planes]
    stack = ContourStack(polys, 0.1, single_plane_thickness_mm=2.0)
    j = int(np.argmin(np.abs(stack.ys)))
    y = float(stack.ys[j])
    for slab in stack.sections(0.5):
        for z, d in zip(slab.z_mm, slab.distance_mm, strict=True):
            row = d[j]
            i = int(np.nonzero(row < 0)[0].max())
            # zero crossing of the row nearest y = 0, interpolated between lattice points
            x = stack.xs[i] + (stack.xs[i + 1] - stack.xs[i]) * row[i] / (row[i] - row[i + 1])
            zz = min(abs(float(z)), 4.5)  # the end caps extrude the outermost contours
            # between the two planes around the equator the section is clipped to its neighbours' (no
            # overshoot; the clipped bulge is < s²/8R = 0.19 mm, here 0.06 mm)
            zz = max(zz, 1.5)
            expected = math.sqrt(r * r - zz * zz - y * y)
            # 256-gon contours (radius error < 1e-3 mm), exact distances near the surface: 0.01 mm
            assert x == pytest.approx(expected, abs=0.01), z
    lo = min(float(s.z_mm.min() - s.thickness_mm / 2) for s in stack.sections(0.5))
    hi = max(float(s.z_mm.max() + s.thickness_mm / 2) for s in stack.sections(0.5))
    assert (lo, hi) == pytest.approx((-6.0, 6.0))  # half a spacing beyond the outermost planes


def test_gap_between_runs_is_empty_and_single_plane_thickness() -> None:
    # Two runs of planes 9 mm apart (> 1.5 spacings): no interpolation across the gap.
    polys = [_circle(4.0, z) for z in (-9.0, -6.0, 6.0, 9.0)]
    dvh = compute_dvh(_dose(GRID, (0.0, 0.0, 1.0)), _Roi("gap", 1, tuple(_C(p) for p in polys)))
    expected = 2 * 6.0 * math.pi * 16.0 / 1000  # two runs of two planes, each 6 mm thick with its caps
    assert dvh.volume_cc == pytest.approx(expected, rel=0.01)
    assert dvh.min_gy == pytest.approx(20.0 - 10.5, abs=1e-9)  # the caps' faces z = ±10.5 mm
    assert dvh.max_gy == pytest.approx(20.0 + 10.5, abs=1e-9)
    single = compute_dvh(_dose(GRID, (0.0, 0.0, 1.0)), _Roi("one", 2, (_C(_circle(4.0, 1.0)),)))
    assert single.volume_cc == pytest.approx(2.0 * math.pi * 16.0 / 1000, rel=0.01)  # one dose slice thick


def test_annulus_hole_by_even_odd_rule() -> None:
    polys = [p for z in (-3.0, 0.0, 3.0) for p in (_circle(8.0, z), _circle(4.0, z)[::-1])]
    s = sample_structure(polys, _dose(GRID, (1.0, 0.0, 0.0)), single_plane_thickness_mm=2.0)
    assert float(s.volume_cc.sum()) == pytest.approx(math.pi * (64 - 16) * 9.0 / 1000, rel=0.01)
    # x gradient: the annulus reaches x = ±8 mm; Dmin / Dmax on its outer surface
    assert s.min_gy == pytest.approx(12.0, abs=0.01) and s.max_gy == pytest.approx(28.0, abs=0.01)


def test_cumulative_from_spread_closed_form() -> None:
    # One sample of 2 cm³ spread uniformly over 9-11 Gy: V(>= d) falls linearly; a point sample is a step.
    edges, cum = cumulative_from_spread(np.array([10.0]), np.array([2.0]), np.array([2.0]), 9.0, 11.0, 0.01)
    assert cum[0] == pytest.approx(2.0) and cum[-1] == 0.0
    for d in (9.5, 10.0, 10.73):
        k = round(d / 0.01)
        assert cum[k] == pytest.approx(2.0 * (11.0 - edges[k]) / 2.0, abs=1e-9)
    assert np.all(np.diff(cum) <= 1e-12)
    _, point = cumulative_from_spread(np.array([10.0]), np.array([2.0]), np.array([0.0]), 10.0, 10.0, 0.01)
    assert point[1000] == pytest.approx(2.0) and point[1001] == 0.0


def test_structure_partly_outside_the_dose_grid_warns(caplog: pytest.LogCaptureFixture) -> None:
    grid = Grid.from_bounds((-20, -20, -20), (20, 20, 0), (2.0, 2.0, 2.0))
    polys = [_circle(5.0, z) for z in (-3.0, 0.0, 3.0, 6.0)]  # slabs -4.5..7.5; the grid ends at z = 1 mm
    with caplog.at_level(logging.WARNING):
        dvh = compute_dvh(_dose(grid, (0.0, 0.0, 1.0)), _Roi("cut", 1, tuple(_C(p) for p in polys)))
    assert "outside the dose grid" in caplog.text
    # z from -4.5 to 1.0 mm; samples are kept or dropped whole by their centres, so the grid's edge cuts the
    # structure to within half a slab (0.19 mm here): 3.5 %
    assert dvh.volume_cc == pytest.approx(math.pi * 25 * 5.5 / 1000, rel=0.035)
    assert dvh.max_gy <= 20.0 + 1.0 + 1e-9


@dataclass(frozen=True)
class _C:
    points_mm: np.ndarray


@dataclass(frozen=True)
class _Roi:
    name: str
    number: int
    contours: tuple[_C, ...]
