"""Dose-based range-compensator optimisation: recompute the proton dose, move the surface, repeat.

Iteration 0 is the geometric design (:func:`~intrepid.devices.design_compensator` with ``iterations = 0``).
Each iteration then

1. computes the pencil-beam dose (:func:`~intrepid.physics.pencil_beam_dose`, Hong et al. 1996) with the
   current compensator, on a pencil lattice made of the compensator's own rays (one pencil per pixel), so
   the dose along every compensator ray is known without interpolation;
2. finds along each ray (inside the aperture, crossing the target) the water-equivalent depth ``R_iso``
   where the chosen distal isodose (``distal_isodose_percent`` of the plateau; the plateau of a broad field
   at the isocentre distance is 100 %) is crossed for the last time;
3. moves the ray's effective range by the damped difference, ``R_eff ← R_eff + g (R_goal − R_iso)``
   (``g = 0.7``, at most 5 mm per iteration), where ``R_goal`` is the geometric design's intended range of
   that ray (target distal WEPL plus margins, with the shifts and the Urie smearing already in it: the
   smearing is part of the goal, so it is not applied again to the corrections, which would make them grow
   at every pass);
4. cuts the new surface ``t = (R_beam − R_eff) / RSP`` and clips it to the thickness limits.

The distal coverage of every design (iterations 0..N) is reported: the geometric distance along each ray
between the isodose and the intended surface, over the *interior* target rays inside the aperture (rays whose
eight neighbours also cross the target: a ray that grazes the target's side sees a much shallower distal
surface than its neighbours, and no surface can put a steep isodose step there). All target rays inside the
aperture where the isodose is found are corrected in the same way as the interior ones, so that they do not
hold their neighbours back. A pencil-beam dose moves the distal isodose of a geometric design where the
surface is steep (lateral scatter mixes neighbouring rays' ranges) and behind heterogeneity edges; the
iterations remove most of that."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.devices._beam_geometry import BeamGeometry
from intrepid.devices._compensator import (
    CompensatorResult,
    CompensatorSettings,
    DistalCoverage,
    geometric_design,
    thickness_from_range,
)
from intrepid.errors import ParameterError
from intrepid.geometry import Volume

__all__ = ["default_depth_dose", "distal_isodose", "optimize_compensator"]

_log = logging.getLogger(__name__)

#: Fraction of the isodose error corrected per iteration, and the largest correction per iteration (mm):
#: a damped update, because lateral scatter couples neighbouring rays (a full step overshoots on steep
#: distal surfaces and oscillates).
_GAIN = 0.7
_MAX_STEP_MM = 5.0


def default_depth_dose(beam_range_mm: float, modulation_mm: float, level_percent: float = 90.0) -> Any:
    """An SOBP whose distal ``level_percent`` isodose lies at ``beam_range_mm`` (mm of water)."""
    from intrepid.physics import spread_out_bragg_peak

    m = min(max(modulation_mm, 5.0), beam_range_mm - 2.0)
    sobp = spread_out_bragg_peak(beam_range_mm, m)
    if abs(level_percent - 90.0) > 1e-9:
        shift = beam_range_mm - sobp.distal_depth_mm(level_percent)
        sobp = spread_out_bragg_peak(beam_range_mm + shift, m)
    return sobp


def distal_isodose(
    dose: NDArray[np.float64], wepl: NDArray[np.float64], distance: NDArray[np.float64], level: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Last crossing of ``level`` (from above) along each ray: its WEPL and geometric distance (NaN if none).

    Parameters
    ----------
    dose, wepl, distance : ndarray, shape (nz, N)
        Dose, patient WEPL and geometric distance along N rays at nz depth planes (increasing depth).
    level : float
    """
    above = dose >= level
    nz = dose.shape[0]
    any_above = above.any(axis=0)
    last = nz - 1 - np.argmax(above[::-1], axis=0)
    nxt = np.minimum(last + 1, nz - 1)
    cols = np.arange(dose.shape[1])
    d0, d1 = dose[last, cols], dose[nxt, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where((nxt > last) & (d0 > d1), (d0 - level) / (d0 - d1), 0.0)
    w = wepl[last, cols] + f * (wepl[nxt, cols] - wepl[last, cols])
    g = distance[last, cols] + f * (distance[nxt, cols] - distance[last, cols])
    return np.where(any_above, w, np.nan), np.where(any_above, g, np.nan)


def _goal_distance(
    goal: NDArray[np.float64], wepl: NDArray[np.float64], distance: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Geometric distance along each ray where the WEPL reaches ``goal`` (NaN where it never does)."""
    out = np.full(goal.shape, np.nan)
    for n in np.nonzero(np.isfinite(goal))[0]:
        w = np.maximum.accumulate(wepl[:, n])
        if goal[n] <= w[-1]:
            out[n] = float(np.interp(goal[n], w, distance[:, n]))
    return out


def optimize_compensator(
    ct: Volume,
    target_mask: Volume,
    geometry: BeamGeometry,
    settings: CompensatorSettings,
    *,
    aperture: Any = None,
    patch_dose: Volume | None = None,
    depth_dose: Any = None,
    calibration: Any = None,
    source_size_mm: float = 0.0,
    aperture_distance_mm: float | None = None,
) -> CompensatorResult:
    """Dose-optimised range compensator (module notes): ``settings.iterations`` passes after the geometric.

    Parameters are those of :func:`~intrepid.devices.design_compensator`; ``aperture_distance_mm`` places the
    aperture for the source-size term (default: the compensator plane).

    Returns
    -------
    CompensatorResult
        The last design, with ``coverage`` holding one :class:`DistalCoverage` per design (0..iterations)
        and ``effective_range_mm`` the optimised per-ray range.
    """
    from intrepid.physics import PencilLattice, pencil_beam_dose

    if settings.iterations < 1:
        raise ParameterError(f"iterations must be >= 1 for a dose optimisation, got {settings.iterations}")
    base, extra = geometric_design(
        ct, target_mask, geometry, settings, aperture=aperture, patch_dose=patch_dose, calibration=calibration
    )
    level_pct = settings.distal_isodose_percent
    if depth_dose is None:
        thick = base.distal_wepl_mm - extra["proximal_wepl_mm"]
        modulation = (
            float(np.nanmax(thick))
            + (float(np.nanmax(base.intended_range_mm)) - float(np.nanmax(base.distal_wepl_mm)))
            + 5.0
        )
        depth_dose = default_depth_dose(base.beam_range_mm, modulation, level_pct)
    elif settings.beam_range_mm is None:
        # the beam's own range fixes the surface: recut the geometric design for it
        r_beam = float(depth_dose.distal_depth_mm(level_pct))
        base = replace(base, beam_range_mm=r_beam)
        t, under, over = thickness_from_range(base.required_range_mm, r_beam, settings)
        base = replace(base, thickness_mm=t, under_range_rays=under, clipped_max_rays=over)
    rsp: Volume = extra["rsp"]
    lattice = PencilLattice(extra["u"][0], extra["v"][:, 0])
    from scipy.ndimage import binary_erosion

    goal = base.intended_range_mm.ravel()
    trans = base.aperture_transmission.ravel()
    interior = binary_erosion(np.isfinite(base.intended_range_mm), structure=np.ones((3, 3), bool))
    evaluate = interior.ravel() & (trans >= 0.999)
    correct = np.isfinite(goal) & (trans >= 0.999)
    if not evaluate.any():
        raise ParameterError("no compensator ray inside the aperture crosses the target: nothing to optimise")
    r_eff = base.required_range_mm.ravel().copy()
    level = level_pct / 100.0
    z_ap = settings.isocenter_to_compensator_mm if aperture_distance_mm is None else aperture_distance_mm
    current = base
    history: list[DistalCoverage] = []
    for it in range(settings.iterations + 1):
        res = pencil_beam_dose(
            rsp,
            geometry.image_to_beam,
            geometry.sad_mm,
            depth_dose,
            aperture=extra["aperture"],
            compensator=current.to_map(),
            lattice=lattice,
            source_size_mm=source_size_mm,
            aperture_distance_mm=z_ap,
            to_grid=False,
        )
        bev = res.bev
        nz = bev.z_mm.size
        dose = bev.dose.reshape(nz, -1)
        wepl = bev.wepl_mm.reshape(nz, -1)
        dist = bev.distance_mm.reshape(nz, -1)
        w_iso, g_iso = distal_isodose(dose, wepl, dist, level)
        g_goal = _goal_distance(np.where(evaluate, goal, np.nan), wepl, dist)
        ok = evaluate & np.isfinite(w_iso) & np.isfinite(g_goal)
        err = g_iso[ok] - g_goal[ok]
        not_reached = int(np.count_nonzero(evaluate & ~np.isfinite(w_iso)))
        n_eval = int(np.count_nonzero(evaluate))
        cov = DistalCoverage(
            iteration=it,
            rays=int(ok.sum()),
            mean_error_mm=float(err.mean()) if err.size else math.nan,
            mean_abs_error_mm=float(np.abs(err).mean()) if err.size else math.nan,
            max_abs_error_mm=float(np.abs(err).max()) if err.size else math.nan,
            within_1mm_percent=100.0 * float(np.count_nonzero(np.abs(err) <= 1.0)) / max(n_eval, 1),
            covered_percent=100.0 * float(np.count_nonzero(err >= -1.0)) / max(n_eval, 1),
            isodose_not_reached=not_reached,
        )
        history.append(cov)
        _log.info(
            "compensator iteration %d: %d rays, mean |error| %.2f mm, max %.2f mm, %.1f %% within 1 mm",
            it,
            cov.rays,
            cov.mean_abs_error_mm,
            cov.max_abs_error_mm,
            cov.within_1mm_percent,
        )
        if it == settings.iterations:
            break
        upd = correct & np.isfinite(w_iso)
        delta = np.zeros_like(r_eff)
        delta[upd] = np.clip(_GAIN * (goal[upd] - w_iso[upd]), -_MAX_STEP_MM, _MAX_STEP_MM)
        r_eff = r_eff + delta
        t, under, over = thickness_from_range(r_eff.reshape(base.shape), current.beam_range_mm, settings)
        current = replace(current, thickness_mm=t, under_range_rays=under, clipped_max_rays=over)
    desc = {
        "kind": type(depth_dose).__name__,
        "csda_range_mm": float(depth_dose.csda_range_mm),
        f"distal_{level_pct:g}_percent_mm": float(depth_dose.distal_depth_mm(level_pct)),
    }
    if hasattr(depth_dose, "modulation_mm"):
        desc["modulation_mm"] = float(depth_dose.modulation_mm)
    return replace(
        current,
        coverage=tuple(history),
        effective_range_mm=r_eff.reshape(base.shape),
        depth_dose_description=desc,
    )
