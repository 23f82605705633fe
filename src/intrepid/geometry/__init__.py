"""Grids, volumes, machine (IEC 61217) and patient (DICOM LPS) frames, and resampling.

This layer imports nothing else of InTrEPID except :mod:`intrepid.errors`.
"""

import importlib
from typing import TYPE_CHECKING, Any

from intrepid.geometry._frames import (
    DetectorPlane,
    Frame,
    MachineAngles,
    PatientPosition,
    beam_direction,
    detector_plane,
    frame_transform,
    project_to_plane,
    source_position_mm,
)
from intrepid.geometry._grid import Grid
from intrepid.geometry._mesh import TriangleMesh, isosurface_mesh
from intrepid.geometry._rasterize import end_cap_slabs, polygon_stack_mask, polygon_stack_occupancy
from intrepid.geometry._transform import RigidTransform
from intrepid.geometry._volume import Quantity, Volume

if TYPE_CHECKING:  # pragma: no cover
    from intrepid.geometry._resample import Interpolation, resample, sample_points

# Resampling needs numba (about 0.3 s to import): loaded on first use.
_LAZY = {"Interpolation", "resample", "sample_points"}


def __getattr__(name: str) -> Any:
    """Import :mod:`intrepid.geometry._resample` (and numba) on first access to its names."""
    if name in _LAZY:
        return getattr(importlib.import_module("intrepid.geometry._resample"), name)
    raise AttributeError(f"module 'intrepid.geometry' has no attribute {name!r}")


__all__ = [
    "DetectorPlane",
    "Frame",
    "Grid",
    "Interpolation",
    "MachineAngles",
    "PatientPosition",
    "Quantity",
    "RigidTransform",
    "TriangleMesh",
    "Volume",
    "beam_direction",
    "detector_plane",
    "end_cap_slabs",
    "frame_transform",
    "isosurface_mesh",
    "polygon_stack_mask",
    "polygon_stack_occupancy",
    "project_to_plane",
    "resample",
    "sample_points",
    "source_position_mm",
]
