"""Read DICOM RT Dose into an :class:`RTDose`: the dose grid in Gy (or relative) with its provenance.

Two conventions of the Grid Frame Offset Vector (3004,000C) coexist in the standard (PS3.3 C.8.8.3.2):
*relative* offsets whose first element is 0 (positions along the slice normal from Image Position
(Patient)), and *absolute* offsets whose first element equals the z of Image Position (Patient) (allowed
for axial grids only). Peer tools that assume the first silently misplace every frame of the second; here
the convention is detected and recorded in ``metadata["grid_frame_offset_convention"]``. Dose Grid Scaling
(3004,000E) is always applied.
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
from pydicom.multival import MultiValue

from intrepid.dicom._common import describe_tag, get_tag, read_dataset, require_tag
from intrepid.dicom._validate import (
    MAX_DOSE_GY,
    check_array_budget,
    check_finite_array,
    check_orientation,
    reader,
)
from intrepid.errors import DicomError, GeometryError
from intrepid.geometry import Grid, Quantity, Volume

__all__ = ["GridOffsetConvention", "RTDose", "read_rtdose"]

_log = logging.getLogger(__name__)

#: Frame offsets may deviate from a uniform lattice by this much (mm) before the grid counts as irregular.
OFFSET_TOLERANCE_MM = 0.01


class GridOffsetConvention(enum.Enum):
    """How the Grid Frame Offset Vector (3004,000C) of a file was written."""

    RELATIVE = "relative"  #: first element 0, offsets from Image Position (Patient) along the normal
    ABSOLUTE = "absolute"  #: first element equals Image Position (Patient) z; absolute z positions
    ABSENT = "absent"  #: single-frame file without offsets


@dataclass(frozen=True, eq=False)
class RTDose:
    """An RT Dose object: the dose volume and the facts that say what it is.

    Attributes
    ----------
    volume : Volume
        3D dose ``[frame, row, column]`` with :attr:`Quantity.DOSE`, units ``"Gy"`` or ``"relative"``, Dose
        Grid
        Scaling applied (float64). Single-frame files give one slice. The k axis runs along increasing
        position on the slice normal (frames stored in decreasing order are reversed).
    dose_units : str
        Dose Units (3004,0002) as stored: ``"GY"`` or ``"RELATIVE"``.
    dose_type : str
        Dose Type (3004,0004): ``"PHYSICAL"``, ``"EFFECTIVE"`` or ``"ERROR"``.
    summation_type : str
        Dose Summation Type (3004,000A): ``"PLAN"``, ``"BEAM"``, ``"FRACTION"``...
    referenced_plan_uid : str or None
        SOP Instance UID of the referenced RT Plan.
    referenced_fraction_group_number : int or None
        Referenced Fraction Group Number (300C,0022), where present.
    referenced_beam_numbers : tuple of int
        Referenced Beam Numbers (300C,0006) (BEAM summations).
    sop_instance_uid, series_instance_uid, study_instance_uid : str
        The object's UIDs.
    grid_frame_offset_convention : GridOffsetConvention
        Which convention the file used.
    dose_grid_scaling : float
        Dose Grid Scaling (3004,000E) of the file.
    patient_id, patient_name : str
        Patient identification, so that a written dose can join the same patient and study
        (see :func:`~intrepid.dicom.write_rtdose`); never copied into ``volume.metadata``.
    source : str
        The file read.
    """

    volume: Volume
    dose_units: str
    dose_type: str
    summation_type: str
    referenced_plan_uid: str | None = None
    referenced_fraction_group_number: int | None = None
    referenced_beam_numbers: tuple[int, ...] = ()
    sop_instance_uid: str = ""
    series_instance_uid: str = ""
    study_instance_uid: str = ""
    grid_frame_offset_convention: GridOffsetConvention = GridOffsetConvention.RELATIVE
    dose_grid_scaling: float = 1.0
    patient_id: str = field(default="", repr=False)
    patient_name: str = field(default="", repr=False)
    source: str = ""

    def __repr__(self) -> str:
        return (
            f"RTDose(shape={self.volume.shape}, units={self.volume.units!r}, max={self.max_dose:.6g}, "
            f"dose_type={self.dose_type!r}, summation_type={self.summation_type!r}, "
            f"convention={self.grid_frame_offset_convention.value!r}, source={self.source!r})"
        )

    @property
    def frame_of_reference_uid(self) -> str | None:
        """Frame of Reference UID (0020,0052) of the dose grid."""
        return self.volume.frame_of_reference_uid

    @property
    def max_dose(self) -> float:
        """Largest value of the grid (Gy or relative)."""
        return float(np.max(self.volume.array))


def _floats(ds: Any, keyword: str, path: Path, count: int | None = None) -> NDArray[np.float64]:
    value = require_tag(ds, keyword, path)
    values = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    try:
        arr = np.asarray([float(v) for v in values], dtype=float)
    except (TypeError, ValueError) as exc:
        raise DicomError(f"{path}: unreadable {describe_tag(keyword)} value {value!r} ({exc})") from exc
    if count is not None and arr.size != count:
        raise DicomError(f"{path}: {describe_tag(keyword)} must have {count} values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise DicomError(f"{path}: {describe_tag(keyword)} holds non-finite values {arr.tolist()}")
    return arr


def _frame_positions(
    ds: Any, path: Path, frames: int, position: NDArray[np.float64], orientation: NDArray[np.float64]
) -> tuple[NDArray[np.float64], GridOffsetConvention]:
    """Offsets of the frames along the slice normal, relative to Image Position (Patient)."""
    raw = ds.get("GridFrameOffsetVector")
    if raw is None or raw == "":
        if frames > 1:
            raise DicomError(
                f"{path}: missing required tag {describe_tag('GridFrameOffsetVector')} for {frames} frames"
            )
        return np.zeros(1), GridOffsetConvention.ABSENT
    offsets = _floats(ds, "GridFrameOffsetVector", path)
    if offsets.size < frames:
        raise DicomError(
            f"{path}: {describe_tag('GridFrameOffsetVector')} has {offsets.size} values for "
            f"{frames} frames (Number of Frames)"
        )
    if offsets.size > frames:
        _log.warning(
            "%s: %s has %d values for %d frame(s); using the first %d",
            path,
            describe_tag("GridFrameOffsetVector"),
            offsets.size,
            frames,
            frames,
        )
        offsets = offsets[:frames]
    tol = OFFSET_TOLERANCE_MM
    if abs(offsets[0]) <= tol:
        return offsets - offsets[0], GridOffsetConvention.RELATIVE
    if abs(offsets[0] - position[2]) <= tol:
        axial = np.allclose(orientation, [1, 0, 0, 0, 1, 0], atol=1e-4) or np.allclose(
            orientation, [-1, 0, 0, 0, -1, 0], atol=1e-4
        )
        if not axial:
            raise GeometryError(
                f"{path}: absolute {describe_tag('GridFrameOffsetVector')} (first value {offsets[0]} = Image "
                f"Position z) is only defined for axial grids, but {describe_tag('ImageOrientationPatient')} "
                f"is {orientation.tolist()}"
            )
        normal_z = float(np.cross(orientation[:3], orientation[3:])[2])
        _log.info("%s: Grid Frame Offset Vector holds absolute z positions", path)
        return (offsets - position[2]) * normal_z, GridOffsetConvention.ABSOLUTE
    raise DicomError(
        f"{path}: first value of {describe_tag('GridFrameOffsetVector')} is {offsets[0]}, which is neither 0 "
        f"(relative offsets) nor the Image Position (Patient) z {position[2]} (absolute positions)"
    )


def _referenced(ds: Any) -> tuple[str | None, int | None, tuple[int, ...]]:
    plan_uid = None
    group = None
    beams: list[int] = []
    seq = ds.get("ReferencedRTPlanSequence")
    if seq:
        item = seq[0]
        plan_uid = str(item.get("ReferencedSOPInstanceUID", "")) or None
        for fg in item.get("ReferencedFractionGroupSequence", []) or []:
            if fg.get("ReferencedFractionGroupNumber") not in (None, ""):
                group = int(fg.ReferencedFractionGroupNumber)
            for b in fg.get("ReferencedBeamSequence", []) or []:
                if b.get("ReferencedBeamNumber") not in (None, ""):
                    beams.append(int(b.ReferencedBeamNumber))
    return plan_uid, group, tuple(beams)


@reader
def read_rtdose(path: str | os.PathLike[str]) -> RTDose:
    """Read an RT Dose file (multi- or single-frame, any transfer syntax pydicom decodes).

    Parameters
    ----------
    path : path-like
        The RTDOSE file.

    Returns
    -------
    RTDose
        The dose volume (Gy or relative, Dose Grid Scaling applied) with units, type, summation type,
        references and the detected Grid Frame Offset Vector convention. ``volume.metadata`` has
        ``modality``, ``dose_units``, ``dose_type``, ``summation_type``, ``grid_frame_offset_convention``,
        ``frames_reversed``, ``dose_grid_scaling`` and ``source``.

    Raises
    ------
    DicomError
        Not an RTDOSE, a missing required tag (Dose Grid Scaling (3004,000E), Pixel Spacing, Image Position /
        Orientation, Grid Frame Offset Vector for several frames), unknown Dose Units, a truncated file.
    GeometryError
        Non-uniform frame offsets, or absolute offsets on a non-axial grid.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> dose = read_rtdose(get_testdata_file("rtdose.dcm"))
    >>> dose.volume.shape, dose.volume.units
    ((15, 10, 10), 'relative')
    """
    p = Path(path)
    ds = read_dataset(p, modality="RTDOSE")
    rows = int(require_tag(ds, "Rows", p))
    cols = int(require_tag(ds, "Columns", p))
    frames = int(get_tag(ds, "NumberOfFrames", 1))
    if frames < 1:
        raise DicomError(f"{p}: {describe_tag('NumberOfFrames')} must be >= 1, got {frames}")
    spacing = _floats(ds, "PixelSpacing", p, 2)
    if np.any(spacing <= 0):
        raise DicomError(f"{p}: {describe_tag('PixelSpacing')} must be > 0, got {spacing.tolist()}")
    position = _floats(ds, "ImagePositionPatient", p, 3)
    orientation = _floats(ds, "ImageOrientationPatient", p, 6)
    if "DoseGridScaling" not in ds or ds.DoseGridScaling in (None, ""):
        raise DicomError(
            f"{p}: missing required tag {describe_tag('DoseGridScaling')}; without it the stored integers "
            "cannot be converted to dose"
        )
    scaling = float(ds.DoseGridScaling)
    if not np.isfinite(scaling) or scaling <= 0:
        raise DicomError(f"{p}: {describe_tag('DoseGridScaling')} must be > 0, got {scaling}")
    units_tag = str(get_tag(ds, "DoseUnits", "")).upper()
    if units_tag == "GY":
        units, factor = "Gy", 1.0
    elif units_tag == "CGY":  # not a defined term, but seen in the wild
        units, factor = "Gy", 0.01
        _log.warning("%s: Dose Units 'CGY' is not a DICOM defined term; converting to Gy", p)
    elif units_tag == "RELATIVE":
        units, factor = "relative", 1.0
    else:
        raise DicomError(f"{p}: {describe_tag('DoseUnits')} is {units_tag!r}, expected 'GY' or 'RELATIVE'")

    offsets, convention = _frame_positions(ds, p, frames, position, orientation)

    check_array_budget((frames, rows, cols), 8, p, "the dose grid")
    try:
        stored = np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises assorted errors on truncated or odd pixel data
        raise DicomError(f"{p}: truncated or undecodable pixel data ({exc})") from exc
    if stored.ndim == 2:
        stored = stored[None]
    if stored.shape != (frames, rows, cols):
        raise DicomError(
            f"{p}: pixel data shape {stored.shape} does not match (Number of Frames, Rows, Columns) "
            f"{(frames, rows, cols)}"
        )
    dose = stored.astype(np.float64) * (scaling * factor)
    check_finite_array(dose, p, "the dose grid", limit=MAX_DOSE_GY if units == "Gy" else None)

    row_dir, col_dir = check_orientation(orientation, p, describe_tag("ImageOrientationPatient"))
    normal = np.cross(row_dir, col_dir)
    reversed_frames = False
    if frames >= 2:
        steps = np.diff(offsets)
        if np.any(np.abs(steps) <= OFFSET_TOLERANCE_MM) or not (np.all(steps > 0) or np.all(steps < 0)):
            raise GeometryError(
                f"{p}: {describe_tag('GridFrameOffsetVector')} is not strictly monotonic: {offsets.tolist()}"
            )
        if steps[0] < 0:
            dose = dose[::-1]
            offsets = offsets[::-1]
            reversed_frames = True
        frame_spacing = float((offsets[-1] - offsets[0]) / (frames - 1))
        lattice = offsets[0] + frame_spacing * np.arange(frames)
        deviation = float(np.max(np.abs(offsets - lattice)))
        if deviation > OFFSET_TOLERANCE_MM:
            raise GeometryError(
                f"{p}: non-uniform {describe_tag('GridFrameOffsetVector')} "
                f"(steps {np.round(np.diff(offsets), 4).tolist()}"
                f" mm); only regular dose grids are supported"
            )
        origin = position + offsets[0] * normal
    else:
        thickness = get_tag(ds, "SliceThickness")
        frame_spacing = float(thickness) if thickness is not None and float(thickness) > 0 else 1.0
        origin = position + offsets[0] * normal
    grid = Grid(
        shape=dose.shape,
        origin_mm=tuple(origin),
        spacing_mm=(float(spacing[1]), float(spacing[0]), frame_spacing),
        direction=tuple(np.column_stack([row_dir, col_dir, normal]).reshape(-1)),
    )
    plan_uid, group, beams = _referenced(ds)
    dose_type = str(get_tag(ds, "DoseType", ""))
    summation = str(get_tag(ds, "DoseSummationType", ""))
    for_uid = get_tag(ds, "FrameOfReferenceUID")
    metadata: dict[str, Any] = {
        "modality": "RTDOSE",
        "dose_units": units_tag,
        "dose_type": dose_type,
        "summation_type": summation,
        "grid_frame_offset_convention": convention.value,
        "frames_reversed": reversed_frames,
        "dose_grid_scaling": scaling,
        "sop_instance_uid": str(get_tag(ds, "SOPInstanceUID", "")),
        "source": str(p),
    }
    if plan_uid:
        metadata["referenced_plan_uid"] = plan_uid
    volume = Volume(
        np.ascontiguousarray(dose),
        grid,
        quantity=Quantity.DOSE,
        units=units,
        frame_of_reference_uid=str(for_uid) if for_uid else None,
        metadata=metadata,
    )
    return RTDose(
        volume=volume,
        dose_units=units_tag,
        dose_type=dose_type,
        summation_type=summation,
        referenced_plan_uid=plan_uid,
        referenced_fraction_group_number=group,
        referenced_beam_numbers=beams,
        sop_instance_uid=str(get_tag(ds, "SOPInstanceUID", "")),
        series_instance_uid=str(get_tag(ds, "SeriesInstanceUID", "")),
        study_instance_uid=str(get_tag(ds, "StudyInstanceUID", "")),
        grid_frame_offset_convention=convention,
        dose_grid_scaling=scaling,
        patient_id=str(get_tag(ds, "PatientID", "")),
        patient_name=str(get_tag(ds, "PatientName", "")),
        source=str(p),
    )
