"""Detector and transit effects: flags, published ranges, and the physics each effect must show."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.physics import (
    EFFECT_NAMES,
    EFFECT_RANGES,
    BeamModel,
    DetectorEffects,
    DetectorModel,
    EffectFlags,
    Field,
    MlcField,
    TabulatedEnergyResponse,
    generate_mlc_field,
    sample_effects,
    simulate_transit,
    spectral_scatter_to_primary_ratio,
)
from intrepid.physics._detector_effects import frame_factor, glare_fraction
from intrepid.physics._transit_effects import BASE_OVERRESPONSE, off_axis_beams

NOISE_FREE = dict(quantum_cu2_per_cu=0.0, electronic_noise_cu=0.0, dead_pixel_fraction=0.0)


def _coarse(det: DetectorModel, n: int = 256) -> DetectorModel:
    """Same panel, n x n coarser pixels (fast)."""
    return replace(det, rows=n, columns=n, pixel_mm=det.pixel_mm * det.columns / n, **NOISE_FREE)


def _cax(a: np.ndarray, half: int = 2) -> float:
    r, c = a.shape
    return float(a[r // 2 - half : r // 2 + half, c // 2 - half : c // 2 + half].mean())


def _slab(layers: list[tuple[float, float, float]]) -> Volume:
    """Slab phantom: (y_from_mm, y_to_mm, HU) layers in air; the gantry-0 beam enters at negative y."""
    grid = Grid((40, 120, 100), origin_mm=(-247.5, -297.5, -97.5), spacing_mm=(5.0, 5.0, 5.0))
    hu = np.full(grid.shape, -1000.0)
    y = grid.origin_mm[1] + 5.0 * np.arange(grid.shape[1])
    for lo, hi, value in layers:
        hu[:, (y >= lo) & (y < hi), :] = value
    return Volume(hu, grid, Quantity.CT_NUMBER, "HU", frame_of_reference_uid="1.2.3")


# ------------------------------------------------------------------ flags and ranges
def test_flags_parse_only_without() -> None:
    assert EffectFlags.parse("all") == EffectFlags.all_on()
    assert EffectFlags.parse("none").enabled() == ()
    assert EffectFlags.parse("glare,couch").enabled() == ("glare", "couch")
    off = EffectFlags.parse("all-glare-couch")
    assert not off.glare and not off.couch and off.energy_response
    assert len(EffectFlags.all_on().enabled()) == len(EFFECT_NAMES) == 16
    with pytest.raises(ParameterError, match=r"unknown effect 'glair'.*valid effects"):
        EffectFlags.parse("glair")


def test_every_range_has_a_source_and_draws_stay_inside() -> None:
    rng = np.random.default_rng(5)
    for r in EFFECT_RANGES:
        assert r.low <= r.high and r.source and r.effect in EFFECT_NAMES
    draws = [sample_effects(EffectFlags.all_on(), "varian", rng) for _ in range(40)]
    by_param = {r.parameter: r for r in EFFECT_RANGES}
    for name in ("response_strength", "multiple_scatter_coefficient", "overresponse_large_field",
                 "couch_attenuation", "lag_fraction", "residual_fraction", "gain"):
        values = [getattr(d, name) for d in draws]
        r = by_param[name]
        assert r.low <= min(values) and max(values) <= r.high
        assert max(values) - min(values) > 0.3 * (r.high - r.low)  # randomised, not a preset
    bs = [d.backscatter_fraction for d in draws]
    assert 0.02 <= min(bs) and max(bs) <= 0.06  # the Varian arm range
    assert all(math.hypot(d.shift_u_mm, d.shift_v_mm) <= 2.0 + 1e-9 for d in draws)


def test_effects_that_are_off_keep_neutral_values() -> None:
    fx = sample_effects(EffectFlags.none(), "elekta", np.random.default_rng(0))
    assert fx.response_strength == 0 and fx.couch_attenuation == 0 and fx.backscatter_fraction == 0
    assert fx.lag_fraction == 0 and fx.shift_u_mm == 0 and fx.dead_line_count == 0
    with pytest.raises(ParameterError, match="vendor must be elekta or varian"):
        sample_effects(EffectFlags.none(), "siemens", np.random.default_rng(0))


# ------------------------------------------------------------------ energy response and scatter spectra
def test_gd2o2s_response_is_several_fold_at_low_energy() -> None:
    r = TabulatedEnergyResponse.gd2o2s()
    assert r(0.1) > 4.0 and r(0.2) > 2.0 and r(0.3) > 1.5
    np.testing.assert_allclose(r([1.25, 2.0, 5.0]), [1.0, 0.98, 1.0], atol=0.02)
    np.testing.assert_allclose(TabulatedEnergyResponse.gd2o2s(0.0)([0.1, 1.0, 5.0]), 1.0)
    lo, hi = (TabulatedEnergyResponse.gd2o2s(s)(0.1) for s in (0.75, 1.25))
    assert 3.0 < lo < hi < 10.0


def test_epid_scatter_to_primary_exceeds_waters_by_tens_of_percent() -> None:
    beam = BeamModel.six_mv()
    resp = TabulatedEnergyResponse.gd2o2s()

    def ratio(t: float, r_mm: float) -> float:
        water = spectral_scatter_to_primary_ratio(beam, t, 500.0, r_mm)
        epid = spectral_scatter_to_primary_ratio(beam, t, 500.0, r_mm, response=resp)
        return epid / water

    thin, thick = ratio(50.0, 90.0), ratio(200.0, 90.0)
    large = ratio(200.0, 240.0)
    assert 1.08 < thick < 1.5  # tens of percent behind 20 cm
    assert thin < thick < ratio(300.0, 90.0)  # grows with thickness
    assert large > thick  # and with field size
    assert thin < 1.08


def test_primary_transmission_weighted_by_the_panel_differs_from_water() -> None:
    from intrepid.physics import primary_transmission

    beam = BeamModel.six_mv()
    water = float(primary_transmission(200.0, beam))
    panel = float(primary_transmission(200.0, beam, response=TabulatedEnergyResponse.gd2o2s()))
    assert 0.33 < water < 0.40 and panel < water  # the panel weighs the soft, more attenuated part more


def test_off_axis_softening_drops_the_mean_energy_as_drawn() -> None:
    beam = BeamModel.six_mv()
    beams = off_axis_beams(beam, 0.08)
    e = [b.mean_energy_mev for b in beams]
    assert e[0] == pytest.approx(beam.mean_energy_mev)
    assert e[2] == pytest.approx(0.92 * e[0], rel=1e-3)
    assert e[0] > e[1] > e[2] > e[3]


# ------------------------------------------------------------------ images
@pytest.fixture(scope="module")
def det() -> DetectorModel:
    return _coarse(DetectorModel.elekta_iview())


def _ratio(img) -> float:  # type: ignore[no-untyped-def]
    return _cax(img.epid.array) / _cax(img.portal_dose.array)


def test_glare_gives_the_published_large_field_over_response() -> None:
    """Open 27 x 27 vs 10 x 10 EPID/portal-dose over-response at both ends of the 5-8 % range (SID 1000)."""
    det = _coarse(DetectorModel.varian_as1000(sid_mm=1000.0))

    def over(fx: DetectorEffects) -> float:
        small = simulate_transit(None, Field.square(10), detector=det, effects=fx)
        large = simulate_transit(None, Field.square(27), detector=det, effects=fx)
        return _ratio(large) / _ratio(small) - 1.0

    for target in (0.05, 0.08):
        fx = DetectorEffects(EffectFlags.only("glare"), overresponse_large_field=target, glare_range_mm=50.0)
        assert over(fx) == pytest.approx(target, abs=0.006)
    assert over(DetectorEffects(EffectFlags.none())) == pytest.approx(BASE_OVERRESPONSE, abs=0.003)


def test_glare_fraction_solves_the_disc_formula() -> None:
    f = glare_fraction(0.05, 50.0, 90.0, 240.0)
    i = lambda r: 1 - math.exp(-r / 50) * (1 + r / 50)  # noqa: E731
    assert (1 - f + f * i(240)) / (1 - f + f * i(90)) == pytest.approx(1.05, rel=1e-9)


def test_nonlinearity_epid_to_dose_ratio_depends_on_field_size_behind_a_patient(det: DetectorModel) -> None:
    """Behind 25 cm the softer, EPID-weighted scatter makes the EPID/dose ratio grow with field size more
    than the earlier (near-linear) physics did: 5 x 5 to 20 x 20, +1.7 % before, +4 % with the nominal
    spectral effects."""
    ph = _slab([(-125.0, 125.0, 0.0)])

    def growth(effects: DetectorEffects | None) -> float:
        r = [_ratio(simulate_transit(ph, Field.square(s), detector=det, effects=effects)) for s in (5, 20)]
        return r[1] / r[0] - 1.0

    legacy = growth(None)
    new = growth(DetectorEffects.nominal(EffectFlags.only("energy_response", "spectral_scatter")))
    assert new > legacy + 0.015


def test_heterogeneity_position_changes_scatter(det: DetectorModel) -> None:
    """Same layers, bone near the entrance or near the exit: same radiological path, different scatter."""
    entrance = _slab([(-100.0, -60.0, 1000.0), (-60.0, 100.0, 0.0)])
    exit_ = _slab([(-100.0, 60.0, 0.0), (60.0, 100.0, 1000.0)])
    fx = DetectorEffects.nominal(EffectFlags.only("heterogeneity_position"))
    d_in = simulate_transit(entrance, Field.square(20), detector=det, effects=fx)
    d_out = simulate_transit(exit_, Field.square(20), detector=det, effects=fx)
    t_in, t_out = d_in.metadata["central_thickness_mm"], d_out.metadata["central_thickness_mm"]
    assert t_in == pytest.approx(t_out, rel=1e-3)
    assert _cax(d_out.portal_dose.array) > 1.003 * _cax(d_in.portal_dose.array)  # mass nearer the panel
    off = DetectorEffects(EffectFlags.none())
    a = _cax(simulate_transit(entrance, Field.square(20), detector=det, effects=off).portal_dose.array)
    b = _cax(simulate_transit(exit_, Field.square(20), detector=det, effects=off).portal_dose.array)
    assert abs(a / b - 1.0) < 1e-3


def test_couch_attenuates_both_images(det: DetectorModel) -> None:
    ph = _slab([(-100.0, 100.0, 0.0)])
    off = simulate_transit(ph, Field.square(10), detector=det, effects=DetectorEffects(EffectFlags.none()))
    on = simulate_transit(ph, Field.square(10), detector=det,
                          effects=DetectorEffects(EffectFlags.only("couch"), couch_attenuation=0.03))
    assert _cax(on.portal_dose.array) / _cax(off.portal_dose.array) == pytest.approx(0.97, abs=0.002)
    assert _cax(on.epid.array) / _cax(off.epid.array) == pytest.approx(0.97, abs=0.002)


def test_frames_lose_more_at_low_mu() -> None:
    fx = DetectorEffects(EffectFlags.only("frame_averaging"), dropped_frame_probability=0.02,
                         beam_dose_rate_mu_min=600.0)
    rng = np.random.default_rng(1)
    low = np.mean([frame_factor(5.0, fx, "elekta", rng) for _ in range(200)])
    high = np.mean([frame_factor(500.0, fx, "elekta", rng) for _ in range(200)])
    assert low < high < 1.0
    assert 0.97 < high < 0.99  # ~2 % dropped plus a fraction of a frame


def test_panel_shift_moves_the_epid_not_the_dose(det: DetectorModel) -> None:
    fx0 = DetectorEffects(EffectFlags.none())
    fx = DetectorEffects(EffectFlags.only("panel_shift"), shift_u_mm=2.0)
    a = simulate_transit(None, Field.rectangle(5, 5), detector=det, effects=fx0)
    b = simulate_transit(None, Field.rectangle(5, 5), detector=det, effects=fx)
    np.testing.assert_array_equal(a.portal_dose.array, b.portal_dose.array)
    u = np.arange(det.columns) * det.pixel_mm
    row_a, row_b = a.epid.array[det.rows // 2], b.epid.array[det.rows // 2]
    shift = (np.sum(u * row_b) / row_b.sum()) - (np.sum(u * row_a) / row_a.sum())
    assert shift == pytest.approx(2.0, abs=0.3)


def test_all_effects_image_is_deterministic_and_records_the_draws(det: DetectorModel) -> None:
    fx = sample_effects(EffectFlags.all_on(), "elekta", np.random.default_rng(3))
    ph = _slab([(-100.0, 100.0, 0.0)])
    a = simulate_transit(ph, Field.square(10), detector=det, effects=fx, seed=4, mu=50)
    b = simulate_transit(ph, Field.square(10), detector=det, effects=fx, seed=4, mu=50)
    np.testing.assert_array_equal(a.raw, b.raw)
    meta = a.metadata["effects"]
    assert meta["response_strength"] == fx.response_strength and "frame_factor" in meta
    assert a.metadata["model_version"] == "intrepid-transit-2.0"
    assert 0.2 < _ratio(a) * 0.01 < 2.0  # plausible CU per Gy


def test_mlc_fields_use_the_shared_head_model(det: DetectorModel) -> None:
    rng = np.random.default_rng(2)
    beam = BeamModel.six_mv()
    x = np.linspace(-100, 100, 201)
    for kind in ("sns", "sw", "dyn"):
        f = generate_mlc_field(kind, 10, 10, rng)
        flu = f.fluence(beam, x, x[::-1])
        assert f.name == f"{kind} 10x10" and flu.shape == (201, 201)
        inside = flu[60:140, 60:140]
        # modulated (a sliding window delivers about gap / travel of the open fluence: 5-30 %)
        assert inside.max() > 0.05 and inside.max() > 2.0 * inside.min()
        assert inside.min() > 0.01  # closed leaves still transmit (1.5-2 %) and head scatter passes
        assert f.leaf_transmission is not None and 0.015 <= f.leaf_transmission <= 0.02
        assert 1.5 <= (f.dosimetric_leaf_gap_mm or 0) <= 2.0 and 0.4 <= (f.tongue_groove_mm or 0) <= 1.0
        assert flu[0, 0] < 0.03  # outside the jaws: transmission and head scatter only
    img = simulate_transit(None, generate_mlc_field("sns", 10, 10, rng), detector=det,
                           effects=DetectorEffects(EffectFlags.none()))
    assert img.metadata["field"] == "sns 10x10" and float(img.portal_dose.array.max()) > 0
    with pytest.raises(ParameterError, match="field must be a Field"):
        simulate_transit(None, generate_mlc_field("sns", 10, 10, rng), detector=det)


def test_couch_attenuation_grows_with_the_gantry_angle(det: DetectorModel) -> None:
    ph = _slab([(-100.0, 100.0, 0.0)])
    fx = DetectorEffects(EffectFlags.only("couch"), couch_attenuation=0.02)
    off = DetectorEffects(EffectFlags.none())
    ratios = []
    for g in (0.0, 50.0):
        a = simulate_transit(ph, Field.square(10), detector=det, effects=fx, gantry_deg=g)
        b = simulate_transit(ph, Field.square(10), detector=det, effects=off, gantry_deg=g)
        ratios.append(_cax(a.portal_dose.array) / _cax(b.portal_dose.array))
    assert ratios[0] == pytest.approx(0.98, abs=0.002)
    assert ratios[1] == pytest.approx(1 - 0.02 / math.cos(math.radians(50.0)), abs=0.003)


def test_varian_panel_with_every_effect() -> None:
    det = _coarse(DetectorModel.varian_as1000(), 128)
    fx = sample_effects(EffectFlags.all_on(), "varian", np.random.default_rng(8))
    img = simulate_transit(_slab([(-100.0, 100.0, 0.0)]), Field.square(10), detector=det, effects=fx, mu=100)
    assert img.metadata["vendor"] == "varian" and img.epid.units == "CU"
    # behind 20 cm at SID 1500 mm: ~0.38 transmission x 0.44 inverse square x 100 MU ~ 17 CU, give or take
    # the drawn panel response, the frames and the calibration
    assert 10.0 < _cax(img.epid.array) < 25.0


@pytest.mark.external
def test_mlc_field_from_a_real_rtplan(external_data, det: DetectorModel) -> None:  # type: ignore[no-untyped-def]
    from intrepid.dicom import read_rtplan

    beam = read_rtplan(external_data / "dicompyler-example" / "rtplan.dcm").beams[0]
    f = MlcField.from_rtplan_beam(beam)
    img = simulate_transit(None, f, detector=det, effects=DetectorEffects(EffectFlags.none()), mu=100)
    dose = img.portal_dose.array
    assert float(dose.max()) > 0 and float((dose > 0.5 * dose.max()).mean()) < 0.5  # a modulated field
