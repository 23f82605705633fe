"""Hong pencil-beam proton dose: broad-field depth dose, field edges, compensator shift, dual source."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.physics import (
    CompensatorMap,
    PencilLattice,
    patient_sigma_mm,
    pencil_beam_dose,
    spread_out_bragg_peak,
)

# patient LPS -> beam frame of HFS gantry 0 (the IEC beam-limiting-device frame): x -> x, z -> y, -y -> z
_IMAGE_TO_BEAM = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1.0]])
_SURFACE_Y = -60.0  # water from y = -60 mm (anterior surface) downwards


@pytest.fixture(scope="module")
def water() -> Volume:
    g = Grid((41, 141, 61), origin_mm=(-60, -80, -40), spacing_mm=(2, 1, 2))
    arr = np.zeros(g.shape, np.float32)
    y = g.origin_mm[1] + g.axis_coordinates_mm(1)
    arr[:, y >= _SURFACE_Y + 0.5, :] = 1.0  # voxel centres from -59.0: the surface is the face at -59.5
    return Volume(arr, g, Quantity.RELATIVE_STOPPING_POWER)


@pytest.fixture(scope="module")
def sobp() -> object:
    return spread_out_bragg_peak(80.0, 30.0)


def test_patient_sigma_is_sigma0_at_the_end_of_range() -> None:
    r = 150.0
    assert float(patient_sigma_mm(r, r)) == pytest.approx(
        (0.02275 * r + 1.2085e-6 * r * r) * 1.0005, rel=1e-4
    )
    assert float(patient_sigma_mm(0.0, r)) == 0.0


def test_broad_field_central_axis_is_the_depth_dose_times_inverse_square(water: Volume, sobp: object) -> None:
    res = pencil_beam_dose(
        water, _IMAGE_TO_BEAM, 2000.0, sobp, aperture=shapely.box(-40, -30, 40, 30), depth_step_mm=0.5
    )
    bev = res.bev
    c = (np.argmin(np.abs(bev.lattice.v_mm)), np.argmin(np.abs(bev.lattice.u_mm)))
    prof = bev.dose[:, c[0], c[1]]
    depth = bev.wepl_mm[:, c[0], c[1]]
    inv_sq = (2000.0 / (2000.0 - bev.z_mm)) ** 2
    expected = sobp.relative_dose(depth) * inv_sq  # type: ignore[attr-defined]
    inside = (depth > 1.0) & (depth < 70.0)
    # 30 mm from the field edges every pencil's Gaussian is complete: the sum is exact (0.1 %)
    np.testing.assert_allclose(prof[inside], expected[inside], rtol=1e-3)
    assert res.dose is not None and res.dose.units == "relative"
    assert float(res.dose.array[0, 0, 0]) == 0.0  # air


def test_field_edge_is_at_half_dose_on_the_projected_aperture(water: Volume, sobp: object) -> None:
    res = pencil_beam_dose(
        water,
        _IMAGE_TO_BEAM,
        (2000.0, 2000.0),
        sobp,
        aperture=shapely.box(-30, -30, 30, 30),
        pencil_spacing_mm=1.0,
    )
    dose = res.dose.array  # type: ignore[union-attr]
    g = water.grid
    j = int(np.argmin(np.abs(g.origin_mm[1] + g.axis_coordinates_mm(1) - 0.0)))  # isocentre depth plane
    k = int(np.argmin(np.abs(g.origin_mm[2] + g.axis_coordinates_mm(2))))
    x = g.origin_mm[0] + g.axis_coordinates_mm(0)
    prof = dose[k, j, :]
    centre = prof[np.argmin(np.abs(x))]
    edge = float(np.interp(30.0, x, prof))
    # a symmetric penumbra puts the edge of a broad field at 50 % (2 % for the 2 mm grid interpolation)
    assert edge / centre == pytest.approx(0.5, abs=0.02)


def test_uniform_compensator_pulls_the_range_back_by_its_water_equivalent_thickness(
    water: Volume, sobp: object
) -> None:
    ap = shapely.box(-30, -30, 30, 30)
    t_mm, rsp = 10.0, 1.165
    comp = CompensatorMap(np.full((40, 40), t_mm), (-39.0, 39.0), (2.0, 2.0), 150.0, rsp, 340.7)
    lattice = PencilLattice.regular((-40, -40, 40, 40), 2.0)
    kw = {"aperture": ap, "lattice": lattice, "depth_step_mm": 0.25, "to_grid": False}
    open_ = pencil_beam_dose(water, _IMAGE_TO_BEAM, 2000.0, sobp, **kw).bev
    comp_ = pencil_beam_dose(water, _IMAGE_TO_BEAM, 2000.0, sobp, compensator=comp, **kw).bev
    c = (np.argmin(np.abs(lattice.v_mm)), np.argmin(np.abs(lattice.u_mm)))

    def d90(bev: object) -> float:
        prof = bev.dose[:, c[0], c[1]] / bev.dose[:, c[0], c[1]].max()  # type: ignore[attr-defined]
        w = bev.wepl_mm[:, c[0], c[1]]  # type: ignore[attr-defined]
        i = np.nonzero(prof >= 0.9)[0][-1]
        return float(np.interp(0.9, [prof[i + 1], prof[i]], [w[i + 1], w[i]]))

    # metamorphic: the compensator moves the distal 90 % by t x RSP (0.3 mm: depth step and inverse square)
    assert d90(open_) - d90(comp_) == pytest.approx(t_mm * rsp, abs=0.3)
    np.testing.assert_allclose(comp_.compensator_wet_mm, t_mm * rsp)


def test_dual_source_edges_diverge_from_their_own_source(water: Volume, sobp: object) -> None:
    sad = (1500.0, 3000.0)
    res = pencil_beam_dose(
        water,
        _IMAGE_TO_BEAM,
        sad,
        sobp,
        aperture=shapely.box(-20, -20, 20, 20),
        pencil_spacing_mm=1.0,
        to_grid=False,
    )
    bev = res.bev
    # the lattice is on the isocentre plane; at beam height z its physical spacing scales per axis
    k = int(np.argmin(np.abs(bev.z_mm + 40.0)))
    z = bev.z_mm[k]
    hx = (bev.lattice.u_mm[1] - bev.lattice.u_mm[0]) * (1 - z / sad[0])
    hy = abs(bev.lattice.v_mm[1] - bev.lattice.v_mm[0]) * (1 - z / sad[1])
    assert hx == pytest.approx(1.0 * (sad[0] + 40) / sad[0], rel=1e-3)
    assert hy == pytest.approx(1.0 * (sad[1] + 40) / sad[1], rel=1e-3)
    # the rays' directions: x diverges from 1500 mm, y from 3000 mm (DivergentRays convention)
    d = bev.directions[0, -1]
    u, v = bev.lattice.u_mm[-1], bev.lattice.v_mm[0]
    assert d[0] / d[1] == pytest.approx(u / sad[0], rel=1e-6)  # beam x = LPS x, beam -z = LPS +y
    assert d[2] / d[1] == pytest.approx(v / sad[1], rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ParameterError, "give an aperture, a compensator or a pencil lattice"),
        (
            {"aperture": shapely.box(-5, -5, 5, 5), "source_size_mm": 3.0},
            ParameterError,
            "aperture_distance_mm is required",
        ),
        (
            {"aperture": shapely.box(-5, -5, 5, 5), "pencil_spacing_mm": 0.0},
            ParameterError,
            "pencil_spacing_mm must be > 0",
        ),
        (
            {"aperture": shapely.box(-5, -5, 5, 5), "depth_step_mm": -1.0},
            ParameterError,
            "depth_step_mm must be > 0",
        ),
    ],
)
def test_bad_parameters(water: Volume, sobp: object, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        pencil_beam_dose(water, _IMAGE_TO_BEAM, 2000.0, sobp, **kwargs)


def test_bad_inputs(water: Volume, sobp: object) -> None:
    ct = water.with_array(water.array * 1000 - 1000, quantity=Quantity.CT_NUMBER)
    with pytest.raises(ParameterError, match="CT numbers"):
        pencil_beam_dose(ct, _IMAGE_TO_BEAM, 2000.0, sobp, aperture=shapely.box(-5, -5, 5, 5))
    with pytest.raises(ParameterError, match="image_to_beam must be a finite 4 x 4"):
        pencil_beam_dose(water, np.eye(3), 2000.0, sobp, aperture=shapely.box(-5, -5, 5, 5))
    with pytest.raises(ParameterError, match="sad_mm must be > 0"):
        pencil_beam_dose(water, _IMAGE_TO_BEAM, -1.0, sobp, aperture=shapely.box(-5, -5, 5, 5))
    with pytest.raises(GeometryError, match="too close to the virtual source"):
        pencil_beam_dose(water, _IMAGE_TO_BEAM, 50.0, sobp, aperture=shapely.box(-5, -5, 5, 5))
    with pytest.raises(ParameterError, match="thickness_mm must be a finite 2D array"):
        CompensatorMap(np.full((3, 3), -1.0), (0, 0), (1, 1), 100, 1.165, 340.7)
    with pytest.raises(ParameterError, match="evenly spaced"):
        PencilLattice(np.array([0.0, 1.0, 3.0]), np.array([0.0, 1.0]))
