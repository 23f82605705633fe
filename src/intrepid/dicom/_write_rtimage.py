"""Write EPID images and portal-dose images as DICOM RT Image files, with each vendor's pixel encoding.

The simulator uses this writer to produce realistic files, so each encoding mirrors what the clinical systems
write (and what :func:`~intrepid.dicom.read_rtimage` decodes back, within quantisation):

=====================  ============================================================================
what                   stored values
=====================  ============================================================================
PORTAL_DOSE (any)      unsigned 16-bit, ``value = raw × slope + intercept`` with slope > 0, Rescale Type
                       = units (``"Gy"``), Image Type value 4 ``PORTAL_DOSE``
EPID_SIGNAL, ELEKTA    iView GT: inverted 16-bit counts ``raw = 65535 − signal`` (signal in counts, 0–65535),
                       no rescale, Manufacturer ``ELEKTA``; optionally no gantry angle and no file meta
EPID_SIGNAL, VARIAN    aS-series: calibrated units through a *negative* Rescale Slope (Rescale Type ``CU``),
                       Image Type value 4 ``ACQUIRED_DOSE``
EPID_SIGNAL, GENERIC   unsigned 16-bit with a positive Rescale Slope
=====================  ============================================================================

Geometry follows the reader's convention: the array is ``[row, column]`` at the detector, RT Image Position
(3002,0012) is the centre of the first pixel in the receptor plane (default: the image centred on the beam
axis), RT Image Orientation (3002,0010) ``[1, 0, 0, 0, -1, 0]``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import RTImageStorage, RTPlanStorage
from pydicom.valuerep import format_number_as_ds

from intrepid.dicom._patient import new_instance, save_instance
from intrepid.dicom._rtimage import PORTAL_DOSE_IMAGE_TYPE, Vendor
from intrepid.errors import ParameterError
from intrepid.geometry import Quantity

__all__ = ["write_rtimage"]

_log = logging.getLogger(__name__)

_TOP16 = 65535
_MANUFACTURERS = {
    Vendor.ELEKTA: ("ELEKTA", "iViewGT"),
    Vendor.VARIAN: ("Varian Medical Systems", "aS1000"),
    Vendor.GENERIC: ("InTrEPID", "intrepid simulator"),
}


def _ds(value: float) -> float:
    return float(format_number_as_ds(float(value)))


def _finite_angle(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    if not np.isfinite(v):
        raise ParameterError(f"{name} must be finite, got {value}")
    return v


def _linear_encoding(
    values: NDArray[np.float64], negative_slope: bool
) -> tuple[NDArray[np.uint16], float, float]:
    """Unsigned 16-bit values with ``value ≈ raw × slope + intercept`` (slope > 0, or < 0 as Varian does)."""
    lo = min(float(values.min()), 0.0)
    hi = max(float(values.max()), 0.0)
    span = hi - lo
    if negative_slope:
        intercept = _ds(hi)
        slope = _ds(-span / (_TOP16 - 1)) if span > 0 else -1.0
        while span > 0 and (lo - intercept) / slope > _TOP16:
            slope = _ds(slope * (1 + 1e-9))
    else:
        intercept = _ds(lo)
        slope = _ds(span / (_TOP16 - 1)) if span > 0 else 1.0
        while span > 0 and (hi - intercept) / slope > _TOP16:
            slope = _ds(slope * (1 + 1e-9))
    raw = np.clip(np.rint((values - intercept) / slope), 0, _TOP16).astype(np.uint16)
    return raw, slope, intercept


def write_rtimage(
    path: str | os.PathLike[str],
    array: ArrayLike,
    *,
    pixel_spacing_mm: float | Sequence[float],
    sid_mm: float = 1600.0,
    sad_mm: float = 1000.0,
    gantry_deg: float | None = 0.0,
    collimator_deg: float | None = 0.0,
    couch_deg: float | None = 0.0,
    vendor: Vendor = Vendor.GENERIC,
    quantity: Quantity = Quantity.PORTAL_DOSE,
    units: str | None = None,
    image_position_mm: Sequence[float] | None = None,
    patient_id: str = "INTREPID",
    patient_name: str = "Anonymous^InTrEPID",
    study_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    meterset: float | None = None,
    exposure_time_ms: float | None = None,
    referenced_plan_uid: str | None = None,
    referenced_beam_number: int | None = None,
    description: str = "",
    write_file_meta: bool = True,
) -> Path:
    """Write a 2D EPID or portal-dose image as an RT Image file, atomically.

    Parameters
    ----------
    path : path-like
        Output file; its folder must exist.
    array : array_like, shape (rows, columns)
        Values at the detector, ``[row, column]``: portal dose (Gy by default) or EPID signal (larger = more
        radiation; counts 0–65535 for Elekta, calibrated units otherwise). Must be finite.
    pixel_spacing_mm : float or (row, column)
        Pixel spacing at the detector in mm, written as Image Plane Pixel Spacing (3002,0011). Elekta iView:
        0.405; Varian aS1000: 0.392.
    sid_mm : float
        RT Image SID (3002,0026), source to detector distance in mm (Elekta: fixed 1600).
    sad_mm : float
        Radiation Machine SAD (3002,0022) in mm.
    gantry_deg, collimator_deg, couch_deg : float or None
        Angles in degrees; None omits the tag (as Elekta iView does for the gantry).
    vendor : Vendor
        Pixel encoding and Manufacturer (see the module table).
    quantity : Quantity
        :attr:`Quantity.PORTAL_DOSE` or :attr:`Quantity.EPID_SIGNAL`.
    units : str, optional
        Units of ``array`` written as Rescale Type (0028,1054). Default: ``"Gy"`` for portal dose, ``"CU"``
        for rescaled EPID signal; Elekta EPID signal is always raw counts (``None`` or ``"raw"``).
    image_position_mm : (x, y), optional
        RT Image Position (3002,0012): receptor-plane position (mm) of the centre of the first pixel. Default:
        the image centred on the beam axis.
    patient_id, patient_name : str
        Non-empty patient identification.
    study_instance_uid, frame_of_reference_uid : str, optional
        UIDs to join (new ones by default).
    meterset : float, optional
        Meterset Exposure (3002,0032) in MU, written in the Exposure Sequence.
    exposure_time_ms : float, optional
        Exposure Time (0018,1150) in ms, written in the Exposure Sequence.
    referenced_plan_uid : str, optional
        SOP Instance UID of the RT Plan the image belongs to.
    referenced_beam_number : int, optional
        Referenced Beam Number (300C,0006).
    description : str
        RT Image Label (first 16 characters) and RT Image Description.
    write_file_meta : bool
        False writes a bare Implicit VR dataset without preamble and file meta, as some iView exports are.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ParameterError
        Not 2D, NaN or infinite values, non-positive spacing / SID / SAD, Elekta signal outside 0–65535,
        an unsupported quantity, empty patient identification.

    Examples
    --------
    >>> pd = np.zeros((768, 1024)); pd[300:468, 400:624] = 1.2
    >>> write_rtimage("pd.dcm", pd, pixel_spacing_mm=0.392, sid_mm=1500)  # doctest: +SKIP
    """
    values = np.asarray(array, dtype=np.float64)
    if values.ndim != 2:
        raise ParameterError(f"array must be 2D [row, column], got shape {values.shape}")
    if values.size == 0:
        raise ParameterError("array must not be empty")
    if not np.all(np.isfinite(values)):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ParameterError(f"array contains {bad} NaN or infinite values")
    if not isinstance(vendor, Vendor):
        raise ParameterError(f"vendor must be a Vendor, got {vendor!r}")
    if quantity not in (Quantity.PORTAL_DOSE, Quantity.EPID_SIGNAL):
        raise ParameterError(
            f"quantity must be Quantity.PORTAL_DOSE or Quantity.EPID_SIGNAL, got {quantity!r}"
        )
    spacing = np.broadcast_to(np.asarray(pixel_spacing_mm, dtype=float).reshape(-1), (2,)).astype(float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ParameterError(f"pixel_spacing_mm must be > 0 (row, column), got {spacing.tolist()}")
    for name, value in (("sid_mm", sid_mm), ("sad_mm", sad_mm)):
        if not np.isfinite(value) or value <= 0:
            raise ParameterError(f"{name} must be > 0, got {value}")
    gantry = _finite_angle("gantry_deg", gantry_deg)
    collimator = _finite_angle("collimator_deg", collimator_deg)
    couch = _finite_angle("couch_deg", couch_deg)
    rows, cols = values.shape
    if image_position_mm is None:
        position = (-(cols - 1) / 2 * spacing[1], (rows - 1) / 2 * spacing[0])
    else:
        pos = np.asarray(image_position_mm, dtype=float).reshape(-1)
        if pos.size != 2 or not np.all(np.isfinite(pos)):
            raise ParameterError(f"image_position_mm must be 2 finite values (x, y), got {pos.tolist()}")
        position = (float(pos[0]), float(pos[1]))

    manufacturer, model = _MANUFACTURERS[vendor]
    ds = new_instance(
        RTImageStorage,
        "RTIMAGE",
        patient_id=patient_id,
        patient_name=patient_name,
        study_instance_uid=study_instance_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        series_description=description or f"InTrEPID {quantity.value.replace('_', ' ')}",
        manufacturer=manufacturer,
        model_name=model,
    )
    image_type = ["DERIVED", "SECONDARY", "PORTAL"]
    if quantity is Quantity.PORTAL_DOSE:
        out_units = units or "Gy"
        raw, slope, intercept = _linear_encoding(values, negative_slope=False)
        rescale: tuple[float, float] | None = (slope, intercept)
        image_type.append(PORTAL_DOSE_IMAGE_TYPE)
    elif vendor is Vendor.ELEKTA:
        if units not in (None, "raw"):
            raise ParameterError(
                "units must be None or 'raw' for an Elekta iView EPID signal (inverted raw counts), "
                f"got {units!r}"
            )
        lo, hi = float(values.min()), float(values.max())
        if lo < -0.5 or hi > _TOP16 + 0.5:
            raise ParameterError(
                f"an Elekta EPID signal must lie in [0, 65535] counts (stored inverted in 16 bits), got "
                f"[{lo:.6g}, {hi:.6g}]"
            )
        out_units = "raw"
        raw = (_TOP16 - np.clip(np.rint(values), 0, _TOP16)).astype(np.uint16)
        rescale = None
        image_type = ["ORIGINAL", "PRIMARY", "PORTAL"]
    else:
        out_units = units or "CU"
        raw, slope, intercept = _linear_encoding(values, negative_slope=vendor is Vendor.VARIAN)
        rescale = (slope, intercept)
        if vendor is Vendor.VARIAN:
            image_type = ["ORIGINAL", "PRIMARY", "PORTAL", "ACQUIRED_DOSE"]

    ds.ImageType = image_type
    ds.ConversionType = "SYN"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelIntensityRelationship = "LIN"
    if rescale is not None:
        ds.RescaleIntercept = format_number_as_ds(rescale[1])
        ds.RescaleSlope = format_number_as_ds(rescale[0])
        ds.RescaleType = out_units[:64]
    ds.RTImageLabel = (description or "INTREPID")[:16]
    if description:
        ds.RTImageDescription = description
    ds.ReportedValuesOrigin = "ACTUAL"
    ds.RTImagePlane = "NORMAL"
    ds.XRayImageReceptorTranslation = [0.0, 0.0, format_number_as_ds(float(-(sid_mm - sad_mm)))]
    ds.XRayImageReceptorAngle = 0.0
    ds.RTImageOrientation = [1, 0, 0, 0, -1, 0]
    ds.ImagePlanePixelSpacing = [
        format_number_as_ds(float(spacing[0])),
        format_number_as_ds(float(spacing[1])),
    ]
    ds.RTImagePosition = [format_number_as_ds(position[0]), format_number_as_ds(position[1])]
    ds.RadiationMachineName = model[:16]
    ds.RadiationMachineSAD = format_number_as_ds(float(sad_mm))
    ds.RTImageSID = format_number_as_ds(float(sid_mm))
    ds.PrimaryDosimeterUnit = "MU"
    if gantry is not None:
        ds.GantryAngle = format_number_as_ds(gantry)
    if collimator is not None:
        ds.BeamLimitingDeviceAngle = format_number_as_ds(collimator)
    if couch is not None:
        ds.PatientSupportAngle = format_number_as_ds(couch)
    if meterset is not None or exposure_time_ms is not None:
        exposure = Dataset()
        if meterset is not None:
            if not np.isfinite(meterset) or meterset < 0:
                raise ParameterError(f"meterset must be >= 0 MU, got {meterset}")
            exposure.MetersetExposure = format_number_as_ds(float(meterset))
        if exposure_time_ms is not None:
            if not np.isfinite(exposure_time_ms) or exposure_time_ms < 0:
                raise ParameterError(f"exposure_time_ms must be >= 0, got {exposure_time_ms}")
            exposure.ExposureTime = round(exposure_time_ms)
        ds.ExposureSequence = DicomSequence([exposure])
    if referenced_plan_uid:
        item = Dataset()
        item.ReferencedSOPClassUID = RTPlanStorage
        item.ReferencedSOPInstanceUID = referenced_plan_uid
        ds.ReferencedRTPlanSequence = DicomSequence([item])
    if referenced_beam_number is not None:
        ds.ReferencedBeamNumber = int(referenced_beam_number)
    ds.PixelData = raw.astype("<u2").tobytes()
    ds["PixelData"].VR = "OW"
    out = save_instance(ds, path, file_meta=write_file_meta)
    _log.info(
        "wrote RTIMAGE %s: %d x %d %s (%s, %s)", out, rows, cols, quantity.value, vendor.value, out_units
    )
    return out
