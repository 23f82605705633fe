"""The spectrum-built kernel: transcription of the monoenergetic EDKnrc kernels, TERMA weights, the built
kernel's energy split, and its water and lung-slab behaviour (docs/dose.md, "Spectrum-built kernel").

Water tolerances as tests/dose/test_water.py (AAPM MPPG 5.a, 2 %); misses are strict xfails carrying the
measured numbers (2026-12-05), never loosened tolerances.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from intrepid.dose import DoseSettings, PlanDose, compute_dose, open_field_plan, slab_phantom
from intrepid.dose._kernel import (
    DEFAULT_ZENITH_EDGES_DEG,
    _cumulative,
    _fit_cone,
    edk_mono_fractions,
    edk_table,
    spectrum_primary_share,
)
from intrepid.dose._kernel_mono import (
    _kernel_at,
    edk_mono_kernels,
    spectrum_cone_kernel,
    spectrum_kernel_table,
    spectrum_terma_weights,
    terma_share_below,
)
from intrepid.errors import ParameterError
from intrepid.physics import BeamModel

from .conftest import central_axis


# ----------------------------------------------------------------------------- transcription
def test_mono_kernels_file_states_source_and_quantity() -> None:
    text = resources.files("intrepid.dose").joinpath("data/edk_mono_kernels.json").read_text(encoding="utf-8")
    d = json.loads(text)
    assert "44505a9dd9245e9d538670d4564896b797c8f113" in d["source"]
    assert d["licence"] == "MIT"
    assert set(d["paths"]) == {"1.0", "2.0", "3.0", "4.0", "6.0"}
    assert d["paths"]["1.0"].endswith("1.0MeV.egsdat") and d["paths"]["2.0"].endswith("2.0MeV.egslst")
    assert "fraction" in d["quantity"]


def test_mono_kernels_on_the_grid_of_the_6mv_table() -> None:
    m, t = edk_mono_kernels(), edk_table()
    assert m.values.shape == (5, 48, 24)
    np.testing.assert_allclose(m.theta_edges_deg, t.theta_edges_deg)
    np.testing.assert_allclose(m.radius_edges_cm, t.radius_edges_cm)
    np.testing.assert_allclose(m.energies_mev, [1.0, 2.0, 3.0, 4.0, 6.0])


def test_mono_kernels_sum_to_the_printed_energy_fractions() -> None:
    """Each transcribed kernel sums to EDKnrc's F_tot of its run: within rounding for the four listings
    (5 significant digits x 1152 values), within 0.03 % for the 1 MeV accumulator file (docs/dose.md)."""
    m = edk_mono_kernels()
    sums = m.values.reshape(5, -1).sum(axis=1)
    np.testing.assert_allclose(sums[1:], m.f_tot[1:], atol=2e-6)
    assert sums[0] == pytest.approx(m.f_tot[0], rel=3e-4)
    # F_tot as shipped with the energy fractions of the second pass (same listings).
    fr = edk_mono_fractions()
    for e, f in zip(m.energies_mev, m.f_tot, strict=True):
        if e in fr.energies_mev:
            assert f == pytest.approx(float(fr.f_tot[list(fr.energies_mev).index(e)]), abs=1e-6)


def test_mono_kernels_spot_values_of_the_listings() -> None:
    """Values copied from the listings (angle upper edge, radius upper edge -> bin)."""
    v = edk_mono_kernels().values
    assert v[1, 0, 0] == pytest.approx(1.2785e-3)  # 2 MeV, 3.75 deg, 0.05 cm
    assert v[2, 0, 10] == pytest.approx(6.4175e-4)  # 3 MeV, 3.75 deg, 1.5 cm
    assert v[3, 3, 10] == pytest.approx(1.1619e-2)  # 4 MeV, 15 deg, 1.5 cm
    assert v[4, 47, 23] == pytest.approx(1.0122e-6)  # 6 MeV, 180 deg, 60 cm
    assert v[0, 0, 0] == pytest.approx(27170.595 / 2e7, rel=1e-4)  # 1 MeV accumulator / (N E)


def test_primary_electron_range_grows_with_energy() -> None:
    """Physics sanity of each transcription: in the 3.75-7.5 deg cone the energy density drops by an order of
    magnitude at the end of the primary electrons' range, which is the CSDA range in water of the maximum
    Compton electron energy (ICRU 37 [recall]: 0.35, 0.87, 1.37, 1.87, 2.9 cm for 1, 2, 3, 4, 6 MeV photons).
    Measured drop shell (outer radius): 0.3, 0.8, 1.5, 2.0, 3.0 cm."""
    m = edk_mono_kernels()
    r = m.radius_edges_cm
    vol = 4.0 / 3.0 * np.pi * (r[1:] ** 3 - r[:-1] ** 3)
    drops = []
    for k in range(m.energies_mev.size):
        density = m.values[k, 1] / vol
        ratio = density[:-1] / density[1:]
        j = int(np.argmax(ratio))
        assert ratio[j] > 10.0
        drops.append(float(r[j + 1]))
    assert drops == [0.3, 0.8, 1.5, 2.0, 3.0]


# ----------------------------------------------------------------------------- weights and interpolation
def test_terma_weights_sum_to_one_and_low_energy_share() -> None:
    b = BeamModel.six_mv()
    t = spectrum_terma_weights(b.energies, b.weights)
    assert t.sum() == pytest.approx(1.0, rel=1e-12)
    assert np.all(t >= 0)
    # Share handled with the 1 MeV kernel's shape (stated in the docs).
    assert terma_share_below(b.energies, b.weights, 1.0) == pytest.approx(0.286, abs=0.001)
    with pytest.raises(ParameterError):
        spectrum_terma_weights(b.energies, b.weights[:-1])


def test_interpolation_is_exact_at_nodes_linear_between_and_clamped() -> None:
    m = edk_mono_kernels()
    np.testing.assert_allclose(_kernel_at(m, 2.0), m.values[1])
    np.testing.assert_allclose(_kernel_at(m, 5.0), 0.5 * (m.values[3] + m.values[4]))
    np.testing.assert_allclose(_kernel_at(m, 0.3), m.values[0])
    np.testing.assert_allclose(_kernel_at(m, 10.0), m.values[4])


def test_monoenergetic_spectrum_gives_the_mono_kernel() -> None:
    m = edk_mono_kernels()
    t = spectrum_kernel_table(np.array([3.0]), np.array([1.0]))
    np.testing.assert_allclose(t.values, m.values[2] / m.values[2].sum(), rtol=1e-12)


# ----------------------------------------------------------------------------- the built kernel
def test_built_kernel_primary_share_matches_the_spectrum() -> None:
    """The short-range (A) share of the fitted spectrum-built kernel equals the spectrum's primary share
    (Σ T μ_en/μ / Σ T F_tot, 0.516) within 0.01 — the fitted 6 MV table has 0.378 (strict xfail in
    test_kernel.py). Measured: 0.517."""
    b = BeamModel.six_mv()
    k = spectrum_cone_kernel(b.energies_mev, b.energy_fluence_weights)
    assert k.primary_fraction() == pytest.approx(spectrum_primary_share(b.energies, b.weights), abs=0.01)
    assert k.fraction_within() == pytest.approx(1.0, rel=1e-9)
    assert k.n_directions == 64


@pytest.mark.parametrize("cone", range(len(DEFAULT_ZENITH_EDGES_DEG) - 1))
def test_two_exponential_fit_follows_the_built_table(cone: int) -> None:
    b = BeamModel.six_mv()
    t = spectrum_kernel_table(b.energies, b.weights)
    lo, hi = np.searchsorted(t.theta_edges_deg, DEFAULT_ZENITH_EDGES_DEG[cone : cone + 2])
    cum = np.cumsum(t.values[lo:hi].sum(axis=0))
    r = t.radius_edges_cm[1:]
    fit = _cumulative(r, *_fit_cone(r, cum))
    assert np.max(np.abs(fit - cum)) < 0.10 * cum[-1]


def test_kernel_source_setting_is_validated_and_recorded() -> None:
    with pytest.raises(ParameterError, match="kernel_source"):
        DoseSettings(kernel_source="table")
    with pytest.raises(ParameterError, match="kernel_primary_share"):
        DoseSettings(kernel_source="spectrum", kernel_primary_share=0.5)
    s = DoseSettings(kernel_source="spectrum")
    b = BeamModel.six_mv()
    np.testing.assert_array_equal(
        s.kernel_for(b).amp_a, spectrum_cone_kernel(b.energies_mev, b.energy_fluence_weights).amp_a
    )
    assert s.kernel.primary_fraction() != pytest.approx(DoseSettings().kernel.primary_fraction(), abs=0.05)


def test_metadata_names_the_kernel(water_fields_spectrum: dict[int, PlanDose]) -> None:
    meta = water_fields_spectrum[100].metadata
    assert meta["kernel_source"] == "spectrum"
    assert "monoenergetic" in meta["kernel"]


# ----------------------------------------------------------------------------- water (MPPG 5.a)
def _pdd(dose: PlanDose) -> tuple[np.ndarray, np.ndarray]:
    y, ax = central_axis(dose)
    return y, 100.0 * ax / ax.max()


def test_mu_calibration_with_the_built_kernel(water_fields_spectrum: dict[int, PlanDose]) -> None:
    """The calibration uses the same settings: 100 MU of 10 x 10 cm2 give 1.00 Gy at d_max."""
    _, ax = central_axis(water_fields_spectrum[100])
    assert ax.max() == pytest.approx(1.0, rel=0.01)


#: Measured 2026-12-05 with BeamModel.six_mv() (c2 = 5.147): every depth dose is low, most at depth for small
#: fields — the spectrum is too soft (docs/dose.md, "Spectrum-built kernel").
SPECTRUM_MISSES = {
    (50, 50): "measured 82.6 % against 84.5 % (-2.2 %)",
    (50, 100): "measured 60.3 % against 63.0 % (-4.3 %)",
    (50, 200): "measured 31.2 % against 35.0 % (-10.8 %)",
    (100, 100): "measured 65.1 % against 66.8 % (-2.5 %)",
    (100, 200): "measured 36.4 % against 38.6 % (-5.8 %)",
    (200, 200): "measured 41.9 % against 43.0 % (-2.5 %)",
}
SPECTRUM_CASES = [
    pytest.param(f, d, marks=pytest.mark.xfail(strict=True, reason=SPECTRUM_MISSES[(f, d)]))
    if (f, d) in SPECTRUM_MISSES
    else (f, d)
    for f in (50, 100, 200)
    for d in (50, 100, 200)
]


@pytest.mark.parametrize(("field", "depth"), SPECTRUM_CASES)
def test_pdd_of_the_built_kernel_within_mppg_tolerance(
    water_fields_spectrum: dict[int, PlanDose], reference_6mv: dict, field: int, depth: int
) -> None:
    y, pdd = _pdd(water_fields_spectrum[field])
    ref = float(reference_6mv["pdd_percent"][str(field)][str(depth)])
    assert float(np.interp(float(depth), y, pdd)) == pytest.approx(ref, rel=0.02)


@pytest.mark.parametrize(
    "field",
    [
        pytest.param(50, marks=pytest.mark.xfail(strict=True, reason="measured d_max 11.25 mm (5 x 5)")),
        100,
        200,
    ],
)
def test_dmax_of_the_built_kernel_between_13_and_17_mm(
    water_fields_spectrum: dict[int, PlanDose], field: int
) -> None:
    y, pdd = _pdd(water_fields_spectrum[field])
    assert 12.5 <= y[int(np.argmax(pdd))] <= 17.5


@pytest.mark.xfail(strict=True, reason="measured: 69.5/60.3 = 1.153 against 70.8/63.0 = 1.124 (+2.6 %)")
def test_field_size_dependence_of_the_built_kernel(
    water_fields_spectrum: dict[int, PlanDose], reference_6mv: dict
) -> None:
    """PDD(10 cm) 20 x 20 / 5 x 5 within 2 %: the table gives +7.4 %, the built kernel +2.6 %."""
    vals = []
    for f in (200, 50):
        y, pdd = _pdd(water_fields_spectrum[f])
        vals.append(float(np.interp(100.0, y, pdd)))
    ref = reference_6mv["pdd_percent"]
    assert vals[0] / vals[1] == pytest.approx(ref["200"]["100"] / ref["50"]["100"], rel=0.02)


def test_output_factors_of_the_built_kernel(water_fields_spectrum: dict[int, PlanDose]) -> None:
    """Output factors at d_max 0.94 / 1.06 (+-0.03); measured 0.965 / 1.049."""
    peak = {f: central_axis(d)[1].max() for f, d in water_fields_spectrum.items()}
    assert peak[50] / peak[100] == pytest.approx(0.94, abs=0.03)
    assert peak[200] / peak[100] == pytest.approx(1.06, abs=0.03)


def test_lung_slab_behaviour_of_the_built_kernel() -> None:
    """As test_properties.test_lung_slab_behaviour with the spectrum-built kernel."""
    settings = DoseSettings(fan_spacing_mm=5.0, kernel_source="spectrum")
    lung = slab_phantom([(50.0, 0.0), (100.0, -740.0), (150.0, 0.0)], width_mm=300.0, spacing_mm=5.0)
    water = slab_phantom([(300.0, 0.0)], width_mm=300.0, spacing_mm=5.0)
    plan = open_field_plan(100.0, 100.0)
    dl = compute_dose(lung, plan, settings=settings).total
    dw = compute_dose(water, plan, settings=settings).total
    g = dl.grid
    y = g.origin_mm[1] + np.arange(g.shape[1]) * g.spacing_mm[1]
    axis_l = dl.array[g.shape[0] // 2, :, g.shape[2] // 2]
    axis_w = dw.array[g.shape[0] // 2, :, g.shape[2] // 2]
    assert float(np.interp(200.0, y, axis_l) / np.interp(200.0, y, axis_w)) > 1.03
    assert float(np.interp(145.0, y, axis_l) / np.interp(145.0, y, axis_w)) > 1.05
