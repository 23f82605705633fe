"""Read DICOM RT Image (EPID and portal-dose images) with the vendors' pixel conventions made explicit.

Geometry
--------
The image lives in the image-receptor plane (IEC 61217 image receptor frame), in mm *at the detector*:
the grid's i axis (columns) runs along +x of the receptor and its j axis (rows) along -y, as set by RT Image
Orientation (3002,0010) (default ``[1, 0, 0, 0, -1, 0]``); the origin is the centre of the first pixel taken
from RT Image Position (3002,0012) when present, otherwise the image is centred on the beam axis. z = 0 is the
receptor plane. This grid is *not* in the patient frame, so ``image.frame_of_reference_uid`` is None (the
file's Frame of Reference UID is kept on :attr:`RTImage.frame_of_reference_uid`).

Pixel spacing comes at the detector (:attr:`RTImage.pixel_spacing_mm`, from Image Plane Pixel Spacing
(3002,0011)) and projected to the isocentre plane (:attr:`RTImage.pixel_spacing_iso_mm` = detector spacing
× SAD / SID); the two are separate attributes so that they cannot be confused.

Signal
------
``image`` holds the *signal*, in which more radiation gives larger values:

* a Rescale Slope / Intercept present (Varian aS-series: calibrated units "CU" with a *negative* slope;
  portal-dose images in Gy): ``signal = raw × slope + intercept``;
* Elekta iView without rescale: stored values are inverted 16-bit counts (open field ≈ 0, background ≈ 65535):
  ``signal = (2**BitsStored − 1) − raw``;
* otherwise the stored values.
"""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from intrepid.dicom._common import describe_tag, get_tag, read_dataset, require_tag
from intrepid.dicom._validate import check_array_budget, check_finite_array, check_orientation, reader
from intrepid.errors import DicomError
from intrepid.geometry import Grid, Quantity, Volume

__all__ = ["RTImage", "SignalConvention", "Vendor", "read_rtimage"]

_log = logging.getLogger(__name__)

#: Elekta iView GT: fixed detector geometry used by the vendor heuristic and the writer.
ELEKTA_IVIEW_SHAPE = (1024, 1024)
ELEKTA_IVIEW_PIXEL_SPACING_MM = 0.405
ELEKTA_IVIEW_SID_MM = 1600.0
#: Radiation Machine SAD (3002,0022) assumed when a file lacks it (mm).
DEFAULT_SAD_MM = 1000.0
#: Image types (value 4 of Image Type (0008,0008)) and rescale types that mark a portal-dose image.
_DOSE_UNITS = {"GY": 1.0, "CGY": 0.01, "MGY": 0.001}
PORTAL_DOSE_IMAGE_TYPE = "PORTAL_DOSE"


class Vendor(enum.Enum):
    """EPID vendor, which decides how stored values become signal."""

    ELEKTA = "elekta"  #: iView GT: inverted 16-bit counts, often no transfer syntax and no gantry angle
    VARIAN = "varian"  #: aS-series (aS500 / aS1000 / aS1200): calibrated units via a negative Rescale Slope
    GENERIC = "generic"  #: anything else: Rescale Slope / Intercept applied when present


class SignalConvention(enum.Enum):
    """How :func:`read_rtimage` turned stored values into signal."""

    RESCALED = "rescaled"  #: raw × Rescale Slope + Rescale Intercept
    INVERTED = "inverted"  #: (2**BitsStored − 1) − raw (Elekta iView)
    RAW = "raw"  #: stored values as they are


@dataclass(frozen=True, eq=False)
class RTImage:
    """An RT Image: the signal on the detector-plane grid and the acquisition geometry.

    Attributes
    ----------
    image : Volume
        2D ``[row, column]`` signal (float64), quantity :attr:`Quantity.EPID_SIGNAL` or
        :attr:`Quantity.PORTAL_DOSE`, units :attr:`pixel_units`, on the receptor-plane grid described in the
        module docstring (mm at the detector).
    raw : ndarray
        Stored pixel values, ``[row, column]``, as in the file.
    vendor : Vendor
        From Manufacturer (0008,0070), or the Elekta iView heuristic (1024 × 1024, ~0.4 mm, SID 1600 mm).
    pixel_spacing_mm : tuple of 2 float
        (row spacing, column spacing) in mm at the detector.
    sid_mm : float
        RT Image SID (3002,0026): source to image-receptor distance, mm.
    sad_mm : float
        Radiation Machine SAD (3002,0022), mm (1000 with a logged warning when absent).
    gantry_deg, collimator_deg, couch_deg : float or None
        Gantry (300A,011E), Beam Limiting Device (300A,0120) and Patient Support (300A,0122) angles in
        degrees, from the top level or the first Exposure Sequence item; None when absent (Elekta often).
    pixel_units : str
        Units of the signal: Rescale Type (0028,1054) (``"CU"``, ``"Gy"``), ``"raw"`` for counts.
    signal_convention : SignalConvention
        Which conversion produced the signal.
    meterset : float or None
        Meterset Exposure (3002,0032) in MU, where present.
    exposure_time_ms : float or None
        Exposure Time (0018,1150) in ms, where present.
    modality, frame_of_reference_uid, sop_instance_uid, manufacturer : str
        Identification (Frame of Reference may be None).
    referenced_plan_uid : str or None
        Referenced RT Plan SOP Instance UID.
    referenced_beam_number : int or None
        Referenced Beam Number (300C,0006).
    image_type : tuple of str
        Image Type (0008,0008).
    source : str
        The file read.
    """

    image: Volume
    raw: NDArray[Any] = field(repr=False)
    vendor: Vendor
    pixel_spacing_mm: tuple[float, float]
    sid_mm: float
    sad_mm: float
    gantry_deg: float | None
    collimator_deg: float | None
    couch_deg: float | None
    pixel_units: str
    signal_convention: SignalConvention
    meterset: float | None = None
    exposure_time_ms: float | None = None
    modality: str = "RTIMAGE"
    frame_of_reference_uid: str | None = None
    sop_instance_uid: str = ""
    manufacturer: str = ""
    referenced_plan_uid: str | None = None
    referenced_beam_number: int | None = None
    image_type: tuple[str, ...] = ()
    source: str = ""

    def __repr__(self) -> str:
        return (
            f"RTImage(shape={self.image.shape}, vendor={self.vendor.value!r}, quantity="
            f"{self.image.quantity.value!r}, pixel_units={self.pixel_units!r}, pixel_spacing_mm="
            f"{self.pixel_spacing_mm}, sid_mm={self.sid_mm}, sad_mm={self.sad_mm}, "
            f"gantry_deg={self.gantry_deg}, "
            f"source={self.source!r})"
        )

    @property
    def signal(self) -> NDArray[np.float64]:
        """The signal array (same as ``image.array``): larger values mean more radiation."""
        return np.asarray(self.image.array)

    @property
    def rows(self) -> int:
        """Number of rows."""
        return int(self.image.shape[0])

    @property
    def columns(self) -> int:
        """Number of columns."""
        return int(self.image.shape[1])

    @property
    def magnification(self) -> float:
        """SID / SAD: how much larger a length at the isocentre appears at the detector."""
        return self.sid_mm / self.sad_mm

    @property
    def pixel_spacing_iso_mm(self) -> tuple[float, float]:
        """(row, column) pixel spacing projected to the isocentre plane: detector spacing × SAD / SID, mm."""
        scale = self.sad_mm / self.sid_mm
        return (self.pixel_spacing_mm[0] * scale, self.pixel_spacing_mm[1] * scale)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (the keys of ``intrepid info`` for RTIMAGE) plus signal statistics."""
        d: dict[str, Any] = {
            "modality": self.modality,
            "rows": self.rows,
            "columns": self.columns,
            "pixel_spacing_mm": list(self.pixel_spacing_mm),
            "pixel_spacing_iso_mm": list(self.pixel_spacing_iso_mm),
            "sid_mm": self.sid_mm,
            "sad_mm": self.sad_mm,
            "gantry_deg": self.gantry_deg,
            "collimator_deg": self.collimator_deg,
            "couch_deg": self.couch_deg,
            "vendor": self.vendor.value,
            "pixel_units": self.pixel_units,
            "quantity": self.image.quantity.value,
            "signal_convention": self.signal_convention.value,
            "meterset": self.meterset,
        }
        d.update(self.image.statistics())
        return d


def _float_or_none(value: Any, keyword: str, path: Path) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise DicomError(f"{path}: unreadable {describe_tag(keyword)} value {value!r}") from exc
    if not np.isfinite(out):
        raise DicomError(f"{path}: {describe_tag(keyword)} is not finite ({value!r})")
    return out


def _exposure_value(ds: Dataset, keyword: str, path: Path) -> float | None:
    """A value from the top level, else from the first item of Exposure Sequence (3002,0030)."""
    value = _float_or_none(ds.get(keyword), keyword, path)
    if value is None:
        seq = ds.get("ExposureSequence")
        if seq:
            value = _float_or_none(seq[0].get(keyword), keyword, path)
    return value


def _pair(ds: Dataset, keyword: str, path: Path) -> tuple[float, float] | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    values = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise DicomError(f"{path}: unreadable {describe_tag(keyword)} value {value!r}") from exc
    if len(out) != 2 or not all(np.isfinite(out)):
        raise DicomError(f"{path}: {describe_tag(keyword)} must hold 2 finite values, got {list(out)}")
    return (out[0], out[1])


def _detect_vendor(
    manufacturer: str, shape: tuple[int, int], spacing: tuple[float, float], sid: float | None
) -> Vendor:
    name = manufacturer.upper()
    if "ELEKTA" in name:
        return Vendor.ELEKTA
    if "VARIAN" in name:
        return Vendor.VARIAN
    if (
        shape == ELEKTA_IVIEW_SHAPE
        and all(0.39 <= s <= 0.42 for s in spacing)
        and sid is not None
        and abs(sid - ELEKTA_IVIEW_SID_MM) <= 10.0
    ):
        _log.info("no Manufacturer; 1024 x 1024 at ~0.4 mm and SID 1600 mm: treated as Elekta iView")
        return Vendor.ELEKTA
    return Vendor.GENERIC


@reader
def read_rtimage(path: str | os.PathLike[str]) -> RTImage:
    """Read an RT Image file (EPID image or portal-dose image).

    Parameters
    ----------
    path : path-like
        The RTIMAGE file; files without File Meta Information (Elekta iView) are accepted.

    Returns
    -------
    RTImage
        Signal image on the detector-plane grid, stored values, vendor, geometry and angles.

    Raises
    ------
    DicomError
        Not an RTIMAGE, multi-frame, no pixel spacing (Image Plane Pixel Spacing (3002,0011) nor Pixel
        Spacing),
        no RT Image SID (3002,0026) on a non-Elekta file, truncated or undecodable pixel data.

    Examples
    --------
    >>> img = read_rtimage("RI_test_linearity.dcm")  # doctest: +SKIP
    >>> img.vendor, img.pixel_spacing_mm, img.pixel_spacing_iso_mm  # doctest: +SKIP
    (<Vendor.VARIAN: 'varian'>, (0.392, 0.392), (0.392, 0.392))
    """
    p = Path(path)
    ds = read_dataset(p, modality="RTIMAGE")
    rows = int(require_tag(ds, "Rows", p))
    cols = int(require_tag(ds, "Columns", p))
    frames = int(get_tag(ds, "NumberOfFrames", 1))
    if frames != 1:
        raise DicomError(
            f"{p}: {describe_tag('NumberOfFrames')} is {frames}; only single-frame RT Images are read"
        )
    spacing = _pair(ds, "ImagePlanePixelSpacing", p)
    if spacing is None:
        spacing = _pair(ds, "PixelSpacing", p)
        if spacing is None:
            raise DicomError(
                f"{p}: missing required tag {describe_tag('ImagePlanePixelSpacing')} (and no "
                f"{describe_tag('PixelSpacing')} to fall back on)"
            )
        _log.info("%s: no Image Plane Pixel Spacing; using Pixel Spacing as the detector spacing", p)
    if spacing[0] <= 0 or spacing[1] <= 0:
        raise DicomError(f"{p}: pixel spacing must be > 0, got {list(spacing)}")
    sid = _float_or_none(ds.get("RTImageSID"), "RTImageSID", p)
    manufacturer = str(get_tag(ds, "Manufacturer", ""))
    vendor = _detect_vendor(manufacturer, (rows, cols), spacing, sid)
    if sid is None:
        if vendor is not Vendor.ELEKTA:
            raise DicomError(
                f"{p}: missing required tag {describe_tag('RTImageSID')}; the detector distance is needed to "
                "scale the image to the isocentre"
            )
        sid = ELEKTA_IVIEW_SID_MM
        _log.warning("%s: no RT Image SID; assuming the Elekta iView fixed SID of %.0f mm", p, sid)
    if sid <= 0:
        raise DicomError(f"{p}: {describe_tag('RTImageSID')} must be > 0, got {sid}")
    sad = _float_or_none(ds.get("RadiationMachineSAD"), "RadiationMachineSAD", p)
    if sad is None:
        sad = DEFAULT_SAD_MM
        _log.warning("%s: no %s; assuming %.0f mm", p, describe_tag("RadiationMachineSAD"), sad)
    if sad <= 0:
        raise DicomError(f"{p}: {describe_tag('RadiationMachineSAD')} must be > 0, got {sad}")
    if sid < sad:  # equal is allowed: images already scaled to the isocentre plane
        raise DicomError(
            f"{p}: {describe_tag('RTImageSID')} {sid:g} mm is below {describe_tag('RadiationMachineSAD')} "
            f"{sad:g} mm (the detector lies at or beyond the isocentre)"
        )
    check_array_budget((rows, cols), 8, p, "the image")

    try:
        raw = np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises assorted errors on truncated or odd pixel data
        raise DicomError(f"{p}: truncated or undecodable pixel data ({exc})") from exc
    if raw.shape != (rows, cols):
        raise DicomError(f"{p}: pixel data shape {raw.shape} does not match (Rows, Columns) {(rows, cols)}")

    slope = _float_or_none(ds.get("RescaleSlope"), "RescaleSlope", p)
    if slope == 0.0:
        raise DicomError(f"{p}: {describe_tag('RescaleSlope')} is 0; every pixel would have the same signal")
    intercept = _float_or_none(ds.get("RescaleIntercept"), "RescaleIntercept", p)
    rescale_type = str(get_tag(ds, "RescaleType", "")).strip()
    identity = (slope in (None, 1.0)) and (intercept in (None, 0.0)) and not rescale_type
    image_type = tuple(str(v) for v in (ds.get("ImageType") or []))
    if slope is not None or intercept is not None:
        if identity and vendor is Vendor.ELEKTA:
            slope = intercept = None
    if slope is not None or intercept is not None:
        s = 1.0 if slope is None else slope
        b = 0.0 if intercept is None else intercept
        signal = raw.astype(np.float64) * s + b
        convention = SignalConvention.RESCALED
        units = rescale_type or ("CU" if vendor is Vendor.VARIAN else "US")
    elif vendor is Vendor.ELEKTA:
        bits = int(get_tag(ds, "BitsStored", 16))
        signal = float(2**bits - 1) - raw.astype(np.float64)
        convention = SignalConvention.INVERTED
        units = "raw"
    else:
        signal = raw.astype(np.float64)
        convention = SignalConvention.RAW
        units = "raw"
    factor = _DOSE_UNITS.get(units.upper())
    if factor is not None:
        quantity = Quantity.PORTAL_DOSE
        if factor != 1.0:
            signal *= factor
        units = "Gy"
    elif len(image_type) >= 4 and image_type[3] == PORTAL_DOSE_IMAGE_TYPE:
        quantity = Quantity.PORTAL_DOSE
    else:
        quantity = Quantity.EPID_SIGNAL

    check_finite_array(signal, p, "the image signal")
    orientation = np.asarray([1.0, 0.0, 0.0, 0.0, -1.0, 0.0])
    if ds.get("RTImageOrientation") not in (None, ""):
        orientation = np.asarray([float(v) for v in ds.RTImageOrientation], dtype=float)
        if orientation.size != 6:
            raise DicomError(f"{p}: {describe_tag('RTImageOrientation')} must have 6 values")
    i_dir, j_dir = check_orientation(orientation, p, describe_tag("RTImageOrientation"))
    position = _pair(ds, "RTImagePosition", p)
    if position is None:
        centre = np.zeros(3)
        origin = centre - (cols - 1) / 2 * spacing[1] * i_dir - (rows - 1) / 2 * spacing[0] * j_dir
    else:
        origin = np.array([position[0], position[1], 0.0])
    grid = Grid(
        shape=(rows, cols),
        origin_mm=tuple(origin),
        spacing_mm=(spacing[1], spacing[0], 1.0),
        direction=tuple(np.column_stack([i_dir, j_dir, np.cross(i_dir, j_dir)]).reshape(-1)),
    )
    gantry = _exposure_value(ds, "GantryAngle", p)
    collimator = _exposure_value(ds, "BeamLimitingDeviceAngle", p)
    couch = _exposure_value(ds, "PatientSupportAngle", p)
    meterset = _exposure_value(ds, "MetersetExposure", p)
    exposure_ms = _exposure_value(ds, "ExposureTime", p)
    plan_seq = ds.get("ReferencedRTPlanSequence")
    plan_uid = (str(plan_seq[0].get("ReferencedSOPInstanceUID", "")) or None) if plan_seq else None
    beam = ds.get("ReferencedBeamNumber")
    for_uid = get_tag(ds, "FrameOfReferenceUID")
    metadata: dict[str, Any] = {
        "modality": "RTIMAGE",
        "coordinate_frame": "IEC_IMAGE_RECEPTOR",
        "vendor": vendor.value,
        "sid_mm": sid,
        "sad_mm": sad,
        "gantry_deg": gantry,
        "pixel_units": units,
        "signal_convention": convention.value,
        "sop_instance_uid": str(get_tag(ds, "SOPInstanceUID", "")),
        "source": str(p),
    }
    if ds.get("XRayImageReceptorTranslation") not in (None, ""):
        metadata["xray_image_receptor_translation_mm"] = [float(v) for v in ds.XRayImageReceptorTranslation]
    return RTImage(
        image=Volume(signal, grid, quantity=quantity, units=units, metadata=metadata),
        raw=raw,
        vendor=vendor,
        pixel_spacing_mm=spacing,
        sid_mm=sid,
        sad_mm=sad,
        gantry_deg=gantry,
        collimator_deg=collimator,
        couch_deg=couch,
        pixel_units=units,
        signal_convention=convention,
        meterset=meterset,
        exposure_time_ms=exposure_ms,
        modality="RTIMAGE",
        frame_of_reference_uid=str(for_uid) if for_uid else None,
        sop_instance_uid=str(get_tag(ds, "SOPInstanceUID", "")),
        manufacturer=manufacturer,
        referenced_plan_uid=plan_uid,
        referenced_beam_number=int(beam) if beam not in (None, "") else None,
        image_type=image_type,
        source=str(p),
    )
