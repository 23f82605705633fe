"""Tests of the phantom library: HU where expected, rotations, isocentre placement, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrepid.errors import ParameterError
from intrepid.geometry import Quantity
from intrepid.simulate import (
    AIR_HU,
    BONE_HU,
    CT_NUMBER_RANGE_HU,
    LUNG_HU,
    PMMA_HU,
    SOFT_TISSUE_HU,
    SPINE_HU,
    TITANIUM_HU,
    WATER_HU,
    InsertMaterial,
    IsocenterMode,
    Phantom,
    PhantomFamily,
    PlugMaterial,
    SlabCode,
    decode_slab_code,
    make_insert_slab_phantom,
    make_multiplug_phantom,
    make_patient_phantom,
    make_phantom,
    make_slab_phantom,
    make_thorax_phantom,
)

# 5 mm voxels keep every phantom below ~0.2 M voxels; all geometry checks below sample points at least one
# voxel away from any boundary, so the voxelisation cannot change the expected material.
SP = 5.0


def hu_at(p: Phantom, point_mm: tuple[float, float, float]) -> float:
    """HU of the voxel nearest to a world point (mm)."""
    ijk = np.rint(p.ct.grid.world_to_index(np.asarray(point_mm, dtype=float))).astype(int)
    return float(p.ct.array[ijk[2], ijk[1], ijk[0]])


def mask_at(p: Phantom, name: str, point_mm: tuple[float, float, float]) -> bool:
    ijk = np.rint(p.ct.grid.world_to_index(np.asarray(point_mm, dtype=float))).astype(int)
    return bool(p.structures[name][ijk[2], ijk[1], ijk[0]])


ALL_MAKERS = [
    make_slab_phantom,
    make_thorax_phantom,
    make_insert_slab_phantom,
    make_multiplug_phantom,
    make_patient_phantom,
]


@pytest.mark.parametrize("maker", ALL_MAKERS)
def test_every_phantom_is_a_ct_volume(maker):
    p = maker(spacing_mm=SP)
    assert p.ct.quantity is Quantity.CT_NUMBER
    assert p.ct.units == "HU"
    assert p.ct.array.dtype == np.float32
    assert p.ct.frame_of_reference_uid.startswith("2.25.")
    assert p.ct.grid.is_axis_aligned
    lo, hi = CT_NUMBER_RANGE_HU
    assert p.ct.array.min() >= lo and p.ct.array.max() <= hi
    assert p.ct.metadata["family"] == p.family.value
    assert p.ct.metadata["phantom"] == p.name
    for mask in p.structures.values():
        assert mask.shape == p.ct.shape and mask.dtype == bool and mask.any()
    # centred on the world origin: the grid box is symmetric about 0 (to rounding)
    bmin, bmax = p.ct.grid.bounds_mm()
    np.testing.assert_allclose(bmin, -bmax, atol=1e-9)


@pytest.mark.parametrize("maker", ALL_MAKERS)
def test_deterministic(maker):
    a, b = maker(spacing_mm=SP), maker(spacing_mm=SP)
    assert np.array_equal(a.ct.array, b.ct.array)
    assert a.ct.frame_of_reference_uid == b.ct.frame_of_reference_uid


def test_slab_thickness_and_buildup():
    p = make_slab_phantom(100.0, buildup_mm=30.0, spacing_mm=(5.0, 1.0, 5.0))
    assert p.name == "6s10b3" and p.family is PhantomFamily.HOMOGENEOUS
    assert np.all(p.ct.array == WATER_HU)
    # water along y through the centre: 130 mm at 1 mm voxels (the whole grid is the stack)
    assert p.ct.shape[1] * p.ct.grid.spacing_mm[1] == pytest.approx(130.0)
    # build-up is the anterior (-y) 30 mm
    y = p.ct.grid.world_axes_mm()[1]
    rows = np.flatnonzero(p.structures["buildup"][p.ct.shape[0] // 2, :, p.ct.shape[2] // 2])
    assert y[rows].min() < -60 and y[rows].max() < -35
    assert len(rows) == 30
    assert p.isocenter_mm == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("6s10b3", SlabCode(6, 100.0, 30.0)),
        ("6s30b1_2", SlabCode(6, 300.0, 10.0)),
        ("6s20_4", SlabCode(6, 200.0, 0.0)),
        ("6s7.5", SlabCode(6, 75.0, 0.0)),
    ],
)
def test_decode_slab_code(code, expected):
    assert decode_slab_code(code) == expected


@given(t=st.integers(1, 40), b=st.integers(0, 10))
@settings(max_examples=30, deadline=None)
def test_slab_code_round_trip(t, b):
    code = SlabCode(6, 10.0 * t, 10.0 * b)
    assert decode_slab_code(code.name) == code


@pytest.mark.parametrize("bad", ["", "6x10", "s10b3", "6s10b", "6s0"])
def test_decode_slab_code_rejects(bad):
    with pytest.raises(ParameterError, match="slab code"):
        decode_slab_code(bad)


def test_thorax_materials():
    p = make_thorax_phantom(spacing_mm=SP)
    assert p.family is PhantomFamily.CIRS and p.name == "CIRS_0gradi_ISOcentro"
    assert hu_at(p, (0, 0, 0)) == SOFT_TISSUE_HU  # mediastinum between the lungs
    assert hu_at(p, (65, -40, 50)) == LUNG_HU  # left lung, away from the lesion
    assert hu_at(p, (-65, 20, -50)) == LUNG_HU  # right lung
    assert hu_at(p, (0, 65, 0)) == SPINE_HU  # spine, posterior (+y)
    assert hu_at(p, (65, -5, 0)) == SOFT_TISSUE_HU  # the lesion inside the left lung
    assert hu_at(p, (140, 90, 0)) == AIR_HU  # outside the ellipse (x/150)^2 + (y/100)^2 > 1
    # body 300 x 200 mm
    body = p.structures["body"][p.ct.shape[0] // 2]
    assert np.count_nonzero(body.any(axis=0)) * SP == pytest.approx(300.0, abs=SP)
    assert np.count_nonzero(body.any(axis=1)) * SP == pytest.approx(200.0, abs=SP)


@pytest.mark.parametrize(
    ("rotation", "expected_iso"),
    [(0, (65.0, -5.0, 0.0)), (90, (5.0, 65.0, 0.0)), (180, (-65.0, 5.0, 0.0)), (270, (-5.0, -65.0, 0.0))],
)
def test_thorax_isocentre_at_lesion_follows_rotation(rotation, expected_iso):
    p = make_thorax_phantom(spacing_mm=SP, rotation_deg=rotation, isocenter=IsocenterMode.LESION)
    # exact: integer rotation matrices on the lesion centre
    assert p.isocenter_mm == pytest.approx(expected_iso, abs=1e-12)
    assert mask_at(p, "lesion", p.isocenter_mm)
    assert p.name == f"CIRS_{rotation}gradi_ISOlesione"


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_isocentre_at_centre(rotation):
    p = make_thorax_phantom(spacing_mm=SP, rotation_deg=rotation, isocenter=IsocenterMode.CENTER)
    assert p.isocenter_mm == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("maker", ALL_MAKERS)
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_exact_rot90(maker, rotation):
    # metamorphic: a roll by 90 deg about +z (x -> y) equals numpy.rot90 of the [j, i] plane, exactly
    base = maker(spacing_mm=SP).ct.array
    rotated = maker(spacing_mm=SP, rotation_deg=rotation).ct.array
    assert np.array_equal(rotated, np.rot90(base, k=-(rotation // 90), axes=(1, 2)))


def test_rotation_moves_insert():
    p0 = make_insert_slab_phantom(InsertMaterial.BONE, spacing_mm=SP)
    p90 = make_insert_slab_phantom(InsertMaterial.BONE, spacing_mm=SP, rotation_deg=90)
    # insert centred at x = +40 mm at 0 deg; the roll by +90 deg takes +x to +y
    assert hu_at(p0, (40, 0, 0)) == BONE_HU and hu_at(p0, (0, 40, 0)) == WATER_HU
    assert hu_at(p90, (0, 40, 0)) == BONE_HU and hu_at(p90, (40, 0, 0)) == WATER_HU
    # the stack stands on its side: 300 mm along y, 150 mm along x
    assert p90.ct.shape[1] * SP == pytest.approx(300.0) and p90.ct.shape[2] * SP == pytest.approx(150.0)


def test_insert_slab_air_and_isocentre():
    p = make_insert_slab_phantom(
        InsertMaterial.AIR, n_inserts=2, spacing_mm=SP, isocenter=IsocenterMode.LESION
    )
    assert p.name == "SLABinhomAir2"
    # two 20 mm air layers with 20 mm water between: a 60 mm block centred on y = 0
    assert hu_at(p, (40, -20, 0)) == AIR_HU  # first insert, y in [-30, -10]
    assert hu_at(p, (40, 0, 0)) == WATER_HU  # water between the inserts, y in [-10, 10]
    assert hu_at(p, (40, 20, 0)) == AIR_HU  # second insert, y in [10, 30]
    assert hu_at(p, (-40, -20, 0)) == WATER_HU  # off the insert
    assert p.isocenter_mm == pytest.approx((40.0, 0.0, 0.0))


def test_insert_slab_buildup_shifts_inserts_posteriorly():
    p = make_insert_slab_phantom(InsertMaterial.BONE, buildup_mm=20.0, spacing_mm=SP)
    assert p.name == "SLABBone1b2"
    # stack 150 + 20 mm spans y in [-85, 85]; inserts centred in the 150 mm part, at y = +10
    assert hu_at(p, (40, 10, 0)) == BONE_HU
    assert hu_at(p, (40, -15, 0)) == WATER_HU


@pytest.mark.parametrize(
    ("plug", "hu"),
    [(PlugMaterial.PMMA, PMMA_HU), (PlugMaterial.TITANIUM, TITANIUM_HU), (PlugMaterial.AIR, AIR_HU)],
)
def test_multiplug_materials(plug, hu):
    p = make_multiplug_phantom(plug, spacing_mm=SP)
    assert hu_at(p, (50, 0, 0)) == hu  # hole 1 on the ring at 0 deg
    assert hu_at(p, (0, 0, 0)) == WATER_HU  # centre hole not filled by default
    assert hu_at(p, (0, 50, 0)) == WATER_HU  # no plug at 90 deg
    assert hu_at(p, (0, 95, 0)) == WATER_HU and hu_at(p, (95, 95, 0)) == AIR_HU


def test_titanium_inside_documented_ct_range():
    assert CT_NUMBER_RANGE_HU[0] <= TITANIUM_HU <= CT_NUMBER_RANGE_HU[1]


def test_multiplug_rotation_and_plug_isocentre():
    p = make_multiplug_phantom(PlugMaterial.TITANIUM, spacing_mm=SP, rotation_deg=90,
                               isocenter=IsocenterMode.LESION)
    assert p.name == "Multiplug_Ti_90g_ISOplug"
    assert hu_at(p, (0, 50, 0)) == TITANIUM_HU and hu_at(p, (50, 0, 0)) == WATER_HU
    assert p.isocenter_mm == pytest.approx((0.0, 50.0, 0.0))
    assert mask_at(p, "plug_1", p.isocenter_mm)


def test_patient_c_shape():
    p = make_patient_phantom(spacing_mm=2.5, isocenter=IsocenterMode.LESION)
    assert np.all(p.ct.array[p.structures["body"]] == WATER_HU)
    target, core = p.structures["target"], p.structures["core"]
    assert not np.any(target & core)
    pts = p.ct.grid.world_points()
    tp = pts[target]
    r = np.hypot(tp[:, 0], tp[:, 1])
    assert r.min() >= 15.0 and r.max() <= 37.0 and tp[:, 1].max() <= 5.0
    assert np.abs(tp[:, 2]).max() <= 40.0
    # the C is open posteriorly: nothing of the target straight behind the core, something in front
    assert mask_at(p, "target", (0, -25, 0)) and not mask_at(p, "target", (0, 25, 0))
    # isocentre at the target centroid: on the midline, anterior of the core
    assert p.isocenter_mm[0] == pytest.approx(0.0, abs=1e-6) and p.isocenter_mm[1] < -5.0
    assert p.family is PhantomFamily.PATIENT


def test_make_phantom_dispatch_and_enum_values():
    p = make_phantom(PhantomFamily.SLAB, {"material": "air", "n_inserts": 1}, spacing_mm=SP)
    q = make_insert_slab_phantom(InsertMaterial.AIR, n_inserts=1, spacing_mm=SP)
    assert np.array_equal(p.ct.array, q.ct.array)
    m = make_phantom(PhantomFamily.MULTIPLUG, {"plug": "titanium", "filled_holes": [0]}, spacing_mm=SP)
    assert hu_at(m, (0, 0, 0)) == TITANIUM_HU


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_slab_phantom(0.0), "thickness_mm must be > 0, got 0.0"),
        (lambda: make_slab_phantom(100.0, buildup_mm=-1.0), "buildup_mm must be >= 0"),
        (lambda: make_slab_phantom(100.0, rotation_deg=45), "rotation_deg must be one of 0, 90, 180, 270"),
        (lambda: make_slab_phantom(100.0, spacing_mm=-1.0), r"spacing_mm must be within \[0.2, 20\] mm"),
        (lambda: make_slab_phantom(100.0, spacing_mm=(1.0, 1.0)), "spacing_mm must be a number or 3 values"),
        (lambda: make_slab_phantom(100.0, isocenter="ISOcentro"), "isocenter must be an IsocenterMode"),
        (lambda: make_thorax_phantom(lesion=False, isocenter=IsocenterMode.LESION), "needs lesion=True"),
        (lambda: make_thorax_phantom(lesion_diameter_mm=100.0), "lesion_diameter_mm must be <= 80"),
        (lambda: make_insert_slab_phantom(n_inserts=0), r"n_inserts must be an integer in \[1, 5\], got 0"),
        (lambda: make_insert_slab_phantom(n_inserts=5, thickness_mm=100.0), "need 180 mm, more than"),
        (lambda: make_insert_slab_phantom(insert_offset_mm=140.0), "must fit in the 300 x 300 mm slabs"),
        (lambda: make_insert_slab_phantom("bone"), "material must be an InsertMaterial"),
        (lambda: make_multiplug_phantom(filled_holes=(1, 1)), "filled_holes must be distinct indices"),
        (lambda: make_multiplug_phantom(filled_holes=(7,)), "filled_holes must be distinct indices"),
        (lambda: make_multiplug_phantom(plug_diameter_mm=60.0), "plug_diameter_mm must be <= 45"),
        (lambda: make_patient_phantom(length_mm=50.0), "length_mm must be >= 100"),
        (lambda: make_phantom(PhantomFamily.SLAB, {"material": "gold"}), "material must be one of bone, air"),
        (lambda: make_phantom(PhantomFamily.CIRS, {"colour": 1}), "bad parameters for a CIRS phantom"),
        (lambda: make_phantom("CIRS"), "family must be a PhantomFamily"),
    ],
)
def test_bad_parameters(call, match):
    with pytest.raises(ParameterError, match=match):
        call()
