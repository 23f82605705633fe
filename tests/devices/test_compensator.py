"""Geometric range-compensator design: analytic sphere, margins, shifts, smearing, limits, border, patch."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from intrepid.devices import (
    PMMA,
    WAX,
    BeamGeometry,
    BorderHandling,
    CompensatorMaterial,
    CompensatorSettings,
    design_compensator,
)
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.physics import relative_stopping_power

_SURFACE_Y = -50.5  # water surface (voxel face); HFS gantry 0: the source is anterior (-y)
_R = 25.0


def _coords(g: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ax = [g.origin_mm[a] + g.axis_coordinates_mm(a) for a in range(3)]
    z, y, x = np.meshgrid(ax[2], ax[1], ax[0], indexing="ij")
    return x, y, z


@pytest.fixture(scope="module")
def phantom() -> tuple[Volume, Volume]:
    g = Grid((81, 111, 81), origin_mm=(-40, -55, -40), spacing_mm=(1, 1, 1))
    x, y, z = _coords(g)
    rsp = Volume(np.where(y >= _SURFACE_Y, 1.0, 0.0).astype(np.float32), g, Quantity.RELATIVE_STOPPING_POWER)
    sphere = Volume(x**2 + y**2 + z**2 <= _R**2, g, Quantity.MASK)
    return rsp, sphere


def _sphere_distal_wepl(geo: BeamGeometry, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Closed form: water depth of the sphere's far surface along each divergent ray (point source)."""
    view = geo.beam_line_view()
    src = np.array(view.source_x_mm)
    pts = u[..., None] * np.array(view.x_axis) + v[..., None] * np.array(view.y_axis)
    d = pts - src
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    b = np.einsum("...i,...i", d, src)
    disc = b**2 - (src @ src - _R**2)
    t_exit = -b + np.sqrt(np.where(disc > 0, disc, np.nan))
    t_surface = (_SURFACE_Y - src[1]) / d[..., 1]
    return np.asarray(t_exit - t_surface)


def test_sphere_compensator_follows_the_distal_surface(phantom: tuple[Volume, Volume]) -> None:
    rsp, sphere = phantom
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    res = design_compensator(
        rsp, sphere, geo, CompensatorSettings(pixel_spacing_mm=2.0, min_thickness_mm=3.0)
    )
    u, v = res.ray_positions_mm("iso")
    w = _sphere_distal_wepl(geo, u, v)
    chord_ok = np.hypot(u, v) < 0.8 * _R  # away from grazing rays, where the voxelised surface is ragged
    # voxelised sphere (1 mm voxels): the last exit is a voxel face, within half a voxel diagonal (0.87 mm)
    assert np.nanmax(np.abs(res.distal_wepl_mm[chord_ok] - w[chord_ok])) < 0.9
    # thickness formula: t = (R_beam - R) / RSP, the deepest ray at the minimum thickness
    expected = (res.beam_range_mm - res.distal_wepl_mm) / PMMA.relative_stopping_power
    hit = np.isfinite(res.distal_wepl_mm)
    np.testing.assert_allclose(res.thickness_mm[hit], expected[hit], atol=1e-9)
    assert res.thickness_mm[hit].min() == pytest.approx(3.0)
    assert res.beam_range_mm == pytest.approx(np.nanmax(res.distal_wepl_mm) + 3.0 * 1.165)
    # the surface is thinnest on the axis (deepest distal surface) and thickens outwards, like the sphere
    centre = np.unravel_index(np.argmin(np.hypot(u, v)), u.shape)
    assert res.thickness_mm[centre] == pytest.approx(3.0, abs=0.9)
    stats = res.statistics()
    assert set(stats) >= {"thickness_min_mm", "thickness_max_mm", "thickness_mean_mm"}


def test_dual_source_grid_scales_per_axis(phantom: tuple[Volume, Volume]) -> None:
    rsp, sphere = phantom
    geo = BeamGeometry(sad_mm=(1500.0, 3000.0))
    res = design_compensator(rsp, sphere, geo, CompensatorSettings(isocenter_to_compensator_mm=300.0))
    row_iso, col_iso = res.pixel_spacing_iso_mm
    assert col_iso == pytest.approx(2.0 * 1500 / 1200)  # x magnification (1500 - 300) / 1500
    assert row_iso == pytest.approx(2.0 * 3000 / 2700)


def test_margins_add_percent_and_millimetres(phantom: tuple[Volume, Volume]) -> None:
    rsp, sphere = phantom
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    base = design_compensator(rsp, sphere, geo)
    marg = design_compensator(
        rsp, sphere, geo, CompensatorSettings(distal_margin_percent=3.5, distal_margin_mm=3)
    )
    hit = np.isfinite(base.distal_wepl_mm)
    np.testing.assert_allclose(marg.intended_range_mm[hit], base.distal_wepl_mm[hit] * 1.035 + 3.0, atol=1e-9)


def test_smearing_is_the_maximum_within_the_radius(phantom: tuple[Volume, Volume]) -> None:
    rsp, sphere = phantom
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    # same grid for both (the grid is padded by field margin + smearing radius)
    base = design_compensator(rsp, sphere, geo, CompensatorSettings(field_margin_mm=15.0))
    smear = design_compensator(
        rsp, sphere, geo, CompensatorSettings(field_margin_mm=10.0, smearing_radius_mm=5.0)
    )
    assert base.shape == smear.shape
    # brute-force Urie: the maximum over the rays within 5 mm (isocentre plane) of each ray
    u, v = base.ray_positions_mm("iso")
    pts = np.column_stack([u.ravel(), v.ravel()])
    vals = base.intended_range_mm.ravel()
    ok = np.isfinite(vals)
    expected = np.full(vals.shape, np.nan)
    for n, p in enumerate(pts):
        near = ok & (np.linalg.norm(pts - p, axis=1) <= 5.0 + 1e-6)
        if near.any():
            expected[n] = vals[near].max()
    np.testing.assert_allclose(smear.intended_range_mm.ravel(), expected, atol=1e-9, equal_nan=True)


def test_shift_covers_the_target_moved_by_the_setup_error(phantom: tuple[Volume, Volume]) -> None:
    rsp, sphere = phantom
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    s = 8.0 * 2000 / 1800  # 8 mm = 4 pixels of 2 mm at the device plane (magnification 0.9): exact
    res = design_compensator(rsp, sphere, geo, CompensatorSettings(shift_mm=s, field_margin_mm=0.0))
    r = res.intended_range_mm
    raw = res.distal_wepl_mm
    filled = np.where(np.isfinite(raw), raw, -np.inf)
    exp = filled.copy()
    exp[:, 4:] = np.maximum(exp[:, 4:], filled[:, :-4])
    exp[:, :-4] = np.maximum(exp[:, :-4], filled[:, 4:])
    exp[4:, :] = np.maximum(exp[4:, :], filled[:-4, :])
    exp[:-4, :] = np.maximum(exp[:-4, :], filled[4:, :])
    exp = np.where(np.isfinite(exp), exp, np.nan)
    np.testing.assert_allclose(r, exp, equal_nan=True)


def test_min_and_max_thickness_clip(phantom: tuple[Volume, Volume]) -> None:
    rsp, sphere = phantom
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    res = design_compensator(
        rsp, sphere, geo, CompensatorSettings(min_thickness_mm=2.0, max_thickness_mm=10.0)
    )
    assert res.thickness_mm.min() >= 2.0 and res.thickness_mm.max() <= 10.0
    assert res.clipped_max_rays > 0
    # a beam range shorter than the target needs: the deepest rays are under-ranged at the minimum
    short = design_compensator(rsp, sphere, geo, CompensatorSettings(beam_range_mm=60.0))
    assert short.under_range_rays > 0 and short.thickness_mm.min() == 0.0


@pytest.mark.parametrize("material", [PMMA, WAX, CompensatorMaterial.parse("1.03:1.05")])
def test_material_scales_thickness_by_its_stopping_power(
    phantom: tuple[Volume, Volume], material: CompensatorMaterial
) -> None:
    rsp, sphere = phantom
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    res = design_compensator(rsp, sphere, geo, CompensatorSettings(material=material))
    wet = res.thickness_mm * material.relative_stopping_power
    hit = np.isfinite(res.distal_wepl_mm)
    np.testing.assert_allclose(wet[hit] + res.distal_wepl_mm[hit], res.beam_range_mm, atol=1e-9)


def test_wax_preset_matches_bethe() -> None:
    # paraffin (CH2)n: Z/A 0.5706, I 55.9 eV, 0.93 g/cm3 -> RSP 0.990 at 150 MeV (the preset, 0.5 %)
    assert WAX.relative_stopping_power == pytest.approx(
        relative_stopping_power(150.0, density_g_cm3=0.93, z_over_a=0.5706, mean_excitation_ev=55.9),
        rel=0.005,
    )


@pytest.mark.parametrize("border", list(BorderHandling))
def test_border_handling(phantom: tuple[Volume, Volume], border: BorderHandling) -> None:
    rsp, sphere = phantom
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    res = design_compensator(rsp, sphere, geo, CompensatorSettings(border=border))
    out = ~np.isfinite(res.intended_range_mm)
    inside = res.thickness_mm[~out]
    if border is BorderHandling.MAX_THICKNESS:
        assert np.allclose(res.thickness_mm[out], inside.max())
    elif border is BorderHandling.MIN_THICKNESS:
        assert np.allclose(res.thickness_mm[out], inside.min())
    else:  # nearest designed ray: every border value is one of the designed values
        assert np.isin(np.round(res.thickness_mm[out], 9), np.round(inside, 9)).all()


def test_aperture_limits_the_statistics(phantom: tuple[Volume, Volume]) -> None:
    rsp, sphere = phantom
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    res = design_compensator(rsp, sphere, geo, aperture=shapely.Point(0, 0).buffer(20))
    assert 0 < res.field_mask.sum() < res.field_mask.size
    assert res.to_dict()["thickness_max_mm"] == res.statistics()["thickness_max_mm"]


def test_patch_field_stops_at_the_existing_isodose(phantom: tuple[Volume, Volume]) -> None:
    rsp, sphere = phantom
    g = rsp.grid
    _, y, _ = _coords(g)
    # a through field covering y >= 5 mm (the deep half of the sphere) with a sharp edge
    dose = Volume(np.where(y >= 5.0, 2.0, 0.0), g, Quantity.DOSE, "Gy")
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    res = design_compensator(
        rsp, sphere, geo, CompensatorSettings(patch_isodose_percent=50.0), patch_dose=dose
    )
    base = design_compensator(rsp, sphere, geo)
    u, v = res.ray_positions_mm("iso")
    central = np.hypot(u, v) < 10.0
    # central rays: the distal surface is the isodose plane y = 4.5 (first sample >= 50 %), depth 55
    np.testing.assert_allclose(res.distal_wepl_mm[central], 55.0, atol=1.0)
    # rays that never meet the isodose inside the target keep the target's distal surface
    shallow = np.isfinite(base.distal_wepl_mm) & (base.distal_wepl_mm < 54.0)
    np.testing.assert_allclose(res.distal_wepl_mm[shallow], base.distal_wepl_mm[shallow])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"distal_margin_percent": -1.0}, "distal_margin_percent must be >= 0"),
        ({"smearing_radius_mm": -2.0}, "smearing_radius_mm must be >= 0"),
        ({"pixel_spacing_mm": 0.0}, "pixel_spacing_mm must be > 0"),
        ({"min_thickness_mm": 5.0, "max_thickness_mm": 4.0}, "max_thickness_mm must be > 5"),
        ({"iterations": -1}, "iterations must be an integer >= 0"),
        ({"distal_isodose_percent": 120.0}, "distal_isodose_percent must be > 0 and <= 100"),
        ({"material": "pmma"}, "material must be a CompensatorMaterial"),
        ({"border": "zero"}, "border must be a BorderHandling"),
    ],
)
def test_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        CompensatorSettings(**kwargs)


def test_bad_inputs(phantom: tuple[Volume, Volume]) -> None:
    rsp, sphere = phantom
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    with pytest.raises(ParameterError, match="material must be 'pmma', 'wax' or 'RSP:DENSITY'"):
        CompensatorMaterial.parse("lead")
    with pytest.raises(ParameterError, match="target_mask is empty"):
        design_compensator(rsp, sphere.with_array(np.zeros(sphere.shape, bool)), geo)
    other = Volume(np.ones((3, 3, 3), bool), Grid((3, 3, 3), (0, 0, 0), (1, 1, 1)), Quantity.MASK)
    with pytest.raises(GeometryError, match="must be on the CT grid"):
        design_compensator(rsp, other, geo)
    with pytest.raises(ParameterError, match="isocenter_to_compensator_mm = 2500"):
        design_compensator(rsp, sphere, geo, CompensatorSettings(isocenter_to_compensator_mm=2500.0))
    with pytest.raises(ParameterError, match="ct must hold CT numbers or relative stopping power"):
        design_compensator(rsp.with_array(rsp.array, quantity=Quantity.DOSE), sphere, geo)
    with pytest.raises(ParameterError, match="geometry must be a BeamGeometry"):
        design_compensator(rsp, sphere, "gantry 0")  # type: ignore[arg-type]
