"""Grids, volumes, machine (IEC 61217) and patient (DICOM LPS) frames, and resampling.

This layer imports nothing else of InTrEPID except :mod:`intrepid.errors`.
"""

from intrepid.geometry._grid import Grid
from intrepid.geometry._volume import Quantity, Volume

__all__ = [
    "Grid",
    "Quantity",
    "Volume",
]
