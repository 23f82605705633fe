"""Transit EPID and portal-dose images: beam → patient → detector, in one call.

:func:`simulate_transit` puts :mod:`intrepid.physics._beam`, ``_transport``, ``_kernels`` and ``_epid``
together. The smooth physics (fluence, transmission, scatter, kernels) is computed on an internal grid twice
as coarse as the detector (0.81 mm for the iView, well below the ≥ 1.5 mm σ of the penumbra at the detector),
patient scatter on a grid four times coarser still, and the radiological thickness by one divergent ray
trace per image; the result is upsampled to the detector grid, where noise, dead pixels and the vendor
encoding are applied pixel by pixel. See docs/physics.md for every effect and its source.

With ``effects=`` (:class:`intrepid.physics.DetectorEffects`) the detector and transit effects of
:mod:`intrepid.physics._detector_effects` are simulated by :mod:`intrepid.physics._transit_effects` instead
(model version ``intrepid-transit-2.0``); without, the earlier model is kept unchanged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Quantity, Volume
from intrepid.geometry._frames import MachineAngles, detector_plane, source_position_mm
from intrepid.physics._beam import BeamModel
from intrepid.physics._detector_effects import DetectorEffects
from intrepid.physics._epid import DetectorModel, add_noise, encode_raw, ghosting_factor
from intrepid.physics._fields import Field
from intrepid.physics._kernels import DoseKernel, convolve_kernels
from intrepid.physics._transport import ScatterModel, patient_scatter, primary_transmission

__all__ = ["MODEL_VERSION", "TransitImages", "simulate_transit"]

logger = logging.getLogger(__name__)

#: Version of the physics model; recorded in every image's metadata.
MODEL_VERSION = "intrepid-transit-1.0"
#: Version of the physics with detector and transit effects (``effects=``).
MODEL_VERSION_EFFECTS = "intrepid-transit-2.0"
#: Internal grid of the smooth physics: detector pixels per internal pixel.
INTERNAL_FACTOR = 2
#: Scatter grid: internal pixels per scatter pixel.
SCATTER_FACTOR = 4
#: Ray-trace grid: internal pixels per traced ray (per axis).
TRACE_FACTOR = 2


@dataclass(frozen=True, eq=False)
class TransitImages:
    """A simulated transit EPID image and the matching portal dose.

    Parameters
    ----------
    epid : Volume
        Calibrated EPID signal (Quantity.EPID_SIGNAL, detector units, e.g. "CU"), 2D on the detector grid in
        the image-receptor plane: i along +X_r, j along −Y_r, centred on the beam axis.
    raw : ndarray of uint16, shape (rows, columns)
        The same image in the vendor's pixel encoding; ``epid = rescale_slope · raw + rescale_intercept``
        (metadata), up to rounding.
    portal_dose : Volume
        Dose to water at the detector plane (Quantity.PORTAL_DOSE, Gy), same grid, noise-free.
    metadata : dict
        field, mu, gantry_deg, sid_mm, sad_mm, vendor, scatter_fraction, model_version, seed, ...
    """

    epid: Volume
    raw: NDArray[np.uint16]
    portal_dose: Volume
    metadata: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _default_beam() -> BeamModel:
    return BeamModel.six_mv()


def _hu_to_red(hu: NDArray[np.float64], hu_to_red: Any) -> NDArray[np.float32]:
    if hu_to_red is None:
        from intrepid.physics._calibration import hu_to_relative_electron_density

        hu_to_red = hu_to_relative_electron_density
    out = np.asarray(hu_to_red(hu), dtype=np.float32)
    if out.shape != hu.shape:
        raise ParameterError(f"hu_to_red must return an array of the input shape {hu.shape}, got {out.shape}")
    return np.maximum(out, 0.0)


def _air_gap_mm(red: Volume, source_mm: NDArray[np.float64], plane: Any) -> float | None:
    """Distance (mm) from the phantom's exit surface to the detector along the central axis (None: missed).

    The cumulative radiological path to points every 1 mm along the axis shows where the ray leaves the last
    voxel with matter.
    """
    from intrepid.physics import line_integrals

    centre = np.asarray(plane.centre_mm, dtype=float)
    sid = float(plane.sid_mm)
    s = np.arange(1.0, sid + 0.5, 1.0)
    points = source_mm[None, :] + (s / sid)[:, None] * (centre - source_mm)[None, :]
    cum = line_integrals(red, source_mm, points, stop_at_target=True)
    total = float(cum[-1])
    if total < 1.0:
        return None
    exit_mm = float(s[np.argmax(cum >= total - 1e-3 * max(total, 1.0))])
    return sid - exit_mm


def _centred(n: int, spacing: float) -> NDArray[np.float64]:
    return np.asarray((np.arange(n) - (n - 1) / 2.0) * spacing, dtype=float)


def _block_mean(a: NDArray[np.float64], f: int) -> NDArray[np.float64]:
    ny, nx = a.shape
    return np.asarray(a[: ny - ny % f, : nx - nx % f].reshape(ny // f, f, nx // f, f).mean(axis=(1, 3)))


def _upsample(a: NDArray[np.float64], shape: tuple[int, int]) -> NDArray[np.float64]:
    if a.shape == shape:
        return a
    zoom = (shape[0] / a.shape[0], shape[1] / a.shape[1])
    return np.asarray(ndimage.zoom(a, zoom, order=1, mode="nearest", grid_mode=True))


@dataclass(frozen=True)
class _Physics:
    beam: BeamModel
    detector: DetectorModel
    dose_kernel: DoseKernel
    scatter: ScatterModel


def _noise_free(
    phys: _Physics,
    fld: Field,
    thickness_mm: NDArray[np.float64] | None,
    air_gap_mm: float,
    sid_mm: float,
    shape: tuple[int, int],
    spacing_mm: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """Relative portal dose, relative calibrated EPID signal and central scatter fraction (internal grid)."""
    beam, det = phys.beam, phys.detector
    u = _centred(shape[1], spacing_mm)
    v = _centred(shape[0], spacing_mm)
    scale = beam.sad_mm / sid_mm
    phi = beam.in_air_fluence(fld, (u * scale)[None, :], (-v * scale)[:, None])
    rad2 = u[None, :] ** 2 + v[:, None] ** 2
    obliquity = (sid_mm / np.sqrt(sid_mm**2 + rad2)) ** 3
    phi = phi * (scale**2) * obliquity
    resp = det.energy_response
    if thickness_mm is None:
        p_d = phi
        p_e = phi
        s_d = np.zeros_like(phi)
        s_e = np.zeros_like(phi)
    else:
        p_d = phi * primary_transmission(thickness_mm, beam)
        p_e = phi * primary_transmission(thickness_mm, beam, response=resp)
        phi_c = _block_mean(phi, SCATTER_FACTOR)
        t_c = _block_mean(thickness_mm, SCATTER_FACTOR)
        sp_c = spacing_mm * SCATTER_FACTOR
        s_d = _upsample(patient_scatter(phi_c, t_c, sp_c, beam, air_gap_mm, model=phys.scatter), shape)
        s_e = _upsample(
            patient_scatter(phi_c, t_c, sp_c, beam, air_gap_mm, response=resp, model=phys.scatter), shape
        )
    cy, cx = shape[0] // 2, shape[1] // 2
    centre = (slice(cy - 1, cy + 1), slice(cx - 1, cx + 1))
    kerma_d = p_d + s_d
    scatter_fraction = float(np.mean(s_d[centre])) / max(float(np.mean(kerma_d[centre])), 1e-30)
    dose = convolve_kernels(kerma_d, [phys.dose_kernel], spacing_mm)
    kerma_e = p_e + s_e
    epid = convolve_kernels(kerma_e, [det.deposition, det.glare], spacing_mm)
    arm = det.backscatter_weight(v)[:, None]
    if det.backscatter_fraction > 0:
        sigma_px = det.backscatter_sigma_mm / (spacing_mm * SCATTER_FACTOR)
        bs = ndimage.gaussian_filter(
            _block_mean(kerma_e, SCATTER_FACTOR), sigma_px, mode="constant", truncate=3.0
        )
        epid = epid + det.backscatter_fraction * _upsample(bs, shape) * arm
    raw_response = det.off_axis_raw_response(np.sqrt(rad2))
    epid = epid * raw_response
    if det.flood_field_calibrated:
        # The flood field: a raw image of a field covering the panel, normalised on the axis. It holds the
        # horns, the obliquity, the off-axis response and the backscatter of a panel-filling field.
        horns = beam.off_axis_ratio(np.sqrt(rad2) * scale)
        arm0 = float(det.backscatter_weight(np.zeros(1))[0])
        flood_bs = (1.0 + det.backscatter_fraction * arm) / (1.0 + det.backscatter_fraction * arm0)
        epid = epid / (raw_response * horns * obliquity * flood_bs)
    return dose, epid, scatter_fraction


@lru_cache(maxsize=8)
def _gauges(phys: _Physics, fx: DetectorEffects | None = None) -> tuple[float, float]:
    """Gy per relative-dose unit (per MU) and CU per relative-EPID unit (per MU), from 10 × 10 references."""
    ref = Field.square(10.0)
    shape, spacing = (384, 384), 0.8
    if fx is not None:
        from intrepid.physics._transit_effects import noise_free_effects

        shape, spacing = (192, 192), 1.6  # per-image calibration: a coarser grid keeps it cheap

        dose, _, _ = noise_free_effects(phys, ref, None, 1.0, phys.beam.sad_mm, shape, spacing, fx, None)
        _, epid, _ = noise_free_effects(phys, ref, None, 1.0, 1000.0, shape, spacing, fx, None)
        c = slice(shape[0] // 2 - 1, shape[0] // 2 + 1)
        return phys.beam.dose_per_mu_gy / float(dose[c, c].mean()), 1.0 / float(epid[c, c].mean())
    dose, _, _ = _noise_free(phys, ref, None, 1.0, phys.beam.sad_mm, shape, spacing)
    _, epid, _ = _noise_free(phys, ref, None, 1.0, 1000.0, shape, spacing)
    c = slice(shape[0] // 2 - 1, shape[0] // 2 + 1)
    return phys.beam.dose_per_mu_gy / float(dose[c, c].mean()), 1.0 / float(epid[c, c].mean())


def simulate_transit(
    phantom: Volume | None,
    field: Field,
    *,
    beam: BeamModel | None = None,
    detector: DetectorModel | None = None,
    gantry_deg: float = 0.0,
    isocenter_mm: ArrayLike = (0.0, 0.0, 0.0),
    mu: float = 100.0,
    seed: int | np.random.Generator = 0,
    hu_to_red: Any = None,
    dose_kernel: DoseKernel | None = None,
    scatter_model: ScatterModel | None = None,
    effects: DetectorEffects | None = None,
) -> TransitImages:
    """Simulate a transit (or open-field) EPID image and the portal dose of one static beam.

    Parameters
    ----------
    phantom : Volume or None
        CT-like volume in HU (patient frame LPS, mm), or None for an open field (no phantom).
    field : Field
        Aperture at the isocentre plane (collimator 0).
    beam : BeamModel, optional
        Default :meth:`BeamModel.six_mv`.
    detector : DetectorModel, optional
        Default :meth:`DetectorModel.elekta_iview`.
    gantry_deg : float
        IEC 61217 gantry angle (degrees); the patient is head-first supine.
    isocenter_mm : array_like, 3
        Isocentre in the phantom's LPS frame (mm).
    mu : float
        Monitor units (> 0).
    seed : int or numpy.random.Generator
        Noise seed; the same seed gives the same images.
    hu_to_red : callable, optional
        HU → relative electron density; default ``intrepid.physics.hu_to_relative_electron_density`` when
        (the CIRS 062M-based default table of :mod:`intrepid.physics`).
    dose_kernel : DoseKernel, optional
        Water pencil kernel at the portal-dose depth; default :meth:`DoseKernel.water_6mv`.
    scatter_model : ScatterModel, optional
        Patient-scatter model of the earlier (``effects=None``) physics.
    effects : DetectorEffects, optional
        Detector and transit effects of this image (:func:`intrepid.physics.sample_effects`); None keeps the
        earlier near-linear model (no energy-resolved multiple scatter, one stationary glare, ideal flood
        field, fixed lag). ``field`` may then also be an MLC fluence (an object with
        ``fluence(beam, u_mm, v_mm)``, see :class:`intrepid.physics.MlcField`).

    Returns
    -------
    TransitImages

    Examples
    --------
    >>> det = DetectorModel.varian_as1000(sid_mm=1000)
    >>> img = simulate_transit(None, Field.square(10), mu=100, detector=det)
    >>> 95 < float(img.epid.array[384, 512]) < 105
    True
    """
    beam = beam or _default_beam()
    detector = detector or DetectorModel.elekta_iview()
    phys = _Physics(beam, detector, dose_kernel or DoseKernel.water_6mv(), scatter_model or ScatterModel())
    if not isinstance(field, Field) and not (effects is not None and hasattr(field, "fluence")):
        raise ParameterError(f"field must be a Field, got {type(field).__name__}")
    mu_f = float(mu)
    if not math.isfinite(mu_f) or mu_f <= 0:
        raise ParameterError(f"mu must be > 0, got {mu}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(int(seed))
    angles = MachineAngles(float(gantry_deg))
    iso = np.asarray(isocenter_mm, dtype=float).reshape(-1)
    if iso.size != 3 or not np.all(np.isfinite(iso)):
        raise ParameterError(f"isocenter_mm must be 3 finite values, got {np.asarray(isocenter_mm).tolist()}")
    if detector.rows % INTERNAL_FACTOR or detector.columns % INTERNAL_FACTOR:
        raise ParameterError(f"detector rows and columns must be multiples of {INTERNAL_FACTOR}")
    sid, sad = detector.sid_mm, beam.sad_mm
    if sid < sad:
        raise ParameterError(f"detector sid_mm must be >= beam sad_mm = {sad}, got {sid}")
    plane = detector_plane(angles, sad_mm=sad, sid_mm=sid, isocenter_mm=iso)
    shape_int = (detector.rows // INTERNAL_FACTOR, detector.columns // INTERNAL_FACTOR)
    sp_int = detector.pixel_mm * INTERNAL_FACTOR

    thickness: NDArray[np.float64] | None = None
    gap_map: NDArray[np.float64] | None = None
    gap = sid - sad
    tracer = "none"
    if phantom is not None:
        if not isinstance(phantom, Volume) or phantom.ndim != 3:
            raise ParameterError("phantom must be a 3D Volume of HU or None")
        if phantom.quantity not in (Quantity.CT_NUMBER, Quantity.GENERIC):
            raise ParameterError(f"phantom must hold CT numbers (HU), got quantity {phantom.quantity.value}")
        from intrepid.physics import line_integrals

        red = Volume(_hu_to_red(np.asarray(phantom.array, dtype=float), hu_to_red), phantom.grid)
        source = source_position_mm(angles, sad_mm=sad, isocenter_mm=iso)
        tshape = (shape_int[0] // TRACE_FACTOR, shape_int[1] // TRACE_FACTOR)
        tsp = sp_int * TRACE_FACTOR
        uu, vv = np.meshgrid(_centred(tshape[1], tsp), _centred(tshape[0], tsp))
        targets = plane.pixel_to_world(uu, vv)
        wet = line_integrals(red, source, targets, stop_at_target=False)
        tracer = "intrepid.physics.line_integrals (Siddon/Jacobs)"
        axis_gap = _air_gap_mm(red, source, plane)
        if axis_gap is not None:
            if axis_gap <= 0:
                raise GeometryError(f"the phantom reaches the detector plane (air gap {axis_gap:.1f} mm)")
            gap = axis_gap
        thickness = np.maximum(_upsample(wet, shape_int), 0.0)
        if effects is not None and effects.flags.heterogeneity_position:
            from intrepid.physics._transit_effects import effective_gap_map

            gmap = effective_gap_map(red, source, plane, targets, np.asarray(wet, dtype=float), gap)
            gap_map = _upsample(gmap, shape_int)
    full = (detector.rows, detector.columns)
    effects_info: dict[str, Any] = {}
    if effects is None:
        dose_rel, epid_rel, scatter_fraction = _noise_free(
            phys, field, thickness, gap, sid, shape_int, sp_int
        )
        g_dose, g_epid = _gauges(phys)
        lag = ghosting_factor(mu_f, detector.lag_fraction, detector.lag_mu)
        signal = _upsample(epid_rel, full) * (g_epid * mu_f * lag)
        noisy = add_noise(signal, detector, rng)
    else:
        from intrepid.physics._transit_effects import add_dead_lines, finish_signal, noise_free_effects

        if not isinstance(effects, DetectorEffects):
            raise ParameterError(f"effects must be a DetectorEffects, got {type(effects).__name__}")
        fx_rng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
        dose_rel, epid_rel, scatter_fraction = noise_free_effects(
            phys, field, thickness, gap, sid, shape_int, sp_int, effects, gap_map, float(gantry_deg)
        )
        g_dose, g_epid = _gauges(phys, effects.calibration_view())
        signal, effects_info = finish_signal(
            epid_rel, g_epid, mu_f, sp_int, full, effects, detector.vendor.value, detector.lag_mu, fx_rng
        )
        lag = float(effects_info["ghosting_factor"])
        noisy = add_noise(signal, detector, rng)
        noisy, effects_info["dead_lines"] = add_dead_lines(noisy, effects, fx_rng)
    dose = _upsample(dose_rel, full) * (g_dose * mu_f)
    enc = encode_raw(noisy, detector)
    epid = enc.rescale_slope * enc.raw.astype(float) + enc.rescale_intercept
    grid = plane.image_grid(full, (detector.pixel_mm, detector.pixel_mm))
    meta: dict[str, Any] = {
        "field": field.name,
        "field_bounds_mm": list(field.bounds_mm),
        "effects": None if effects is None else {**effects.to_dict(), **effects_info},
        "mu": mu_f,
        "gantry_deg": float(gantry_deg),
        "isocenter_mm": iso.tolist(),
        "sid_mm": sid,
        "sad_mm": sad,
        "vendor": detector.vendor.value,
        "pixel_mm": detector.pixel_mm,
        "scatter_fraction": scatter_fraction,
        "air_gap_mm": gap if phantom is not None else None,
        "central_thickness_mm": (
            float(thickness[shape_int[0] // 2, shape_int[1] // 2]) if thickness is not None else 0.0
        ),
        "ghosting_factor": lag,
        "rescale_slope": enc.rescale_slope,
        "rescale_intercept": enc.rescale_intercept,
        "portal_dose_depth_mm": beam.reference_depth_mm,
        "beam": beam.name,
        "ray_tracer": tracer,
        "model_version": MODEL_VERSION if effects is None else MODEL_VERSION_EFFECTS,
        "seed": None if isinstance(seed, np.random.Generator) else int(seed),
    }
    logger.debug(
        "simulated %s, %g MU, gantry %g: scatter fraction %.3f",
        field.name,
        mu_f,
        gantry_deg,
        scatter_fraction,
    )
    for_uid = phantom.frame_of_reference_uid if phantom is not None else None
    epid_vol = Volume(epid, grid, Quantity.EPID_SIGNAL, detector.units, for_uid, metadata=dict(meta))
    dose_vol = Volume(dose, grid, Quantity.PORTAL_DOSE, "Gy", for_uid, metadata=dict(meta))
    return TransitImages(epid=epid_vol, raw=enc.raw, portal_dose=dose_vol, metadata=meta)
