"""EPID images of either vendor -> one signal per MU, or a one-line refusal naming the file and the reason.

A model is trained on, and predicts from, **calibrated units per monitor unit** (``CU/MU``): 1 CU is the
central-axis signal of 1 MU through a 10 x 10 cm² open field at SID 1000 mm (the Varian dosimetry
calibration, Varian Portal Dosimetry reference guide; the simulator's definition,
:class:`intrepid.physics.DetectorModel`). Each vendor's file is brought to it:

=====================================  ====================================================================
file                                   conversion
=====================================  ====================================================================
Varian aS-series, dosimetry mode       stored values x Rescale Slope (negative) + Intercept, Rescale Type
(Rescale Type ``CU``)                  ``CU``: already CU; divided by Meterset Exposure (3002,0032)
Elekta iView (no rescale, inverted     ``signal = 65535 - raw`` (the reader), then
16-bit counts)                         ``CU = (signal - (65535 - raw_offset)) / raw_counts_per_cu`` with the
                                       iView preset of :meth:`DetectorModel.elekta_iview` (65 000 - 100 CU);
                                       a *nominal* calibration: a clinic's panel needs its own factor
anything else                          refused (below)
=====================================  ====================================================================

Refusals (:class:`InputRefused`, one line ``<file>: <reason>``): an image that is already a portal dose; raw
panel values (Rescale Type ``US`` or an unrescaled non-Elekta image: *uncalibrated*); unknown units; no
meterset (the signal cannot be put per MU) unless the caller gives one; a *negative signal* (more than 1 %
of the pixels below -2 % of the image's 99.9th percentile: a dark-field or offset problem); no signal at all.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from intrepid.errors import ParameterError
from intrepid.geometry import Quantity, Volume

__all__ = [
    "CALIBRATED_UNITS_PER_MU",
    "CanonicalSignal",
    "InputRefused",
    "canonical_signal",
    "canonical_volume",
    "image_acquisition_mode",
]

_log = logging.getLogger(__name__)

#: Units of the signal models see.
CALIBRATED_UNITS_PER_MU = "CU/MU"
#: A pixel is negative when below this fraction of the 99.9th percentile (noise makes a dark background
#: scatter around zero by a few 0.1 % of the maximum).
_NEGATIVE_FRACTION = 0.02
#: An image is refused when more than this fraction of its pixels is negative.
_NEGATIVE_PIXELS = 0.01


class InputRefused(ParameterError):
    """An EPID image the predictor refuses to convert; the message is one line naming the file."""


@dataclass(frozen=True)
class CanonicalSignal:
    """An EPID image brought to signal per MU, with what was read.

    Attributes
    ----------
    signal : Volume
        Signal in CU per MU on the detector grid (metadata of the input kept, plus ``mu`` and ``sid_mm``).
    source : str
        The file (or name) read.
    vendor : str
        ``"elekta"``, ``"varian"`` or ``"generic"``.
    pixel_units : str
        Units as read (``"CU"``, ``"raw"``).
    conversion : str
        How the stored values became CU (one phrase).
    mu : float
        Monitor units the signal was divided by.
    sid_mm : float or None
        Source-to-image distance (mm).
    acquisition_mode : str
        ``"integrated"`` (Varian dosimetry / ACQUIRED_DOSE, Elekta integrated image) or ``"unknown"``.
    level_cu_per_mu : float
        99.9th percentile of the signal (CU/MU).
    field_size_mm : float
        Equivalent square (mm at the detector) of the pixels above half that level.
    """

    signal: Volume
    source: str
    vendor: str
    pixel_units: str
    conversion: str
    mu: float
    sid_mm: float | None
    acquisition_mode: str
    level_cu_per_mu: float
    field_size_mm: float

    def field_size_iso_cm(self, sad_mm: float = 1000.0) -> float | None:
        """Equivalent square projected to the isocentre plane (cm), when the SID is known."""
        if self.sid_mm is None or self.sid_mm <= 0:
            return None
        return self.field_size_mm * sad_mm / self.sid_mm / 10.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (no arrays)."""
        return {
            "source": self.source,
            "vendor": self.vendor,
            "pixel_units": self.pixel_units,
            "conversion": self.conversion,
            "mu": self.mu,
            "sid_mm": self.sid_mm,
            "acquisition_mode": self.acquisition_mode,
            "signal_level_cu_per_mu": self.level_cu_per_mu,
            "field_size_detector_mm": self.field_size_mm,
            "field_size_iso_cm": self.field_size_iso_cm(),
        }


def image_acquisition_mode(image_type: Any, vendor: str) -> str:
    """``"integrated"`` for a Varian dosimetry image (Image Type value 4 ``ACQUIRED_DOSE``) or an Elekta
    iView image (integrated frames), else ``"unknown"``."""
    values = [str(v).upper() for v in (image_type or ())]
    if len(values) >= 4 and values[3] == "ACQUIRED_DOSE":
        return "integrated"
    if vendor == "elekta":
        return "integrated"
    return "unknown"


def _elekta_constants() -> tuple[float, float]:
    from intrepid.physics import DetectorModel

    det = DetectorModel.elekta_iview()
    return 65535.0 - float(det.raw_offset), float(det.raw_counts_per_cu)


def canonical_volume(
    epid: Volume,
    *,
    mu: float | None = None,
    source: str | None = None,
    image_type: Any = None,
) -> CanonicalSignal:
    """Convert an EPID signal Volume (as :func:`intrepid.dicom.read_rtimage` or
    :func:`intrepid.learn.load_dataset` give it: metadata ``vendor``, units) to CU per MU.

    Parameters
    ----------
    epid : Volume
        2D EPID signal; its ``units`` are the pixel units as read, ``metadata["vendor"]`` the vendor.
    mu : float, optional
        Monitor units; default ``metadata["mu"]`` or ``metadata["meterset"]``.
    source : str, optional
        Name used in messages (default ``metadata["source"]``).
    image_type : sequence of str, optional
        Image Type (0008,0008), for the acquisition mode.

    Raises
    ------
    InputRefused
        See the module docstring; the message is ``"<source>: <reason>"``.
    """
    meta = dict(epid.metadata or {})
    name = str(source or meta.get("source") or "image")
    if epid.quantity is Quantity.PORTAL_DOSE:
        raise InputRefused(
            f"{name}: is already a portal-dose image (units {epid.units!r}), expected an EPID image"
        )
    vendor = str(meta.get("vendor") or "generic").lower()
    units = str(epid.units or "").strip()
    arr = np.asarray(epid.array, dtype=np.float64)
    if units.upper() == "CU":
        cu = arr
        conversion = "calibrated units (Rescale Slope / Intercept, Rescale Type CU)"
    elif units.lower() == "raw" and vendor == "elekta":
        dark, gain = _elekta_constants()
        cu = (arr - dark) / gain
        conversion = (
            f"Elekta inverted counts: CU = (65535 - raw - {dark:g}) / {gain:g} (nominal iView calibration of "
            "intrepid's detector preset)"
        )
    elif units.upper() == "US" or units.lower() == "raw":
        raise InputRefused(
            f"{name}: uncalibrated image (pixel units {units!r}, vendor {vendor}): raw panel values are not "
            "calibrated units; acquire it in dosimetry mode (Rescale Type CU) or calibrate it first"
        )
    else:
        raise InputRefused(
            f"{name}: unknown pixel units {units!r} (Rescale Type (0028,1054)); expected CU (Varian) or "
            "Elekta inverted counts"
        )
    m = mu if mu is not None else meta.get("mu", meta.get("meterset"))
    try:
        mu_f = float(m) if m is not None else float("nan")
    except (TypeError, ValueError):
        mu_f = float("nan")
    if not (math.isfinite(mu_f) and mu_f > 0):
        raise InputRefused(
            f"{name}: no meterset (Meterset Exposure (3002,0032) missing or not > 0); the signal cannot be "
            "put per MU (give the MU with --mu)"
        )
    flat = cu.ravel()
    step = max(1, flat.size // 65536)
    level = float(np.percentile(flat[::step], 99.9))
    if not level > 0:
        raise InputRefused(
            f"{name}: no positive signal (99.9th percentile {level:.4g} CU): not an exposed image"
        )
    negative = float(np.mean(flat[::step] < -_NEGATIVE_FRACTION * level))
    if negative > _NEGATIVE_PIXELS:
        raise InputRefused(
            f"{name}: negative signal in {100 * negative:.1f} % of the pixels (below -"
            f"{100 * _NEGATIVE_FRACTION:g} % of the maximum): uncalibrated image or wrong dark field"
        )
    per_mu = cu / mu_f
    spacing = (float(epid.grid.spacing_mm[1]), float(epid.grid.spacing_mm[0]))
    above = float(np.count_nonzero(cu > 0.5 * level)) * spacing[0] * spacing[1]
    field_mm = math.sqrt(max(above, spacing[0] * spacing[1]))
    sid = meta.get("sid_mm")
    sid_f = float(sid) if sid is not None else None
    mode = image_acquisition_mode(image_type, vendor)
    if mode == "unknown" and units.upper() == "CU":
        mode = "integrated"  # calibrated units exist only in the integrated (dosimetry) acquisition
    meta.update({"mu": mu_f, "pixel_units_read": units, "signal_conversion": conversion})
    vol = Volume(
        per_mu, epid.grid, Quantity.EPID_SIGNAL, CALIBRATED_UNITS_PER_MU, epid.frame_of_reference_uid, meta
    )
    return CanonicalSignal(
        signal=vol,
        source=name,
        vendor=vendor,
        pixel_units=units,
        conversion=conversion,
        mu=mu_f,
        sid_mm=sid_f,
        acquisition_mode=mode,
        level_cu_per_mu=level / mu_f,
        field_size_mm=field_mm,
    )


def canonical_signal(path: str | os.PathLike[str], *, mu: float | None = None) -> CanonicalSignal:
    """Read an EPID RT Image file and convert it to CU per MU (:func:`canonical_volume`).

    Parameters
    ----------
    path : path-like
        RT Image file.
    mu : float, optional
        Monitor units overriding the file's Meterset Exposure.

    Raises
    ------
    InputRefused
        The image cannot be converted (one line naming the file and the reason).
    DicomError
        Not a readable RT Image.

    Examples
    --------
    >>> c = canonical_signal("RI_test_linearity.dcm")  # doctest: +SKIP
    >>> round(c.level_cu_per_mu, 2), c.vendor  # doctest: +SKIP
    (1.02, 'varian')
    """
    from intrepid.dicom import read_rtimage

    rt = read_rtimage(path)
    meta = dict(rt.image.metadata)
    meta.setdefault("source", str(path))
    meta["meterset"] = rt.meterset
    meta["sid_mm"] = rt.sid_mm
    vol = Volume(
        np.asarray(rt.image.array),
        rt.image.grid,
        rt.image.quantity,
        rt.pixel_units,
        rt.frame_of_reference_uid,
        meta,
    )
    return canonical_volume(vol, mu=mu, source=str(path), image_type=rt.image_type)
