"""Write a CT volume as a DICOM CT Image series (one file per slice), e.g. for synthetic phantoms."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.uid import CTImageStorage

from intrepid.dicom._common import new_uid
from intrepid.dicom._patient import new_instance, save_instance
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Quantity, Volume

__all__ = ["DicomSeriesInfo", "write_ct_series"]


@dataclass(frozen=True)
class DicomSeriesInfo:
    """UIDs of a written series, so that later objects (RTSTRUCT, RTDOSE, RTPLAN) can reference it."""

    folder: Path
    files: tuple[Path, ...]
    sop_instance_uids: tuple[str, ...]
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str
    patient_id: str


def write_ct_series(
    volume: Volume,
    folder: str | os.PathLike[str],
    *,
    patient_id: str = "INTREPID",
    patient_name: str = "Anonymous^InTrEPID",
    study_instance_uid: str | None = None,
    series_description: str = "InTrEPID CT",
) -> DicomSeriesInfo:
    """Write a CT volume (HU) as one DICOM CT Image file per slice into a new folder.

    The folder is filled in a temporary sibling and renamed at the end, so a failure leaves nothing behind.

    Parameters
    ----------
    volume : Volume
        3D, Quantity.CT_NUMBER, values in HU (stored as signed 16-bit, Rescale Slope 1, Intercept 0).
    folder : path-like
        Destination folder; must not exist or be empty.
    patient_id, patient_name : str
        Non-empty identifiers written in every file.
    study_instance_uid : str, optional
        Study to attach the series to (new by default).
    series_description : str
        Series Description (0008,103E).
    """
    if volume.ndim != 3:
        raise ParameterError(f"write_ct_series needs a 3D volume, got {volume.ndim}D")
    if volume.quantity is not Quantity.CT_NUMBER:
        raise ParameterError(f"write_ct_series needs Quantity.CT_NUMBER, got {volume.quantity.name}")
    volume.check_finite("CT volume")
    dest = Path(folder)
    if dest.exists() and any(dest.iterdir()):
        raise ParameterError(f"{dest}: output folder exists and is not empty")
    g = volume.grid
    d = g.direction_matrix
    if np.dot(np.cross(d[:, 0], d[:, 1]), d[:, 2]) < 0.999:
        raise GeometryError("CT slices must be stacked along the row x column normal (right-handed grid)")
    hu = np.rint(np.asarray(volume.array, dtype=float))
    if hu.min() < -32768 or hu.max() > 32767:
        raise ParameterError("CT values must fit in signed 16 bits (-32768 .. 32767 HU)")
    study_uid = study_instance_uid or new_uid()
    series_uid = new_uid()
    for_uid = volume.frame_of_reference_uid or new_uid()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=dest.parent))
    files: list[Path] = []
    uids: list[str] = []
    try:
        for k in range(g.shape[0]):
            name = f"CT.{k + 1:04d}.dcm"
            ds = new_instance(
                CTImageStorage,
                "CT",
                patient_id=patient_id,
                patient_name=patient_name,
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                frame_of_reference_uid=for_uid,
                series_description=series_description,
            )
            ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
            ds.InstanceNumber = k + 1
            position = g.index_to_world([0.0, 0.0, float(k)])
            ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
            ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*d[:, 0], *d[:, 1])]
            ds.PixelSpacing = [f"{g.spacing_mm[1]:.6f}", f"{g.spacing_mm[0]:.6f}"]
            ds.SliceThickness = f"{g.spacing_mm[2]:.6f}"
            ds.SliceLocation = f"{float(np.dot(position, d[:, 2])):.6f}"
            ds.KVP = "120"
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows, ds.Columns = g.shape[1], g.shape[2]
            ds.BitsAllocated = 16
            ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 1
            ds.RescaleIntercept = "0"
            ds.RescaleSlope = "1"
            ds.RescaleType = "HU"
            ds.WindowCenter = "40"
            ds.WindowWidth = "400"
            ds.PixelData = hu[k].astype("<i2").tobytes()
            save_instance(ds, tmp / name)
            files.append(dest / name)
            uids.append(str(ds.SOPInstanceUID))
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return DicomSeriesInfo(dest, tuple(files), tuple(uids), series_uid, study_uid, for_uid, patient_id)
