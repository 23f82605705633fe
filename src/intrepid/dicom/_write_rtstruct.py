"""Write an RT Structure Set from binary masks or explicit planar contours."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import RTStructureSetStorage

from intrepid.dicom._patient import new_instance, save_instance
from intrepid.dicom._write_ct import DicomSeriesInfo
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Volume

__all__ = ["StructureDefinition", "mask_to_contours", "write_rtstruct"]

_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass(frozen=True)
class StructureDefinition:
    """One ROI to write: a binary mask on the CT grid, or closed planar contours in mm (LPS).

    Parameters
    ----------
    name : str
        ROI Name (3006,0026).
    mask : Volume, optional
        Boolean mask on an axis-aligned grid; its contours are traced at the 0.5 level on every slice.
    contours : sequence of (n, 3) arrays
        Closed planar contours in mm, used when ``mask`` is None.
    roi_type : str
        RT ROI Interpreted Type (EXTERNAL, PTV, CTV, GTV, ORGAN, AVOIDANCE...).
    color_rgb : tuple of 3 int
        ROI Display Color.
    """

    name: str
    mask: Volume | None = None
    contours: tuple[NDArray[np.float64], ...] = field(default_factory=tuple)
    roi_type: str = "ORGAN"
    color_rgb: tuple[int, int, int] = (255, 0, 0)


def mask_to_contours(mask: Volume) -> list[NDArray[np.float64]]:
    """Closed planar contours (mm, LPS) around a 3D boolean mask, slice by slice (marching squares).

    Contours go through the voxel-centre grid at the half-way points, so the enclosed area of a blob of
    ``n`` voxels is close to ``n`` pixel areas (slightly less at corners).
    """
    from skimage import measure

    if mask.ndim != 3:
        raise ParameterError(f"mask must be 3D, got {mask.ndim}D")
    if not mask.grid.is_axis_aligned:
        raise GeometryError("mask_to_contours needs an axis-aligned grid")
    arr = np.asarray(mask.array, dtype=float)
    contours: list[NDArray[np.float64]] = []
    for k in range(arr.shape[0]):
        plane = arr[k]
        if not plane.any():
            continue
        padded = np.pad(plane, 1)
        for c in measure.find_contours(padded, 0.5):
            rows, cols = c[:, 0] - 1.0, c[:, 1] - 1.0
            if len(c) < 4:
                continue
            pts = mask.grid.index_to_world(np.column_stack([cols, rows, np.full(len(c), float(k))]))
            if np.allclose(pts[0], pts[-1]):
                pts = pts[:-1]
            contours.append(pts)
    return contours


def write_rtstruct(
    path: str | os.PathLike[str],
    structures: Sequence[StructureDefinition],
    series: DicomSeriesInfo,
    *,
    patient_name: str = "Anonymous^InTrEPID",
    label: str = "InTrEPID",
) -> Path:
    """Write an RT Structure Set that references a CT series written by :func:`write_ct_series`.

    Parameters
    ----------
    path : path-like
        Output file (written atomically).
    structures : sequence of StructureDefinition
        ROIs in order; they are numbered from 1.
    series : DicomSeriesInfo
        The referenced CT series (study, frame of reference and image UIDs).
    patient_name : str
        Patient Name; the ID comes from ``series``.
    label : str
        Structure Set Label.
    """
    if not structures:
        raise ParameterError("structures must hold at least one ROI")
    names = [s.name for s in structures]
    if len(set(names)) != len(names):
        raise ParameterError(f"ROI names must be unique, got {names}")
    ds = new_instance(
        RTStructureSetStorage,
        "RTSTRUCT",
        patient_id=series.patient_id,
        patient_name=patient_name,
        study_instance_uid=series.study_instance_uid,
        frame_of_reference_uid=series.frame_of_reference_uid,
        series_description=label,
    )
    ds.SeriesNumber = 2
    ds.StructureSetLabel = label
    ds.StructureSetDate = ds.StudyDate
    ds.StructureSetTime = ds.StudyTime

    contour_images = DicomSequence()
    for uid in series.sop_instance_uids:
        item = Dataset()
        item.ReferencedSOPClassUID = _CT_IMAGE_STORAGE
        item.ReferencedSOPInstanceUID = uid
        contour_images.append(item)
    rt_series = Dataset()
    rt_series.SeriesInstanceUID = series.series_instance_uid
    rt_series.ContourImageSequence = contour_images
    rt_study = Dataset()
    rt_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    rt_study.ReferencedSOPInstanceUID = series.study_instance_uid
    rt_study.RTReferencedSeriesSequence = DicomSequence([rt_series])
    ref_for = Dataset()
    ref_for.FrameOfReferenceUID = series.frame_of_reference_uid
    ref_for.RTReferencedStudySequence = DicomSequence([rt_study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([ref_for])

    roi_seq, contour_seq, obs_seq = DicomSequence(), DicomSequence(), DicomSequence()
    for number, s in enumerate(structures, start=1):
        if s.mask is not None:
            if s.mask.frame_of_reference_uid not in (None, series.frame_of_reference_uid):
                raise ParameterError(f"ROI {s.name!r}: mask Frame of Reference differs from the CT series")
            polygons = mask_to_contours(s.mask)
        else:
            polygons = [np.asarray(c, dtype=float) for c in s.contours]
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = series.frame_of_reference_uid
        roi.ROIName = s.name
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        roi_seq.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = list(s.color_rgb)
        items = DicomSequence()
        for poly in polygons:
            if poly.ndim != 2 or poly.shape[1] != 3 or len(poly) < 3:
                raise ParameterError(f"ROI {s.name!r}: each contour must be an (n >= 3, 3) array in mm")
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(poly)
            c.ContourData = [f"{v:.4f}" for v in poly.reshape(-1)]
            items.append(c)
        if len(items):
            rc.ContourSequence = items
        contour_seq.append(rc)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = s.roi_type
        obs.ROIInterpreter = ""
        obs_seq.append(obs)
    ds.StructureSetROISequence = roi_seq
    ds.ROIContourSequence = contour_seq
    ds.RTROIObservationsSequence = obs_seq

    return save_instance(ds, path)
