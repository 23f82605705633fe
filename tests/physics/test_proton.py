"""Proton physics: PSTAR ranges, Bethe stopping power, Bortfeld Bragg curve, SOBP, Highland spread."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrepid.errors import ParameterError
from intrepid.physics import (
    csda_range_mm,
    energy_from_range_mev,
    highland_sigma_mm,
    pristine_peak,
    relative_stopping_power,
    spread_out_bragg_peak,
    water_stopping_power_mev_cm2_g,
)


@pytest.mark.parametrize(("energy", "pstar_mm"), [(100.0, 77.18), (150.0, 157.7), (200.0, 259.6)])
def test_csda_range_matches_nist_pstar_within_1_percent(energy: float, pstar_mm: float) -> None:
    # the criterion is 1 %; the Bethe integral anchored at PSTAR's 10 MeV range does better
    assert abs(float(csda_range_mm(energy)) - pstar_mm) / pstar_mm < 0.002


def test_stopping_power_matches_pstar() -> None:
    # NIST PSTAR electronic stopping power of water: 100 MeV 7.289, 200 MeV 4.492 MeV cm2/g
    assert float(water_stopping_power_mev_cm2_g(100.0)) == pytest.approx(7.289, rel=0.005)
    assert float(water_stopping_power_mev_cm2_g(200.0)) == pytest.approx(4.492, rel=0.005)


def test_range_is_the_integral_of_inverse_stopping_power() -> None:
    # closed relation dR/dE = 1 / S (density 1): finite difference of the range table (0.5 % tolerance)
    e = 120.0
    drde = (float(csda_range_mm(e + 0.5)) - float(csda_range_mm(e - 0.5))) / 1.0 / 10.0  # cm/MeV
    assert drde == pytest.approx(1.0 / float(water_stopping_power_mev_cm2_g(e)), rel=0.005)


@given(st.floats(min_value=5.0, max_value=300.0))
@settings(max_examples=30, deadline=None)
def test_energy_from_range_inverts_csda_range(energy: float) -> None:
    assert float(energy_from_range_mev(csda_range_mm(energy))) == pytest.approx(energy, rel=1e-6)


def test_range_is_monotonic() -> None:
    r = csda_range_mm(np.linspace(5, 300, 200))
    assert np.all(np.diff(r) > 0)


def test_relative_stopping_power_of_water_is_one_and_pmma_close_to_preset() -> None:
    assert relative_stopping_power(
        150, density_g_cm3=1.0, z_over_a=0.555087, mean_excitation_ev=75.0
    ) == pytest.approx(1.0, abs=1e-12)
    # PMMA (ICRU: Z/A 0.53937, I 74 eV): Bethe gives 1.158, the preset 1.165 within 1 %
    pmma = relative_stopping_power(150, density_g_cm3=1.19, z_over_a=0.53937, mean_excitation_ev=74.0)
    assert pmma == pytest.approx(1.165, rel=0.01)


def test_bragg_curve_far_from_peak_is_bragg_kleeman_stopping_power() -> None:
    # without nuclear losses and low-energy fluence, the plateau dose per fluence is the stopping power
    # S = (R0 - z)^(1/p - 1) / (p alpha^(1/p)) of the Bragg-Kleeman rule (Bortfeld 1997 Eq. 7); exact
    peak = replace(pristine_peak(150.0), beta_per_mm=0.0, epsilon=0.0)
    z = np.array([0.0, 50.0, 100.0])
    r0, p, alpha = peak.range_mm / 10, peak.p, peak.alpha_mm / 10
    s_mev_cm2_g = (r0 - z / 10) ** (1 / p - 1) / (p * alpha ** (1 / p))
    expected = s_mev_cm2_g * 1.602176634e-10 * 100
    np.testing.assert_allclose(peak.dose_per_fluence_gy_mm2(z), expected, rtol=1e-12)


def test_bragg_curve_conserves_energy_without_nuclear_losses() -> None:
    # integral of dose x density over depth = E0 per proton (0.2 % for the straggling tail and the grid)
    peak = replace(pristine_peak(150.0), beta_per_mm=0.0, epsilon=0.0)
    z = np.linspace(0, 200, 200001)
    deposited_mev = np.trapezoid(peak.dose_per_fluence_gy_mm2(z), z) / (1.602176634e-10 * 100) / 10
    assert deposited_mev == pytest.approx(150.0, rel=0.002)


def test_bragg_curve_is_continuous_where_the_two_forms_meet() -> None:
    peak = pristine_peak(150.0)
    z0 = peak.range_mm - 10 * peak.sigma_mm
    a, b = peak.dose_per_fluence_gy_mm2([z0 - 1e-6, z0 + 1e-6])
    assert b == pytest.approx(a, rel=5e-3)  # the closed form drops the straggling: 0.3 % at 10 sigma


@pytest.mark.parametrize("energy", [70.0, 150.0, 220.0])
def test_distal_80_percent_is_the_csda_range(energy: float) -> None:
    # Bortfeld 1997: the distal 80 % point coincides with R0 (within 0.5 mm here)
    peak = pristine_peak(energy)
    assert abs(peak.distal_depth_mm(80) - peak.range_mm) < 0.5
    assert peak.peak_depth_mm < peak.range_mm


def test_range_straggling_follows_bortfeld() -> None:
    peak = pristine_peak(150.0, energy_spread_mev=0.0)
    assert peak.sigma_mm == pytest.approx(10 * 0.012 * (peak.range_mm / 10) ** 0.935, rel=1e-12)


@pytest.mark.parametrize(("r", "m"), [(60.0, 30.0), (150.0, 50.0), (250.0, 100.0)])
def test_sobp_is_flat_within_2_percent_and_ends_at_the_range(r: float, m: float) -> None:
    sobp = spread_out_bragg_peak(r, m)
    assert sobp.flatness_percent() < 2.0
    assert abs(sobp.distal_depth_mm(90) - r) < 0.3  # 3 passes of the range search: 0.1 mm here
    assert sobp.plateau_mm[0] == pytest.approx(r - m)
    assert np.all(sobp.weights >= 0)
    # the deepest peak carries the largest weight (the classic SOBP weight pattern)
    assert int(np.argmax(sobp.weights)) == 0


def test_highland_sigma_grows_with_drift_and_thickness() -> None:
    kw = {"relative_stopping_power": 1.165, "radiation_length_mm": 340.7}
    s = highland_sigma_mm([10.0, 10.0, 30.0], [50.0, 150.0, 150.0], 150.0, **kw)
    assert s[0] < s[1] < s[2]
    assert float(highland_sigma_mm([0.0], [100.0], 150.0, **kw)[0]) == 0.0
    # thin-slab limit: sigma = theta0 * (drift + L/2) with Highland's theta0 (1 % for a 1 mm slab)
    e = 150.0
    pv = (e + 2 * 938.27208816) * e / (e + 938.27208816)
    theta0 = 14.1 / pv * np.sqrt(1.0 / 340.7) * (1 + np.log10(1.0 / 340.7) / 9)
    got = float(highland_sigma_mm([1.0], [200.0], e, **kw)[0])
    assert got == pytest.approx(theta0 * np.sqrt(200.5**2 + 1 / 12), rel=0.01)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: csda_range_mm(-5.0), "energy_mev must be in"),
        (lambda: energy_from_range_mev(0.0), "range_mm must be in"),
        (lambda: pristine_peak(1.0), "energy_mev must be in"),
        (lambda: pristine_peak(100.0, energy_spread_mev=-1), "energy_spread_mev must be >= 0"),
        (lambda: pristine_peak(100.0, epsilon=1.5), "epsilon must be in"),
        (lambda: spread_out_bragg_peak(2.0, 1.0), "range_mm must be in"),
        (lambda: spread_out_bragg_peak(100.0, 120.0), "modulation_mm must be in"),
        (lambda: spread_out_bragg_peak(100.0, 20.0, peak_spacing_mm=0), "peak_spacing_mm must be > 0"),
        (
            lambda: relative_stopping_power(100, density_g_cm3=-1, z_over_a=0.5, mean_excitation_ev=70),
            "density_g_cm3 must be > 0",
        ),
        (lambda: pristine_peak(150.0).distal_depth_mm(120.0), "level_percent must be in"),
    ],
)
def test_bad_inputs_are_refused(call: object, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        call()  # type: ignore[operator]
