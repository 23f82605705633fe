"""The transit simulation with the detector and transit effects of :mod:`intrepid.physics._detector_effects`.

:func:`intrepid.physics.simulate_transit` calls these functions when it is given ``effects=``; without them it
keeps its earlier model (``_transit._noise_free``). The smooth physics runs on the same internal grids:

1. in-air fluence (``BeamModel.in_air_fluence``, or an MLC fluence map), inverse square and obliquity;
2. off-axis softening: the spectrum at radius ρ (isocentre plane) loses a water-equivalent filtration
   Δ(ρ) = Δ₂₀₀ (ρ/200 mm)², Δ₂₀₀ such that the mean energy falls by the drawn fraction at 200 mm;
   primary transmission and in-air kerma are computed per radius bin (0, 100, 200, 300 mm) and interpolated;
3. primary through the patient with the water and the EPID response (Gd₂O₂S table);
4. patient scatter with the spectral model (:func:`intrepid.physics._transport.patient_scatter_spectral`),
   with a per-pixel effective air gap from where the mass sits along each ray;
5. couch attenuation (1 − a / cos α) on both images;
6. portal dose = kerma ⊛ water kernel; EPID = kerma_E ⊛ deposition ⊛ glare, then the non-stationary long
   glare tail and the arm backscatter;
7. off-axis raw response and the flood-field division (with the flood's tilt).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from intrepid.physics._beam import BeamModel, water_mass_attenuation_cm2_g
from intrepid.physics._detector_effects import (
    FRAME_TIME_S,
    SATURATION_CU_PER_FRAME,
    DetectorEffects,
    apply_dead_lines,
    dose_rate_response,
    flood_pattern,
    frame_factor,
    glare_fraction,
    previous_image_residual,
    soft_saturation,
)
from intrepid.physics._epid import ghosting_factor
from intrepid.physics._fields import Field
from intrepid.physics._kernels import GlareKernel, convolve_kernels
from intrepid.physics._transit import SCATTER_FACTOR, _block_mean, _centred, _Physics, _upsample
from intrepid.physics._transport import (
    WATER,
    Response,
    SpectralScatter,
    TabulatedEnergyResponse,
    _kerma_weights,
    patient_scatter_spectral,
    primary_transmission,
)

__all__ = ["effective_gap_map", "finish_signal", "noise_free_effects", "off_axis_beams"]

#: Radii (mm at the isocentre plane) of the off-axis spectra.
_OFF_AXIS_RADII_MM = (0.0, 100.0, 200.0, 300.0)
#: Open-field EPID / portal-dose over-response (27 x 27 vs 10 x 10, SID 1000 mm) of the model without the
#: long glare tail (deposition and glare-core kernels), measured with this simulator
#: (tests/physics/test_detector_effects.py); the glare tail supplies the rest of the drawn total.
BASE_OVERRESPONSE = 0.019


def _response(fx: DetectorEffects) -> Response:
    if fx.flags.energy_response and fx.response_strength > 0:
        return TabulatedEnergyResponse.gd2o2s(fx.response_strength)
    return WATER


def _filtered(beam: BeamModel, removed_g_cm2: float) -> BeamModel:
    w = beam.weights * np.exp(water_mass_attenuation_cm2_g(beam.energies) * removed_g_cm2)
    return BeamModel(beam.name, beam.energies_mev, tuple(float(x) for x in w / w.sum()), sad_mm=beam.sad_mm)


@lru_cache(maxsize=32)
def off_axis_beams(beam: BeamModel, mean_energy_drop_200mm: float) -> tuple[BeamModel, ...]:
    """Beams at :data:`_OFF_AXIS_RADII_MM`: filtration removed so the mean energy drops as drawn at 200 mm.

    Δ₂₀₀ (g/cm² of water-equivalent filter) is found by bisection; Δ(ρ) = Δ₂₀₀ (ρ/200)².
    """
    if mean_energy_drop_200mm <= 0 or beam.energies.size < 2:
        return tuple(beam for _ in _OFF_AXIS_RADII_MM)
    target = beam.mean_energy_mev * (1.0 - mean_energy_drop_200mm)
    lo, hi = 0.0, 60.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if _filtered(beam, mid).mean_energy_mev > target:
            lo = mid
        else:
            hi = mid
    d200 = 0.5 * (lo + hi)
    return tuple(_filtered(beam, d200 * (r / 200.0) ** 2) for r in _OFF_AXIS_RADII_MM)


def _radial_interp(values: list[NDArray[np.float64]], rho_mm: NDArray[np.float64]) -> NDArray[np.float64]:
    radii = np.asarray(_OFF_AXIS_RADII_MM)
    x = np.clip(rho_mm, radii[0], radii[-1])
    k = np.clip(np.searchsorted(radii, x, side="right") - 1, 0, radii.size - 2)
    f = (x - radii[k]) / (radii[k + 1] - radii[k])
    stack = np.stack(values)
    idx = k[None, ...]
    lo = np.take_along_axis(stack, idx, axis=0)[0]
    hi = np.take_along_axis(stack, idx + 1, axis=0)[0]
    return np.asarray(lo * (1.0 - f) + hi * f, dtype=float)


def _in_air_kerma(beams: tuple[BeamModel, ...], response: Response) -> list[float]:
    ref = float(np.sum(_kerma_weights(beams[0], response)))
    return [float(np.sum(_kerma_weights(b, response))) / ref for b in beams]


def effective_gap_map(
    red: Any, source_mm: NDArray[np.float64], plane: Any, targets_mm: NDArray[np.float64],
    wet_mm: NDArray[np.float64], axis_gap_mm: float,
) -> NDArray[np.float64]:
    """Effective air gap (mm) per ray: the mass-weighted height of the matter above the panel minus t/2.

    For a homogeneous slab it is the geometric gap; mass close to the exit (a bone insert near the panel)
    lowers it, mass near the entrance raises it, so the scatter kernels see where the heterogeneity sits.
    """
    from intrepid.geometry import Volume
    from intrepid.physics import line_integrals

    grid = red.grid
    aff = grid.affine
    n = -np.asarray(plane.normal, dtype=float)  # towards the source
    c = np.asarray(plane.centre_mm, dtype=float)
    k, j, i = (np.arange(s, dtype=np.float32) for s in grid.shape)
    a = aff[:3, :3].T @ n  # height change per index step (i, j, k)
    h0 = float((aff[:3, 3] - c) @ n)
    height = h0 + a[0] * i[None, None, :] + a[1] * j[None, :, None] + a[2] * k[:, None, None]
    weighted = Volume((np.asarray(red.array, dtype=np.float32) * height).astype(np.float32), grid)
    moment = line_integrals(weighted, source_mm, targets_mm, stop_at_target=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_h = np.where(wet_mm > 1.0, moment / np.maximum(wet_mm, 1e-9), axis_gap_mm)
    gap = mean_h - 0.5 * wet_mm
    return np.asarray(np.clip(gap, 20.0, 2.0 * axis_gap_mm + 200.0), dtype=float)


def _fluence(beam: BeamModel, fld: Any, u_iso: NDArray[np.float64], v_iso: NDArray[np.float64]) -> Any:
    if isinstance(fld, Field):
        return beam.in_air_fluence(fld, u_iso, v_iso)
    return fld.fluence(beam, u_iso, v_iso)


def noise_free_effects(
    phys: _Physics,
    fld: Any,
    thickness_mm: NDArray[np.float64] | None,
    air_gap_mm: float,
    sid_mm: float,
    shape: tuple[int, int],
    spacing_mm: float,
    fx: DetectorEffects,
    gap_map_mm: NDArray[np.float64] | None,
    gantry_deg: float = 0.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """Relative portal dose, relative calibrated EPID signal and central scatter fraction, with effects."""
    beam, det = phys.beam, phys.detector
    flags = fx.flags
    u = _centred(shape[1], spacing_mm)
    v = _centred(shape[0], spacing_mm)
    scale = beam.sad_mm / sid_mm
    phi = np.asarray(_fluence(beam, fld, (u * scale)[None, :], (-v * scale)[:, None]), dtype=float)
    phi = np.broadcast_to(phi, shape).astype(float)
    rad2 = u[None, :] ** 2 + v[:, None] ** 2
    obliquity = (sid_mm / np.sqrt(sid_mm**2 + rad2)) ** 3
    phi = phi * (scale**2) * obliquity
    rho_iso = np.sqrt(rad2) * scale
    resp = _response(fx)
    beams = off_axis_beams(beam, fx.mean_energy_drop_200mm if flags.off_axis_softening else 0.0)
    radii = np.asarray(_OFF_AXIS_RADII_MM)
    k_w = np.interp(rho_iso, radii, _in_air_kerma(beams, WATER))
    k_r = np.interp(rho_iso, radii, _in_air_kerma(beams, resp))
    couch = np.ones(shape)
    if flags.couch and fx.couch_attenuation > 0 and thickness_mm is not None:
        # path through the couch top grows as 1/cos of the angle from the vertical (gantry and ray obliquity),
        # capped at twice the normal path (TG-176: 2 % at normal incidence, up to ~5 % oblique)
        obl = np.sqrt(sid_mm**2 + rad2) / sid_mm / max(abs(math.cos(math.radians(gantry_deg))), 0.5)
        couch = 1.0 - fx.couch_attenuation * np.minimum(obl, 2.0)
    if thickness_mm is None:
        p_d, p_e = phi * k_w, phi * k_r
        s_d = np.zeros_like(phi)
        s_e = np.zeros_like(phi)
    else:
        t_w = [primary_transmission(thickness_mm, b) for b in beams]
        t_r = [primary_transmission(thickness_mm, b, response=resp) for b in beams]
        p_d = phi * k_w * _radial_interp(t_w, rho_iso)
        p_e = phi * k_r * _radial_interp(t_r, rho_iso)
        model = (
            SpectralScatter(fx.multiple_scatter_coefficient, fx.second_angle_deg, 2, fx.spread)
            if flags.spectral_scatter
            else SpectralScatter(0.5, 0.0, 0, 1.0)
        )
        phi_c = _block_mean(phi, SCATTER_FACTOR)
        t_c = _block_mean(thickness_mm, SCATTER_FACTOR)
        gap: Any = float(air_gap_mm)
        if flags.heterogeneity_position and gap_map_mm is not None:
            gap = _block_mean(gap_map_mm, SCATTER_FACTOR)
        s_dc, s_ec = patient_scatter_spectral(
            phi_c, t_c, spacing_mm * SCATTER_FACTOR, beam, gap, (WATER, resp), model=model
        )
        s_d, s_e = _upsample(s_dc, shape), _upsample(s_ec, shape)
    cy, cx = shape[0] // 2, shape[1] // 2
    centre = (slice(cy - 1, cy + 1), slice(cx - 1, cx + 1))
    kerma_d = (p_d + s_d) * couch
    scatter_fraction = float(np.mean(s_d[centre])) / max(float(np.mean((p_d + s_d)[centre])), 1e-30)
    dose = convolve_kernels(kerma_d, [phys.dose_kernel], spacing_mm)
    kerma_e = (p_e + s_e) * couch
    epid = convolve_kernels(kerma_e, [det.deposition, det.glare], spacing_mm)
    if flags.glare and fx.overresponse_large_field > 0:
        # the glare is a property of the panel: its fraction is set so that the drawn over-response holds
        # in the reference geometry (SID 1000 mm, where the published field-size responses were measured);
        # at SID 1500-1600 mm the same panel shows less, the fields being larger on it
        excess = max(fx.overresponse_large_field - BASE_OVERRESPONSE, 0.0)
        f = glare_fraction(excess, fx.glare_range_mm, 100.0 / math.sqrt(math.pi), 270.0 / math.sqrt(math.pi))
        # the tail (λ >= 30 mm) is smooth: convolve on the scatter grid; λ in 1 mm steps shares spectra
        lam = float(round(fx.glare_range_mm))
        coarse = _block_mean(epid, SCATTER_FACTOR)
        tail = _upsample(
            convolve_kernels(coarse, [GlareKernel(0.0, 1.0, 1.0, lam)], spacing_mm * SCATTER_FACTOR), shape
        )
        r_corner = float(np.sqrt(rad2.max()))
        w = f * (1.0 + fx.glare_nonstationarity * (2.0 * rad2 / r_corner**2 - 1.0))
        epid = (1.0 - w) * epid + w * tail
    bs_fraction = det.backscatter_fraction if fx.backscatter_fraction is None else fx.backscatter_fraction
    arm = det.backscatter_weight(v)[:, None]
    if bs_fraction > 0:
        sigma_px = det.backscatter_sigma_mm / (spacing_mm * SCATTER_FACTOR)
        bs = ndimage.gaussian_filter(
            _block_mean(kerma_e, SCATTER_FACTOR), sigma_px, mode="constant", truncate=3.0
        )
        epid = epid + bs_fraction * _upsample(bs, shape) * arm
    raw_response = det.off_axis_raw_response(np.sqrt(rad2))
    epid = epid * raw_response
    if det.flood_field_calibrated:
        horns = beam.off_axis_ratio(rho_iso)
        arm0 = float(det.backscatter_weight(np.zeros(1))[0])
        flood_bs = (1.0 + bs_fraction * arm) / (1.0 + bs_fraction * arm0)
        flood = raw_response * horns * obliquity * flood_bs * k_r
        if flags.flood_field:
            tilt = fx.flood_tilt_u * u[None, :] / 100.0 + fx.flood_tilt_v * v[:, None] / 100.0
            flood = flood * (1.0 + tilt)
        epid = epid / flood
    return dose, epid, scatter_fraction


def finish_signal(
    epid_rel: NDArray[np.float64],
    g_epid: float,
    mu: float,
    spacing_mm: float,
    full_shape: tuple[int, int],
    fx: DetectorEffects,
    vendor: str,
    lag_mu: float,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """Acquisition effects on the calibrated signal (CU): lag, frames, gain, shift, dose rate, ghost,
    saturation, dark offset, upsampling and the flood's fixed pattern. Noise and encoding come after."""
    flags = fx.flags
    info: dict[str, Any] = {}
    lag = ghosting_factor(mu, fx.lag_fraction, lag_mu) if fx.lag_fraction else 1.0
    frames = frame_factor(mu, fx, vendor, rng)
    gain = 1.0 + fx.gain
    info.update(ghosting_factor=lag, frame_factor=frames, gain_factor=gain)
    s = epid_rel * (g_epid * mu * lag * frames * gain)
    if flags.panel_shift and (fx.shift_u_mm or fx.shift_v_mm):
        shift = (fx.shift_v_mm / spacing_mm, fx.shift_u_mm / spacing_mm)
        s = ndimage.shift(s, shift, order=1, mode="nearest")
    if flags.dose_rate and fx.dose_rate_coefficient:
        s = dose_rate_response(s, g_epid * mu, fx.dose_rate_coefficient)
    if flags.ghosting and fx.residual_fraction > 0:
        prev = previous_image_residual(s.shape, spacing_mm, rng)
        # the previous image of a similar level: its residual is the drawn fraction of this image's maximum
        s = s + fx.residual_fraction * float(np.max(s)) * prev
    if flags.saturation:
        n_frames = max(1.0, 60.0 * mu / fx.beam_dose_rate_mu_min / FRAME_TIME_S[vendor])
        s = soft_saturation(s / n_frames, SATURATION_CU_PER_FRAME[vendor]) * n_frames
    if flags.dark_field and fx.dark_offset:
        s = s + fx.dark_offset * mu
    full = _upsample(s, full_shape)
    if flags.flood_field and fx.flood_pattern_sigma > 0:
        full = full * flood_pattern(full_shape, fx.flood_pattern_sigma, fx.pattern_seed)
    info["dead_lines"] = []
    return np.asarray(full, dtype=float), info


def add_dead_lines(
    image: NDArray[np.float64], fx: DetectorEffects, rng: np.random.Generator
) -> tuple[NDArray[np.float64], list[str]]:
    """Dead rows / columns after the noise (they read 0 or an imperfect interpolation)."""
    if not fx.flags.dead_lines or fx.dead_line_count <= 0:
        return image, []
    return apply_dead_lines(image, fx.dead_line_count, rng)
