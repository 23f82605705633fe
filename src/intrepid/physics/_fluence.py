"""The shared linac head model: energy fluence through jaws and MLC from RTPLAN control points.

One beam model serves both the EPID simulator and the dose engine (TEAM rule "one beam model"): the
spectrum is
:class:`intrepid.physics.BeamModel` (Ali & Rogers 2012), the head geometry and the collimation are
:class:`LinacHead`, and :func:`beam_fluence` turns the control points of an RTPLAN beam into a relative energy
fluence map.

Coordinate convention (stated once, used everywhere here)
---------------------------------------------------------
Every map is evaluated on a plane **perpendicular to the beam axis at the isocentre distance (SAD)**, in the
IEC 61217 **beam-limiting-device frame** (b), in mm, exactly as the RTPLAN gives jaw and leaf positions:

* ``x`` along X_b: the X jaws (ASYMX / X: X1 is the negative side) and the direction of leaf travel of an
  **MLCX** (bank A on the negative side, bank B on the positive side; Leaf Position Boundaries are y values);
* ``y`` along Y_b: the Y jaws (ASYMY / Y). An **MLCY** is handled with the roles of x and y exchanged.

Arrays returned have shape ``(y_mm.size, x_mm.size)`` (rows along y, columns along x). The collimator rotation
is *not* applied here: the map lives in the frame that turns with the collimator; the caller rotates it.

Normalisation
-------------
The value is the energy fluence (focal + extra-focal) relative to the on-axis fluence of an open, static
10 × 10 cm² jaw field (= 1.0), per unit meterset: control points are weighted by their share of the cumulative
meterset, so a static beam of any MU has weights summing to 1 and the dose engine multiplies by MU. The in-air
output factor S_c (head scatter, collimator exchange) is therefore *contained* in the map.

Physics of the map (magnitudes and sources; see docs/dose.md)
--------------------------------------------------------------
* Focal source: Gaussian of σ ``focal_spot_sigma_mm`` (0.5 mm; Jaffray et al. 1993 Med Phys 20:1417 measured
  FWHM 0.5–3.4 mm for clinical linacs [recall]); each collimator edge at source distance z_c gives an
  edge blur
  σ (SAD − z_c)/z_c at the isocentre plane (geometric penumbra).
* Rounded leaf ends: the radiation edge of a rounded leaf tip lies beyond the light edge by half the
  dosimetric
  leaf gap (DLG 1.5–2.0 mm for Varian Millennium MLCs; LoSasso et al. 1998 Med Phys 25:1919 [recall]) and is
  softer (extra σ ``leaf_end_sigma_mm``).
* Leaf transmission 1.5 % (inter+intra-leaf, Varian Millennium 1.5–2 %; LoSasso et al. 1998) and jaw
  transmission 0.5 % (Varian jaws < 0.5–1 %; AAPM TG-50, Boyer et al. 2001 [recall]); they multiply.
* Tongue and groove: in a strip of width ``tongue_groove_mm`` (0.4–1 mm effective; Deng et al. 2001 Phys Med
  Biol 46:1039 [recall]) centred on each boundary between two leaf pairs the fluence is the lesser of the two
  pairs' openings (the under-dose of the tongue-and-groove effect).
* Head scatter (extra-focal source): a Gaussian source of σ ``extra_focal_sigma_mm`` at
  ``extra_focal_distance_mm`` from the target (flattening filter / primary collimator) carrying
  ``extra_focal_weight`` of the open-field fluence (8–12 %; Jaffray et al. 1993; Sharpe et al. 1995 Med Phys
  22:2065 [recall]). A point at the isocentre plane sees the part of it left visible by each collimator; a
  collimator at z_c blurs the aperture by σ_ef (SAD − z_c)/(z_c − z_ef). The upper (Y) jaws, closer to the
  source, blur more and so cut more head scatter than the lower (X) jaws: the collimator exchange effect
  (S_c of a 5 × 20 cm² field exceeds that of 20 × 5 cm² by ~1–2 % on Varian linacs; Vadash & Bjärngard 1993
  Med Phys 20:733 [recall]).
* Horns: the in-air off-axis ratio of a flattened beam, 1 + ``horn_amplitude`` (r / ``horn_radius_mm``)²
  (+4 % at 20 cm, typical of 6 MV flattened beams; see docs/physics.md).
* Off-axis spectral softening: the flattening filter thins off axis, so the spectrum off axis is the
  on-axis one with ``softening_tungsten_g_cm2`` × (r / ``horn_radius_mm``)² less tungsten-equivalent
  filtration (mean energy ~5–10 % lower at 15–20 cm; Tailor et al. 1998 Med Phys 25:62; Sheikh-Bagheri &
  Rogers 2002 Med Phys 29:391 [recall]); see :meth:`LinacHead.spectrum_weights`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.ndimage import gaussian_filter1d
from scipy.special import ndtr

from intrepid.errors import ParameterError
from intrepid.physics._beam import _W_MU, BeamModel, _loglog

__all__ = [
    "LinacHead",
    "beam_fluence",
    "jaw_fluence",
    "segment_weights",
]

#: Largest leaf or jaw displacement (mm) inside one integration sub-step of a moving (dynamic) segment.
MAX_SUBSTEP_MM = 2.0


def _default_spectrum() -> BeamModel:
    return BeamModel.six_mv()


@dataclass(frozen=True)
class LinacHead:
    """Geometry and collimation of a photon linac head (defaults: a Varian Clinac / TrueBeam 6 MV).

    Distances are from the target (source) in mm; widths and positions are at the isocentre plane.

    Parameters
    ----------
    spectrum : BeamModel
        Spectrum, horns, output calibration (default :meth:`BeamModel.six_mv`, Ali & Rogers 2012).
    sad_mm : float
        Source-axis distance (1000 mm).
    focal_spot_sigma_mm : float
        Gaussian σ of the focal spot (0.5 mm; Jaffray et al. 1993).
    jaw_y_distance_mm, jaw_x_distance_mm, mlc_distance_mm : float
        Source distance of the upper (Y) jaws, lower (X) jaws and the MLC (Varian: ~280, ~367 and ~509 mm
        [recall]); DICOM Source to Beam Limiting Device Distance overrides them when the plan gives it.
    leaf_transmission : float
        Fraction transmitted through closed leaves (0.015; LoSasso et al. 1998: 1.5–2 %).
    jaw_transmission : float
        Fraction transmitted through the jaws (0.005).
    tongue_groove_mm : float
        Effective tongue-and-groove width (0.6 mm; Deng et al. 2001: 0.4–1 mm).
    dosimetric_leaf_gap_mm : float
        Radiation minus light gap of a closed rounded-leaf pair (1.6 mm; LoSasso et al. 1998 / Varian: 1.5–2).
    leaf_end_sigma_mm : float
        Extra Gaussian σ of a rounded leaf-end edge (1.0 mm: the transmission through the rounded tip widens
        the leaf-end penumbra by ~1–2 mm 80–20 % over a straight jaw edge [recall]).
    extra_focal_weight : float
        Extra-focal (head-scatter) fluence relative to the focal fluence for a fully open head (0.08).
    extra_focal_sigma_mm : float
        σ of the extra-focal source in its plane (20 mm; broad, Jaffray et al. 1993).
    extra_focal_distance_mm : float
        Source distance of the extra-focal source plane (the flattening filter, ~125 mm).
    horn_amplitude, horn_radius_mm : float
        In-air off-axis ratio 1 + a (r/R)² (0.04 at 200 mm).
    softening_tungsten_g_cm2 : float
        Tungsten-equivalent filtration removed at r = ``horn_radius_mm`` (0.8 g/cm²: −5 % mean energy at
        20 cm with the Ali–Rogers spectrum; measured 5–10 %, Tailor et al. 1998).

    Examples
    --------
    >>> head = LinacHead()
    >>> round(head.leaf_transmission, 3), head.sad_mm
    (0.015, 1000.0)
    """

    spectrum: BeamModel = field(default_factory=_default_spectrum)
    sad_mm: float = 1000.0
    focal_spot_sigma_mm: float = 0.5
    jaw_y_distance_mm: float = 280.0
    jaw_x_distance_mm: float = 367.0
    mlc_distance_mm: float = 509.0
    leaf_transmission: float = 0.015
    jaw_transmission: float = 0.005
    tongue_groove_mm: float = 0.6
    dosimetric_leaf_gap_mm: float = 1.6
    leaf_end_sigma_mm: float = 1.0
    extra_focal_weight: float = 0.08
    extra_focal_sigma_mm: float = 20.0
    extra_focal_distance_mm: float = 125.0
    horn_amplitude: float = 0.04
    horn_radius_mm: float = 200.0
    softening_tungsten_g_cm2: float = 0.8

    def __post_init__(self) -> None:
        if not isinstance(self.spectrum, BeamModel):
            raise ParameterError(f"spectrum must be a BeamModel, got {type(self.spectrum).__name__}")
        for key in ("sad_mm", "horn_radius_mm", "extra_focal_sigma_mm"):
            v = float(getattr(self, key))
            if not math.isfinite(v) or v <= 0:
                raise ParameterError(f"{key} must be > 0, got {v}")
        for key in ("focal_spot_sigma_mm", "tongue_groove_mm", "dosimetric_leaf_gap_mm", "leaf_end_sigma_mm",
                    "extra_focal_weight", "softening_tungsten_g_cm2"):  # fmt: skip
            v = float(getattr(self, key))
            if not math.isfinite(v) or v < 0:
                raise ParameterError(f"{key} must be >= 0, got {v}")
        for key in ("leaf_transmission", "jaw_transmission"):
            v = float(getattr(self, key))
            if not 0 <= v < 1:
                raise ParameterError(f"{key} must be in [0, 1), got {v}")
        if not -0.5 < self.horn_amplitude < 0.5:
            raise ParameterError(f"horn_amplitude must be in (-0.5, 0.5), got {self.horn_amplitude}")
        zs = (
            self.extra_focal_distance_mm,
            self.jaw_y_distance_mm,
            self.jaw_x_distance_mm,
            self.mlc_distance_mm,
        )
        if not all(0 < z < self.sad_mm for z in zs) or not self.extra_focal_distance_mm < min(zs[1:]):
            raise ParameterError(
                "need 0 < extra_focal_distance_mm < jaw/MLC distances < sad_mm, got "
                f"{self.extra_focal_distance_mm}, {zs[1:]} and {self.sad_mm}"
            )

    # ------------------------------------------------------------------ edge blurs
    def focal_sigma_mm(self, device_distance_mm: float) -> float:
        """Geometric-penumbra σ (mm, isocentre plane) of an edge at ``device_distance_mm`` from the source."""
        z = float(device_distance_mm)
        return self.focal_spot_sigma_mm * (self.sad_mm - z) / z

    def extra_focal_blur_mm(self, device_distance_mm: float) -> float:
        """σ (mm, isocentre plane) of the extra-focal source seen through an edge at
        ``device_distance_mm``."""
        z = float(device_distance_mm)
        return self.extra_focal_sigma_mm * (self.sad_mm - z) / (z - self.extra_focal_distance_mm)

    # ------------------------------------------------------------------ spectrum off axis
    def off_axis_ratio(self, radius_mm: ArrayLike) -> NDArray[np.float64]:
        """In-air off-axis ratio (horns) at radius ``radius_mm`` (isocentre plane)."""
        r = np.asarray(radius_mm, dtype=float)
        return np.asarray(1.0 + self.horn_amplitude * (r / self.horn_radius_mm) ** 2, dtype=float)

    def spectrum_weights(self, radius_mm: ArrayLike) -> NDArray[np.float64]:
        """Relative energy-fluence spectrum off axis (off-axis softening), shape ``radius.shape + (bins,)``.

        ψ_E(r) ∝ ψ_E(0) · exp(+(μ/ρ)_W(E) · s (r/R)²), each row normalised to sum 1, with s =
        ``softening_tungsten_g_cm2`` and R = ``horn_radius_mm``: the filtration the flattening filter
        lacks off
        axis.
        """
        r = np.asarray(radius_mm, dtype=float)
        e = self.spectrum.energies
        mu_w = _loglog(_W_MU, np.clip(e, 0.1, 20.0))
        s = self.softening_tungsten_g_cm2 * (r / self.horn_radius_mm) ** 2
        w = self.spectrum.weights * np.exp(np.multiply.outer(s, mu_w))
        return np.asarray(w / w.sum(axis=-1, keepdims=True), dtype=float)


# -------------------------------------------------------------------------------------------------------
def _edge_open(coord: NDArray[np.float64], lo: float, hi: float, sigma: float) -> NDArray[np.float64]:
    """Fraction of a Gaussian source seen through the opening [lo, hi] along one axis (error-function
    edges)."""
    if hi <= lo:
        return np.zeros_like(coord)
    if sigma <= 0:
        return ((coord >= lo) & (coord <= hi)).astype(float)
    return np.asarray(ndtr((coord - lo) / sigma) - ndtr((coord - hi) / sigma), dtype=float)


def _uniform_axis(values: NDArray[np.float64]) -> bool:
    if values.size < 3:
        return True
    d = np.diff(values)
    return bool(np.all(d > 0) and np.ptp(d) <= 1e-6 * max(abs(float(d.mean())), 1e-12))


def _blur_rows(
    fmap: NDArray[np.float64], coord: NDArray[np.float64], sigma: float, axis: int
) -> NDArray[np.float64]:
    """Gaussian blur of ``fmap`` along ``axis`` (coordinates ``coord``, uniform), edges extended with
    zeros."""
    if sigma <= 0 or coord.size < 2:
        return fmap
    step = float(coord[1] - coord[0])
    return np.asarray(
        gaussian_filter1d(fmap, sigma / step, axis=axis, mode="constant", truncate=4.0), dtype=float
    )


# -------------------------------------------------------------------------------------------------------
def _mlc_open(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    bounds: NDArray[np.float64],
    bank_a: NDArray[np.float64],
    bank_b: NDArray[np.float64],
    head: LinacHead,
    sigma_x: float,
) -> NDArray[np.float64]:
    """Open fraction (0…1, before transmission) of an MLCX at one leaf configuration, shape (y, x)."""
    half_gap = 0.5 * head.dosimetric_leaf_gap_mm
    n = bounds.size - 1
    # Per leaf pair, the opening along x (rounded leaf ends: radiation edge beyond the light edge by DLG/2).
    pair_open = np.empty((n, x.size))
    for p in range(n):
        lo, hi = bank_a[p] - half_gap, bank_b[p] + half_gap
        pair_open[p] = _edge_open(x, lo, hi, sigma_x) if bank_b[p] > bank_a[p] else 0.0
    # Which pair covers each y (outside the MLC: the outermost pairs' openings, i.e. leaves end there).
    idx = np.clip(np.searchsorted(bounds, y, side="right") - 1, 0, n - 1)
    out = pair_open[idx]
    tg = head.tongue_groove_mm
    if tg > 0 and n > 1:
        inner = bounds[1:-1]
        near = np.argmin(np.abs(y[:, None] - inner[None, :]), axis=1)
        in_strip = np.abs(y - inner[near]) < 0.5 * tg
        rows = np.nonzero(in_strip)[0]
        if rows.size:
            k = near[rows]
            out[rows] = np.minimum(pair_open[k], pair_open[k + 1])
    # Leaf sides along y: a fully closed region beyond the first / last boundary keeps the end pairs' value.
    return np.asarray(out, dtype=float)


def _device_distances(beam: object, head: LinacHead) -> tuple[float, float, float]:
    zy, zx, zm = head.jaw_y_distance_mm, head.jaw_x_distance_mm, head.mlc_distance_mm
    for dev in getattr(beam, "devices", ()):
        z = dev.source_to_device_distance_mm
        if z is None or not (head.extra_focal_distance_mm < z < head.sad_mm):
            continue
        t = dev.device_type.value
        if t in ("ASYMY", "Y"):
            zy = float(z)
        elif t in ("ASYMX", "X"):
            zx = float(z)
        elif t in ("MLCX", "MLCY"):
            zm = float(z)
    return zy, zx, zm


def _aperture(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    jaw_x: tuple[float, float],
    jaw_y: tuple[float, float],
    mlc: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]] | None,
    head: LinacHead,
    distances: tuple[float, float, float],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Focal and extra-focal transmission maps (y, x) of one static collimator configuration."""
    zy, zx, zm = distances
    tj, tl = head.jaw_transmission, head.leaf_transmission
    jx = _edge_open(x, jaw_x[0], jaw_x[1], head.focal_sigma_mm(zx))
    jy = _edge_open(y, jaw_y[0], jaw_y[1], head.focal_sigma_mm(zy))
    focal = np.outer(tj + (1 - tj) * jy, tj + (1 - tj) * jx)
    ex = _edge_open(x, jaw_x[0], jaw_x[1], head.extra_focal_blur_mm(zx))
    ey = _edge_open(y, jaw_y[0], jaw_y[1], head.extra_focal_blur_mm(zy))
    extra = np.outer(tj + (1 - tj) * ey, tj + (1 - tj) * ex)
    if mlc is not None:
        bounds, a, b = mlc
        sig = math.hypot(head.focal_sigma_mm(zm), head.leaf_end_sigma_mm)
        m = _mlc_open(x, y, bounds, a, b, head, sig)
        m = _blur_rows(m, y, head.focal_sigma_mm(zm), axis=0)
        focal = focal * (tl + (1 - tl) * m)
        sig_ef = head.extra_focal_blur_mm(zm)
        m_ef = _blur_rows(_blur_rows(m, x, sig_ef, axis=1), y, sig_ef, axis=0)
        extra = extra * (tl + (1 - tl) * m_ef)
    return focal, extra


def _reference_output(head: LinacHead) -> float:
    """Focal + extra-focal fluence on the axis of an open 10 × 10 cm² field (the normalisation)."""
    z = np.zeros(1)
    d = (head.jaw_y_distance_mm, head.jaw_x_distance_mm, head.mlc_distance_mm)
    focal, extra = _aperture(z, z, (-50.0, 50.0), (-50.0, 50.0), None, head, d)
    return float(focal[0, 0] + head.extra_focal_weight * extra[0, 0])


def _combine(head: LinacHead, x: NDArray[np.float64], y: NDArray[np.float64],
             focal: NDArray[np.float64], extra: NDArray[np.float64]) -> NDArray[np.float64]:  # fmt: skip
    oar = head.off_axis_ratio(np.hypot(x[None, :], y[:, None]))
    return np.asarray((focal * oar + head.extra_focal_weight * extra) / _reference_output(head), dtype=float)


def _check_axes(x_mm: ArrayLike, y_mm: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = np.asarray(x_mm, dtype=float).reshape(-1)
    y = np.asarray(y_mm, dtype=float).reshape(-1)
    for name, a in (("x_mm", x), ("y_mm", y)):
        if a.size < 1 or not np.all(np.isfinite(a)):
            raise ParameterError(f"{name} must be a non-empty 1D array of finite values (mm)")
        if not _uniform_axis(a):
            raise ParameterError(f"{name} must be uniformly spaced and increasing")
    return x, y


def jaw_fluence(
    jaw_x_mm: tuple[float, float],
    jaw_y_mm: tuple[float, float],
    x_mm: ArrayLike,
    y_mm: ArrayLike,
    *,
    head: LinacHead | None = None,
) -> NDArray[np.float64]:
    """Relative energy fluence of a static jaw-only rectangle (no MLC), shape ``(y_mm.size, x_mm.size)``.

    The helper for fields defined only by jaws (the EPID simulator's square and rectangular fields).

    Parameters
    ----------
    jaw_x_mm, jaw_y_mm : (float, float)
        (X1, X2) and (Y1, Y2) jaw positions at the isocentre plane (mm), X1 < X2, Y1 < Y2.
    x_mm, y_mm : array_like
        Uniformly spaced, increasing coordinates (mm, IEC beam-limiting-device frame at the isocentre plane).
    head : LinacHead, optional

    Returns
    -------
    ndarray
        1.0 on the axis of an open 10 × 10 cm² field (focal + extra-focal, horns included).

    Examples
    --------
    >>> f = jaw_fluence((-50, 50), (-50, 50), [0.0], [0.0])
    >>> round(float(f[0, 0]), 6)
    1.0
    """
    h = head or LinacHead()
    x, y = _check_axes(x_mm, y_mm)
    jx, jy = (float(v) for v in jaw_x_mm), (float(v) for v in jaw_y_mm)
    jxt, jyt = tuple(jx), tuple(jy)
    if not (jxt[0] < jxt[1] and jyt[0] < jyt[1]):
        raise ParameterError(f"jaws must satisfy X1 < X2 and Y1 < Y2, got {jxt} and {jyt}")
    d = (h.jaw_y_distance_mm, h.jaw_x_distance_mm, h.mlc_distance_mm)
    focal, extra = _aperture(x, y, jxt, jyt, None, h, d)  # type: ignore[arg-type]
    return _combine(h, x, y, focal, extra)


def segment_weights(control_points: Sequence[object]) -> NDArray[np.float64]:
    """Meterset fraction of each segment between consecutive control points (sums to 1).

    Parameters
    ----------
    control_points : sequence of ControlPoint
        With ``cumulative_meterset_weight``; at least two.

    Raises
    ------
    ParameterError
        Fewer than two control points or a decreasing / all-zero cumulative weight.
    """
    w = np.array([float(getattr(cp, "cumulative_meterset_weight")) for cp in control_points])  # noqa: B009
    if w.size < 2:
        raise ParameterError(f"a beam needs at least 2 control points, got {w.size}")
    d = np.diff(w)
    if np.any(d < -1e-9) or w[-1] - w[0] <= 0:
        raise ParameterError(
            "cumulative meterset weights must increase from the first to the last control point"
        )
    return np.asarray(np.maximum(d, 0.0) / (w[-1] - w[0]), dtype=float)


def _cp_devices(cp: object, bounds: NDArray[np.float64] | None, mlc_y: bool) -> tuple[
        tuple[float, float], tuple[float, float], NDArray[np.float64] | None]:  # fmt: skip
    big = 400.0  # mm: jaws absent = wide open
    jx = getattr(cp, "jaw_x_mm", None) or (-big, big)
    jy = getattr(cp, "jaw_y_mm", None) or (-big, big)
    m = getattr(cp, "mlc_mm", None)
    if mlc_y:
        jx, jy = jy, jx
    return jx, jy, (None if m is None or bounds is None else np.asarray(m, dtype=float))


def beam_fluence(
    beam: object,
    x_mm: ArrayLike,
    y_mm: ArrayLike,
    *,
    head: LinacHead | None = None,
    control_points: Sequence[int] | slice | None = None,
) -> NDArray[np.float64]:
    """Relative energy fluence of an RTPLAN photon beam at the isocentre plane, summed over its control
    points.

    Static, step-and-shoot and sliding-window (dynamic MLC) beams: each segment between consecutive control
    points contributes in proportion to its meterset share; leaf and jaw positions move linearly within a
    segment and are integrated in sub-steps of at most ``MAX_SUBSTEP_MM`` (2 mm) of travel. VMAT arcs: the
    gantry angle is ignored here — the dose engine calls this per group of control points
    (``control_points``).

    Parameters
    ----------
    beam : intrepid.dicom.Beam
        From :func:`intrepid.dicom.read_rtplan` (needs ``control_points`` with ``cumulative_meterset_weight``,
        ``jaw_x_mm``, ``jaw_y_mm``, ``mlc_mm`` and ``devices`` with the MLC ``leaf_boundaries_mm``).
    x_mm, y_mm : array_like
        Uniformly spaced increasing coordinates (mm) on the isocentre plane in the IEC beam-limiting-device
        frame: x along the X jaws (and the leaf travel of an MLCX), y along the Y jaws (module docstring).
    head : LinacHead, optional
        Default :class:`LinacHead` (Varian-like 6 MV).
    control_points : sequence of int or slice, optional
        Restrict the sum to the segments that *end* at these control-point indices (positions in
        ``beam.control_points``; segment k runs from control point k−1 to k). Weights stay fractions of the
        whole beam's meterset, so the maps of a partition of the segments add up to the full map.

    Returns
    -------
    ndarray, shape (y_mm.size, x_mm.size)
        Energy fluence per unit meterset relative to the on-axis value of an open static 10 × 10 cm² field.

    Raises
    ------
    ParameterError
        Fewer than 2 control points, missing leaf boundaries, leaves crossing, MLC leaves outside the jaws'
        travel range, or bad coordinates.

    Examples
    --------
    A static 10 × 10 cm² jaw field of two control points gives 1 on the axis (see
    tests/physics/test_fluence.py).
    """
    h = head or LinacHead()
    x, y = _check_axes(x_mm, y_mm)
    cps = tuple(getattr(beam, "control_points", ()))
    weights = segment_weights(cps)
    bounds: NDArray[np.float64] | None = None
    mlc_y = False
    for dev in getattr(beam, "devices", ()):
        if dev.device_type.value in ("MLCX", "MLCY"):
            bounds = (
                None if dev.leaf_boundaries_mm is None else np.asarray(dev.leaf_boundaries_mm, dtype=float)
            )
            mlc_y = dev.device_type.value == "MLCY"
    has_mlc = any(getattr(cp, "mlc_mm", None) is not None for cp in cps)
    if has_mlc and bounds is None:
        raise ParameterError("the beam has MLC leaf positions but no Leaf Position Boundaries (300A,00BE)")
    seg_ids = np.arange(1, len(cps))
    if control_points is not None:
        wanted = np.zeros(len(cps), dtype=bool)
        wanted[np.asarray(range(len(cps)))[control_points] if isinstance(control_points, slice)
               else np.asarray(list(control_points), dtype=int)] = True  # fmt: skip
        seg_ids = seg_ids[wanted[1:]]
    # MLCY: evaluate with the axes exchanged, transpose back at the end.
    ex, ey = (y, x) if mlc_y else (x, y)
    d = _device_distances(beam, h)
    focal = np.zeros((ey.size, ex.size))
    extra = np.zeros_like(focal)
    for k in seg_ids:
        w = weights[k - 1]
        if w <= 0:
            continue
        j0x, j0y, m0 = _cp_devices(cps[k - 1], bounds, mlc_y)
        j1x, j1y, m1 = _cp_devices(cps[k], bounds, mlc_y)
        travel = max(abs(j1x[0] - j0x[0]), abs(j1x[1] - j0x[1]), abs(j1y[0] - j0y[0]), abs(j1y[1] - j0y[1]))
        if m0 is not None and m1 is not None:
            travel = max(travel, float(np.max(np.abs(m1 - m0))))
        n_sub = max(1, math.ceil(travel / MAX_SUBSTEP_MM))
        for s in range(n_sub):
            t = (s + 0.5) / n_sub
            jx = (j0x[0] + t * (j1x[0] - j0x[0]), j0x[1] + t * (j1x[1] - j0x[1]))
            jy = (j0y[0] + t * (j1y[0] - j0y[0]), j0y[1] + t * (j1y[1] - j0y[1]))
            mlc = None
            if m0 is not None and m1 is not None and bounds is not None:
                m = m0 + t * (m1 - m0)
                mlc = (bounds, m[0], m[1])
            f, e = _aperture(ex, ey, jx, jy, mlc, h, d)
            focal += (w / n_sub) * f
            extra += (w / n_sub) * e
    if mlc_y:
        focal, extra = focal.T, extra.T
    return _combine(h, x, y, focal, extra)
