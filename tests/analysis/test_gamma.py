"""Tests of the exact gamma: closed forms, exactness against brute force, metamorphic relations, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import erf

from intrepid.analysis import (
    PASS_TOLERANCE,
    GammaBackend,
    GammaResult,
    Normalisation,
    gamma,
    gamma_1d,
)
from intrepid.errors import FrameOfReferenceError, GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume

# Closed-form values are computed in float64 by the same kind of arithmetic: 1e-9 absolute is far above the
# rounding of a few dozen operations on O(1) numbers and far below any physically meaningful γ difference.
ATOL = 1e-9


def _grid2(shape: tuple[int, int], spacing: float = 1.0, origin: tuple[float, float] = (0.0, 0.0)) -> Grid:
    return Grid(shape, origin_mm=(origin[0], origin[1], 0.0), spacing_mm=(spacing, spacing, 1.0))


def _smooth_random(shape: tuple[int, ...], seed: int) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    return 1.0 + gaussian_filter(rng.random(shape), 1.5) * 4.0


# ------------------------------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("shape", [(20, 30), (6, 7, 8)])
def test_uniform_offset_gives_delta_over_dd_everywhere(shape: tuple[int, ...]) -> None:
    grid = Grid(shape, (0, 0, 0), (1.0, 1.5, 2.0))
    ref = Volume(np.full(shape, 2.0), grid)
    res = gamma(ref, ref.with_array(np.full(shape, 2.05)), dd_percent=3.0, dta_mm=2.0)
    expected = 0.05 / 0.06  # δ / ΔD with ΔD = 3 % of 2 Gy
    assert np.allclose(res.gamma_map.array, expected, atol=ATOL, rtol=0)
    assert res.evaluated_points == int(np.prod(shape))
    assert res.pass_rate_percent == 100.0
    assert res.mean_gamma == pytest.approx(expected, abs=ATOL)


def test_gamma_exactly_one_passes_despite_rounding() -> None:
    # 1.03 - 1.00 = 0.030000000000000027 in binary floating point: γ = 1 + 9e-16, which the rule passes.
    grid = _grid2((10, 10))
    ref = Volume(np.ones((10, 10)), grid)
    res = gamma(ref, ref.with_array(np.full((10, 10), 1.03)), dd_percent=3.0, dta_mm=1.0)
    assert np.all(res.gamma_map.array > 1.0)  # the rounding really is there
    assert np.all(res.gamma_map.array <= 1.0 + PASS_TOLERANCE)
    assert res.pass_rate_percent == 100.0
    # ... whereas a genuine excess of 1e-7 fails
    res2 = gamma(ref, ref.with_array(np.full((10, 10), 1.0300001)), dd_percent=3.0, dta_mm=1.0)
    assert res2.pass_rate_percent == 0.0


@pytest.mark.parametrize(
    ("g", "s", "dd", "dta"), [(0.01, 1.0, 3.0, 3.0), (0.05, -0.7, 2.0, 2.0), (0.2, 0.3, 3, 1)]
)
def test_linear_ramp_shift_matches_closed_form_1d(g: float, s: float, dd: float, dta: float) -> None:
    x = np.arange(0.0, 60.0, 0.5)
    res = gamma_1d(
        1 + g * x,
        1 + g * (x - s),
        reference_positions_mm=x,
        evaluated_positions_mm=x,
        dd_percent=dd,
        dta_mm=dta,
        normalisation_dose=1.0,
        cutoff_percent=0.0,
        max_gamma=5.0,
    )
    delta_d = dd / 100.0
    expected = (g * abs(s) / delta_d) / math.sqrt(1 + (g * dta / delta_d) ** 2)
    interior = (x > 15) & (x < 45)  # away from the profile ends, where the search would leave the grid
    assert np.allclose(res.gamma_map.array[0, interior], expected, atol=ATOL, rtol=0)


def test_linear_ramp_shift_matches_closed_form_2d_other_grid() -> None:
    # The Kuhn-simplex interpolant reproduces a linear dose exactly, also on a finer, offset evaluated grid.
    g, s, dd, dta = 0.02, 0.8, 3.0, 2.0
    ref_grid = _grid2((30, 40), spacing=1.0)
    ev_grid = Grid((70, 90), origin_mm=(-3.3, -2.1, 0.0), spacing_mm=(0.55, 0.6, 1.0))
    x_ref = ref_grid.world_points()[..., 0]
    x_ev = ev_grid.world_points()[..., 0]
    ref = Volume(1 + g * x_ref, ref_grid)
    ev = Volume(1 + g * (x_ev - s), ev_grid)
    res = gamma(ref, ev, dd_percent=dd, dta_mm=dta, normalisation_dose=1.0, cutoff_percent=0.0)
    expected = (g * s / 0.03) / math.sqrt(1 + (g * dta / 0.03) ** 2)
    interior = (x_ref > 6) & (x_ref < 33)
    inner_rows = np.zeros_like(interior)
    inner_rows[5:-5] = True
    assert np.allclose(res.gamma_map.array[interior & inner_rows], expected, atol=ATOL, rtol=0)


def test_steep_erf_edge_shifted_by_whole_steps_gamma_at_most_s_over_dta() -> None:
    # σ 0.5 mm erf edges on a 0.25 mm grid, shifted by 3 steps: the matching evaluated node lies s away.
    h, steps, dta = 0.25, 3, 1.0
    s = steps * h
    x = (np.arange(160) - 80) * h
    profile = 0.5 * (1 + erf(x / (math.sqrt(2) * 0.5)))
    ref = np.tile(profile, (40, 1))
    ev = np.tile(np.roll(profile, steps), (40, 1))
    ev[:, :steps] = ev[:, steps][:, None]
    grid = _grid2((40, 160), spacing=h)
    res = gamma(Volume(ref, grid), Volume(ev, grid), dd_percent=1.0, dta_mm=dta, max_gamma=3.0)
    g = res.gamma_map.array
    assert np.nanmax(g) <= s / dta + ATOL
    assert res.max_gamma > 0.5 * s / dta  # not trivially zero: the edge really moved


def test_single_hot_voxel_gives_distance_over_dta_not_the_cap() -> None:
    # pymedphys issue #1813: a lone hot voxel returns the cap. The exact search finds the shifted voxel.
    shape, h, dta = (15, 15, 15), 1.0, 2.0
    grid = Grid(shape, (0, 0, 0), (h, h, h))
    ref = np.zeros(shape)
    ev = np.zeros(shape)
    ref[7, 7, 7] = 5.0
    ev[7, 8, 9] = 5.0  # one voxel along j, two along i: r = √5 mm
    res = gamma(Volume(ref, grid), Volume(ev, grid), dd_percent=3.0, dta_mm=dta, max_gamma=3.0)
    assert res.evaluated_points == 1
    # γ ≈ r/DTA: the hot evaluated vertex is at r/DTA; sliding down its flanks towards the point trades
    # distance for dose at a slope of 5 Gy per mm against ΔD = 0.15 Gy, which gains only ~2e-4 relative.
    value = res.gamma_map.array[7, 7, 7]
    assert math.sqrt(5.0) / dta * (1 - 1e-3) <= value <= math.sqrt(5.0) / dta + ATOL
    assert res.max_gamma < 3.0


def test_local_normalisation_uses_the_local_dose() -> None:
    grid = _grid2((12, 12))
    ref = Volume(np.full((12, 12), 2.0), grid)
    res = gamma(
        ref,
        ref.with_array(np.full((12, 12), 2.04)),
        dd_percent=3.0,
        dta_mm=2.0,
        normalisation=Normalisation.LOCAL,
        normalisation_dose=10.0,
        cutoff_percent=5.0,
    )
    assert np.allclose(res.gamma_map.array, 0.04 / 0.06, atol=ATOL)
    assert res.settings.normalisation is Normalisation.LOCAL


def test_cutoff_leaves_nan_and_counts_points() -> None:
    grid = _grid2((10, 10))
    ref = np.ones((10, 10))
    ref[:, :4] = 0.05  # below 10 % of the maximum
    res = gamma(Volume(ref, grid), Volume(ref, grid), dd_percent=3.0, dta_mm=2.0)
    assert res.evaluated_points == 60
    assert np.all(np.isnan(res.gamma_map.array[:, :4]))
    assert np.all(res.gamma_map.array[:, 4:] == 0.0)
    assert res.passed.sum() == 60
    assert res.settings.cutoff_dose_gy == pytest.approx(0.1)


def test_result_fields_and_dict() -> None:
    grid = _grid2((8, 9))
    ref = Volume(_smooth_random((8, 9), 1), grid, Quantity.DOSE, "Gy", frame_of_reference_uid="1.2.3")
    res = gamma(ref, ref.with_array(ref.array * 1.02), dd_percent=3.0, dta_mm=2.0)
    assert isinstance(res, GammaResult)
    assert res.gamma_map.quantity is Quantity.GAMMA
    assert res.gamma_map.grid == ref.grid
    assert res.gamma_map.frame_of_reference_uid == "1.2.3"
    d = res.to_dict()
    for key in (
        "pass_rate_percent",
        "mean_gamma",
        "gamma_1percent",
        "max_gamma",
        "evaluated_points",
        "dd_percent",
        "dta_mm",
        "cutoff_percent",
        "normalisation",
        "compute_seconds",
        "interpolation",
    ):
        assert key in d
    assert d["normalisation"] == "global"
    assert d["interpolation"] == "linear"
    values = res.gamma_map.array[np.isfinite(res.gamma_map.array)]
    assert res.gamma_1percent == pytest.approx(np.percentile(values, 99))
    assert res.software.startswith("intrepid")


# ------------------------------------------------------------------------------------------ exactness
def _kuhn_interpolant_samples_2d(ev: np.ndarray, h: float, n_sub: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (x, y) and doses of the Kuhn-triangle interpolant sampled on a sub-grid of every cell."""
    t = np.linspace(0.0, 1.0, n_sub + 1)
    fx, fy = np.meshgrid(t, t, indexing="xy")
    pts, doses = [], []
    nj, ni = ev.shape
    for j in range(nj - 1):
        for i in range(ni - 1):
            d00, d10, d01, d11 = ev[j, i], ev[j, i + 1], ev[j + 1, i], ev[j + 1, i + 1]
            # triangle fx >= fy: 00 -> 10 -> 11 ; triangle fy > fx: 00 -> 01 -> 11
            lower = d00 + (d10 - d00) * fx + (d11 - d10) * fy
            upper = d00 + (d01 - d00) * fy + (d11 - d01) * fx
            dose = np.where(fx >= fy, lower, upper)
            pts.append(np.stack([(i + fx.ravel()) * h, (j + fy.ravel()) * h], axis=1))
            doses.append(dose.ravel())
    return np.concatenate(pts), np.concatenate(doses)


def test_exact_minimum_agrees_with_dense_brute_force_2d() -> None:
    # Our γ is the exact minimum over the interpolant, so it is <= any sampled value and within the sampling
    # error (O(step) in γ², step = h/40) of the dense brute-force minimum.
    h, dta, dd = 1.0, 2.0, 3.0
    ref = _smooth_random((9, 9), 3)
    ev = _smooth_random((9, 9), 4)
    grid = _grid2((9, 9), spacing=h)
    res = gamma(
        Volume(ref, grid), Volume(ev, grid), dd_percent=dd, dta_mm=dta, cutoff_percent=0.0, max_gamma=10.0
    )
    pts, doses = _kuhn_interpolant_samples_2d(ev, h, 40)
    delta_d = dd / 100 * ref.max()
    for j, i in [(4, 4), (2, 6), (6, 3), (0, 0), (8, 5), (3, 3)]:
        d2 = ((pts[:, 0] - i * h) ** 2 + (pts[:, 1] - j * h) ** 2) / dta**2 + (
            (doses - ref[j, i]) / delta_d
        ) ** 2
        brute = math.sqrt(d2.min())
        ours = res.gamma_map.array[j, i]
        assert ours <= brute + 1e-12
        assert ours >= brute - 0.02  # sub-sampling of h/40 leaves at most a ~1 % gap here


def test_torch_backend_matches_numba_decisions() -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for shape, spacing in [((14, 17), (1.0, 1.2, 1.0)), ((6, 7, 8), (2.0, 1.5, 2.5))]:
        grid = Grid(shape, (0, 0, 0), spacing)
        ev_grid = Grid(
            tuple(n + 2 for n in shape),
            (-0.7, -0.4, 0.0 if len(shape) == 2 else -0.9),
            tuple(0.9 * s for s in spacing),
        )
        ref = Volume(_smooth_random(shape, int(rng.integers(100))), grid)
        ev = Volume(_smooth_random(ev_grid.shape, int(rng.integers(100))), ev_grid)
        a = gamma(ref, ev, dd_percent=3.0, dta_mm=2.0, max_gamma=1.5)
        b = gamma(
            ref, ev, dd_percent=3.0, dta_mm=2.0, max_gamma=1.5, backend=GammaBackend.TORCH, device="cpu"
        )
        assert np.array_equal(a.passed, b.passed)
        assert np.allclose(a.gamma_map.array, b.gamma_map.array, atol=1e-12, equal_nan=True)


# ------------------------------------------------------------------------------------------ metamorphic
def test_shifting_both_inputs_leaves_gamma_unchanged() -> None:
    ref = _smooth_random((10, 11, 12), 11)
    ev = _smooth_random((10, 11, 12), 12)
    g1 = Grid((10, 11, 12), (0, 0, 0), (2.0, 2.5, 3.0))
    g2 = Grid((10, 11, 12), (-37.3, 12.9, 101.7), (2.0, 2.5, 3.0))
    a = gamma(Volume(ref, g1), Volume(ev, g1), dd_percent=3.0, dta_mm=3.0)
    b = gamma(Volume(ref, g2), Volume(ev, g2), dd_percent=3.0, dta_mm=3.0)
    assert np.allclose(a.gamma_map.array, b.gamma_map.array, atol=1e-12, equal_nan=True)


def test_swapping_the_axes_permutes_the_map() -> None:
    # Transposing both images (and swapping the spacings) is a relabelling of the axes: the map transposes.
    ref = _smooth_random((12, 15), 21)
    ev = _smooth_random((12, 15), 22)
    g = Grid((12, 15), (0, 0, 0), (1.0, 1.5, 1.0))
    gt = Grid((15, 12), (0, 0, 0), (1.5, 1.0, 1.0))
    a = gamma(Volume(ref, g), Volume(ev, g), dd_percent=2.0, dta_mm=2.0)
    b = gamma(Volume(ref.T.copy(), gt), Volume(ev.T.copy(), gt), dd_percent=2.0, dta_mm=2.0)
    # The Kuhn diagonal runs the same way after the swap (it is symmetric in the axes), so maps agree.
    assert np.allclose(a.gamma_map.array, b.gamma_map.array.T, atol=1e-12, equal_nan=True)


_REF = _smooth_random((16, 16), 31)
_EV = _smooth_random((16, 16), 32)


@settings(max_examples=25, deadline=None)
@given(
    dd=st.floats(0.5, 5.0),
    dta=st.floats(0.5, 4.0),
    extra_dd=st.floats(0.0, 3.0),
    extra_dta=st.floats(0.0, 3.0),
)
def test_looser_criteria_never_lower_the_pass_rate_or_raise_gamma(
    dd: float, dta: float, extra_dd: float, extra_dta: float
) -> None:
    grid = _grid2((16, 16))
    ref, ev = Volume(_REF, grid), Volume(_EV, grid)
    tight = gamma(ref, ev, dd_percent=dd, dta_mm=dta)
    loose = gamma(ref, ev, dd_percent=dd + extra_dd, dta_mm=dta + extra_dta)
    assert loose.pass_rate_percent >= tight.pass_rate_percent
    assert np.all(loose.gamma_map.array <= tight.gamma_map.array + 1e-12)


# ------------------------------------------------------------------------------------------ errors
@pytest.fixture
def pair() -> tuple[Volume, Volume]:
    grid = _grid2((6, 6))
    ref = Volume(np.ones((6, 6)), grid, frame_of_reference_uid="1.2.3")
    return ref, ref.with_array(np.ones((6, 6)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dd_percent": -1.0, "dta_mm": 2.0}, r"dd_percent must be a finite number > 0, got -1.0"),
        ({"dd_percent": 3.0, "dta_mm": 0.0}, r"dta_mm must be a finite number > 0, got 0.0"),
        ({"dd_percent": 3.0, "dta_mm": float("nan")}, r"dta_mm must be a finite number > 0"),
        (
            {"dd_percent": 3.0, "dta_mm": 2.0, "cutoff_percent": 100.0},
            r"cutoff_percent must be in \[0, 100\)",
        ),
        ({"dd_percent": 3.0, "dta_mm": 2.0, "max_gamma": 1.0}, r"max_gamma must be finite and > 1"),
        ({"dd_percent": 3.0, "dta_mm": 2.0, "normalisation_dose": -2.0}, r"normalisation_dose must be"),
        (
            {"dd_percent": 3.0, "dta_mm": 2.0, "normalisation": "global"},
            r"normalisation must be a Normalisation",
        ),
        (
            {"dd_percent": 3.0, "dta_mm": 2.0, "backend": "opencl"},
            r"backend must be 'numba', 'torch' or 'cuda'",
        ),
    ],
)
def test_bad_parameters_are_refused(pair: tuple[Volume, Volume], kwargs: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        gamma(*pair, **kwargs)


def test_frame_of_reference_mismatch_is_refused_unless_overridden(pair: tuple[Volume, Volume]) -> None:
    ref, ev = pair
    other = Volume(ev.array, ev.grid, frame_of_reference_uid="9.9")
    with pytest.raises(FrameOfReferenceError, match=r"1\.2\.3 differs from evaluated 9\.9"):
        gamma(ref, other, dd_percent=3, dta_mm=2)
    assert gamma(ref, other, dd_percent=3, dta_mm=2, ignore_frame_of_reference=True).pass_rate_percent == 100


def test_geometry_mismatches_are_refused(pair: tuple[Volume, Volume]) -> None:
    ref, _ = pair
    vol3 = Volume(np.ones((2, 6, 6)), Grid((2, 6, 6), (0, 0, 0), (1, 1, 1)))
    with pytest.raises(GeometryError, match="both be 2D or both 3D, got 2D and 3D"):
        gamma(ref, vol3, dd_percent=3, dta_mm=2)
    rotated = Volume(
        np.ones((6, 6)), Grid((6, 6), (0, 0, 0), (1, 1, 1), direction=(0, 1, 0, 1, 0, 0, 0, 0, -1))
    )
    with pytest.raises(GeometryError, match="same direction matrix"):
        gamma(ref, rotated, dd_percent=3, dta_mm=2)
    shifted = Volume(np.ones((6, 6)), Grid((6, 6), (0, 0, 5.0), (1, 1, 1)))
    with pytest.raises(GeometryError, match="different planes"):
        gamma(ref, shifted, dd_percent=3, dta_mm=2)


def test_non_finite_and_zero_references_are_refused(pair: tuple[Volume, Volume]) -> None:
    ref, ev = pair
    bad = ev.array.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ParameterError, match="evaluated contains 1 NaN or infinite values"):
        gamma(ref, ev.with_array(bad), dd_percent=3, dta_mm=2)
    with pytest.raises(ParameterError, match="reference maximum must be > 0"):
        gamma(ref.with_array(np.zeros((6, 6))), ev, dd_percent=3, dta_mm=2)
    with pytest.raises(ParameterError, match="must be Volume objects"):
        gamma(ref.array, ev, dd_percent=3, dta_mm=2)  # type: ignore[arg-type]


def test_gamma_1d_refuses_bad_profiles() -> None:
    x = np.arange(10.0)
    with pytest.raises(
        ParameterError, match="reference dose and positions must be 1D arrays of the same length"
    ):
        gamma_1d(
            np.ones(10),
            np.ones(10),
            reference_positions_mm=x[:5],
            evaluated_positions_mm=x,
            dd_percent=3,
            dta_mm=3,
        )
    uneven = x.copy()
    uneven[3] = 3.5
    with pytest.raises(ParameterError, match="evaluated positions_mm must be finite, increasing and equally"):
        gamma_1d(
            np.ones(10),
            np.ones(10),
            reference_positions_mm=x,
            evaluated_positions_mm=uneven,
            dd_percent=3,
            dta_mm=3,
        )


# ------------------------------------------------------------------------------------------ fast paths
def _general_search_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the kernel treat every grid as off-node: no star search, generic offsets."""
    from intrepid.analysis import _gamma

    snap = _gamma._snap_to_nodes

    def off_nodes(alpha: np.ndarray, beta: np.ndarray, ndim: int) -> tuple[np.ndarray, np.ndarray, bool]:
        a, b, _ = snap(alpha, beta, ndim)
        return a, b, False

    monkeypatch.setattr(_gamma, "_snap_to_nodes", off_nodes)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("normalisation", [Normalisation.GLOBAL, Normalisation.LOCAL])
def test_node_star_search_matches_the_general_search(
    ndim: int, normalisation: Normalisation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # When reference nodes are evaluated nodes the kernel minimises over the star of the node in closed form
    # and stops there when the best γ² is below the distance to the nearest face outside the star. Both
    # paths are exact for the same interpolant, so they agree up to rounding: 1e-10 on γ² is far above the
    # rounding of the O(1-100) offsets squared here and far below any dosimetric difference. Data are
    # rough (little smoothing, ±5 % noise) so that many points fall back to the general search as well.
    from scipy.ndimage import gaussian_filter

    from intrepid.analysis._gamma_kernels import star_table

    rng = np.random.default_rng(100 + ndim)
    shape = {1: (60,), 2: (24, 27), 3: (9, 10, 11)}[ndim]
    for spacing in [(1.0, 1.0, 1.0), (0.7, 1.2, 0.5), (0.4, 0.9, 0.6)]:
        ref = 1.0 + 3.0 * gaussian_filter(rng.random(shape), 1.0)
        ev = ref * 1.02 + gaussian_filter(rng.normal(0.0, 0.08, shape), 0.5)
        kwargs = dict(
            dd_percent=2.0, dta_mm=1.5, cutoff_percent=5.0, max_gamma=2.5, normalisation=normalisation
        )
        if ndim == 1:
            x = np.arange(shape[0]) * spacing[0]
            a = gamma_1d(ref, ev, reference_positions_mm=x, evaluated_positions_mm=x, **kwargs)
        else:
            grid = Grid(shape, (1.0, -2.0, 3.0), spacing if ndim == 3 else (spacing[0], spacing[1], 1.0))
            a = gamma(Volume(ref, grid), Volume(ev, grid), **kwargs)
        with monkeypatch.context() as patch:
            _general_search_only(patch)
            if ndim == 1:
                b = gamma_1d(ref, ev, reference_positions_mm=x, evaluated_positions_mm=x, **kwargs)
            else:
                b = gamma(Volume(ref, grid), Volume(ev, grid), **kwargs)
        ga, gb = a.gamma_map.array, b.gamma_map.array
        assert np.array_equal(np.isnan(ga), np.isnan(gb))
        assert np.nanmax(np.abs(ga**2 - gb**2)) <= 1e-10
        assert np.array_equal(a.passed, b.passed)
        assert 0.0 < a.pass_rate_percent < 100.0  # both decisions occur
        # and points lie beyond the star, where the kernel falls back to the general search
        scale = np.asarray(spacing) / 1.5
        scale[ndim:] = 1.0
        assert np.count_nonzero(ga[np.isfinite(ga)] ** 2 > star_table(scale, ndim).rho2) >= 3


def _brute_force_3d(
    ref: np.ndarray, ev: np.ndarray, h: float, dta: float, delta_d: float, point: tuple
) -> float:
    """γ at reference node ``point``: a convex QP (NNLS on barycentric weights) per Kuhn tetrahedron."""
    import itertools

    from scipy.optimize import nnls

    k0, j0, i0 = point
    target = np.array([i0 * h / dta, j0 * h / dta, k0 * h / dta, ref[point] / delta_d])
    best = np.inf
    mk, mj, mi = ev.shape
    for ck, cj, ci in itertools.product(range(mk - 1), range(mj - 1), range(mi - 1)):
        for perm in itertools.permutations(range(3)):
            vertex = [ci, cj, ck]
            rows = [vertex.copy()]
            for axis in perm:
                vertex[axis] += 1
                rows.append(vertex.copy())
            v = np.array([[x * h / dta, y * h / dta, z * h / dta, ev[z, y, x] / delta_d] for x, y, z in rows])
            weight = 1e4  # enforces Σλ = 1; λ is renormalised, so the point is in the tetrahedron
            lam, _ = nnls(np.vstack([v.T, weight * np.ones(4)]), np.concatenate([target, [weight]]))
            best = min(best, float(np.sum((lam / lam.sum() @ v - target) ** 2)))
    return math.sqrt(best)


def test_exact_minimum_agrees_with_convex_programming_3d() -> None:
    # Every tetrahedron minimised independently by NNLS (an attained point, so ≥ the exact minimum, and within
    # ~1e-8 of it); ours must be ≤ it (up to rounding) and not below it by more than the QP's accuracy.
    h, dta, dd = 1.0, 1.5, 3.0
    ref = _smooth_random((6, 6, 6), 41)
    ev = ref * 1.03 + 0.3 * (_smooth_random((6, 6, 6), 42) - 2.0)
    grid = Grid((6, 6, 6), (0, 0, 0), (h, h, h))
    res = gamma(
        Volume(ref, grid), Volume(ev, grid), dd_percent=dd, dta_mm=dta, cutoff_percent=0.0, max_gamma=20.0
    )
    delta_d = dd / 100 * ref.max()
    for point in [(2, 2, 3), (3, 1, 2), (0, 0, 0), (5, 4, 5), (2, 3, 3), (1, 4, 2)]:
        brute = _brute_force_3d(ref, ev, h, dta, delta_d, point)
        ours = res.gamma_map.array[point]
        assert ours <= brute + 1e-9
        assert ours >= brute - 1e-6


def test_star_table_radius_has_closed_form() -> None:
    from intrepid.analysis._gamma_kernels import star_table

    # The star of a node is {|x_a| ≤ 1, |x_a − x_b| ≤ 1} (index units); the nearest face outside it lies on
    # x_a − x_b = ±1 at 1 / sqrt(1/s_a² + 1/s_b²) or on x_a = ±1 at s_a (1e-9 relative margin taken off).
    for scale, ndim, rho2 in [
        ((1.0, 1.0, 1.0), 3, 0.5),
        ((0.5, 0.5, 0.5), 3, 0.125),
        ((1.0, 2.0, 3.0), 3, 0.8),
        ((0.2, 0.2, 1.0), 2, 0.02),
        ((0.7, 1.0, 1.0), 1, 0.49),
    ]:
        table = star_table(np.asarray(scale), ndim)
        assert table.rho2 == pytest.approx(rho2 * (1 - 1e-9), rel=1e-12)
        n_faces = {1: 2, 2: 12, 3: 74}[ndim]  # edges, triangles and tetrahedra around a node
        assert table.face_m.size == n_faces


def test_node_offsets_bound_the_distance_to_their_cells() -> None:
    from intrepid.analysis._gamma_kernels import search_offsets

    scale = np.array([0.5, 0.8, 1.1])
    offsets, bounds = search_offsets(scale, 2.0, 3, on_nodes=True)
    assert np.all(np.diff(bounds) >= 0)
    # the distance from the node (origin) to the cell [d, d + 1], sampled densely, is never below the bound
    t = np.linspace(0.0, 1.0, 11)
    for (di, dj, dk), bound in zip(offsets[:200], bounds[:200], strict=True):
        x, y, z = np.meshgrid(di + t, dj + t, dk + t, indexing="ij")
        d2 = (x * scale[0]) ** 2 + (y * scale[1]) ** 2 + (z * scale[2]) ** 2
        assert bound <= d2.min() + 1e-12
        assert bound == pytest.approx(d2.min(), abs=1e-12)  # a corner of the cell attains it


@pytest.mark.parametrize(
    ("shape", "spacing", "dta", "max_gamma"),
    [
        ((40, 44), (0.25, 0.25, 1.0), 2.0, 2.0),  # DTA spans 8 pixels: long ring searches
        ((30, 33), (0.4, 0.3, 1.0), 1.0, 12.0),  # max_gamma beyond the tabulated ring: cell search after it
        ((9, 12, 13), (0.5, 0.6, 0.4), 2.0, 2.0),  # 3D, anisotropic, DTA spans 3-5 voxels
        ((7, 8, 9), (1.0, 1.0, 1.0), 1.0, 9.0),  # 3D, ring table capped at 6 cells
    ],
)
def test_ring_search_matches_the_general_search(
    shape: tuple[int, ...],
    spacing: tuple[float, float, float],
    dta: float,
    max_gamma: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Beyond the star the kernel continues over the faces around it, nearest cell first, bounded per cell by
    # distance and dose range, and falls back to the cell search near the grid edges or past the table. All
    # paths are exact for the same interpolant: they agree to rounding (1e-10 on γ², as above). Rough data
    # (±8 % noise on a smooth field) put many points in the ring, some next to the edges.
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(sum(shape))
    ref = 1.0 + 3.0 * gaussian_filter(rng.random(shape), 2.0)
    ev = ref * 1.03 + gaussian_filter(rng.normal(0.0, 0.08, shape), 0.5)
    grid = Grid(shape, (0.5, 1.0, -2.0), spacing)
    kwargs = dict(dd_percent=2.0, dta_mm=dta, cutoff_percent=0.0, max_gamma=max_gamma)
    a = gamma(Volume(ref, grid), Volume(ev, grid), **kwargs)
    with monkeypatch.context() as patch:
        _general_search_only(patch)
        b = gamma(Volume(ref, grid), Volume(ev, grid), **kwargs)
    ga, gb = a.gamma_map.array, b.gamma_map.array
    assert np.max(np.abs(ga**2 - gb**2)) <= 1e-10
    assert np.array_equal(a.passed, b.passed)
    assert a.pass_rate_percent == b.pass_rate_percent
    assert 0.0 < a.pass_rate_percent < 100.0


@pytest.mark.parametrize(
    ("scale", "ndim"), [((0.2, 0.2, 1.0), 2), ((1.0, 1.0, 1.0), 3), ((0.4, 0.7, 0.5), 3)]
)
def test_ring_table_bounds_are_lower_bounds_and_complete(scale: tuple[float, ...], ndim: int) -> None:
    from intrepid.analysis._gamma_kernels import _face_distance2, ring_table

    s = np.asarray(scale)
    table = ring_table(s, 2.0, ndim)
    n = table.m.size
    assert n > 0 and table.limit2 == pytest.approx(4.0)
    assert np.all(np.diff(table.cell_bound) >= 0)  # cells nearest first: the search may stop at the first
    assert table.cell_start[0] == 0 and table.cell_start[-1] == n
    rng = np.random.default_rng(5)
    for f in rng.choice(n, size=min(n, 300), replace=False):
        m = int(table.m[f])
        verts = table.vertices[f, : m + 1]
        assert not np.any(np.all(verts == 0, axis=1))  # the node itself is in the star, not the ring
        steps = verts[1:] - verts[:-1]
        chain = [int(sum(1 << a for a in range(3) if st[a])) for st in steps]
        exact = _face_distance2(-verts[0].astype(float), chain, s**2)
        assert table.bound[f] <= exact + 1e-12  # a lower bound of the distance to the face
        cell = int(np.searchsorted(table.cell_start, f, side="right")) - 1
        assert table.cell_bound[cell] <= table.bound[f] + 1e-12  # the cell bounds its faces
        assert np.all(verts - table.cell_base[cell] >= 0) and np.all(verts - table.cell_base[cell] <= 1)
    # complete: every face of the triangulation nearer than the limit (brute force), except the star's
    listed = {tuple(map(tuple, table.vertices[f, : table.m[f] + 1])) for f in range(n)}
    near = _faces_within(s, ndim, table.limit2)
    star = {face for face in near if (0, 0, 0) in face}
    assert len(star) == {2: 13, 3: 75}[ndim]  # 12 or 74 faces around the node, and the node itself
    assert near - star <= listed


def _faces_within(s: np.ndarray, ndim: int, limit2: float) -> set[tuple[tuple[int, ...], ...]]:
    import itertools

    from intrepid.analysis._gamma_kernels import _face_distance2, face_table

    blocks, counts = face_table(ndim)
    reach = [int(np.ceil(np.sqrt(limit2) / s[a])) + 1 if a < ndim else 0 for a in range(3)]
    faces = set()
    for base in itertools.product(*[range(-r - 1, r + 1) if r else (0,) for r in reach]):
        for f in range(blocks.shape[0]):
            chain = [int(b) for b in blocks[f, : counts[f]]]
            if _face_distance2(-np.asarray(base, dtype=float), chain, s**2) < limit2 * (1 - 1e-6):
                cum, verts = 0, [tuple(base)]
                for blk in chain:
                    cum |= blk
                    verts.append(tuple(int(base[a] + ((cum >> a) & 1)) for a in range(3)))
                faces.add(tuple(verts))
    return faces


def test_statistics_gathered_in_the_kernel_equal_numpy_on_the_map() -> None:
    # The numba kernel accumulates count, passes, sum, maximum and a histogram per task; γ1% is then read
    # from the top of the distribution only. Same numbers as numpy on the map: counts exact, γ1% and the
    # maximum exact (same order statistics and interpolation), the mean to summation-order rounding (1e-12).
    rng = np.random.default_rng(11)
    for shape in [(60, 70), (12, 14, 16)]:
        ref = 1.0 + 3.0 * rng.random(shape)
        ev = ref * (1.0 + rng.normal(0.0, 0.04, shape))
        grid = Grid(shape, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        for cutoff, cap in [(10.0, 2.0), (40.0, 1.3)]:
            res = gamma(
                Volume(ref, grid),
                Volume(ev, grid),
                dd_percent=3,
                dta_mm=1,
                cutoff_percent=cutoff,
                max_gamma=cap,
            )
            g = res.gamma_map.array
            values = g[np.isfinite(g)]
            assert res.evaluated_points == values.size
            assert res.passed_points == np.count_nonzero(values <= 1.0 + PASS_TOLERANCE)
            assert res.max_gamma == values.max()
            assert res.gamma_1percent == np.percentile(values, 99)
            assert res.mean_gamma == pytest.approx(values.mean(), rel=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_ring_probe_leaves_the_gamma_map_unchanged_on_a_hard_case(
    ndim: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before the ring search the kernel probes the ring cell that held the previous point's minimum; it only
    # lowers the best value earlier (pruning more cells), so the γ map must be bit-for-bit the one found
    # without the probe (its cell index emptied), on a hard random case where most points need the ring
    # (evaluated 5 % high and shifted, roughly half the points failing).
    from scipy.ndimage import gaussian_filter

    from intrepid.analysis import _gamma
    from intrepid.analysis._gamma_kernels import star_table

    rng = np.random.default_rng(17)
    shape = (64, 64) if ndim == 2 else (10, 20, 20)
    spacing = (0.4, 0.4, 1.0) if ndim == 2 else (2.0, 2.0, 2.0)
    field = gaussian_filter(rng.normal(size=shape), 6.0 if ndim == 2 else 2.0)
    ref = 10.0 + 3.0 * field / field.std()
    ev = 1.05 * np.roll(ref, 5 if ndim == 2 else 3, axis=-1)  # 2 or 6 mm
    ev += 0.2 * gaussian_filter(rng.normal(size=shape), 1.0)
    grid = Grid(shape, origin_mm=(0.0, 0.0, 0.0), spacing_mm=spacing)
    dta = 2.0 if ndim == 2 else 3.0
    kwargs = dict(dd_percent=3.0, dta_mm=dta, cutoff_percent=10.0, max_gamma=2.0, normalisation_dose=10.0)
    a = gamma(Volume(ref, grid), Volume(ev, grid), **kwargs)
    table_args = _gamma._table_args

    def without_probe(star: object, ring: object) -> tuple[object, ...]:
        args = list(table_args(star, ring))
        args[-2] = np.full_like(args[-2], -1)  # no ring cell can be found: the probe never runs
        return tuple(args)

    monkeypatch.setattr(_gamma, "_table_args", without_probe)
    b = gamma(Volume(ref, grid), Volume(ev, grid), **kwargs)
    ga, gb = a.gamma_map.array, b.gamma_map.array
    assert np.array_equal(ga, gb, equal_nan=True)
    assert a.pass_rate_percent == b.pass_rate_percent
    assert 20.0 < a.pass_rate_percent < 95.0
    # a hard case: most points lie beyond their star, so the ring search (and the probe) runs for them
    scale = np.asarray(spacing) / dta
    scale[ndim:] = 1.0
    assert np.mean(ga[np.isfinite(ga)] ** 2 > star_table(scale, ndim).rho2) > 0.5


def _brute_force_2d(
    ev: np.ndarray, ref: np.ndarray, spacing: tuple[float, float], dta: float, delta_d: np.ndarray
) -> np.ndarray:
    """Exact γ at every reference node (same grid as ``ev``): the distance, in the scaled space (x / DTA,
    D / ΔD), to every closed Kuhn triangle of the evaluated grid, minimised over all of them.

    The distance to a closed triangle is its plane distance when the foot of the perpendicular lies in the
    triangle, else the least distance to its three edges (segments). ``delta_d``: ΔD at each reference node.
    """
    nj, ni = ev.shape
    hx, hy = spacing[0] / dta, spacing[1] / dta
    tris = []
    for j in range(nj - 1):
        for i in range(ni - 1):
            c00, c10, c01, c11 = (i, j), (i + 1, j), (i, j + 1), (i + 1, j + 1)
            tris.append((c00, c10, c11))  # lower: along i, then j
            tris.append((c00, c01, c11))  # upper: along j, then i
    idx = np.asarray(tris)  # (T, 3, 2) of (i, j)
    xy = np.stack([idx[..., 0] * hx, idx[..., 1] * hy], axis=-1)  # (T, 3, 2)
    dose = ev[idx[..., 1], idx[..., 0]]  # (T, 3)
    jj, ii = np.meshgrid(np.arange(nj), np.arange(ni), indexing="ij")
    queries = np.stack([ii.ravel() * hx, jj.ravel() * hy, (ref / delta_d).ravel()], axis=1)  # (P, 3)
    inv_dd = (1.0 / delta_d).ravel()
    out = np.empty(queries.shape[0])

    def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sum(a * b, axis=-1)

    for start in range(0, queries.shape[0], 64):
        q = queries[start : start + 64, None, :]  # (P, 1, 3)
        v = np.concatenate(
            [
                np.broadcast_to(xy, (q.shape[0], *xy.shape)),
                (dose[None] * inv_dd[start : start + 64, None, None])[..., None],
            ],
            axis=-1,
        )  # (P, T, 3 vertices, 3)
        best = np.full(q.shape[0], np.inf)
        for a, b in ((0, 1), (1, 2), (0, 2)):  # edges: segment distances
            e = v[:, :, b] - v[:, :, a]
            t = np.clip(dot(q - v[:, :, a], e) / dot(e, e), 0.0, 1.0)
            best = np.minimum(best, np.min(dot(*(2 * [v[:, :, a] + t[..., None] * e - q])), axis=1))
        e1, e2 = v[:, :, 1] - v[:, :, 0], v[:, :, 2] - v[:, :, 0]
        n = np.cross(e1, e2)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        w = q - v[:, :, 0]
        dist = dot(w, n)
        foot = w - dist[..., None] * n
        # barycentric coordinates of the foot (Gram system of the two edges)
        g11, g12, g22 = dot(e1, e1), dot(e1, e2), dot(e2, e2)
        r1, r2 = dot(foot, e1), dot(foot, e2)
        det = g11 * g22 - g12 * g12
        s = (r1 * g22 - r2 * g12) / det
        t = (r2 * g11 - r1 * g12) / det
        inside = (s >= 0) & (t >= 0) & (s + t <= 1)
        best = np.minimum(best, np.min(np.where(inside, dist**2, np.inf), axis=1))
        out[start : start + 64] = np.sqrt(best)
    return out.reshape(ref.shape)


@pytest.mark.parametrize(
    ("seed", "spacing", "dta", "max_gamma", "normalisation"),
    [
        (1, (0.4, 0.4), 2.0, 2.0, Normalisation.GLOBAL),  # the hard-2d geometry: DTA over 5 steps
        (2, (0.5, 0.3), 2.0, 3.0, Normalisation.GLOBAL),  # anisotropic, a wider search
        (3, (0.4, 0.4), 1.5, 2.0, Normalisation.LOCAL),  # ΔD differs from point to point
    ],
)
def test_ring_rows_agree_with_brute_force_on_hard_2d_cases(
    seed: int,
    spacing: tuple[float, float],
    dta: float,
    max_gamma: float,
    normalisation: Normalisation,
) -> None:
    # The 2D ring search runs by rows of cells, each cell bounded by its distance plus the gap to its dose
    # range and each triangle by the distance to its plane (closed form, branch-free); only the triangles
    # that may beat the best are minimised. The brute force above knows none of that: it measures the
    # distance to every closed triangle of the grid (numpy, vectorised). Hard random cases — the evaluated
    # dose 6 % high and shifted a DTA, with noise — put most points beyond their star and many at the search
    # limit. Decisions must be
    # identical and γ equal to 1e-9 (rounding of a few dozen operations on O(1-100) numbers; the issue
    # asks for 1e-4).
    from scipy.ndimage import gaussian_filter

    from intrepid.analysis._gamma_kernels import star_table

    rng = np.random.default_rng(seed)
    shape = (30, 34)
    field = gaussian_filter(rng.normal(size=shape), 4.0)
    ref = 10.0 + 3.0 * np.tanh(field / field.std())  # 7 to 13 Gy: every point evaluated
    shift = round(dta / spacing[0])
    ev = 1.06 * np.roll(ref, shift, axis=1) + 0.15 * gaussian_filter(rng.normal(size=shape), 1.0)
    grid = Grid(shape, origin_mm=(0.0, 0.0, 0.0), spacing_mm=(spacing[0], spacing[1], 1.0))
    res = gamma(
        Volume(ref, grid),
        Volume(ev, grid),
        dd_percent=3.0,
        dta_mm=dta,
        cutoff_percent=0.0,
        max_gamma=max_gamma,
        normalisation=normalisation,
        normalisation_dose=10.0,
    )
    delta_d = 0.03 * (np.full(shape, 10.0) if normalisation is Normalisation.GLOBAL else ref)
    brute = np.minimum(_brute_force_2d(ev, ref, spacing, dta, delta_d), max_gamma)
    ours = res.gamma_map.array
    assert np.max(np.abs(ours - brute)) <= 1e-9
    assert np.array_equal(res.passed, brute <= 1.0 + PASS_TOLERANCE)
    # hard: most points need the ring, γ spreads from passing to the search limit
    scale = np.array([spacing[0] / dta, spacing[1] / dta, 1.0])
    assert np.mean(ours**2 > star_table(scale, 2).rho2) > 0.5
    assert 10.0 < res.pass_rate_percent < 90.0
    assert np.count_nonzero(ours >= max_gamma) > 0 and np.mean(ours > 0.5 * max_gamma) > 0.05
