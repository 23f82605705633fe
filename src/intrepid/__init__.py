"""InTrEPID: radiotherapy dose verification and beam-device design.

Sub-packages (imported lazily, so that ``import intrepid`` stays light and never imports PyTorch):

- :mod:`intrepid.geometry` grids, volumes, IEC 61217 and DICOM patient frames, resampling;
- :mod:`intrepid.dicom` DICOM RT readers and writers, NIfTI / NRRD / npz;
- :mod:`intrepid.analysis` gamma index, DVH, isodoses, dose statistics;
- :mod:`intrepid.physics` ray tracing, beam and EPID models; :mod:`intrepid.dose` the photon dose engine;
- :mod:`intrepid.simulate` synthetic phantoms and EPID / portal-dose data sets;
- :mod:`intrepid.transit` 2D EPID transit dosimetry; :mod:`intrepid.learn` networks and training;
- :mod:`intrepid.devices` proton apertures and range compensators;
- :mod:`intrepid.invivo` 3D in-vivo dosimetry;
- :mod:`intrepid.report` figures and HTML reports; :mod:`intrepid.cli` the ``intrepid`` command;
  :mod:`intrepid.app` the review web application.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from intrepid._runtime import prefer_workqueue_threading
from intrepid.errors import (
    DicomError,
    FrameOfReferenceError,
    GeometryError,
    IntrepidError,
    ModelError,
    ParameterError,
)

__version__ = "0.1.0"

prefer_workqueue_threading()

_SUBPACKAGES = (
    "analysis",
    "app",
    "cli",
    "devices",
    "dicom",
    "dose",
    "geometry",
    "invivo",
    "learn",
    "physics",
    "report",
    "simulate",
    "transit",
)

__all__ = [
    "DicomError",
    "FrameOfReferenceError",
    "GeometryError",
    "IntrepidError",
    "ModelError",
    "ParameterError",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from intrepid import analysis, dicom, geometry  # noqa: F401


def __getattr__(name: str) -> Any:
    """Import a sub-package on first access (``intrepid.dicom``), keeping ``import intrepid`` cheap."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"intrepid.{name}")
    raise AttributeError(f"module 'intrepid' has no attribute {name!r}")
