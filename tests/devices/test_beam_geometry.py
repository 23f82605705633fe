"""BeamGeometry: frames, known gantry cases, point vs dual-source projection, round trips, a real ion plan."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrepid.devices import BeamGeometry
from intrepid.errors import ParameterError
from intrepid.geometry import (
    MachineAngles,
    PatientPosition,
    detector_plane,
    project_to_plane,
    source_position_mm,
)

# Rigid transforms and the projection are a handful of float operations: 1e-9 mm is far above rounding.
ATOL = 1e-9


def test_gantry_0_hfs_source_is_anterior() -> None:
    g = BeamGeometry(sad_mm=(2000.0, 2000.0), gantry_deg=0.0, isocenter_mm=(10.0, 20.0, 30.0))
    view = g.beam_line_view()
    np.testing.assert_allclose(view.source_x_mm, [10.0, 20.0 - 2000.0, 30.0], atol=ATOL)
    np.testing.assert_allclose(view.beam_axis, [0.0, 1.0, 0.0], atol=ATOL)  # anterior -> posterior
    np.testing.assert_allclose(view.x_axis, [1.0, 0.0, 0.0], atol=ATOL)  # patient left
    np.testing.assert_allclose(view.y_axis, [0.0, 0.0, 1.0], atol=ATOL)  # superior (towards the gantry)
    # the isocentre is the origin of the beam frame; an anterior point is towards the source (+z)
    np.testing.assert_allclose(g.to_beam([[10.0, 20.0, 30.0]]), [[0.0, 0.0, 0.0]], atol=ATOL)
    np.testing.assert_allclose(g.to_beam([[10.0, 0.0, 30.0]]), [[0.0, 0.0, 20.0]], atol=ATOL)


def test_gantry_90_source_on_patient_left() -> None:
    g = BeamGeometry(sad_mm=(1800.0, 1800.0), gantry_deg=90.0)
    view = g.beam_line_view()
    np.testing.assert_allclose(view.source_x_mm, [1800.0, 0.0, 0.0], atol=ATOL)
    # agrees with the geometry layer's source position
    np.testing.assert_allclose(view.source_x_mm, source_position_mm(MachineAngles(90.0), 1800.0), atol=ATOL)


def test_dual_source_positions_and_line_view_isocenter() -> None:
    g = BeamGeometry(sad_mm=(1800.0, 2000.0), gantry_deg=0.0)
    view = g.beam_line_view((5.0, 0.0, 0.0))
    assert g.is_dual_source
    np.testing.assert_allclose(view.source_x_mm, [5.0, -1800.0, 0.0], atol=ATOL)
    np.testing.assert_allclose(view.source_y_mm, [5.0, -2000.0, 0.0], atol=ATOL)
    assert view.isocenter_mm == (5.0, 0.0, 0.0)
    assert view.to_dict()["sad_mm"] == [1800.0, 2000.0]


def test_transforms_are_inverse() -> None:
    g = BeamGeometry(
        (1900.0, 2100.0),
        gantry_deg=37.0,
        couch_deg=-20.0,
        collimator_deg=15.0,
        isocenter_mm=(3.0, -4.0, 5.0),
        patient_position=PatientPosition.FFP,
    )
    np.testing.assert_allclose(g.image_to_beam @ g.beam_to_image, np.eye(4), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    gantry=st.floats(-360, 360),
    couch=st.floats(-90, 90),
    coll=st.floats(-180, 180),
    pos=st.sampled_from(list(PatientPosition)),
    pts=st.lists(st.tuples(*[st.floats(-300, 300)] * 3), min_size=1, max_size=5),
)
def test_round_trip_property(
    gantry: float, couch: float, coll: float, pos: PatientPosition, pts: list[tuple[float, float, float]]
) -> None:
    g = BeamGeometry((2000.0, 2000.0), gantry, couch, coll, (1.0, 2.0, 3.0), pos)
    p = np.asarray(pts)
    np.testing.assert_allclose(g.to_image(g.to_beam(p)), p, atol=1e-9)
    # rigid: distances are kept
    b = g.to_beam(p)
    np.testing.assert_allclose(
        np.linalg.norm(b - b[:1], axis=1), np.linalg.norm(p - p[:1], axis=1), atol=1e-9
    )


def test_dual_source_projection_follows_each_distance() -> None:
    """u = x (SAD_x − z_p)/(SAD_x − z), v = y (SAD_y − z_p)/(SAD_y − z): exact, and unlike a point source."""
    sx, sy, zp = 1800.0, 2000.0, 250.0
    dual = BeamGeometry((sx, sy))
    pts = np.array([[10.0, 10.0, 100.0], [-30.0, 45.0, -80.0], [7.0, -3.0, 0.0]])
    uv = dual.project_beam_points(pts, zp)
    expected = np.column_stack(
        [pts[:, 0] * (sx - zp) / (sx - pts[:, 2]), pts[:, 1] * (sy - zp) / (sy - pts[:, 2])]
    )
    np.testing.assert_allclose(uv, expected, rtol=1e-14)
    for sad in (sx, sy):
        point = BeamGeometry((sad, sad)).project_beam_points(pts, zp)
        axis = 0 if sad == sx else 1
        np.testing.assert_allclose(point[:, axis], uv[:, axis], rtol=1e-14)  # that axis agrees
        other = 1 - axis
        ratio = uv[:, other] / point[:, other]
        s_other = sy if axis == 0 else sx
        np.testing.assert_allclose(
            ratio, ((s_other - zp) / (s_other - pts[:, 2])) / ((sad - zp) / (sad - pts[:, 2])), rtol=1e-12
        )


def test_point_source_matches_geometry_layer_projection() -> None:
    """Point source, collimator 0: our plane coordinates are the receptor's (u, −v) at SID = SAD − z_p."""
    sad, zp = 2000.0, 300.0
    angles = MachineAngles(gantry_deg=60.0, couch_deg=10.0)
    g = BeamGeometry((sad, sad), gantry_deg=60.0, couch_deg=10.0, isocenter_mm=(5.0, -7.0, 12.0))
    pts = np.array([[20.0, 30.0, -10.0], [-40.0, 0.0, 25.0], [0.0, 50.0, 50.0]])
    plane = detector_plane(angles, sad_mm=sad, sid_mm=sad - zp, isocenter_mm=(5.0, -7.0, 12.0))
    src = source_position_mm(angles, sad, (5.0, -7.0, 12.0))
    ref = project_to_plane(pts, src, plane)
    ours = g.project_to_plane(pts, zp)
    np.testing.assert_allclose(ours, ref * [1.0, -1.0], atol=1e-9)


def test_magnification() -> None:
    g = BeamGeometry((1800.0, 2000.0))
    mx, my = g.magnification(200.0)
    assert mx == pytest.approx(1600.0 / 1800.0, rel=1e-15)
    assert my == pytest.approx(1800.0 / 2000.0, rel=1e-15)
    assert g.magnification(0.0) == (1.0, 1.0)
    with pytest.raises(ParameterError, match="z_mm must be < the source distance 1800"):
        g.magnification(1800.0)


def test_points_behind_source_give_nan() -> None:
    g = BeamGeometry((1000.0, 1000.0))
    uv = g.project_beam_points([[1.0, 1.0, 1200.0]], 0.0)
    assert np.all(np.isnan(uv))
    with pytest.raises(ParameterError, match="plane_distance_from_iso_mm must be < the source distance"):
        g.project_beam_points([[0.0, 0.0, 0.0]], 1000.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sad_mm": (-1.0, 100.0)}, "sad_mm must be > 0"),
        ({"sad_mm": (1.0, 2.0, 3.0)}, "sad_mm must have 2 values"),
        ({"sad_mm": (1000.0, 1000.0), "gantry_deg": float("nan")}, "gantry_deg must be finite"),
        ({"sad_mm": (1000.0, 1000.0), "couch_deg": "x"}, "couch_deg must be a number"),
        ({"sad_mm": (1000.0, 1000.0), "isocenter_mm": (1.0, 2.0)}, "isocenter_mm must be 3 finite"),
        ({"sad_mm": (1000.0, 1000.0), "patient_position": "SITTING"}, "Patient Position"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        BeamGeometry(**kwargs)  # type: ignore[arg-type]


def test_bad_points_shape() -> None:
    with pytest.raises(ParameterError, match=r"points_lps_mm must have shape \(\.\.\., 3\)"):
        BeamGeometry((1000.0, 1000.0)).to_beam([1.0, 2.0])


def test_single_sad_value_is_a_point_source() -> None:
    g = BeamGeometry(sad_mm=(1500.0,))  # type: ignore[arg-type]
    assert g.sad_mm == (1500.0, 1500.0) and not g.is_dual_source


def _fake_plan(n_cps: int = 2) -> SimpleNamespace:
    cps = tuple(
        SimpleNamespace(gantry_deg=30.0 + i, couch_deg=5.0, collimator_deg=2.0, isocenter_mm=(1.0, 2.0, 3.0))
        for i in range(n_cps)
    )
    beam = SimpleNamespace(
        number=1, name="B1", sad_mm=(1700.0, 1900.0), control_points=cps, patient_position=PatientPosition.FFS
    )
    return SimpleNamespace(beam=lambda key: beam, patient_position=None, source="fake.dcm")


def test_from_ion_plan_fields_and_control_point() -> None:
    g = BeamGeometry.from_ion_plan(_fake_plan(), 1, control_point=1)
    assert g.sad_mm == (1700.0, 1900.0)
    assert (g.gantry_deg, g.couch_deg, g.collimator_deg) == (31.0, 5.0, 2.0)
    assert g.patient_position is PatientPosition.FFS
    with pytest.raises(ParameterError, match=r"control_point must be in 0\.\.1"):
        BeamGeometry.from_ion_plan(_fake_plan(), 1, control_point=2)


@pytest.mark.external
def test_from_real_ion_plan(external_data) -> None:  # type: ignore[no-untyped-def]
    from intrepid.dicom import read_rtplan

    plan = read_rtplan(external_data / "ion-plan" / "rtip_demo.dcm")
    g = BeamGeometry.from_ion_plan(plan, 1)
    assert g.sad_mm == (1800.0, 2000.0) and g.is_dual_source
    assert g.gantry_deg == 90.0 and g.couch_deg == 0.0
    assert g.isocenter_mm == (0.0, -69.0, -11.0)
    # gantry 90, HFS: the x source is on the patient's left, 1800 mm from the isocentre
    np.testing.assert_allclose(g.beam_line_view().source_x_mm, [1800.0, -69.0, -11.0], atol=1e-9)
    with pytest.raises(ParameterError, match="no beam 99"):
        BeamGeometry.from_ion_plan(plan, 99)
