"""Write a dose :class:`~intrepid.geometry.Volume` as a DICOM RT Dose file that 3D Slicer and TPSs load.

What makes an RTDOSE loadable (and what peers get wrong): RT Dose Storage SOP class, a Part 10 file with
preamble and file meta (Explicit VR Little Endian), SOP Instance UID equal to the Media Storage SOP Instance
UID, non-empty Patient Name and ID, one Study / Series / Frame of Reference, Image Position / Orientation,
Pixel Spacing as [row spacing, column spacing], a *relative* Grid Frame Offset Vector (first value 0) with
Frame Increment Pointer (0028,0009) pointing at it, and a Dose Grid Scaling that uses the unsigned 16- or
32-bit range so the quantisation error stays below ``max / (2**bits − 1) / 2``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import RTDoseStorage, RTPlanStorage
from pydicom.valuerep import format_number_as_ds

from intrepid.dicom._patient import new_instance, save_instance
from intrepid.dicom._rtdose import RTDose
from intrepid.errors import FrameOfReferenceError, GeometryError, ParameterError
from intrepid.geometry import Quantity, Volume

__all__ = ["DOSE_SUMMATION_TYPES", "DOSE_TYPES", "write_rtdose"]

_log = logging.getLogger(__name__)

#: Defined terms of Dose Summation Type (3004,000A).
DOSE_SUMMATION_TYPES = (
    "PLAN",
    "MULTI_PLAN",
    "PLAN_OVERVIEW",
    "FRACTION",
    "BEAM",
    "BRACHY",
    "FRACTION_SESSION",
    "BEAM_SESSION",
    "BRACHY_SESSION",
    "CONTROL_POINT",
    "RECORD",
)
#: Defined terms of Dose Type (3004,0004) that an unsigned grid can hold (ERROR needs signed values).
DOSE_TYPES = ("PHYSICAL", "EFFECTIVE")


def _ds_value(value: float) -> float:
    """``value`` as it reads back from a DS string (16 characters at most)."""
    return float(format_number_as_ds(float(value)))


def dose_grid_scaling(max_value: float, bits: int) -> float:
    """Dose Grid Scaling (exactly representable as DS) that maps ``max_value`` near the top of the range.

    The scaling is chosen so that ``max_value / scaling <= 2**bits - 1`` after the DS rounding.
    """
    top = float(2**bits - 1)
    if max_value <= 0:
        return 1.0
    scaling = _ds_value(max_value / (top - 1.0))
    while max_value / scaling > top:  # DS rounding went down; nudge up (one or two steps at most)
        scaling = _ds_value(scaling * (1 + 1e-9))
    return scaling


def _resolve_frame(
    volume: Volume, reference: RTDose | None, frame_of_reference_uid: str | None
) -> str | None:
    candidates = [
        ("frame_of_reference_uid", frame_of_reference_uid),
        ("reference.frame_of_reference_uid", reference.frame_of_reference_uid if reference else None),
        ("volume.frame_of_reference_uid", volume.frame_of_reference_uid),
    ]
    given = [(n, u) for n, u in candidates if u]
    for name, uid in given[1:]:
        if uid != given[0][1]:
            raise FrameOfReferenceError(
                f"{given[0][0]} {given[0][1]} differs from {name} {uid}; a dose cannot be written into "
                "another "
                "Frame of Reference without registration"
            )
    return given[0][1] if given else None


def write_rtdose(
    volume: Volume,
    path: str | os.PathLike[str],
    *,
    reference: RTDose | None = None,
    patient_id: str = "INTREPID",
    patient_name: str = "Anonymous^InTrEPID",
    study_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    summation_type: str = "PLAN",
    dose_type: str = "PHYSICAL",
    bits: int = 32,
    description: str = "",
) -> Path:
    """Write a 3D dose (or a 2D plane, as one frame) as an RT Dose file, atomically.

    Parameters
    ----------
    volume : Volume
        Dose in Gy (units ``"Gy"``; ``"cGy"`` is converted) or relative (``"relative"``), 3D
        ``[frame, row, column]`` or 2D ``[row, column]``; values must be finite and >= 0. Other quantities
        (gamma, masks) are written with Dose Units RELATIVE.
    path : path-like
        Output file; its folder must exist.
    reference : RTDose, optional
        A dose read from the same patient: its Patient ID / Name, Study Instance UID, Frame of Reference and
        Referenced RT Plan are reused (taking precedence over ``patient_id`` / ``patient_name``), so the new
        dose joins the same study in 3D Slicer or the TPS.
    patient_id, patient_name : str
        Non-empty patient identification (3D Slicer refuses empty ones).
    study_instance_uid : str, optional
        Study to join (new by default, or the reference's).
    frame_of_reference_uid : str, optional
        Frame of Reference UID; defaults to the reference's, then the volume's, then a new one. Conflicting
        values raise :class:`FrameOfReferenceError`.
    summation_type : str
        Dose Summation Type (3004,000A): one of :data:`DOSE_SUMMATION_TYPES`.
    dose_type : str
        Dose Type (3004,0004): ``"PHYSICAL"`` or ``"EFFECTIVE"``.
    bits : int
        16 or 32: unsigned integer width; the relative quantisation step is ``1 / (2**bits − 2)`` of the max.
    description : str
        Series Description (0008,103E).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ParameterError
        Negative, NaN or infinite doses; unknown units, summation or dose type; bits not 16 or 32; empty
        patient identification.
    GeometryError
        A grid whose slice axis is not the normal of its rows and columns.
    FrameOfReferenceError
        Conflicting Frame of Reference UIDs.

    Examples
    --------
    >>> from intrepid.geometry import Grid, Quantity, Volume
    >>> dose = Volume(np.ones((2, 3, 4)), Grid((2, 3, 4), (0, 0, 0), (2.5, 2.5, 3)), Quantity.DOSE, "Gy")
    >>> write_rtdose(dose, "dose.dcm")  # doctest: +SKIP
    """
    if not isinstance(volume, Volume):
        raise ParameterError(f"volume must be an intrepid Volume, got {type(volume).__name__}")
    if bits not in (16, 32):
        raise ParameterError(f"bits must be 16 or 32, got {bits}")
    if summation_type not in DOSE_SUMMATION_TYPES:
        raise ParameterError(
            f"summation_type must be one of {', '.join(DOSE_SUMMATION_TYPES)}, got {summation_type!r}"
        )
    if dose_type not in DOSE_TYPES:
        raise ParameterError(f"dose_type must be PHYSICAL or EFFECTIVE, got {dose_type!r}")
    volume.check_finite("volume (dose)")
    values = np.asarray(volume.array, dtype=np.float64)
    if values.size and float(values.min()) < 0:
        raise ParameterError(
            f"dose must be >= 0 everywhere, got a minimum of {float(values.min()):.6g} {volume.units}; "
            "an unsigned RT Dose grid cannot hold negative values"
        )
    units = volume.units.strip()
    if volume.quantity is Quantity.DOSE or units.lower() in ("gy", "cgy"):
        if units.lower() == "gy":
            dose_units = "GY"
        elif units.lower() == "cgy":
            dose_units, values = "GY", values * 0.01
        elif units.lower() in ("relative", "%", ""):
            dose_units = "RELATIVE"
        else:
            raise ParameterError(f"volume.units must be 'Gy', 'cGy' or 'relative' for a dose, got {units!r}")
    else:
        dose_units = "RELATIVE"
        _log.info(
            "writing a %s volume (units %r) as an RT Dose with Dose Units RELATIVE",
            volume.quantity.value,
            units,
        )

    grid = volume.grid
    direction = grid.direction_matrix
    i_dir, j_dir, k_dir = direction[:, 0], direction[:, 1], direction[:, 2]
    normal = np.cross(i_dir, j_dir)
    if volume.ndim == 3:
        values3 = values
        sign = float(np.dot(k_dir, normal))
        if abs(abs(sign) - 1.0) > 1e-4:
            raise GeometryError(
                f"the slice axis {np.round(k_dir, 6).tolist()} is not normal to the rows and columns; "
                "an RT Dose "
                "grid needs frames stacked along the normal"
            )
        offsets = [sign * grid.spacing_mm[2] * k for k in range(grid.shape[0])]
    else:
        values3 = values[None]
        offsets = [0.0]
    frames, rows, cols = values3.shape

    frame_uid = _resolve_frame(volume, reference, frame_of_reference_uid)
    if reference is not None:
        patient_id = reference.patient_id or patient_id
        patient_name = reference.patient_name or patient_name
        study_instance_uid = study_instance_uid or reference.study_instance_uid or None

    ds = new_instance(
        RTDoseStorage,
        "RTDOSE",
        patient_id=patient_id,
        patient_name=patient_name,
        study_instance_uid=study_instance_uid,
        frame_of_reference_uid=frame_uid,
        series_description=description or "InTrEPID dose",
    )
    top = 2**bits - 1
    maximum = float(values3.max()) if values3.size else 0.0
    scaling = dose_grid_scaling(maximum, bits)
    stored = np.clip(np.rint(values3 / scaling), 0, top).astype(np.uint32 if bits == 32 else np.uint16)

    ds.SliceThickness = format_number_as_ds(float(grid.spacing_mm[2])) if volume.ndim == 3 else ""
    ds.ImagePositionPatient = [format_number_as_ds(float(v)) for v in grid.origin_mm]
    ds.ImageOrientationPatient = [format_number_as_ds(float(v)) for v in (*i_dir, *j_dir)]
    ds.PixelSpacing = [
        format_number_as_ds(float(grid.spacing_mm[1])),
        format_number_as_ds(float(grid.spacing_mm[0])),
    ]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = Tag("GridFrameOffsetVector")
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.DoseUnits = dose_units
    ds.DoseType = dose_type
    ds.DoseSummationType = summation_type
    ds.GridFrameOffsetVector = [format_number_as_ds(float(o)) for o in offsets]
    ds.DoseGridScaling = format_number_as_ds(scaling)
    if reference is not None and reference.referenced_plan_uid:
        item = Dataset()
        item.ReferencedSOPClassUID = RTPlanStorage
        item.ReferencedSOPInstanceUID = reference.referenced_plan_uid
        if reference.referenced_fraction_group_number is not None:
            fg = Dataset()
            fg.ReferencedFractionGroupNumber = reference.referenced_fraction_group_number
            if reference.referenced_beam_numbers and summation_type in (
                "BEAM",
                "BEAM_SESSION",
                "CONTROL_POINT",
            ):
                beams = []
                for number in reference.referenced_beam_numbers:
                    b = Dataset()
                    b.ReferencedBeamNumber = number
                    beams.append(b)
                fg.ReferencedBeamSequence = DicomSequence(beams)
            item.ReferencedFractionGroupSequence = DicomSequence([fg])
        ds.ReferencedRTPlanSequence = DicomSequence([item])
    ds.PixelData = np.ascontiguousarray(stored).astype(stored.dtype.newbyteorder("<"), copy=False).tobytes()
    ds["PixelData"].VR = "OW"
    out = save_instance(ds, path)
    _log.info(
        "wrote RTDOSE %s: %d x %d x %d, max %.6g %s, Dose Grid Scaling %s",
        out,
        frames,
        rows,
        cols,
        maximum,
        dose_units,
        ds.DoseGridScaling,
    )
    return out
