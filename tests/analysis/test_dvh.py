"""Tests of DVHs and dose statistics (intrepid.analysis._dvh).

Analytic phantoms after Nelms et al. 2015 (Med Phys 42:4435, doi:10.1118/1.4923175): a sphere, a cylinder and
a cone, drawn as polygons on planes (as a TPS would store them), in a dose with a known linear gradient; the
whole chain contours → exact occupancy → DVH is compared with closed forms. Trilinear interpolation is exact
on a linear dose, so the remaining errors come from (a) the planar model (midpoint rule along z, polygons of
128 vertices), (b) representing each (sub-)voxel by the dose at its centre. Each tolerance below says which.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from intrepid.analysis import DVH, compute_dvh, compute_dvhs
from intrepid.errors import FrameOfReferenceError, GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume

N_VERTICES = 128
#: A regular 128-gon inscribed in a circle has this fraction of the circle's area (1 - 4.0e-4).
POLYGON_AREA_FACTOR = N_VERTICES / (2 * np.pi) * np.sin(2 * np.pi / N_VERTICES)


@dataclass(frozen=True)
class _Contour:
    points_mm: np.ndarray


@dataclass(frozen=True)
class _Roi:
    name: str
    number: int
    contours: tuple[_Contour, ...]
    frame_of_reference_uid: str | None = None


def _circle(cx: float, cy: float, z: float, r: float) -> _Contour:
    t = np.arange(N_VERTICES) * 2 * np.pi / N_VERTICES
    return _Contour(np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(t.size, z)]))


def _stack(name: str, centre: tuple[float, float], z_planes: np.ndarray, radius_at) -> _Roi:
    cs = tuple(_circle(centre[0], centre[1], float(z), float(radius_at(z))) for z in z_planes)
    return _Roi(name, 1, cs)


def _linear_dose(
    grid: Grid, g: tuple[float, float, float], d0: float = 10.0, uid: str | None = None
) -> Volume:
    p = grid.world_points()
    return Volume(d0 + p @ np.asarray(g), grid, Quantity.DOSE, "Gy", uid)


DOSE_GRID = Grid.from_bounds((-30, -30, -30), (30, 30, 30), (2.0, 2.0, 2.0))


# ---------------------------------------------------------------------------------------------- sphere
R_SPHERE = 12.0
SPHERE_PLANES = np.arange(-11.5, 12.0, 1.0)  # 24 planes, 1 mm apart: slabs with end caps cover [-12, 12]
G_Z = 0.5  # Gy/mm


def _sphere_cap_cc(h_from_top_mm: float, r: float = R_SPHERE) -> float:
    h = min(max(h_from_top_mm, 0.0), 2 * r)
    return math.pi * h * h * (3 * r - h) / 3 / 1000.0


def _sphere_dose_at_volume_cc(v_cc: float) -> float:
    h = brentq(lambda hh: _sphere_cap_cc(hh) - v_cc, 0.0, 2 * R_SPHERE)
    return 10.0 + G_Z * (R_SPHERE - h)


@pytest.fixture(scope="module")
def sphere_dvh() -> DVH:
    roi = _stack("sphere", (0.0, 0.0), SPHERE_PLANES, lambda z: math.sqrt(R_SPHERE**2 - z * z))
    return compute_dvh(_linear_dose(DOSE_GRID, (0.0, 0.0, G_Z)), roi)


def _contoured_sphere_cc() -> float:
    """The sphere between its outermost planes (±11.5 mm) plus 0.5 mm end caps: the structure as contoured."""
    z1 = float(SPHERE_PLANES[-1])
    inner = math.pi * (R_SPHERE**2 * 2 * z1 - 2 * z1**3 / 3)
    caps = 2 * 0.5 * math.pi * (R_SPHERE**2 - z1 * z1)
    return (inner + caps) * POLYGON_AREA_FACTOR / 1000


def test_sphere_volume_matches_contoured_solid(sphere_dvh: DVH) -> None:
    # Shape-based interpolation is exact for spheres between planes (p = |x|² - r² is quadratic in z): the
    # volume is the contoured solid's to the sampling error (0.78 mm lattice, ~15 000 samples: < 0.2 %).
    assert sphere_dvh.volume_cc == pytest.approx(_contoured_sphere_cc(), rel=2e-3)
    # The two 0.5 mm end caps hold 2 × 9.2 mm³ more than the polar caps they replace: +0.25 % over the sphere.
    assert sphere_dvh.volume_cc == pytest.approx(4 / 3 * math.pi * R_SPHERE**3 / 1000 * 1.0025, rel=2e-3)
    assert sphere_dvh.supersample > 1  # finer than the dose grid


def test_sphere_dose_statistics_closed_form(sphere_dvh: DVH) -> None:
    # Symmetric about z = 0 in a linear gradient: Dmean = D50 = 10 Gy (the sample lattice is symmetric in z).
    assert sphere_dvh.mean_gy == pytest.approx(10.0, abs=1e-3)
    assert sphere_dvh.dose_at_volume_percent(50) == pytest.approx(10.0, abs=0.02)
    # Dmin / Dmax on the end-cap faces z = ±12 mm (4 and 16 Gy): the continuous dose, boundary included.
    assert sphere_dvh.min_gy == pytest.approx(4.0, abs=1e-9)
    assert sphere_dvh.max_gy == pytest.approx(16.0, abs=1e-9)


@pytest.mark.parametrize("percent", [98.0, 95.0, 80.0, 20.0, 5.0, 2.0])
def test_sphere_dx_closed_form(sphere_dvh: DVH, percent: float) -> None:
    v = percent / 100 * 4 / 3 * math.pi * R_SPHERE**3 / 1000
    expected = _sphere_dose_at_volume_cc(v)
    # Samples spread over their cells' dose ranges: no staircase. The truth here is the sphere, not the
    # contoured solid (0.5 mm caps instead of the poles): < 0.02 Gy apart at D98 / D2. Tolerance 0.05 Gy.
    tol = 0.05
    assert sphere_dvh.dose_at_volume_percent(percent) == pytest.approx(expected, abs=tol)


@pytest.mark.parametrize("dose_gy", [6.0, 8.0, 10.0, 12.0, 14.0])
def test_sphere_vx_closed_form(sphere_dvh: DVH, dose_gy: float) -> None:
    expected = _sphere_cap_cc(R_SPHERE - (dose_gy - 10.0) / G_Z)
    # Volume error = cross-section (≤ π R² = 4.5 cm²) × half a sub-voxel (1/3 mm) = 0.15 cm³ (a layer of
    # sub-voxels whose centres sit exactly at dose_gy counts whole), plus < 0.01 cm³ from the model.
    assert sphere_dvh.volume_at_dose_gy(dose_gy) == pytest.approx(expected, abs=0.16)
    rel = sphere_dvh.volume_percent_at_dose_gy(dose_gy)
    assert rel == pytest.approx(100 * sphere_dvh.volume_at_dose_gy(dose_gy) / sphere_dvh.volume_cc)
    assert sphere_dvh.volume_at_dose_percent(dose_gy * 10, 10.0) == pytest.approx(
        sphere_dvh.volume_at_dose_gy(dose_gy)
    )


# ---------------------------------------------------------------------------------------------- cylinder
def test_cylinder_in_lateral_gradient() -> None:
    r, length, gx = 8.0, 20.0, 0.4
    planes = np.arange(-9.5, 10.0, 1.0)  # 20 planes, slabs cover [-10, 10]
    roi = _stack("cyl", (1.0, 0.0), planes, lambda z: r)  # axis at x = 1 mm (off the voxel lattice)
    dvh = compute_dvh(_linear_dose(DOSE_GRID, (gx, 0.0, 0.0)), roi, supersample=1)
    assert dvh.volume_cc == pytest.approx(math.pi * r * r * length * POLYGON_AREA_FACTOR / 1000, rel=1e-6)
    # Dose 10 + 0.4 x; axis at x = 1 → Dmean = D50 = 10.4 Gy (exact by symmetry of the occupancy about
    # x = 1 on the lattice: 2 mm voxels with centres at even x are symmetric about x = 1 → 1e-6 Gy).
    assert dvh.mean_gy == pytest.approx(10.4, abs=1e-6)

    def segment_cc(h: float) -> float:  # volume with x - 1 >= h
        h = min(max(h, -r), r)
        return (r * r * math.acos(h / r) - h * math.sqrt(r * r - h * h)) * length / 1000

    for d in (8.0, 9.5, 10.4, 11.5, 13.0):
        # Without supersampling each 2 mm voxel sits at its centre dose: a staircase with steps of up to half
        # a voxel (1 mm); volume error ≤ chord (16 mm) × length (20 mm) × 1 mm = 0.32 cm³.
        assert dvh.volume_at_dose_gy(d) == pytest.approx(segment_cc((d - 10.4) / gx), abs=0.33)
    # Half the volume sits on voxel layers at x <= 0 (<= 10 Gy), half at x >= 2 (>= 10.8 Gy): D50 lies on that
    # step, within half a voxel × gradient (0.4 Gy) of 10.4 Gy.
    assert dvh.dose_at_volume_percent(50) == pytest.approx(10.4, abs=0.41)


# ---------------------------------------------------------------------------------------------- cone
def test_cone_in_axial_gradient() -> None:
    base_r, height, gz = 10.0, 20.0, 0.5
    planes = np.arange(0.5, 20.0, 1.0)  # planes every 1 mm, slabs cover [0, 20]
    roi = _stack("cone", (0.0, 0.0), planes, lambda z: base_r * (1 - z / height))
    dvh = compute_dvh(_linear_dose(DOSE_GRID, (0.0, 0.0, gz), d0=0.0), roi)
    # The contoured cone: the cone between the planes 0.5 and 19.5 mm (exact under the interpolation, r is
    # linear in z) plus 0.5 mm end caps.
    model = (2000 * math.pi / 3 * ((1 - 0.5 / height) ** 3 - (1 - 19.5 / height) ** 3)
             + 0.5 * math.pi * (base_r**2 * ((1 - 0.5 / height) ** 2 + (1 - 19.5 / height) ** 2)))
    assert dvh.volume_cc == pytest.approx(model * POLYGON_AREA_FACTOR / 1000, rel=1e-3)
    # Cone π R² H / 3 vs the contoured one (caps): -0.1 %: within 0.5 %.
    cone_cc = math.pi * base_r**2 * height / 3 / 1000
    assert dvh.volume_cc == pytest.approx(cone_cc, rel=5e-3)
    # Dose = 0.5 z: mean over the cone = 0.5 × H/4 = 2.5 Gy (centroid at H/4); model error ~1 %.
    assert dvh.mean_gy == pytest.approx(2.5, rel=0.01)
    for frac in (0.98, 0.5, 0.1, 0.02):
        # V(z >= zd) = V (1 - zd/H)^3 → zd = H (1 - frac^(1/3)); dose 0.5 zd. Tolerance 0.15 Gy = 0.3 mm.
        zd = height * (1 - frac ** (1 / 3))
        assert dvh.dose_at_volume_percent(100 * frac) == pytest.approx(gz * zd, abs=0.15)


# ---------------------------------------------------------------------------------------------- small
def test_small_sphere_keeps_volume_and_dose_range() -> None:
    # A 2 mm sphere (0.034 cm³, 1.2 voxels of 27 mm³) centred between the centres of 3 mm voxels, in
    # D = 10 + x Gy: true Dmin 9.5, Dmax 13.5, Dmean 11.5 Gy. No voxel is half occupied.
    grid = Grid.from_bounds((-15, -15, -15), (15, 15, 15), (3.0, 3.0, 3.0))
    dose = _linear_dose(grid, (1.0, 0.0, 0.0), d0=10.0)
    planes = 1.5 + np.arange(-1.9, 2.0, 0.2)  # 20 planes 0.2 mm apart
    roi = _stack("tiny", (1.5, 1.5), planes, lambda z: math.sqrt(max(4.0 - (z - 1.5) ** 2, 0.0)))
    coarse = compute_dvh(dose, roi, supersample=1)
    fine = compute_dvh(dose, roi)  # auto
    # Exact occupancy keeps the volume on 3 mm voxels; the 0.2 mm planar model is within 1 % of the sphere,
    # and so is the interpolated solid sampled finely ("auto").
    assert coarse.volume_cc == pytest.approx(4 / 3 * math.pi * 8 / 1000, rel=0.01)
    assert fine.volume_cc == pytest.approx(4 / 3 * math.pi * 8 / 1000, rel=0.01)
    assert fine.supersample > 6
    # On the dose grid only two dose values exist (voxel centres x = 0 and 3): the range is wrong.
    assert (coarse.min_gy, coarse.max_gy) == pytest.approx((10.0, 13.0))
    # The extremes lie on the surface: the contours nearest the equator (z = ±0.1 mm from it) reach
    # r = 1.9975 mm → 9.5025 and 13.4975 Gy: within 0.005 Gy of the solid's, never outside it.
    assert 13.5 - 0.005 <= fine.max_gy <= 13.5 + 1e-9
    assert 9.5 - 1e-9 <= fine.min_gy <= 9.5 + 0.005
    # Mean: 11.5 Gy by symmetry; the sample lattice is symmetric to within its step: 0.01 Gy.
    assert fine.mean_gy == pytest.approx(11.5, abs=0.01)
    for percent in (95.0, 50.0, 5.0):
        target = percent / 100 * 4 / 3 * math.pi * 8
        h = brentq(lambda hh, t=target: math.pi * hh * hh * (6 - hh) / 3 - t, 0, 4)
        # Continuous dose over the solid: within 0.03 Gy (0.03 mm at 1 Gy/mm).
        assert fine.dose_at_volume_percent(percent) == pytest.approx(13.5 - h, abs=0.03)


def test_hot_spot_between_voxel_centres_linear_peak() -> None:
    # A dose linear along x within the structure's voxels (a ridge whose maximum lies between voxel
    # centres, as in a narrow field edge). Only supersampling samples inside the small structure.
    grid = Grid.from_bounds((-12, -12, -12), (12, 12, 12), (4.0, 4.0, 4.0))
    x = grid.world_points()[..., 0]
    dose = Volume(np.where(x <= 0, 10 + x, 10 - x), grid, Quantity.DOSE, "Gy")  # peak 10 Gy at x = 0
    # A 1.6 mm sphere at x = 2 mm (half way between the voxel centres x = 0 and 4): dose 8 Gy at its centre,
    # linear between the centres: Dmax = 10 - (2 - 1.6) = 9.6 Gy at x = 0.4 (within the interpolant).
    planes = np.arange(-1.5, 1.6, 0.1)
    rad = 1.6
    roi = _stack("tiny", (2.0, 0.0), planes, lambda z: math.sqrt(max(rad * rad - z * z, 0.0)))
    coarse = compute_dvh(dose, roi, supersample=1)
    fine = compute_dvh(dose, roi, supersample=8)
    # Voxel centres (x = 0 and 4) give 10 and 6 Gy; the fallback (no voxel >= 50 % occupied) takes them.
    assert coarse.max_gy == pytest.approx(10.0)
    # 8 × 8 × 8 sub-voxels of 0.5 mm: the hottest centre inside lies within a sub-voxel diagonal
    # (0.43 mm) of the sphere's edge → 9.6 Gy within 0.45 Gy (1 Gy/mm); never above the true 9.6 Gy.
    assert 9.6 - 0.45 <= fine.max_gy <= 9.6 + 1e-9
    assert 6.4 - 1e-9 <= fine.min_gy <= 6.4 + 0.45
    assert fine.mean_gy == pytest.approx(8.0, abs=0.05)  # symmetric about x = 2 on the linear segment


# ---------------------------------------------------------------------------------------------- occupancy
def test_occupancy_volume_on_dose_grid_and_other_grid() -> None:
    grid = Grid((6, 6, 6), (0.0, 0.0, 0.0), (2.0, 2.0, 2.0))
    dose = _linear_dose(grid, (0.0, 0.0, 1.0), d0=1.0)  # 1 + z, z = 0, 2, ..., 10
    occ = np.zeros(grid.shape)
    occ[2:5, 1:5, 1:5] = 1.0  # z = 4, 6, 8 mm: 5, 7, 9 Gy
    occ[1, 1:5, 1:5] = 0.5  # z = 2 mm: 3 Gy, half occupied
    dvh = compute_dvh(dose, Volume(occ, grid, Quantity.MASK), supersample=1, name="box")
    assert dvh.name == "box"
    assert dvh.volume_cc == pytest.approx((48 + 8) * 8 / 1000)
    # The half-occupied slice counts in Dmin (occupancy >= 0.5).
    assert dvh.min_gy == pytest.approx(3.0) and dvh.max_gy == pytest.approx(9.0)
    expected_mean = (16 * 0.5 * 3 + 16 * (5 + 7 + 9)) / (8 + 48)  # 16 voxels per slice
    assert dvh.mean_gy == pytest.approx(expected_mean)
    # Same occupancy on a grid shifted by half a voxel along x: the dose is linear in z only → same DVH.
    g2 = Grid((6, 6, 6), (1.0, 0.0, 0.0), (2.0, 2.0, 2.0))
    d2 = compute_dvh(dose, Volume(occ, g2, Quantity.MASK), supersample=1)
    assert d2.volume_cc == pytest.approx(dvh.volume_cc)
    assert d2.mean_gy == pytest.approx(dvh.mean_gy)
    # Supersampled occupancy volume: same volume, same mean on a linear dose.
    d3 = compute_dvh(dose, Volume(occ, grid, Quantity.MASK), supersample=3)
    assert d3.volume_cc == pytest.approx(dvh.volume_cc)
    assert d3.mean_gy == pytest.approx(dvh.mean_gy, abs=1e-9)


def test_from_doses_closed_form_and_interpolation() -> None:
    # Four samples of 1 cm³ at 1, 2, 3, 4 Gy, 0.5 Gy bins.
    dvh = DVH.from_doses("a", [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0], bin_width_gy=0.5)
    assert dvh.volume_cc == 4.0 and dvh.mean_gy == 2.5
    assert dvh.min_gy == 1.0 and dvh.max_gy == 4.0
    assert dvh.dose_at_volume_percent(100) == 1.0
    assert dvh.dose_at_volume_cc(0.0) == 4.0
    # V(≥ 1.25 Gy): the 1 Gy sample spreads uniformly over [1, 1.5) → 4 - 0.5 = 3.5 cm³ (linear, not a step).
    assert dvh.volume_at_dose_gy(1.25) == pytest.approx(3.5)
    assert dvh.volume_at_dose_gy(0.5) == 4.0 and dvh.volume_at_dose_gy(5.0) == 0.0
    # D for 3.5 cm³ inverts that: 1.25 Gy; for 3.75 cm³: 1.125 Gy.
    assert dvh.dose_at_volume_cc(3.5) == pytest.approx(1.25)
    assert dvh.dose_at_volume_cc(3.75) == pytest.approx(1.125)
    d = dvh.to_dict()
    for key in ("volume_cc", "min_gy", "max_gy", "mean_gy", "d98_gy", "d95_gy", "d50_gy", "d2_gy", "curve"):
        assert key in d
    assert d["curve"]["volume_cc"][0] == 4.0 and d["curve"]["volume_cc"][-1] == 0.0
    assert "curve" not in dvh.to_dict(curve=False)


def test_differential_sums_to_cumulative() -> None:
    rng = np.random.default_rng(3)
    dvh = DVH.from_doses("r", rng.uniform(0, 5, 500), rng.uniform(0, 0.01, 500), bin_width_gy=0.1)
    np.testing.assert_allclose(
        dvh.cumulative_cc[:-1] - dvh.cumulative_cc[1:], dvh.differential_cc, atol=1e-12
    )


def test_from_cumulative_round_trip() -> None:
    a = DVH.from_doses("a", np.linspace(1, 3, 200), np.full(200, 0.01), bin_width_gy=0.01)
    b = DVH.from_cumulative("b", a.dose_bin_edges_gy, a.cumulative_cc)
    for p in (98, 50, 2):
        assert b.dose_at_volume_percent(p) == pytest.approx(a.dose_at_volume_percent(p), abs=0.01)
    assert b.mean_gy == pytest.approx(a.mean_gy, abs=0.01)  # bin-centre integration: ≤ half a bin


@settings(max_examples=40, deadline=None)
@given(
    doses=st.lists(st.floats(0.0, 80.0, allow_nan=False), min_size=1, max_size=60),
    seed=st.integers(0, 2**16),
    bin_width=st.sampled_from([0.01, 0.1, 0.5, 2.0]),
)
def test_cumulative_monotone_and_dx_vx_consistent(doses: list[float], seed: int, bin_width: float) -> None:
    rng = np.random.default_rng(seed)
    vols = rng.uniform(0.001, 1.0, len(doses))
    dvh = DVH.from_doses("h", doses, vols, bin_width_gy=bin_width)
    assert np.all(np.diff(dvh.cumulative_cc) <= 1e-12)
    assert dvh.cumulative_cc[0] == pytest.approx(vols.sum())
    assert dvh.cumulative_cc[-1] == 0.0
    assert dvh.min_gy <= dvh.mean_gy + 1e-9 and dvh.mean_gy <= dvh.max_gy + 1e-9
    ds = [dvh.dose_at_volume_percent(p) for p in (100, 98, 95, 50, 2, 0)]
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(ds))  # Dx non-decreasing as x falls
    for d in np.linspace(0, max(doses) + 1, 7):
        v = dvh.volume_at_dose_gy(d)
        assert -1e-12 <= v <= dvh.volume_cc + 1e-12


def test_frames_of_reference_and_empty_roi() -> None:
    dose = _linear_dose(DOSE_GRID, (0, 0, 1.0), uid="1.2.3")
    roi = _Roi("far", 1, (_circle(0, 0, 0.0, 3.0), _circle(0, 0, 1.0, 3.0)), frame_of_reference_uid="9.9.9")
    with pytest.raises(FrameOfReferenceError, match=r"Frame of Reference 9\.9\.9"):
        compute_dvh(dose, roi)
    empty = compute_dvh(dose, _Roi("empty", 2, ()))
    assert empty.is_empty and empty.volume_cc == 0.0 and math.isnan(empty.mean_gy)
    assert math.isnan(empty.dose_at_volume_percent(95)) and empty.volume_at_dose_gy(1.0) == 0.0
    outside = _Roi("out", 3, (_circle(500, 0, 0.0, 3.0), _circle(500, 0, 1.0, 3.0)))
    assert compute_dvh(dose, outside).is_empty


class _SS:
    def __init__(self, rois: list[_Roi]) -> None:
        self.rois = tuple(rois)

    def roi(self, name: str) -> _Roi:
        return next(r for r in self.rois if r.name == name)


def test_compute_dvhs_selects_names_in_order() -> None:
    dose = _linear_dose(DOSE_GRID, (0, 0, 0.1))
    a = _stack("A", (0, 0), np.arange(-4.5, 5, 1.0), lambda z: 6.0)
    b = _stack("B", (5, 5), np.arange(-2.5, 3, 1.0), lambda z: 3.0)
    out = compute_dvhs(dose, _SS([a, b]))
    assert list(out) == ["A", "B"]
    only = compute_dvhs(dose, _SS([a, b]), names=["B"])
    assert list(only) == ["B"]
    with pytest.raises(ParameterError, match="ROI 'C' is not in the structure set"):
        compute_dvhs(dose, _SS([a, b]), names=["C"])


def test_bad_inputs() -> None:
    dose = _linear_dose(DOSE_GRID, (0, 0, 1.0))
    occ = Volume(np.ones(DOSE_GRID.shape), DOSE_GRID, Quantity.MASK)
    with pytest.raises(ParameterError, match="bin_width_gy must be > 0"):
        compute_dvh(dose, occ, bin_width_gy=0.0)
    with pytest.raises(ParameterError, match="supersample must be in"):
        compute_dvh(dose, occ, supersample=0)
    with pytest.raises(ParameterError, match="supersample must be 'auto' or an integer"):
        compute_dvh(dose, occ, supersample="x")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="dose units must be Gy"):
        compute_dvh(dose.with_array(dose.array, units="cGy"), occ)
    with pytest.raises(ParameterError, match=r"must hold fractions in \[0, 1\]"):
        compute_dvh(dose, occ.with_array(occ.array * 2))
    with pytest.raises(ParameterError, match="must be a Volume or an ROI"):
        compute_dvh(dose, 3)  # type: ignore[arg-type]
    with pytest.raises(GeometryError, match="must be a 3D Volume"):
        g2 = Grid((3, 3), (0, 0, 0), (1, 1, 1))
        compute_dvh(Volume(np.ones((3, 3)), g2, Quantity.DOSE, "Gy"), occ)
    with pytest.raises(ParameterError, match="dose_gy must be >= 0 Gy"):
        compute_dvh(dose.with_array(dose.array - 100), occ)
    dvh = DVH.from_doses("a", [1.0, 2.0], [1.0, 1.0])
    with pytest.raises(ParameterError, match=r"volume_cc must be in \[0, 2"):
        dvh.dose_at_volume_cc(3.0)
    with pytest.raises(ParameterError, match=r"volume_percent must be in \[0, 100\]"):
        dvh.dose_at_volume_percent(101)
    with pytest.raises(ParameterError, match="prescription_gy must be > 0"):
        dvh.volume_at_dose_percent(95, 0.0)
    with pytest.raises(ParameterError, match="dose_gy must be finite"):
        dvh.volume_at_dose_gy(float("nan"))
    with pytest.raises(ParameterError, match="volume_cc must be >= 0"):
        DVH.from_doses("a", [1.0], [-1.0])
    with pytest.raises(ParameterError, match="same length"):
        DVH.from_doses("a", [1.0, 2.0], [1.0])
