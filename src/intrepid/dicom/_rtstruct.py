"""Reading DICOM RT Structure Sets: ROIs, their contours, types and colours.

Only reading happens here; masks and meshes are made by :mod:`intrepid.dicom._structures` from the geometry
layer's rasteriser.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from intrepid.dicom._common import describe_tag, get_tag, read_dataset
from intrepid.dicom._validate import reader
from intrepid.errors import DicomError, IntrepidError

__all__ = ["ROI", "Contour", "ContourType", "RoiNotFoundError", "StructureSet", "read_rtstruct"]

_log = logging.getLogger(__name__)


class ContourType(enum.Enum):
    """Contour Geometric Type (3006,0042)."""

    POINT = "POINT"
    OPEN_PLANAR = "OPEN_PLANAR"
    OPEN_NONPLANAR = "OPEN_NONPLANAR"
    CLOSED_PLANAR = "CLOSED_PLANAR"
    CLOSEDPLANAR_XOR = "CLOSEDPLANAR_XOR"  #: DICOM 2020+: combine with the other contours by XOR


class RoiNotFoundError(IntrepidError, KeyError):
    """No ROI of that name (or number) in the structure set; the message lists the names available."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else ""


def _readonly(a: NDArray[np.float64]) -> NDArray[np.float64]:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Contour:
    """One contour of an ROI.

    Parameters
    ----------
    points_mm : ndarray, shape (n, 3)
        Contour Data (3006,0050) as world LPS points in mm (read-only).
    geometric_type : ContourType
        Contour Geometric Type (3006,0042).
    number : int or None
        Contour Number (3006,0048), when present.
    """

    points_mm: NDArray[np.float64]
    geometric_type: ContourType
    number: int | None = None

    @property
    def is_area(self) -> bool:
        """True for closed planar contours (the ones that enclose volume)."""
        return self.geometric_type in (ContourType.CLOSED_PLANAR, ContourType.CLOSEDPLANAR_XOR)

    @property
    def z_mm(self) -> float:
        """Mean z of the points in mm (the plane of an axial contour)."""
        return float(self.points_mm[:, 2].mean())


@dataclass(frozen=True, eq=False)
class ROI:
    """A region of interest of a structure set.

    Parameters
    ----------
    number : int
        ROI Number (3006,0022).
    name : str
        ROI Name (3006,0026).
    roi_type : str
        RT ROI Interpreted Type (3006,00A4) from the RT ROI Observations Sequence (``"PTV"``, ``"ORGAN"``,
        ``"EXTERNAL"``...); ``""`` when not given.
    color : tuple of 3 int or None
        ROI Display Color (3006,002A), RGB 0-255.
    contours : tuple of Contour
        All contours, in file order.
    frame_of_reference_uid : str or None
        Referenced Frame of Reference UID (3006,0024) of the ROI (or of the structure set).
    """

    number: int
    name: str
    roi_type: str
    color: tuple[int, int, int] | None
    contours: tuple[Contour, ...]
    frame_of_reference_uid: str | None = None

    @property
    def is_empty(self) -> bool:
        """True when the ROI has no contour points at all (e.g. an ROI created but never drawn)."""
        return all(c.points_mm.shape[0] == 0 for c in self.contours)

    @property
    def is_point(self) -> bool:
        """True when every contour is a POINT (an isocentre or marker ROI)."""
        return bool(self.contours) and all(c.geometric_type is ContourType.POINT for c in self.contours)

    @property
    def points_mm(self) -> NDArray[np.float64]:
        """Points of the POINT contours, shape (n, 3), mm (empty for ROIs without point contours)."""
        pts = [c.points_mm for c in self.contours if c.geometric_type is ContourType.POINT]
        return np.concatenate(pts) if pts else np.zeros((0, 3))

    @property
    def area_contours(self) -> tuple[Contour, ...]:
        """The closed planar contours (those that enclose volume)."""
        return tuple(c for c in self.contours if c.is_area and c.points_mm.shape[0] >= 3)

    @property
    def z_planes_mm(self) -> NDArray[np.float64]:
        """Sorted distinct z (mm) of the closed planar contours (planes closer than 0.01 mm merged)."""
        z = np.sort([c.z_mm for c in self.area_contours])
        if z.size == 0:
            return np.zeros(0)
        keep = np.r_[True, np.diff(z) > 0.01]
        return z[keep]

    @property
    def bounds_mm(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(min_xyz, max_xyz)`` of all contour points in mm; NaN for an empty ROI."""
        if self.is_empty:
            nan = np.full(3, np.nan)
            return nan, nan.copy()
        pts = np.concatenate([c.points_mm for c in self.contours])
        return pts.min(axis=0), pts.max(axis=0)

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts: name, number, type, colour, contour and plane counts, emptiness."""
        return {
            "number": self.number,
            "name": self.name,
            "type": self.roi_type,
            "color": list(self.color) if self.color else None,
            "contours": len(self.contours),
            "planes": int(self.z_planes_mm.size),
            "empty": self.is_empty,
            "point": self.is_point,
        }


@dataclass(frozen=True, eq=False)
class StructureSet:
    """An RT Structure Set.

    Parameters
    ----------
    rois : tuple of ROI
        In the order of the Structure Set ROI Sequence.
    frame_of_reference_uid : str or None
        Frame of Reference UID of the structure set (first Referenced Frame of Reference Sequence item).
    label, name : str
        Structure Set Label (3006,0002) and Name (3006,0004).
    sop_instance_uid : str
        SOP Instance UID (0008,0018).
    source : str
        The file read (for messages).
    """

    rois: tuple[ROI, ...]
    frame_of_reference_uid: str | None = None
    label: str = ""
    name: str = ""
    sop_instance_uid: str = ""
    source: str = field(default="")

    @property
    def names(self) -> tuple[str, ...]:
        """ROI names in file order."""
        return tuple(r.name for r in self.rois)

    def __iter__(self) -> Iterator[ROI]:
        return iter(self.rois)

    def __len__(self) -> int:
        return len(self.rois)

    def roi(self, name: str | int) -> ROI:
        """The ROI of that name (case-insensitive, surrounding blanks ignored) or ROI Number.

        Raises
        ------
        RoiNotFoundError
            No such ROI; the message lists the available names.
        """
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            for r in self.rois:
                if r.number == int(name):
                    return r
        else:
            key = str(name).strip().casefold()
            for r in self.rois:
                if r.name.strip().casefold() == key:
                    return r
        where = f"{self.source}: " if self.source else ""
        raise RoiNotFoundError(
            f"{where}no ROI {name!r} in the structure set; available: {', '.join(self.names) or '(none)'}"
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready description: frame of reference and the ROIs' :meth:`ROI.summary`."""
        return {
            "modality": "RTSTRUCT",
            "label": self.label,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "rois": [r.summary() for r in self.rois],
        }


def _contour_values(item: Dataset, path: Path, roi_name: str) -> NDArray[np.float64]:
    """Contour Data as floats, parsed straight from the raw DS text (pydicom's per-value conversion is
    ~50 times slower on large structure sets)."""
    elem = item.get_item("ContourData")
    if elem is None or elem.value is None:
        return np.zeros(0)
    raw = elem.value
    try:
        if isinstance(raw, (bytes, bytearray)):
            return np.array(bytes(raw).replace(b"\\", b" ").split(), dtype=float)
        return np.asarray(raw, dtype=float).reshape(-1)
    except ValueError as exc:
        raise DicomError(
            f"{path}: ROI {roi_name!r}: {describe_tag('ContourData')} holds a value that is not a number"
        ) from exc


def _contour(item: Dataset, path: Path, roi_name: str) -> Contour:
    gtype_raw = str(get_tag(item, "ContourGeometricType", "CLOSED_PLANAR")).strip().upper()
    try:
        gtype = ContourType(gtype_raw)
    except ValueError as exc:
        raise DicomError(
            f"{path}: ROI {roi_name!r}: {describe_tag('ContourGeometricType')} is {gtype_raw!r}, expected "
            f"one of {', '.join(t.value for t in ContourType)}"
        ) from exc
    values = _contour_values(item, path, roi_name)
    if values.size % 3:
        raise DicomError(
            f"{path}: ROI {roi_name!r}: {describe_tag('ContourData')} has {values.size} values, "
            "expected a multiple of 3 (x, y, z triplets)"
        )
    pts = values.reshape(-1, 3)
    if not np.all(np.isfinite(pts)):
        raise DicomError(f"{path}: ROI {roi_name!r}: {describe_tag('ContourData')} holds NaN or infinity")
    declared = get_tag(item, "NumberOfContourPoints")
    if declared is not None and int(declared) != pts.shape[0]:
        _log.warning(
            "%s: ROI %r: NumberOfContourPoints is %s but ContourData holds %d points; using the data",
            path, roi_name, declared, pts.shape[0],
        )
    number = get_tag(item, "ContourNumber")
    return Contour(_readonly(np.ascontiguousarray(pts)), gtype, None if number is None else int(number))


@reader
def read_rtstruct(path: str | os.PathLike[str]) -> StructureSet:
    """Read a DICOM RT Structure Set.

    Parameters
    ----------
    path : path-like
        An RTSTRUCT file.

    Returns
    -------
    StructureSet
        ROIs with their contours (world LPS, mm), RT ROI Interpreted Types and colours. ROIs without a
        contour item (never drawn) are kept, with ``is_empty`` True.

    Raises
    ------
    DicomError
        Missing or unreadable file, Modality not RTSTRUCT, malformed Contour Data, an ROI Contour item that
        references an ROI Number absent from the Structure Set ROI Sequence.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> ss = read_rtstruct(get_testdata_file("rtstruct.dcm"))
    >>> ss.roi("PATIENT").roi_type, len(ss.roi("patient").contours)
    ('EXTERNAL', 3)
    """
    p = Path(path)
    ds = read_dataset(p, modality="RTSTRUCT")
    try:
        return _parse(ds, p)
    except (DicomError, RoiNotFoundError):
        raise
    except Exception as exc:  # pydicom raises assorted errors on truncated nested data
        raise DicomError(f"{p}: truncated or corrupt RT Structure Set ({type(exc).__name__}: {exc})") from exc


def _parse(ds: Dataset, p: Path) -> StructureSet:
    for_uid = None
    for item in ds.get("ReferencedFrameOfReferenceSequence", []):
        if get_tag(item, "FrameOfReferenceUID"):
            for_uid = str(item.FrameOfReferenceUID)
            break
    if for_uid is None and get_tag(ds, "FrameOfReferenceUID"):
        for_uid = str(ds.FrameOfReferenceUID)
    if "StructureSetROISequence" not in ds:
        raise DicomError(f"{p}: missing required tag {describe_tag('StructureSetROISequence')}")

    types: dict[int, str] = {}
    for obs in ds.get("RTROIObservationsSequence", []):
        ref = get_tag(obs, "ReferencedROINumber")
        if ref is not None:
            types[int(ref)] = str(get_tag(obs, "RTROIInterpretedType", "")).strip()
    contour_items: dict[int, Dataset] = {}
    for item in ds.get("ROIContourSequence", []):
        ref = get_tag(item, "ReferencedROINumber")
        if ref is None:
            raise DicomError(f"{p}: ROI Contour item without {describe_tag('ReferencedROINumber')}")
        contour_items[int(ref)] = item

    rois = []
    known: set[int] = set()
    for item in ds.StructureSetROISequence:
        number_raw = get_tag(item, "ROINumber")
        if number_raw is None:
            raise DicomError(f"{p}: Structure Set ROI item without {describe_tag('ROINumber')}")
        number = int(number_raw)
        known.add(number)
        name = str(get_tag(item, "ROIName", f"ROI {number}")).strip()
        citem = contour_items.get(number)
        contours: tuple[Contour, ...] = ()
        color = None
        if citem is not None:
            contours = tuple(_contour(c, p, name) for c in citem.get("ContourSequence", []))
            col = get_tag(citem, "ROIDisplayColor")
            if col is not None and len(col) == 3:
                color = (int(col[0]), int(col[1]), int(col[2]))
        roi_for = get_tag(item, "ReferencedFrameOfReferenceUID")
        rois.append(ROI(number, name, types.get(number, ""), color, contours,
                        str(roi_for) if roi_for else for_uid))
    orphans = sorted(set(contour_items) - known)
    if orphans:
        raise DicomError(
            f"{p}: {describe_tag('ROIContourSequence')} references ROI Number(s) {orphans} that are not in "
            f"the {describe_tag('StructureSetROISequence')}"
        )
    _log.debug("%s: %d ROIs", p, len(rois))
    return StructureSet(
        rois=tuple(rois),
        frame_of_reference_uid=for_uid,
        label=str(get_tag(ds, "StructureSetLabel", "")),
        name=str(get_tag(ds, "StructureSetName", "")),
        sop_instance_uid=str(get_tag(ds, "SOPInstanceUID", "")),
        source=str(p),
    )
