"""Property tests of the dose engine: energy conservation, linearity, rigid-move invariance, symmetry,
density scaling (O'Connor's theorem) and the behaviour at a lung slab."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from intrepid.dose import (
    DoseSettings,
    compute_dose,
    cone_kernel,
    open_field_plan,
    slab_phantom,
    water_phantom,
)
from intrepid.dose._ccc import ccc_dose
from intrepid.geometry import Grid
from intrepid.physics import jaw_fluence

COARSE = DoseSettings(fan_spacing_mm=5.0)


def test_cone_transport_conserves_energy() -> None:
    """A point release in a uniform cube: deposited energy = kernel energy inside the cube along each cone."""
    k = cone_kernel()
    n, h = 61, 10.0
    eta = np.ones((n, n, n), np.float32)
    terma = np.zeros_like(eta)
    terma[n // 2, n // 2, n // 2] = 1.0
    z = np.arange(n) * h + 1e9  # a (nearly) parallel fan grid: every voxel has the same volume
    dose = ccc_dose(eta, terma, k.directions, k.amp_a, k.att_a, k.amp_b, k.att_b, z, h, h, 1e9)
    half_cm = n / 2 * h / 10.0
    path = half_cm / np.max(np.abs(k.directions), axis=1)
    expected = np.sum(
        k.amp_a / k.att_a * (1 - np.exp(-k.att_a * path)) + k.amp_b / k.att_b * (1 - np.exp(-k.att_b * path))
    )
    assert float(dose.sum()) == pytest.approx(float(expected), rel=1e-3)
    assert k.fraction_within(60.0) == pytest.approx(1.0, rel=1e-9)  # normalised inside the tabulated sphere
    assert k.total_fraction() > 1.0  # the exponential tails continue beyond 60 cm


def test_kernel_has_64_cones_forward_peaked() -> None:
    k = cone_kernel()
    assert k.n_directions == 64
    forward = k.directions[:, 2] > 0
    energy = k.amp_a / k.att_a + k.amp_b / k.att_b
    assert energy[forward].sum() > 0.8  # EDKnrc: 86 % of the energy goes forward


def test_dose_linear_in_mu() -> None:
    ct = water_phantom((200.0, 200.0, 200.0), 5.0)
    a = compute_dose(ct, open_field_plan(60.0, 60.0, mu=100.0), settings=COARSE).total.array
    b = compute_dose(ct, open_field_plan(60.0, 60.0, mu=250.0), settings=COARSE).total.array
    np.testing.assert_allclose(b, 2.5 * a, rtol=1e-5, atol=1e-7)


def test_rigid_move_of_ct_and_isocentre_leaves_dose_unchanged() -> None:
    ct = water_phantom((200.0, 200.0, 200.0), 5.0)
    shift = np.array([37.3, -12.9, 8.1])
    moved_grid = Grid(ct.grid.shape, tuple(np.asarray(ct.grid.origin_mm) + shift), ct.grid.spacing_mm)
    moved = replace(ct, grid=moved_grid)
    a = compute_dose(ct, open_field_plan(60.0, 80.0, gantry_deg=30.0), settings=COARSE).total.array
    plan = open_field_plan(60.0, 80.0, gantry_deg=30.0, isocenter_mm=tuple(shift))
    b = compute_dose(moved, plan, settings=COARSE).total.array
    np.testing.assert_allclose(b, a, atol=1e-4 * float(a.max()))


def test_symmetric_setup_gives_symmetric_dose() -> None:
    ct = water_phantom((205.0, 200.0, 205.0), 5.0)  # odd number of voxels: x = 0 is a voxel centre
    d = compute_dose(ct, open_field_plan(80.0, 80.0), settings=COARSE).total.array
    np.testing.assert_allclose(d, d[:, :, ::-1], atol=0.01 * float(d.max()))
    np.testing.assert_allclose(d, d[::-1, :, :], atol=0.01 * float(d.max()))


def _parallel(plan):
    """The plan with a source 100 m away: a (nearly) parallel beam, as O'Connor's theorem needs."""
    beam = replace(plan.beams[0], sad_mm=(1e5, 1e5))
    return replace(plan, beams=(beam,))


def test_density_scaling_theorem() -> None:
    """O'Connor: scaling every length by 1/rho in a uniform medium of density rho keeps the dose. Parallel
    beams; the in-air output (head scatter) of the two field sizes is divided out."""
    rho = 0.5
    water = compute_dose(
        water_phantom((300.0, 300.0, 300.0), 5.0), _parallel(open_field_plan(120.0, 120.0)), settings=COARSE
    )
    light = compute_dose(
        water_phantom((440.0, 400.0, 440.0), 5.0), _parallel(open_field_plan(240.0, 240.0)), settings=COARSE,
        hu_to_red=lambda hu: np.full_like(hu, rho),
    )  # fmt: skip
    sc_w = float(jaw_fluence((-60, 60), (-60, 60), [0.0], [0.0])[0, 0])
    sc_l = float(jaw_fluence((-120, 120), (-120, 120), [0.0], [0.0])[0, 0])

    def axis(d, sc):
        g = d.total.grid
        y = g.origin_mm[1] + np.arange(g.shape[1]) * g.spacing_mm[1]
        return y, d.total.array[g.shape[0] // 2, :, g.shape[2] // 2] / sc

    yw, dw = axis(water, sc_w)
    yl, dl = axis(light, sc_l)
    for depth in (30.0, 60.0, 100.0):
        assert float(np.interp(depth / rho, yl, dl)) == pytest.approx(
            float(np.interp(depth, yw, dw)), rel=0.03
        )


def test_lung_slab_behaviour() -> None:
    """Water 50 mm / lung (HU -740, rho_e ~0.26) 100 mm / water: the dose at the end of the lung and behind it
    exceeds the water dose at the same depth (less attenuation upstream)."""
    lung = slab_phantom([(50.0, 0.0), (100.0, -740.0), (150.0, 0.0)], width_mm=300.0, spacing_mm=5.0)
    water = slab_phantom([(300.0, 0.0)], width_mm=300.0, spacing_mm=5.0)
    plan = open_field_plan(100.0, 100.0)
    dl = compute_dose(lung, plan, settings=COARSE).total
    dw = compute_dose(water, plan, settings=COARSE).total
    g = dl.grid
    y = g.origin_mm[1] + np.arange(g.shape[1]) * g.spacing_mm[1]
    axis_l = dl.array[g.shape[0] // 2, :, g.shape[2] // 2]
    axis_w = dw.array[g.shape[0] // 2, :, g.shape[2] // 2]
    behind = float(np.interp(200.0, y, axis_l) / np.interp(200.0, y, axis_w))
    assert behind > 1.03  # 100 mm of lung instead of water: ~7 cm less water-equivalent depth
    in_lung = float(np.interp(145.0, y, axis_l) / np.interp(145.0, y, axis_w))
    assert in_lung > 1.05


def _arc_plan(gantries: list[float]):
    """open_field_plan's beam turned into an arc through ``gantries`` (equal meterset per segment)."""
    plan = open_field_plan(60.0, 60.0, mu=100.0)
    beam = plan.beams[0]
    cp0 = beam.control_points[0]
    n = len(gantries)
    cps = tuple(
        replace(cp0, index=i, gantry_deg=float(g), cumulative_meterset_weight=i / (n - 1))
        for i, g in enumerate(gantries)
    )
    return replace(plan, beams=(replace(beam, control_points=cps),))


def test_arc_is_sampled_by_gantry_sector() -> None:
    """An arc 0 -> 20 degrees equals (at the isocentre, within 2 %) the static beam at 10 degrees, and an
    'arc' whose control points all share one angle equals the static beam exactly."""
    ct = water_phantom((200.0, 200.0, 200.0), 5.0)
    static = compute_dose(ct, open_field_plan(60.0, 60.0, mu=100.0, gantry_deg=10.0), settings=COARSE)
    arc = compute_dose(ct, _arc_plan([0.0, 5.0, 10.0, 15.0, 20.0]), settings=COARSE)
    g = ct.grid
    iso = tuple(int(v) for v in np.round(g.world_to_index([[0.0, 50.0, 0.0]])[0][::-1]))
    assert float(arc.total.array[iso]) == pytest.approx(float(static.total.array[iso]), rel=0.02)
    fixed = compute_dose(ct, _arc_plan([10.0, 10.0, 10.0]), settings=COARSE)
    np.testing.assert_allclose(fixed.total.array, static.total.array, rtol=1e-5, atol=1e-6)
