"""Delivery-error SPEC strings and their effect on plans and patients; in-vivo case generation."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.simulate._invivo_errors import (
    DeliveryError,
    ErrorKind,
    apply_patient_errors,
    apply_plan_errors,
    parse_error_spec,
)
from intrepid.simulate._invivo_plans import make_plan
from intrepid.simulate._patients import make_patient_case_phantom
from intrepid.simulate._phantoms import BONE_HU, SPINE_HU


@pytest.fixture(scope="module")
def pelvis():  # type: ignore[no-untyped-def]
    p = make_patient_case_phantom("pelvis", spacing_mm=5.0)
    pts = p.ct.grid.index_to_world(np.argwhere(p.structures["PTV"])[:, ::-1].astype(float))
    return p, pts, make_plan("imrt7", pts, p.isocenter_mm)


@pytest.mark.parametrize(("spec", "kind", "values"), [
    ("mu:+5", ErrorKind.MU, (5.0,)), ("mu:-2", ErrorKind.MU, (-2.0,)),
    ("setup:7,0,0", ErrorKind.SETUP, (7.0, 0.0, 0.0)),
    ("rotation:0,0,3", ErrorKind.ROTATION, (0.0, 0.0, 3.0)),
    ("mlc:A:+3", ErrorKind.MLC, (3.0,)), ("leaf:B:41:-10", ErrorKind.LEAF, (-10.0,)),
    ("gantry:+3", ErrorKind.GANTRY, (3.0,)), ("collimator:-2", ErrorKind.COLLIMATOR, (-2.0,)),
    ("anatomy:shrink:8", ErrorKind.ANATOMY_SHRINK, (8.0,)),
    ("anatomy:cavity:fill", ErrorKind.ANATOMY_CAVITY, ()), ("plan:wrong", ErrorKind.PLAN_WRONG, ()),
])
def test_specs_parse(spec: str, kind: ErrorKind, values: tuple[float, ...]) -> None:
    e = parse_error_spec(spec)
    assert e.kind is kind and e.values == values and e.spec == spec


@pytest.mark.parametrize(("spec", "message"), [
    ("mu:abc", "expected 1 number"), ("setup:1,2", "expected 3"), ("mlc:C:+3", "bank must be A or B"),
    ("leaf:A:x:+3", "leaf pair number"), ("warp:9", "unknown kind"), ("anatomy:melt", "anatomy:shrink"),
    ("gantry:+90", "magnitude"),
])
def test_bad_specs_name_the_spec(spec: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message) as info:
        parse_error_spec(spec)
    assert repr(spec) in str(info.value)


def test_machine_errors_change_exactly_what_they_name(pelvis) -> None:  # type: ignore[no-untyped-def]
    p, _pts, plan = pelvis
    mu = apply_plan_errors(plan, [parse_error_spec("mu:+5")])
    assert [b.meterset for b in mu.beams] == pytest.approx([1.05 * b.meterset for b in plan.beams])
    mlc = apply_plan_errors(plan, [parse_error_spec("mlc:A:+3")])
    a0, a1 = plan.beams[2].control_points[0].mlc_mm, mlc.beams[2].control_points[0].mlc_mm
    is_open = a0[1] - a0[0] > 0
    assert np.allclose(a1[0, is_open] - a0[0, is_open], 3.0) and np.allclose(a1[1], a0[1])
    g = apply_plan_errors(plan, [parse_error_spec("gantry:-3")])
    assert g.beams[0].control_points[0].gantry_deg == pytest.approx(357.0)
    s = apply_plan_errors(plan, [parse_error_spec("setup:7,0,-2")])
    assert s.beams[0].isocenter_mm == pytest.approx(np.asarray(p.isocenter_mm) - [7.0, 0.0, -2.0])
    leaf = apply_plan_errors(plan, [parse_error_spec("leaf:A:41:+4")])
    diff = leaf.beams[0].control_points[0].mlc_mm - plan.beams[0].control_points[0].mlc_mm
    assert np.count_nonzero(diff) in (1, 2) and diff[0, 40] == pytest.approx(4.0)


def test_wrong_plan_is_deterministic_for_a_seed(pelvis) -> None:  # type: ignore[no-untyped-def]
    p, pts, plan = pelvis
    e = [parse_error_spec("plan:wrong")]
    kw = dict(target_points_mm=pts, isocenter_mm=p.isocenter_mm, kind="imrt7")
    a = apply_plan_errors(plan, e, seed=4, **kw)
    b = apply_plan_errors(plan, e, seed=4, **kw)
    c = apply_plan_errors(plan, e, seed=5, **kw)
    assert a.beams[0].isocenter_mm == b.beams[0].isocenter_mm != c.beams[0].isocenter_mm
    shift = np.linalg.norm(np.subtract(a.beams[0].isocenter_mm, p.isocenter_mm))
    assert shift == pytest.approx(20.0)


def test_rotation_turns_the_ct_about_the_isocentre(pelvis) -> None:  # type: ignore[no-untyped-def]
    p, _, _ = pelvis
    r = apply_patient_errors(p, [DeliveryError(ErrorKind.ROTATION, (0.0, 0.0, 90.0))])  # beyond the CLI limit
    # a 90 degree turn about z maps the left femoral head (+x, centre (95, 5)) onto (-5, 95), the sacrum
    g = p.ct.grid
    k, j, i = (round(v) for v in g.world_to_index([-5.0, 95.0, -10.0])[::-1])
    assert (p.ct.array[k, j, i], r.ct.array[k, j, i]) == (SPINE_HU, BONE_HU)
    # the isocentre voxel is unchanged
    k, j, i = (round(v) for v in g.world_to_index(p.isocenter_mm)[::-1])
    assert r.ct.array[k, j, i] == pytest.approx(p.ct.array[k, j, i], abs=1.0)
