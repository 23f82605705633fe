"""RT Plan writer: photon plans read back unchanged by read_rtplan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from intrepid.dicom import read_rtplan
from intrepid.dicom._write_rtplan import write_rtplan
from intrepid.errors import ParameterError
from intrepid.simulate._invivo_plans import PlanKind, make_plan


def _target() -> np.ndarray:
    g = np.mgrid[-15:16:5, -15:16:5, -10:11:5].reshape(3, -1).T.astype(float)
    return g + np.array([10.0, -5.0, 0.0])


@pytest.mark.parametrize("kind", list(PlanKind))
def test_round_trip_keeps_beams_control_points_and_mu(tmp_path: Path, kind: PlanKind) -> None:
    plan = make_plan(kind, _target(), (10.0, -5.0, 0.0), mu_per_beam=123.4)
    path = write_rtplan(plan, tmp_path / "plan.dcm", prescription_gy=2.0)
    back = read_rtplan(path)
    assert len(back.beams) == len(plan.beams)
    for a, b in zip(plan.beams, back.beams, strict=True):
        assert (a.number, a.name, a.beam_type) == (b.number, b.name, b.beam_type)
        assert b.meterset == pytest.approx(a.meterset, rel=1e-9)
        assert len(b.control_points) == len(a.control_points)
        for ca, cb in zip(a.control_points, b.control_points, strict=True):
            assert cb.gantry_deg == pytest.approx(ca.gantry_deg % 360)
            assert cb.cumulative_meterset_weight == pytest.approx(ca.cumulative_meterset_weight)
            assert cb.isocenter_mm == pytest.approx(ca.isocenter_mm)
            np.testing.assert_allclose(cb.mlc_mm, ca.mlc_mm, atol=1e-6)
            assert cb.jaw_x_mm == pytest.approx(ca.jaw_x_mm) and cb.jaw_y_mm == pytest.approx(ca.jaw_y_mm)
        np.testing.assert_allclose(b.device(b.devices[-1].device_type).leaf_boundaries_mm,
                                   a.devices[-1].leaf_boundaries_mm)


def test_the_pydicom_test_plan_survives_a_rewrite(tmp_path: Path) -> None:
    plan = read_rtplan(get_testdata_file("rtplan.dcm"))
    back = read_rtplan(write_rtplan(plan, tmp_path / "p.dcm"))
    assert [b.meterset for b in back.beams] == pytest.approx([b.meterset for b in plan.beams])
    assert [b.gantry_deg for b in back.beams] == pytest.approx([b.gantry_deg for b in plan.beams])


def test_apertures_conform_to_the_target() -> None:
    plan = make_plan("box4", _target(), (10.0, -5.0, 0.0))
    cp = plan.beams[0].control_points[0]
    x1, x2 = cp.jaw_x_mm
    # the target is 30 mm wide at the isocentre (slightly magnified off-plane) + 2 x 5 mm margin
    assert 40.0 <= x2 - x1 <= 46.0
    leaves = cp.mlc_mm
    assert np.count_nonzero(leaves[1] - leaves[0] > 0) in range(8, 12)


def test_bad_plans_are_refused(tmp_path: Path) -> None:
    plan = make_plan("box4", _target(), (0.0, 0.0, 0.0))
    from dataclasses import replace

    bad = replace(plan, beams=(replace(plan.beams[0], meterset=None),))
    with pytest.raises(ParameterError, match="meterset"):
        write_rtplan(bad, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()
    with pytest.raises(ParameterError, match="plan must be one of"):
        make_plan("imrt9", _target(), (0.0, 0.0, 0.0))
