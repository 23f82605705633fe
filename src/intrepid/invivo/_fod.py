"""First-order dose (FOD): divergent back-projection of a portal dose image through the patient's CT.

After Martins et al., Physica Medica 2023 (PubMed 37801811), eq. 3:

    FOD(x) = D_EPID(p(x)) · (r_EPID / r_x)² · exp(μ_w · L_w(x → exit))

- ``p(x)``: the central projection of the point x from the source onto the EPID plane (geometric
  magnification ``r_EPID / r_x``); the portal dose is interpolated bilinearly there;
- ``(r_EPID / r_x)²`` (= ``(r_x / r_EPID)⁻²``): inverse-square law from the EPID back to the point, r measured
  from the source along the central axis (the ratio is the same along any ray);
- ``exp(μ_w L_w)``: the attenuation between the point and the exit surface undone, ``L_w`` the
  water-equivalent path from x to where the ray leaves the CT, traced exactly (Siddon / Jacobs) by
  :func:`intrepid.physics.radiological_depth` through the relative electron density of the CT.

``μ_w`` is an effective linear attenuation coefficient of water for the 6 MV beam: 0.0050 mm⁻¹
(0.050 cm⁻¹) by default, inside the broad-beam range 0.045–0.050 cm⁻¹ of the team references [recall]
(NIST XCOM narrow-beam values 0.0494 cm²/g at 2 MeV; the spectrum-averaged narrow-beam value is higher, the
broad-beam value lower because forward scatter stays in the beam). Martins et al. do not give their value in
the abstract; it is a parameter here, and the learned / scatter-corrected models on top absorb its error.

The FOD is not a dose: it has no build-up, no lateral scatter inside the patient and the portal dose it
starts from includes patient scatter. The physics-only baseline (:mod:`intrepid.invivo._baseline`) and the 3D
network turn it into dose.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from intrepid.errors import ParameterError
from intrepid.geometry import MachineAngles, Quantity, Volume, detector_plane, source_position_mm
from intrepid.physics import RayTraceMode, hu_to_relative_electron_density, radiological_depth

__all__ = ["FODSettings", "PortalImage", "back_project", "first_order_dose", "relative_electron_density"]

_log = logging.getLogger(__name__)

#: Effective 6 MV linear attenuation coefficient of water, mm⁻¹ (0.050 cm⁻¹; see the module docstring).
MU_WATER_PER_MM = 0.0050
#: Relative electron density below which a voxel counts as air (no FOD there).
AIR_RED = 0.05


@dataclass(frozen=True)
class FODSettings:
    """Parameters of the back-projection.

    Parameters
    ----------
    mu_water_per_mm : float
        Effective linear attenuation coefficient of water, mm⁻¹ (default 0.0050).
    image_spacing_mm : float
        The portal dose is block-averaged to about this pixel size at the detector before sampling (mm; 0:
        keep the full resolution). 2 mm at the EPID is 1.25 mm at the isocentre.
    trace_mode : RayTraceMode
        ``FAST`` (default) or ``EXACT`` radiological depth.
    """

    mu_water_per_mm: float = MU_WATER_PER_MM
    image_spacing_mm: float = 2.0
    trace_mode: RayTraceMode = RayTraceMode.FAST

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mu_water_per_mm) and 0 <= self.mu_water_per_mm < 0.05):
            raise ParameterError(f"mu_water_per_mm must be in [0, 0.05) per mm, got {self.mu_water_per_mm}")
        if not (math.isfinite(self.image_spacing_mm) and self.image_spacing_mm >= 0):
            raise ParameterError(f"image_spacing_mm must be >= 0, got {self.image_spacing_mm}")


@dataclass(frozen=True, eq=False)
class PortalImage:
    """A portal dose image with its acquisition geometry (one beam, or one arc sector).

    Parameters
    ----------
    dose_gy : ndarray, shape (rows, columns)
        Portal dose (Gy, dose to water at the EPID plane), rows along IEC −Y_r, columns along +X_r, centred
        on the beam axis.
    pixel_mm : (float, float)
        Pixel spacing at the detector (row, column), mm.
    gantry_deg : float
        IEC gantry angle, degrees.
    sid_mm, sad_mm : float
        Source-image and source-axis distances, mm.
    isocenter_mm : tuple of 3 float
        Planned isocentre (LPS, mm).
    beam_number : int
        Beam the image belongs to.
    """

    dose_gy: NDArray[np.float64]
    pixel_mm: tuple[float, float]
    gantry_deg: float
    sid_mm: float
    sad_mm: float
    isocenter_mm: tuple[float, float, float]
    beam_number: int = 0

    def __post_init__(self) -> None:
        a = np.asarray(self.dose_gy, dtype=np.float64)
        if a.ndim != 2 or not np.all(np.isfinite(a)):
            raise ParameterError(
                f"portal dose of beam {self.beam_number} must be a finite 2D image, got shape {a.shape}"
            )
        if self.sid_mm <= self.sad_mm:
            raise ParameterError(f"sid_mm ({self.sid_mm}) must exceed sad_mm ({self.sad_mm})")
        object.__setattr__(self, "dose_gy", a)


def relative_electron_density(ct: Volume) -> Volume:
    """Relative electron density of a CT in HU (the project's HU calibration), float32."""
    red = np.asarray(hu_to_relative_electron_density(np.asarray(ct.array, dtype=float)), dtype=np.float32)
    return Volume(red, ct.grid, Quantity.RELATIVE_ELECTRON_DENSITY, "relative", ct.frame_of_reference_uid)


def _block_mean(a: NDArray[np.float64], f: int) -> NDArray[np.float64]:
    r, c = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    return np.asarray(a[:r, :c].reshape(r // f, f, c // f, f).mean(axis=(1, 3)))


def first_order_dose(
    image: PortalImage,
    ct: Volume,
    *,
    settings: FODSettings | None = None,
    red: Volume | None = None,
) -> Volume:
    """First-order dose of one portal image on the CT grid (Martins et al. 2023, eq. 3).

    Parameters
    ----------
    image : PortalImage
        Portal dose and geometry.
    ct : Volume
        Planning CT (HU), axis-aligned 3D; the FOD is computed at its voxel centres.
    settings : FODSettings, optional
    red : Volume, optional
        Relative electron density of ``ct`` (computed when None; pass it to reuse across beams).

    Returns
    -------
    Volume
        FOD in Gy (``Quantity.DOSE``) on ``ct.grid``; 0 in air and outside the projected image.

    Examples
    --------
    >>> fod = first_order_dose(portal, ct)  # doctest: +SKIP
    """
    return back_project(image, ct, settings=settings, red=red)[0]


def back_project(
    image: PortalImage,
    ct: Volume,
    *,
    settings: FODSettings | None = None,
    red: Volume | None = None,
) -> tuple[Volume, NDArray[np.float64]]:
    """:func:`first_order_dose` and the water-equivalent entrance depth (mm, on the CT grid) of the same
    beam, which the baseline and the network use.
    """
    s = settings or FODSettings()
    t0 = time.perf_counter()
    if ct.ndim != 3:
        raise ParameterError(f"ct must be a 3D volume, got {ct.ndim}D")
    red_v = red if red is not None else relative_electron_density(ct)
    angles = MachineAngles(float(image.gantry_deg) % 360.0)
    iso = np.asarray(image.isocenter_mm, dtype=float)
    source = source_position_mm(angles, sad_mm=image.sad_mm, isocenter_mm=iso)
    depth = radiological_depth(red_v, source, isocenter_mm=iso, mode=s.trace_mode)
    exit_mm = np.nan_to_num(np.asarray(depth.exit_mm.array, dtype=np.float64), nan=0.0)
    entrance_mm = np.nan_to_num(np.asarray(depth.entrance_mm.array, dtype=np.float64), nan=0.0)

    plane = detector_plane(angles, sad_mm=image.sad_mm, sid_mm=image.sid_mm, isocenter_mm=iso)
    pd = image.dose_gy
    pr, pc = float(image.pixel_mm[0]), float(image.pixel_mm[1])
    f = max(1, round(s.image_spacing_mm / max(pr, pc))) if s.image_spacing_mm > 0 else 1
    if f > 1:
        pd = _block_mean(pd, f)
        pr, pc = pr * f, pc * f
    rows, cols = pd.shape
    # voxel centres → beam coordinates
    pts = ct.grid.world_points().reshape(-1, 3)
    w = (iso - source) / np.linalg.norm(iso - source)
    n = np.asarray(plane.normal)
    rel = pts - source
    r_axis = rel @ w  # distance from the source along the central axis, mm
    dist = float((np.asarray(plane.centre_mm) - source) @ n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(r_axis > 1.0, dist / np.where(np.abs(rel @ n) > 1e-9, rel @ n, 1.0), np.nan)
    hit = source + t[:, None] * rel
    uv = plane.world_to_plane(hit)
    ci = uv[:, 0] / pc + (cols - 1) / 2.0
    rj = uv[:, 1] / pr + (rows - 1) / 2.0
    ok = np.isfinite(ci) & np.isfinite(rj)
    sampled = np.zeros(pts.shape[0])
    sampled[ok] = ndimage.map_coordinates(pd, [rj[ok], ci[ok]], order=1, mode="constant", cval=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_sq = np.where(r_axis > 1.0, (image.sid_mm / r_axis) ** 2, 0.0)
    fod = sampled * inv_sq * np.exp(s.mu_water_per_mm * exit_mm.reshape(-1))
    fod[np.asarray(red_v.array).reshape(-1) < AIR_RED] = 0.0
    out = fod.reshape(ct.shape).astype(np.float32)
    _log.debug(
        "FOD beam %d (gantry %.1f): %.3f s", image.beam_number, image.gantry_deg, time.perf_counter() - t0
    )
    fod_volume = Volume(
        out,
        ct.grid,
        Quantity.DOSE,
        "Gy",
        ct.frame_of_reference_uid,
        {
            "kind": "first_order_dose",
            "beam_number": image.beam_number,
            "gantry_deg": float(image.gantry_deg),
            "mu_water_per_mm": s.mu_water_per_mm,
        },
    )
    return fod_volume, entrance_mm
