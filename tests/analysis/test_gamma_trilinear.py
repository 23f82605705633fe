"""Tests of the gamma on the multi-linear (trilinear) interpolant: closed forms, bounds, budgets, errors.

Closed forms: a multi-linear function (here ``D0 + κ x y`` and ``D0 + κ x y z``) is reproduced exactly by the
multi-linear interpolant of its samples on any grid, so γ at the saddle's node follows from the field itself.
For ``δ = (D_r − D0)/ΔD`` and ``d = κ DTA² / ΔD`` (2D), with ``p = x y`` (scaled), ``x² + y² ≥ 2|p|`` with
equality on a diagonal, and ``p`` takes either sign (a saddle), so ``γ² = min_{u ≥ 0} 2u + (|d| u − |δ|)²``:
``δ²`` when ``|d δ| ≤ 1``, else ``(2 |d δ| − 1)/d²``.
In 3D ``x² + y² + z² ≥ 3|p|^(2/3)`` (AM-GM), so γ² is a one-variable minimisation, done here to 1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from intrepid.analysis import GammaInterpolant, gamma, gamma_1d
from intrepid.analysis._gamma_trilinear import GAMMA_TOLERANCE
from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Volume

#: Rounding allowance (dimensionless) on γ values of O(1) computed in float64.
ROUND = 1e-9


def _saddle(ndim: int, kappa: float, h: float, n: int, d0: float = 2.0) -> tuple[Grid, np.ndarray, tuple]:
    """``D0 + κ Π x_a`` (x in mm from the central node) on an ``n^ndim`` grid of spacing ``h``."""
    x = (np.arange(n) - n // 2) * h
    shape = (n,) * ndim
    if ndim == 2:
        grid = Grid(shape, (float(x[0]), float(x[0]), 0.0), (h, h, 1.0))
        yy, xx = np.meshgrid(x, x, indexing="ij")
        field = d0 + kappa * xx * yy
    else:
        grid = Grid(shape, (float(x[0]),) * 3, (h, h, h))
        zz, yy, xx = np.meshgrid(x, x, x, indexing="ij")
        field = d0 + kappa * xx * yy * zz
    return grid, field, (n // 2,) * ndim


def _only_at(shape: tuple[int, ...], index: tuple[int, ...], dose_gy: float) -> np.ndarray:
    """``dose_gy`` at one node, 0 elsewhere (below the 10 % cut-off): a single point is evaluated."""
    a = np.zeros(shape)
    a[index] = dose_gy
    return a


def _gamma_saddle_2d(d: float, delta: float) -> float:
    if abs(d * delta) <= 1.0:
        return abs(delta)
    return math.sqrt((2.0 * abs(d * delta) - 1.0) / d**2)


def _gamma_saddle_3d(d: float, delta: float) -> float:
    def value(u: float) -> float:
        return 3.0 * u ** (2.0 / 3.0) + (abs(d) * u - abs(delta)) ** 2

    upper = abs(delta / d) * 2.0 + 1.0
    res = minimize_scalar(value, bounds=(0.0, upper), method="bounded", options={"xatol": 1e-13})
    return math.sqrt(min(res.fun, value(0.0)))


@pytest.mark.parametrize(
    ("kappa", "delta_gy", "h", "dta"),
    [
        (0.008, 0.09, 1.0, 3.0),  # d δ = 1.8 > 1: minimum off the node, on a diagonal, 2.2 mm away
        (0.004, 0.015, 1.0, 3.0),  # d δ = 0.15 ≤ 1: the node itself
        (-0.02, -0.06, 0.7, 2.0),  # negative curvature and dose, other spacing: d δ = 1.33
        (0.03, -0.05, 2.0, 2.0),  # d δ = −1.67: the other diagonal of the saddle
        (0.01, -0.02, 2.0, 2.0),  # |d δ| = 0.11 ≤ 1: the node
        (0.02, 0.05, 2.5, 3.0),  # d δ = 2.5 on a coarse grid: the minimiser inside the node's cells
    ],
)
def test_bilinear_saddle_matches_closed_form(kappa: float, delta_gy: float, h: float, dta: float) -> None:
    grid, field, centre = _saddle(2, kappa, h, 21)
    d0, dd_gy = 2.0, 0.06
    ref = Volume(_only_at(field.shape, centre, d0 + delta_gy), grid)
    res = gamma(ref, Volume(field, grid), dd_percent=3.0, dta_mm=dta, normalisation_dose=2.0, max_gamma=5.0,
                interpolant="trilinear")  # fmt: skip
    expected = _gamma_saddle_2d(kappa * dta**2 / dd_gy, delta_gy / dd_gy)
    got = float(res.gamma_map.array[centre])
    assert expected - ROUND <= got <= expected + GAMMA_TOLERANCE + ROUND
    assert res.interpolation == "trilinear"
    assert res.settings.interpolant is GammaInterpolant.TRILINEAR


def test_bilinear_saddle_differs_from_the_simplex_value() -> None:
    # The simplex interpolant cuts the saddle into planes: off the node it differs (the test above can fail).
    kappa, delta_gy, dta = 0.008, 0.09, 3.0
    grid, field, centre = _saddle(2, kappa, 1.0, 21)
    ref = Volume(np.full(field.shape, 2.0 + delta_gy), grid)
    kwargs = dict(dd_percent=3.0, dta_mm=dta, normalisation_dose=2.0, max_gamma=5.0, cutoff_percent=0.0)
    simplex = float(gamma(ref, Volume(field, grid), **kwargs).gamma_map.array[centre])
    expected = _gamma_saddle_2d(kappa * dta**2 / 0.06, delta_gy / 0.06)
    assert abs(simplex - expected) > 10 * GAMMA_TOLERANCE


@pytest.mark.parametrize(("kappa", "delta_gy"), [(0.002, 0.1), (-0.003, 0.08), (0.002, 0.01)])
def test_trilinear_saddle_matches_closed_form_3d(kappa: float, delta_gy: float) -> None:
    h, dta, dd_gy = 1.5, 3.0, 0.06
    grid, field, centre = _saddle(3, kappa, h, 13)
    ref = Volume(_only_at(field.shape, centre, 2.0 + delta_gy), grid)
    res = gamma(ref, Volume(field, grid), dd_percent=3.0, dta_mm=dta, normalisation_dose=2.0, max_gamma=5.0,
                interpolant=GammaInterpolant.TRILINEAR)  # fmt: skip
    assert res.evaluated_points == 1
    expected = _gamma_saddle_3d(kappa * dta**3 / dd_gy, delta_gy / dd_gy)
    got = float(res.gamma_map.array[centre])
    assert expected - 1e-7 <= got <= expected + GAMMA_TOLERANCE + 1e-7


def test_1d_trilinear_equals_linear_within_tolerance() -> None:
    # In 1D the two interpolants coincide: the bounded search must land within its tolerance of the exact one.
    rng = np.random.default_rng(5)
    x = np.arange(0.0, 60.0, 1.0)
    ref = 1.0 + np.cumsum(rng.normal(0, 0.05, x.size))
    ev = ref + rng.normal(0, 0.03, x.size)
    kwargs = dict(reference_positions_mm=x, evaluated_positions_mm=x + 0.3, dd_percent=2.0, dta_mm=1.0)
    exact = gamma_1d(ref, ev, **kwargs).gamma_map.array
    bounded = gamma_1d(ref, ev, interpolant="trilinear", **kwargs).gamma_map.array
    valid = np.isfinite(exact)
    assert np.array_equal(valid, np.isfinite(bounded))
    diff = bounded[valid] - exact[valid]
    assert diff.min() >= -ROUND
    assert diff.max() <= GAMMA_TOLERANCE + ROUND


def _bilinear_brute_force(ev: np.ndarray, ref: np.ndarray, j: int, i: int, dd: float, dta: float) -> float:
    """Dense sampling (500 per cell side) of the bilinear interpolant over the cells around node (j, i)."""
    best = math.inf
    t = np.linspace(0.0, 1.0, 501)
    tt, ss = np.meshgrid(t, t, indexing="ij")
    for cj in range(max(j - 2, 0), min(j + 2, ev.shape[0] - 1)):
        for ci in range(max(i - 2, 0), min(i + 2, ev.shape[1] - 1)):
            v = (ev[cj, ci] * (1 - tt) * (1 - ss) + ev[cj + 1, ci] * tt * (1 - ss)
                 + ev[cj, ci + 1] * (1 - tt) * ss + ev[cj + 1, ci + 1] * tt * ss)  # fmt: skip
            phi = ((cj + tt - j) ** 2 + (ci + ss - i) ** 2) / dta**2 + ((v - ref[j, i]) / dd) ** 2
            best = min(best, float(phi.min()))
    return math.sqrt(best)


def test_random_field_is_attained_and_not_above_dense_sampling() -> None:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(11)
    shape = (24, 26)
    ref = 1.0 + 3.0 * gaussian_filter(rng.random(shape), 1.5)
    ev = ref * 1.02 + gaussian_filter(rng.normal(0, 0.1, shape), 1.0)
    grid = Grid(shape, (0, 0, 0), (1.0, 1.0, 1.0))
    res = gamma(Volume(ref, grid), Volume(ev, grid), dd_percent=3.0, dta_mm=2.0, cutoff_percent=0.0,
                normalisation_dose=float(ref.max()), interpolant="trilinear", max_gamma=3.0)  # fmt: skip
    g = res.gamma_map.array
    dd = 0.03 * ref.max()
    for j, i in [(3, 4), (10, 12), (12, 5), (20, 20), (7, 18)]:
        sampled = _bilinear_brute_force(ev, ref, j, i, dd, 2.0)
        # ours is the minimum to 1e-4; the sampled value is an upper bound within ~(step × slope)²
        assert g[j, i] <= sampled + GAMMA_TOLERANCE + ROUND
        assert g[j, i] >= sampled - 2e-3


def test_pass_fail_decisions_agree_with_simplex_on_smooth_fields() -> None:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    shape = (8, 20, 22)
    ref = 1.0 + 3.0 * gaussian_filter(rng.random(shape), 2.0)
    ev = ref * 1.03 + gaussian_filter(rng.normal(0, 0.05, shape), 1.0)
    grid = Grid(shape, (0, 0, 0), (2.0, 2.0, 2.0))
    kw = dict(dd_percent=3.0, dta_mm=3.0)
    simplex = gamma(Volume(ref, grid), Volume(ev, grid), **kw)
    tri = gamma(Volume(ref, grid), Volume(ev, grid), interpolant="trilinear", **kw)
    # the interpolants agree on the nodes and edges: pass rates close, γ close where the field is smooth
    assert abs(simplex.pass_rate_percent - tri.pass_rate_percent) < 2.0
    a, b = simplex.gamma_map.array, tri.gamma_map.array
    valid = np.isfinite(a)
    assert np.median(np.abs(a[valid] - b[valid])) < 0.02
    d = tri.to_dict()
    assert d["interpolation"] == "trilinear"
    assert d["gamma_tolerance"] == GAMMA_TOLERANCE
    assert "multi-linear" in d["interpolant"]


# ------------------------------------------------------------------------------------- budgets and errors
def _pair(shape: tuple[int, ...] = (30, 30)) -> tuple[Volume, Volume]:
    grid = Grid(shape, (0, 0, 0), (1.0, 1.0, 1.0))
    ref = Volume(np.ones(shape), grid)
    return ref, ref.with_array(np.full(shape, 1.01))


@pytest.mark.parametrize("interpolant", ["simplex", "trilinear"])
def test_huge_dta_is_searched_within_the_grid(interpolant: str) -> None:
    # the search never reaches past the grid: a 1e4 mm DTA on a small grid is just a dose comparison
    ref, ev = _pair()
    res = gamma(ref, ev, dd_percent=3.0, dta_mm=1e4, interpolant=interpolant)
    assert res.pass_rate_percent == 100.0
    assert abs(res.mean_gamma - 1.0 / 3.0) <= GAMMA_TOLERANCE + ROUND


def test_search_beyond_the_budget_is_refused_in_one_line() -> None:
    ref, ev = _pair((1100, 1100))
    message = r"dta_mm 10000 with max_gamma 2 .* lower dta_mm or max_gamma"
    with pytest.raises(ParameterError, match=message) as e:
        gamma(ref, ev, dd_percent=3.0, dta_mm=1e4)
    assert "\n" not in str(e.value)


def test_memory_beyond_the_budget_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import intrepid.analysis._gamma as module

    monkeypatch.setattr(module, "MEMORY_BUDGET_BYTES", 10_000)
    ref, ev = _pair()
    with pytest.raises(ParameterError, match="GiB"):
        gamma(ref, ev, dd_percent=3.0, dta_mm=2.0)


def test_bad_interpolants_are_refused() -> None:
    ref, ev = _pair()
    with pytest.raises(ParameterError, match="interpolant must be 'simplex' or 'trilinear'"):
        gamma(ref, ev, dd_percent=3.0, dta_mm=2.0, interpolant="cubic")
    with pytest.raises(ParameterError, match="numba backend only"):
        gamma(ref, ev, dd_percent=3.0, dta_mm=2.0, interpolant="trilinear", backend="torch")
