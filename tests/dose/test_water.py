"""Water validation of the collapsed-cone engine: PDD, d_max, output factors, penumbra, MU calibration.

Reference numbers and their sources: tests/dose/data/reference_6mv.json. Tolerances: AAPM MPPG 5.a
(Smilowitz et al. 2015, JACMP 16:14): 2 % of the local dose on the central axis beyond d_max, 2 mm / 3 %
in the build-up and penumbra. Tolerances the engine misses are marked xfail (strict) with the measured
deviation, never loosened: see docs/dose.md, "Validation".
"""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.dose import PlanDose

from .conftest import central_axis, profile


def _pdd(dose: PlanDose) -> tuple[np.ndarray, np.ndarray]:
    y, ax = central_axis(dose)
    return y, 100.0 * ax / ax.max()


def test_mu_calibration_one_cgy_per_mu_at_dmax(water_fields: dict[int, PlanDose]) -> None:
    _, ax = central_axis(water_fields[100])
    # 100 MU of a 10x10 cm2 field at SSD 100 cm: 1.00 Gy at d_max (output grid sampling: within 1 %).
    assert ax.max() == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize("field", [50, 100, 200])
def test_dmax_between_13_and_17_mm(water_fields: dict[int, PlanDose], field: int) -> None:
    y, pdd = _pdd(water_fields[field])
    assert 12.5 <= y[int(np.argmax(pdd))] <= 17.5


#: (field mm, depth mm) points that miss the 2 % tolerance today, with the measured PDD (see docs/dose.md).
#: Measured after the kernel-fit fix (docs/dose.md, "Kernel"): the 10 x 10 cm2 points now pass; the field-size
#: dependence is still too strong (5 x 5 too low at depth, 20 x 20 too high).
KNOWN_MISSES = {
    (50, 100): "measured 61.7 % against 63.0 % (-2.1 %)",
    (50, 200): "measured 32.2 % against 35.0 % (-8.0 %)",
    (200, 50): "measured 91.3 % against 88.5 % (+3.2 %)",
    (200, 100): "measured 74.5 % against 70.8 % (+5.2 %)",
    (200, 200): "measured 45.8 % against 43.0 % (+6.5 %)",
}
CASES = [
    pytest.param(f, d, marks=pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[(f, d)]))
    if (f, d) in KNOWN_MISSES
    else (f, d)
    for f in (50, 100, 200)
    for d in (50, 100, 200)
]


@pytest.mark.parametrize(("field", "depth"), CASES)
def test_pdd_within_mppg_tolerance(
    water_fields: dict[int, PlanDose], reference_6mv: dict, field: int, depth: int
) -> None:
    """MPPG 5.a: central-axis PDD beyond d_max within 2 % (relative) of the reference."""
    y, pdd = _pdd(water_fields[field])
    ref = reference_6mv["pdd_percent"][str(field)][str(depth)]
    assert float(np.interp(depth, y, pdd)) == pytest.approx(ref, rel=0.02)


@pytest.mark.parametrize("field", [50, 100, 200])
def test_pdd_within_12_percent_of_reference(
    water_fields: dict[int, PlanDose], reference_6mv: dict, field: int
) -> None:
    """A regression guard: the deviations recorded in KNOWN_MISSES must not grow."""
    y, pdd = _pdd(water_fields[field])
    ref = reference_6mv["pdd_percent"][str(field)]
    for depth in (50, 100, 200):
        assert float(np.interp(depth, y, pdd)) == pytest.approx(ref[str(depth)], rel=0.12), depth


def test_output_factors_grow_with_field_size(water_fields: dict[int, PlanDose], reference_6mv: dict) -> None:
    peak = {f: central_axis(d)[1].max() for f, d in water_fields.items()}
    of = {f: peak[f] / peak[100] for f in peak}
    assert of[50] < 1.0 < of[200]
    ref = reference_6mv["output_factor_dmax"]
    assert of[50] == pytest.approx(ref["50"], abs=0.03)
    assert of[200] == pytest.approx(ref["200"], abs=0.03)


def test_profile_symmetric_flat_and_penumbra(water_fields: dict[int, PlanDose]) -> None:
    x, p = profile(water_fields[100], 100.0)
    c = float(np.interp(0.0, x, p))
    fine = np.linspace(-100, 100, 8001)
    q = np.interp(fine, x, p) / c
    right, left = fine > 0, fine < 0
    x50r = fine[right][np.argmin(np.abs(q[right] - 0.5))]
    x50l = fine[left][np.argmin(np.abs(q[left] - 0.5))]
    # Field edge (50 %) at the geometric projection 55 mm at 10 cm depth (SSD 100), within 2 mm; symmetric.
    assert x50r == pytest.approx(55.0, abs=2.0)
    assert -x50l == pytest.approx(x50r, abs=0.6)
    x80 = fine[right][np.argmin(np.abs(q[right] - 0.8))]
    x20 = fine[right][np.argmin(np.abs(q[right] - 0.2))]
    assert 4.0 < x20 - x80 < 9.0  # 80/20 penumbra, mm (measured 6-7 mm; MPPG 5.a: within 2-3 mm)


@pytest.mark.xfail(
    strict=True, reason="measured: 0.928 of the centre at 80 % of the half-width (10 cm depth)"
)
def test_profile_flat_within_3_percent(water_fields: dict[int, PlanDose]) -> None:
    x, p = profile(water_fields[100], 100.0)
    q = p / float(np.interp(0.0, x, p))
    inner = np.abs(x) <= 0.8 * 55.0
    assert np.all(np.abs(q[inner] - 1.0) < 0.03)


# ------------------------------------------------------------------ spectrum consistency (docs/dose.md)
def _pdd10_ratio(fields: dict[int, PlanDose]) -> float:
    """PDD(10 cm) of 20 x 20 over 5 x 5 cm2: the field-size dependence of the phantom scatter."""
    out = []
    for f in (200, 50):
        y, pdd = _pdd(fields[f])
        out.append(float(np.interp(100.0, y, pdd)))
    return out[0] / out[1]


def _reference_pdd10_ratio(reference_6mv: dict) -> float:
    return float(reference_6mv["pdd_percent"]["200"]["100"] / reference_6mv["pdd_percent"]["50"]["100"])


@pytest.mark.xfail(strict=True, reason="measured: 74.5/61.7 = 1.207 against 70.8/63.0 = 1.124 (+7.4 %)")
def test_field_size_dependence_of_the_fitted_kernel(
    water_fields: dict[int, PlanDose], reference_6mv: dict
) -> None:
    """The ratio within 2 % (MPPG 5.a's point tolerance): fails, the fitted table carries too much scatter."""
    assert _pdd10_ratio(water_fields) == pytest.approx(_reference_pdd10_ratio(reference_6mv), rel=0.02)


def test_field_size_dependence_of_the_spectrum_consistent_kernel(
    water_fields_consistent: dict[int, PlanDose], reference_6mv: dict
) -> None:
    """With the spectrum's primary share (0.516) the ratio is 66.6/58.3 = 1.142 against 1.124 (+1.6 %)."""
    assert _pdd10_ratio(water_fields_consistent) == pytest.approx(
        _reference_pdd10_ratio(reference_6mv), rel=0.02
    )


@pytest.mark.xfail(
    strict=True, reason="measured: TPR20,10 0.628 (PDD 10/20 cm 62.1/33.7 %): the spectrum is too soft"
)
def test_beam_quality_of_the_spectrum_consistent_kernel(water_fields_consistent: dict[int, PlanDose]) -> None:
    """TPR20,10 = 1.2661 PDD20,10 - 0.0595 (IAEA TRS-398; 10 x 10 cm2, SSD 100): 0.66-0.68 for 6 MV."""
    y, pdd = _pdd(water_fields_consistent[100])
    tpr = 1.2661 * float(np.interp(200.0, y, pdd) / np.interp(100.0, y, pdd)) - 0.0595
    assert 0.66 <= tpr <= 0.68
