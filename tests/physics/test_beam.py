"""Tests of the 6 MV beam model: XCOM coefficients, spectrum, hardening, head scatter and horns."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.physics import (
    BeamModel,
    Field,
    water_mass_attenuation_cm2_g,
    water_mass_energy_absorption_cm2_g,
)


def test_xcom_water_values() -> None:
    # NIST XCOM (Hubbell & Seltzer) table values, reproduced exactly at the tabulated energies.
    np.testing.assert_allclose(
        water_mass_attenuation_cm2_g([1.0, 2.0, 5.0]), [0.0707, 0.0494, 0.0303], atol=6e-5
    )
    assert float(water_mass_energy_absorption_cm2_g(1.0)) == pytest.approx(0.03103)
    # Log-log interpolation lies between the neighbours and is monotone here.
    mid = float(water_mass_attenuation_cm2_g(1.5**0.5 * 1.0))
    assert 0.05754 < mid < 0.07072


@pytest.mark.parametrize("energy", [1.0, 2.0, 5.0])
def test_monoenergetic_narrow_beam_is_exponential(energy: float) -> None:
    # Closed form: exp(-mu/rho * rho * t) with t in cm; exact to floating point.
    beam = BeamModel.monoenergetic(energy)
    t = np.array([0.0, 50.0, 100.0, 200.0, 300.0])
    mu = float(water_mass_attenuation_cm2_g(energy))
    np.testing.assert_allclose(beam.narrow_beam_transmission(t), np.exp(-mu * t / 10), rtol=1e-12)


def test_six_mv_spectrum_and_hardening() -> None:
    beam = BeamModel.six_mv()
    assert sum(beam.energy_fluence_weights) == pytest.approx(1.0)
    # Mean photon energy of a 6 MV beam ~1.5-2 MeV (Ali & Rogers 2012; Sheikh-Bagheri & Rogers 2002).
    assert 1.3 < beam.mean_energy_mev < 2.0
    t = np.array([0.0, 100.0, 200.0, 300.0])
    trans = beam.narrow_beam_transmission(t)
    mu_eff = -np.diff(np.log(trans)) / 10.0  # per cm, per 10 cm layer
    # Effective mu of 6 MV in water ~0.045-0.05 /cm (REFERENCES.md); it falls with depth (hardening).
    assert 0.042 < float(-np.log(trans[2]) / 20.0) < 0.052
    assert np.all(np.diff(mu_eff) < 0)


def test_six_mv_filtration_parameter_hardens_the_beam() -> None:
    # More Al-equivalent filtration (Ali & Rogers c2) removes low energies: harder, more penetrating beam.
    soft, hard = BeamModel.six_mv(), BeamModel.six_mv(filtration_c2=8.87)
    assert hard.mean_energy_mev > soft.mean_energy_mev + 0.5
    t = np.array([200.0])
    assert hard.narrow_beam_transmission(t)[0] > 1.1 * soft.narrow_beam_transmission(t)[0]
    with pytest.raises(ParameterError, match="filtration_c2"):
        BeamModel.six_mv(filtration_c2=-1.0)


def test_head_scatter_and_horns() -> None:
    beam = BeamModel.six_mv()
    sc = [beam.head_scatter_factor(Field.square(s)) for s in (3, 5, 10, 20, 30)]
    assert sc[2] == pytest.approx(1.0)
    assert np.all(np.diff(sc) > 0)
    # Typical 6 MV in-air output factors: ~0.95-0.99 at 5x5, ~1.02-1.05 at 20x20 (e.g. Jaffray et al. 1993).
    assert 0.95 < sc[1] < 0.99 and 1.01 < sc[3] < 1.05
    assert float(beam.off_axis_ratio(beam.horn_radius_mm)) == pytest.approx(1 + beam.horn_amplitude)
    # Geometric penumbra: sigma_s (SAD - z_c) / z_c times 1.683.
    assert beam.penumbra_mm == pytest.approx(1.6832 * 0.5 * 650 / 350, rel=1e-4)


def test_in_air_fluence_profile() -> None:
    beam = BeamModel.six_mv()
    f = Field.square(10)
    u = np.linspace(-100, 100, 401)
    prof = beam.in_air_fluence(f, u, 0.0)
    np.testing.assert_allclose(prof, prof[::-1], atol=1e-12)  # symmetric
    centre = float(beam.in_air_fluence(f, 0.0, 0.0))
    assert float(beam.in_air_fluence(f, 50.0, 0.0)) / centre == pytest.approx(0.5, abs=0.03)
    # Outside: collimator transmission plus the extra-focal tail, a few % at most.
    assert 0.004 < float(beam.in_air_fluence(f, 90.0, 0.0)) / centre < 0.05


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(energies_mev=(1.0,), energy_fluence_weights=(1.0, 2.0)), "equal length"),
        (dict(energies_mev=(50.0,), energy_fluence_weights=(1.0,)), "energies_mev must lie"),
        (dict(energies_mev=(1.0,), energy_fluence_weights=(0.0,)), "not all zero"),
        (dict(energies_mev=(1.0,), energy_fluence_weights=(1.0,), sad_mm=-1.0), "sad_mm must be > 0"),
        (
            dict(energies_mev=(1.0,), energy_fluence_weights=(1.0,), collimator_transmission=1.5),
            "collimator_trans",
        ),
        (
            dict(energies_mev=(1.0,), energy_fluence_weights=(1.0,), collimator_distance_mm=1200.0),
            "collimator_dist",
        ),
    ],
)
def test_bad_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        BeamModel(name="x", **kwargs)


def test_bad_energy() -> None:
    with pytest.raises(ParameterError, match="energy_mev must lie in"):
        water_mass_attenuation_cm2_g(0.01)
    with pytest.raises(ParameterError, match="n_bins must be >= 2"):
        BeamModel.six_mv(n_bins=1)
