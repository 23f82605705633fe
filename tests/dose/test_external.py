"""The engine on real data: the TG-119 phantom (matRad CT) and the Eclipse plan of the dicompyler example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intrepid.dicom import read_matrad_phantom, read_rtplan
from intrepid.dose import DoseSettings, check_plan, compute_dose, open_field_plan, water_phantom
from intrepid.errors import ParameterError
from intrepid.physics import beam_fluence

pytestmark = pytest.mark.external


def test_tg119_beam_dose_is_physical(external_data: Path) -> None:
    phantom = read_matrad_phantom(external_data / "tg119" / "TG119.mat")
    target = phantom.structures["OuterTarget"]
    idx = np.argwhere(np.asarray(target.array) > 0).mean(axis=0)  # slice, row, column
    iso = phantom.ct.grid.index_to_world(idx[::-1])
    plan = open_field_plan(100.0, 100.0, mu=100.0, gantry_deg=0.0, isocenter_mm=tuple(iso))
    result = compute_dose(phantom.ct, plan, settings=DoseSettings(fan_spacing_mm=4.0))
    dose = result.total.array
    assert np.all(np.isfinite(dose)) and dose.min() >= 0
    # 100 MU, isocentre ~7 cm deep in the body: the maximum lies near 1 Gy (output, inverse square).
    assert 0.8 < result.max_gy < 1.4
    body = np.asarray(phantom.structures["BODY"].array) > 0
    # The maximum is in the body; the air around it gets little dose on average (a collapsed cone deposits the
    # local energy flux in low-density voxels, so air right at the skin reads near the skin dose).
    assert body.reshape(-1)[int(np.argmax(dose))]
    assert dose[~body].mean() < 0.05 * result.max_gy


def test_dicompyler_plan_is_refused_for_its_10_mv_beams(external_data: Path) -> None:
    plan = read_rtplan(external_data / "dicompyler-example" / "rtplan.dcm")
    check_plan(plan)
    energies = {b.nominal_energy for b in plan.beams}
    assert 10.0 in energies
    with pytest.raises(ParameterError, match=r"rtplan\.dcm: beam .* unknown energy 10"):
        compute_dose(water_phantom((100.0, 100.0, 100.0), 10.0), plan)


def test_dicompyler_sliding_window_fluence(external_data: Path) -> None:
    plan = read_rtplan(external_data / "dicompyler-example" / "rtplan.dcm")
    beam = next(b for b in plan.beams if b.nominal_energy == 6.0)
    x = np.arange(-150.0, 150.1, 2.0)
    f = beam_fluence(beam, x, x)
    assert np.all(np.isfinite(f)) and f.min() >= 0
    jx = [cp.jaw_x_mm for cp in beam.control_points if cp.jaw_x_mm is not None]
    lo, hi = min(j[0] for j in jx), max(j[1] for j in jx)
    inside = (x > lo + 10) & (x < hi - 10)
    outside = (x < lo - 20) | (x > hi + 20)
    row = f[f.shape[0] // 2]
    # A modulated IMRT field: well below an open field inside, transmission and head scatter outside.
    assert 0.02 < row[inside].mean() < 0.9
    assert row[outside].max() < 0.1
