"""Comparison with the plan and the verdict: metamorphic and closed-form checks."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.invivo import ActionLevels, compare_doses, verdict


def _plan() -> tuple[Volume, dict[str, np.ndarray]]:
    g = Grid((30, 30, 30), (-58.0, -58.0, -58.0), (4.0, 4.0, 4.0))
    xs, ys, zs = g.world_axes_mm()
    z, y, x = np.meshgrid(zs, ys, xs, indexing="ij")
    r2 = x**2 + y**2 + z**2
    dose = 2.0 * np.exp(-r2 / (2 * 30.0**2))
    ptv = r2 <= 20.0**2
    oar = (x - 30) ** 2 + y**2 + z**2 <= 10.0**2
    return Volume(dose.astype(np.float32), g, Quantity.DOSE, "Gy", "1.2.3"), {"PTV": ptv, "OAR": oar}


def test_identical_doses_pass_with_unit_ratio() -> None:
    plan, s = _plan()
    c = compare_doses(plan, plan, structures=s, roi_types={"PTV": "PTV"}, isocenter_mm=(0, 0, 0))
    assert c.gamma_3pct2mm.pass_rate_percent == pytest.approx(100.0)
    assert c.isocenter_ratio == pytest.approx(1.0)
    assert all(abs(v) < 1e-9 for r in c.dvh_json().values() for k, v in r.items() if k != "roi_type")
    assert verdict(c) == ("pass", [])


def test_a_6_percent_scale_error_fires_the_ratio_and_d50_levels() -> None:
    plan, s = _plan()
    c = compare_doses(
        plan,
        plan.with_array(plan.array * 1.06),
        structures=s,
        roi_types={"PTV": "PTV"},
        isocenter_mm=(0, 0, 0),
    )
    assert c.isocenter_ratio == pytest.approx(1.06, rel=1e-4)
    assert c.dvh_json()["PTV"]["d50_diff_percent"] == pytest.approx(6.0, abs=0.3)
    v, reasons = verdict(c)
    assert v == "alert"
    assert any("isocentre" in r for r in reasons) and any("PTV D50" in r for r in reasons)
    # the same comparison passes under relaxed action levels
    relaxed = ActionLevels(
        gamma_pass_min_percent=50,
        mean_gamma_max=2,
        ptv_d50_max_diff_percent=7,
        isocenter_ratio_range=(0.9, 1.1),
    )
    assert verdict(c, relaxed)[0] == "pass"


def test_gamma_is_monotone_in_the_criterion() -> None:
    plan, s = _plan()
    c = compare_doses(plan, plan.with_array(plan.array * 1.025), structures=s)
    assert c.gamma_2pct2mm.pass_rate_percent <= c.gamma_3pct2mm.pass_rate_percent


def test_bad_action_levels_and_grids() -> None:
    with pytest.raises(ParameterError, match="isocenter_ratio_range"):
        ActionLevels(isocenter_ratio_range=(1.05, 0.95))
    plan, _ = _plan()
    other = Volume(plan.array, Grid(plan.shape, (0, 0, 0), (4, 4, 4)), Quantity.DOSE, "Gy", "1.2.3")
    with pytest.raises(ParameterError, match="share one grid"):
        compare_doses(plan, other)
