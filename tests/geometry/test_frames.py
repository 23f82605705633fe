"""IEC 61217 machine frames and the DICOM patient frame: known answers, round trips, projections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrepid.errors import ParameterError
from intrepid.geometry import (
    DetectorPlane,
    Frame,
    MachineAngles,
    PatientPosition,
    beam_direction,
    detector_plane,
    frame_transform,
    project_to_plane,
    source_position_mm,
)
from intrepid.geometry._frames import _LPS_IN_TABLE_TOP

# Positions are sums of products of cos/sin with mm-sized numbers: 1e-9 mm is far above float64 round-off
# (about 1e-13 mm at 1000 mm) and far below any clinical relevance.
ATOL_MM = 1e-9
SAD = 1000.0

LEFT, RIGHT = np.array([1.0, 0, 0]), np.array([-1.0, 0, 0])
POSTERIOR, ANTERIOR = np.array([0, 1.0, 0]), np.array([0, -1.0, 0])
SUPERIOR, INFERIOR = np.array([0, 0, 1.0]), np.array([0, 0, -1.0])


# ------------------------------------------------------------------------------------------ source position
@pytest.mark.parametrize(
    ("gantry_deg", "side"),
    [(0.0, ANTERIOR), (90.0, LEFT), (180.0, POSTERIOR), (270.0, RIGHT)],
)
def test_hfs_source_positions(gantry_deg: float, side: np.ndarray) -> None:
    # HFS: gantry 0 above the patient (anterior), 90 on the patient's left, 180 below, 270 on the right.
    src = source_position_mm(MachineAngles(gantry_deg), SAD, (0, 0, 0), PatientPosition.HFS)
    np.testing.assert_allclose(src, SAD * side, atol=ATOL_MM)


# Where the source is (in patient terms) at gantry 0 (above the couch) and gantry 90 (on +X_f, the right of
# an observer at the foot of the couch facing the gantry), for every DICOM patient position.
POSITION_CASES = {
    "HFS": (ANTERIOR, LEFT),
    "HFP": (POSTERIOR, RIGHT),
    "FFS": (ANTERIOR, RIGHT),
    "FFP": (POSTERIOR, LEFT),
    "HFDR": (LEFT, POSTERIOR),  # lying on the right side: the left side faces up
    "HFDL": (RIGHT, ANTERIOR),
    "FFDR": (LEFT, ANTERIOR),
    "FFDL": (RIGHT, POSTERIOR),
}


@pytest.mark.parametrize("code", sorted(POSITION_CASES))
def test_source_position_every_patient_position(code: str) -> None:
    up, plus_x = POSITION_CASES[code]
    iso = np.array([12.0, -30.0, 250.0])
    pos = PatientPosition.from_dicom(code)
    np.testing.assert_allclose(
        source_position_mm(MachineAngles(0.0), SAD, iso, pos), iso + SAD * up, atol=ATOL_MM
    )
    np.testing.assert_allclose(
        source_position_mm(MachineAngles(90.0), SAD, iso, pos), iso + SAD * plus_x, atol=ATOL_MM
    )
    # The head points towards the gantry (+Y_f) for head-first positions, away for feet-first.
    head = (
        frame_transform(Frame.PATIENT_LPS, Frame.FIXED, MachineAngles(0.0), patient_position=pos)[:3, :3]
        @ SUPERIOR
    )
    np.testing.assert_allclose(head, [0, 1 if code.startswith("HF") else -1, 0], atol=ATOL_MM)


@pytest.mark.parametrize("pos", list(PatientPosition))
def test_patient_frame_is_a_proper_rotation(pos: PatientPosition) -> None:
    m = _LPS_IN_TABLE_TOP[pos]
    np.testing.assert_allclose(m.T @ m, np.eye(3))
    assert np.linalg.det(m) == pytest.approx(1.0)


def test_couch_rotation_about_vertical() -> None:
    # Couch rotations are right-handed about the vertical Z_f (counter-clockwise seen from above): at couch
    # 90 the head of an HFS patient points to -X_f, so a gantry-90 source (+X_f) is inferior; couch 270 and
    # gantry 90 give a vertex (superior) beam. A vertical beam (gantry 0) stays anterior at any couch angle.
    np.testing.assert_allclose(
        source_position_mm(MachineAngles(90.0, couch_deg=90.0)), SAD * INFERIOR, atol=ATOL_MM
    )
    np.testing.assert_allclose(
        source_position_mm(MachineAngles(90.0, couch_deg=270.0)), SAD * SUPERIOR, atol=ATOL_MM
    )
    np.testing.assert_allclose(
        source_position_mm(MachineAngles(0.0, couch_deg=90.0)), SAD * ANTERIOR, atol=ATOL_MM
    )
    head = (
        frame_transform(Frame.PATIENT_LPS, Frame.FIXED, MachineAngles(0.0, couch_deg=90.0))[:3, :3] @ SUPERIOR
    )
    np.testing.assert_allclose(head, [-1, 0, 0], atol=ATOL_MM)


def test_couch_rotation_about_the_isocentre() -> None:
    # The isocentre does not move with the couch angle: it stays at the origin of the fixed frame.
    iso = (5.0, 7.0, -9.0)
    for couch in (0.0, 45.0, 90.0, 300.0):
        m = frame_transform(
            Frame.PATIENT_LPS, Frame.FIXED, MachineAngles(30.0, couch_deg=couch), isocenter_mm=iso
        )
        np.testing.assert_allclose(m @ [*iso, 1.0], [0, 0, 0, 1], atol=ATOL_MM)


def test_collimator_rotates_bld_axes_in_the_beam_plane() -> None:
    # Collimator 90: X_b turns onto +Y_g and Y_b onto -X_g (right-handed about the beam axis Z_g); Z_b stays.
    m = frame_transform(Frame.BEAM_LIMITING_DEVICE, Frame.GANTRY, MachineAngles(0.0, collimator_deg=90.0))
    np.testing.assert_allclose(m[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=ATOL_MM)
    np.testing.assert_allclose(m[:3, :3] @ [0, 1, 0], [-1, 0, 0], atol=ATOL_MM)
    np.testing.assert_allclose(m[:3, :3] @ [0, 0, 1], [0, 0, 1], atol=ATOL_MM)
    # In the patient (HFS, gantry 0): X_b is the patient's left at collimator 0, superior at collimator 90.
    for coll, expected in ((0.0, LEFT), (90.0, SUPERIOR), (180.0, RIGHT)):
        r = frame_transform(Frame.BEAM_LIMITING_DEVICE, Frame.PATIENT_LPS, MachineAngles(0.0, coll))[:3, :3]
        np.testing.assert_allclose(r @ [1, 0, 0], expected, atol=ATOL_MM)
    # The beam axis and the source do not depend on the collimator angle.
    np.testing.assert_allclose(
        beam_direction(MachineAngles(40.0, collimator_deg=77.0)),
        beam_direction(MachineAngles(40.0)),
        atol=ATOL_MM,
    )


def test_beam_direction_points_from_source_to_isocentre() -> None:
    angles = MachineAngles(33.0, 10.0, 20.0)
    iso = np.array([1.0, 2.0, 3.0])
    for pos in PatientPosition:
        src = source_position_mm(angles, 800.0, iso, pos)
        d = beam_direction(angles, pos)
        np.testing.assert_allclose(d, (iso - src) / 800.0, atol=ATOL_MM)
        assert np.linalg.norm(d) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- round trips
frames = st.sampled_from(list(Frame))
angle = st.floats(-360.0, 720.0, allow_nan=False)
coord = st.floats(-500.0, 500.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    a=frames,
    b=frames,
    c=frames,
    g=angle,
    col=angle,
    couch=angle,
    pos=st.sampled_from(list(PatientPosition)),
    iso=st.tuples(coord, coord, coord),
    point=st.tuples(coord, coord, coord),
)
def test_frame_transform_round_trip(
    a: Frame,
    b: Frame,
    c: Frame,
    g: float,
    col: float,
    couch: float,
    pos: PatientPosition,
    iso: tuple[float, float, float],
    point: tuple[float, float, float],
) -> None:
    kw = {"patient_position": pos, "isocenter_mm": iso, "sid_mm": 1500.0, "sad_mm": SAD}
    angles = MachineAngles(g, col, couch)
    ab = frame_transform(a, b, angles, **kw)
    ba = frame_transform(b, a, angles, **kw)
    # 1e-9 relative: products of a few 4 x 4 rotations in float64.
    np.testing.assert_allclose(ba @ ab, np.eye(4), atol=1e-9)
    # Chain rule: a -> c equals a -> b -> c.
    np.testing.assert_allclose(
        frame_transform(b, c, angles, **kw) @ ab, frame_transform(a, c, angles, **kw), atol=1e-9
    )
    # Rigid: distances are kept.
    p = np.array([*point, 1.0])
    q = np.array([0.0, 0.0, 0.0, 1.0])
    assert np.linalg.norm((ab @ p - ab @ q)[:3]) == pytest.approx(np.linalg.norm(p[:3]), abs=1e-8)


def test_table_top_equals_patient_support() -> None:
    angles = MachineAngles(10.0, 20.0, 30.0)
    np.testing.assert_allclose(
        frame_transform(Frame.TABLE_TOP, Frame.PATIENT_SUPPORT, angles), np.eye(4), atol=1e-12
    )


# ------------------------------------------------------------------------------------------- detector plane
def test_detector_plane_hfs_gantry_0() -> None:
    plane = detector_plane(MachineAngles(0.0), sad_mm=1000.0, sid_mm=1600.0)
    # Below the patient, 600 mm from the isocentre; columns towards the patient's left, rows towards the feet.
    np.testing.assert_allclose(plane.centre_mm, [0, 600, 0], atol=ATOL_MM)
    np.testing.assert_allclose(plane.u_axis, LEFT, atol=ATOL_MM)
    np.testing.assert_allclose(plane.v_axis, INFERIOR, atol=ATOL_MM)
    np.testing.assert_allclose(plane.normal, POSTERIOR, atol=ATOL_MM)  # along the beam
    assert plane.magnification == pytest.approx(1.6)


@pytest.mark.parametrize("gantry_deg", [0.0, 37.0, 90.0, 180.0, 251.0])
@pytest.mark.parametrize("pos", [PatientPosition.HFS, PatientPosition.FFP, PatientPosition.HFDL])
def test_projection_magnification(gantry_deg: float, pos: PatientPosition) -> None:
    angles = MachineAngles(gantry_deg, collimator_deg=15.0, couch_deg=10.0)
    iso = np.array([-20.0, 35.0, 110.0])
    plane = detector_plane(angles, sad_mm=1000.0, sid_mm=1500.0, isocenter_mm=iso, patient_position=pos)
    src = source_position_mm(angles, 1000.0, iso, pos)
    np.testing.assert_allclose(np.cross(plane.u_axis, plane.v_axis), plane.normal, atol=ATOL_MM)
    np.testing.assert_allclose(plane.normal, beam_direction(angles, pos), atol=ATOL_MM)
    np.testing.assert_allclose(plane.centre_mm, iso + 500.0 * np.asarray(plane.normal), atol=ATOL_MM)
    # The isocentre projects onto the plane centre.
    np.testing.assert_allclose(project_to_plane(iso, src, plane), [0, 0], atol=ATOL_MM)
    # A point d off-axis in the isocentre plane projects to d * SID / SAD.
    d = 42.0
    pts = np.array([iso + d * np.asarray(plane.u_axis), iso - d * np.asarray(plane.v_axis)])
    np.testing.assert_allclose(project_to_plane(pts, src, plane), [[d * 1.5, 0], [0, -d * 1.5]], atol=1e-8)


def test_plane_coordinates_round_trip() -> None:
    plane = detector_plane(MachineAngles(123.0, 0.0, 45.0), isocenter_mm=(1, 2, 3))
    rng = np.random.default_rng(5)
    uv = rng.uniform(-200, 200, size=(50, 2))
    world = plane.pixel_to_world(uv[:, 0], uv[:, 1])
    np.testing.assert_allclose(plane.world_to_plane(world), uv, atol=1e-9)
    # A point on the plane projects onto itself.
    src = source_position_mm(MachineAngles(123.0, 0.0, 45.0), 1000.0, (1, 2, 3))
    np.testing.assert_allclose(project_to_plane(world, src, plane), uv, atol=1e-8)


def test_image_grid_on_the_plane() -> None:
    plane = detector_plane(MachineAngles(90.0), sid_mm=1500.0)
    grid = plane.image_grid((768, 1024), (0.392, 0.392))
    assert grid.shape == (768, 1024)
    # The image centre (between the middle pixels) is the plane centre; i runs along u, j along v.
    np.testing.assert_allclose(grid.index_to_world([511.5, 383.5]), plane.centre_mm, atol=1e-9)
    np.testing.assert_allclose(grid.direction_matrix[:, 0], plane.u_axis, atol=1e-12)
    np.testing.assert_allclose(grid.direction_matrix[:, 1], plane.v_axis, atol=1e-12)


def test_ray_parallel_to_plane_gives_nan() -> None:
    plane = detector_plane(MachineAngles(0.0))
    src = source_position_mm(MachineAngles(0.0))
    uv = project_to_plane(src + np.array([[10.0, 0.0, 0.0], [0.0, -5.0, 0.0]]), src, plane)
    assert np.all(np.isnan(uv))


# ---------------------------------------------------------------------------------------------- bad input
def test_patient_position_from_dicom() -> None:
    assert PatientPosition.from_dicom(" hfs ") is PatientPosition.HFS
    with pytest.raises(ParameterError, match=r"Patient Position \(0018,5100\) must be one of .*got 'XYZ'"):
        PatientPosition.from_dicom("XYZ")


def test_bad_inputs() -> None:
    with pytest.raises(ParameterError, match="gantry_deg must be finite, got nan"):
        MachineAngles(float("nan"))
    with pytest.raises(ParameterError, match="couch_deg must be a number of degrees"):
        MachineAngles(0.0, 0.0, "ten")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="sid_mm is required for the image receptor frame"):
        frame_transform(Frame.IMAGE_RECEPTOR, Frame.FIXED, MachineAngles(0.0))
    with pytest.raises(ParameterError, match=r"sid_mm must be > 0, got -5\.0"):
        frame_transform(Frame.IMAGE_RECEPTOR, Frame.FIXED, MachineAngles(0.0), sid_mm=-5.0)
    with pytest.raises(ParameterError, match="source must be a Frame, got 'gantry'"):
        frame_transform("gantry", Frame.FIXED, MachineAngles(0.0))  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="angles must be MachineAngles"):
        frame_transform(Frame.GANTRY, Frame.FIXED, 0.0)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="isocenter_mm must have 3 values"):
        frame_transform(Frame.PATIENT_LPS, Frame.FIXED, MachineAngles(0.0), isocenter_mm=(1.0, 2.0))
    with pytest.raises(ParameterError, match=r"sad_mm must be > 0, got 0\.0"):
        source_position_mm(MachineAngles(0.0), 0.0)
    with pytest.raises(ParameterError, match=r"points_mm must have shape \(\.\.\., 3\)"):
        project_to_plane([[1.0, 2.0]], (0, 0, 0), detector_plane(MachineAngles(0.0)))
    with pytest.raises(ParameterError, match="spacing_mm must be > 0"):
        detector_plane(MachineAngles(0.0)).image_grid((10, 10), (0.0, 1.0))
    assert isinstance(detector_plane(MachineAngles(0.0), patient_position="FFS"), DetectorPlane)
