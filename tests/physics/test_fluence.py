"""Tests of the shared linac head model (intrepid.physics._fluence)."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.dicom import (
    Beam,
    BeamLimitingDevice,
    BeamLimitingDeviceType,
    BeamType,
    ControlPoint,
    RotationDirection,
)
from intrepid.errors import ParameterError
from intrepid.physics import LinacHead, beam_fluence, jaw_fluence, segment_weights

T = BeamLimitingDeviceType
BOUNDS = np.concatenate([np.arange(-200, -100, 10), np.arange(-100, 100, 5), np.arange(100, 201, 10)]).astype(
    float
)
NPAIRS = BOUNDS.size - 1
AXIS = np.arange(-100.0, 100.01, 0.5)
MID = AXIS.size // 2


def _cp(index: int, weight: float, jaw: float, a: np.ndarray | None, b: np.ndarray | None) -> ControlPoint:
    dev = {T.ASYMX: np.array([-jaw, jaw]), T.ASYMY: np.array([-jaw, jaw])}
    if a is not None and b is not None:
        dev[T.MLCX] = np.concatenate([a, b])
    return ControlPoint(index, weight, None, 0.0, RotationDirection.NONE, 0.0, 0.0, (0.0, 0.0, 0.0), 6.0, dev)


def _beam(cps: tuple[ControlPoint, ...]) -> Beam:
    devices = (
        BeamLimitingDevice(T.ASYMX, 1),
        BeamLimitingDevice(T.ASYMY, 1),
        BeamLimitingDevice(T.MLCX, NPAIRS, BOUNDS),
    )
    return Beam(1, "b", "PHOTON", "TREATMENT", BeamType.STATIC, "MU", (1000.0, 1000.0), 6.0, "MV",
                100.0, None,
                1.0, devices, cps)  # fmt: skip


def test_reference_field_is_one_on_axis_and_half_at_the_edge() -> None:
    f = jaw_fluence((-50, 50), (-50, 50), AXIS, AXIS)
    assert f[MID, MID] == pytest.approx(1.0, abs=1e-12)
    edge = int(np.argmin(np.abs(AXIS - 50.0)))
    # At the geometric edge the focal part is exactly half; the extra-focal part adds a little.
    assert 0.45 < f[MID, edge] < 0.56
    assert f[MID, -1] < 0.03  # 5 cm outside: jaw transmission + head scatter tail


def test_output_factor_grows_with_field_and_collimator_exchange() -> None:
    sc = {s: float(jaw_fluence((-s, s), (-s, s), [0.0], [0.0])[0, 0]) for s in (20, 50, 100, 200)}
    assert sc[20] < sc[50] < sc[100] < sc[200]
    # Varian 6 MV S_c (4x4 ~0.96-0.98, 40x40 ~1.05-1.07; e.g. Zhu et al. 2009 TG-74): within a few per cent.
    assert 0.95 < sc[20] < 0.99 and 1.03 < sc[200] < 1.08
    narrow_y = float(jaw_fluence((-200, 200), (-50, 50), [0.0], [0.0])[0, 0])
    narrow_x = float(jaw_fluence((-50, 50), (-200, 200), [0.0], [0.0])[0, 0])
    assert narrow_x > narrow_y  # the upper (Y) jaws cut more head scatter


def test_horns_and_off_axis_softening() -> None:
    f = jaw_fluence((-200, 200), (-200, 200), AXIS, [0.0])
    assert f[0, int(np.argmin(np.abs(AXIS - 90)))] > f[0, MID]
    head = LinacHead()
    e = head.spectrum.energies
    mean = [float(np.sum(w / e * e) / np.sum(w / e)) for w in head.spectrum_weights(np.array([0.0, 200.0]))]
    assert 0.85 * mean[0] < mean[1] < 0.99 * mean[0]


def test_static_mlc_field_transmission_and_meterset_weights() -> None:
    a, b = np.full(NPAIRS, -30.0), np.full(NPAIRS, 30.0)
    beam = _beam((_cp(0, 0.0, 50.0, a, b), _cp(1, 1.0, 50.0, a, b)))
    f = beam_fluence(beam, AXIS, AXIS)
    j = jaw_fluence((-50, 50), (-50, 50), AXIS, AXIS)
    x40 = int(np.argmin(np.abs(AXIS - 40.0)))
    # Under the leaves, inside the jaws: leaf transmission (1.5 %) of the focal fluence + head scatter.
    assert 0.012 < f[MID, x40] / j[MID, x40] < 0.1
    assert f[MID, MID] == pytest.approx(j[MID, MID], rel=0.02)
    # Two identical halves of the meterset add up to the whole.
    beam3 = _beam((_cp(0, 0.0, 50.0, a, b), _cp(1, 0.4, 50.0, a, b), _cp(2, 1.0, 50.0, a, b)))
    parts = beam_fluence(beam3, AXIS, AXIS, control_points=[1]) + beam_fluence(
        beam3, AXIS, AXIS, control_points=[2]
    )
    np.testing.assert_allclose(parts, f, rtol=1e-12)
    np.testing.assert_allclose(segment_weights(beam3.control_points), [0.4, 0.6])


def test_sliding_window_gives_gap_over_travel() -> None:
    gap, start, stop = 5.0, -50.0, 45.0
    a0, b0 = np.full(NPAIRS, start), np.full(NPAIRS, start + gap)
    a1, b1 = np.full(NPAIRS, stop), np.full(NPAIRS, stop + gap)
    beam = _beam((_cp(0, 0.0, 60.0, a0, b0), _cp(1, 1.0, 60.0, a1, b1)))
    f = beam_fluence(beam, AXIS, AXIS)
    head = LinacHead()
    expected = (gap + head.dosimetric_leaf_gap_mm) / (stop - start) * (
        1 - head.leaf_transmission
    ) + head.leaf_transmission
    centre = f[MID, MID] / jaw_fluence((-60, 60), (-60, 60), [0.0], [0.0])[0, 0]
    assert centre == pytest.approx(expected, rel=0.12)


def test_tongue_and_groove_underdose_between_alternating_pairs() -> None:
    a = np.where(np.arange(NPAIRS) % 2 == 0, -40.0, 0.0)
    b = np.where(np.arange(NPAIRS) % 2 == 0, 0.0, 40.0)
    # Complementary segments: first the pattern, then its complement (each pair open on the other side).
    ac, bc = np.where(a == -40.0, 0.0, -40.0), np.where(b == 0.0, 40.0, 0.0)
    beam = _beam(
        (
            _cp(0, 0.0, 50.0, a, b),
            _cp(1, 0.5, 50.0, a, b),
            _cp(2, 0.5, 50.0, ac, bc),
            _cp(3, 1.0, 50.0, ac, bc),
        )
    )
    y = np.arange(-20.0, 20.01, 0.1)
    f = beam_fluence(beam, np.array([-20.0, -19.5, -19.0]), y)
    boundary = int(np.argmin(np.abs(y - 0.0)))  # a leaf boundary at y = 0
    assert f[boundary, 0] < 0.9 * f[int(np.argmin(np.abs(y - 2.5))), 0]


def test_bad_input_is_named() -> None:
    with pytest.raises(ParameterError, match="at least 2 control points"):
        segment_weights([_cp(0, 0.0, 50.0, None, None)])
    with pytest.raises(ParameterError, match="X1 < X2"):
        jaw_fluence((50, -50), (-50, 50), AXIS, AXIS)
    with pytest.raises(ParameterError, match="uniformly"):
        jaw_fluence((-50, 50), (-50, 50), [0.0, 1.0, 5.0], AXIS)
    with pytest.raises(ParameterError, match="leaf_transmission"):
        LinacHead(leaf_transmission=1.5)
