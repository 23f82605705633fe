"""The exception hierarchy of InTrEPID.

Every error raised on purpose by the library derives from :class:`IntrepidError`, so a caller (and the CLI)
can catch them in one place. Messages name the file, the DICOM tag or the parameter, the value seen and the
rule it broke.
"""

from __future__ import annotations

__all__ = [
    "DicomError",
    "FrameOfReferenceError",
    "GeometryError",
    "IntrepidError",
    "ModelError",
    "ParameterError",
]


class IntrepidError(Exception):
    """Base class of every error that InTrEPID raises deliberately."""


class ParameterError(IntrepidError, ValueError):
    """A parameter is outside its allowed range or of the wrong kind (``dta_mm must be > 0, got -1``)."""


class GeometryError(IntrepidError, ValueError):
    """Geometry that cannot be handled: oblique or inconsistent grids, mismatched shapes."""


class FrameOfReferenceError(GeometryError):
    """Two objects live in different DICOM Frames of Reference and no registration was given."""


class DicomError(IntrepidError, ValueError):
    """A DICOM file is unreadable, truncated, of the wrong modality or lacks a required tag."""


class ModelError(IntrepidError, ValueError):
    """A model file is missing, unsafe (pickle) or inconsistent with its description."""
