"""Builders of small synthetic DICOM datasets (CT slices, RTDOSE, RTIMAGE) for tests.

Plain functions, importable by any test (``tests/dicom/conftest.py`` puts this folder on ``sys.path`` and
exposes the common ones as fixtures). They write files with pydicom directly, not with InTrEPID's writers,
so that reader tests do not depend on our own writers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RTDoseStorage,
    RTImageStorage,
    generate_uid,
)

__all__ = [
    "ct_slice_dataset",
    "rtdose_dataset",
    "rtimage_dataset",
    "save",
    "write_ct_series_files",
]


def _base(sop_class: str, modality: str, implicit: bool = False) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Test^Factory"
    ds.PatientID = "FACTORY"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def save(ds: Dataset, path: str | Path, *, file_meta: bool = True) -> Path:
    """Write ``ds`` to ``path``; ``file_meta=False``: a bare implicit-VR dataset (no preamble, no meta)."""
    p = Path(path)
    if file_meta:
        ds.save_as(p, enforce_file_format=True)
    else:
        bare = Dataset()
        bare.update(ds)
        pydicom.dcmwrite(p, bare, implicit_vr=True, little_endian=True)
    return p


def ct_slice_dataset(
    pixels: NDArray[np.integer],
    *,
    position_mm: Sequence[float] = (0.0, 0.0, 0.0),
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    pixel_spacing_mm: Sequence[float] = (1.0, 1.0),
    slope: float = 1.0,
    intercept: float = -1024.0,
    series_uid: str = "1.2.826.0.1.3680043.8.498.2",
    instance_number: int = 1,
    modality: str = "CT",
    slice_thickness_mm: float | None = 2.0,
) -> Dataset:
    """One CT Image slice with ``pixels`` (rows, columns) stored as signed 16-bit."""
    ds = _base(CTImageStorage, modality)
    arr = np.asarray(pixels, dtype=np.int16)
    ds.SeriesInstanceUID = series_uid
    ds.InstanceNumber = instance_number
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelSpacing = [float(v) for v in pixel_spacing_mm]
    ds.ImagePositionPatient = [float(v) for v in position_mm]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    if slice_thickness_mm is not None:
        ds.SliceThickness = slice_thickness_mm
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.PatientPosition = "HFS"
    ds.PixelData = arr.tobytes()
    return ds


def write_ct_series_files(
    folder: Path,
    volume_raw: NDArray[np.integer],
    *,
    origin_mm: Sequence[float] = (-10.0, -20.0, -30.0),
    pixel_spacing_mm: Sequence[float] = (1.0, 1.0),
    z_positions_mm: Sequence[float] | None = None,
    slice_spacing_mm: float = 2.0,
    shuffle_seed: int | None = 0,
    **kwargs: object,
) -> list[Path]:
    """Write ``volume_raw`` (slices, rows, columns) as one CT file per slice, named in shuffled order.

    Instance Numbers are deliberately scrambled (reverse order) so that a reader sorting by them fails.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n = volume_raw.shape[0]
    z = (
        [origin_mm[2] + k * slice_spacing_mm for k in range(n)]
        if z_positions_mm is None
        else list(z_positions_mm)
    )
    order = np.arange(n)
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(n)
    paths = []
    for name_index, k in enumerate(order):
        ds = ct_slice_dataset(
            volume_raw[k],
            position_mm=(origin_mm[0], origin_mm[1], z[k]),
            pixel_spacing_mm=pixel_spacing_mm,
            instance_number=n - int(k),
            **kwargs,  # type: ignore[arg-type]
        )
        paths.append(save(ds, folder / f"slice_{name_index:03d}.dcm"))
    return paths


def rtdose_dataset(
    dose_gy: NDArray[np.floating],
    *,
    position_mm: Sequence[float] = (-20.0, -30.0, -40.0),
    pixel_spacing_mm: Sequence[float] = (2.0, 2.5),
    offsets_mm: Sequence[float] | None = None,
    frame_spacing_mm: float = 3.0,
    absolute_offsets: bool = False,
    scaling: float = 1e-4,
    bits: int = 32,
    dose_units: str = "GY",
) -> Dataset:
    """A multi-frame RTDOSE holding ``dose_gy`` (frames, rows, columns), quantised with ``scaling``."""
    ds = _base(RTDoseStorage, "RTDOSE")
    arr = np.asarray(dose_gy, dtype=float)
    frames, rows, cols = arr.shape
    if offsets_mm is None:
        offsets_mm = [k * frame_spacing_mm for k in range(frames)]
    offsets = list(offsets_mm)
    if absolute_offsets:
        offsets = [float(position_mm[2]) + o for o in offsets]
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = pydicom.tag.Tag("GridFrameOffsetVector")
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [float(v) for v in pixel_spacing_mm]
    ds.ImagePositionPatient = [float(v) for v in position_mm]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.DoseUnits = dose_units
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    ds.GridFrameOffsetVector = offsets
    ds.DoseGridScaling = scaling
    dtype = np.uint32 if bits == 32 else np.uint16
    ds.PixelData = np.rint(arr / scaling).astype(dtype).tobytes()
    return ds


def rtimage_dataset(
    raw: NDArray[np.integer],
    *,
    manufacturer: str = "",
    image_plane_spacing_mm: Sequence[float] | None = (0.4, 0.4),
    sid_mm: float | None = 1600.0,
    sad_mm: float | None = 1000.0,
    gantry_deg: float | None = 90.0,
    slope: float | None = None,
    intercept: float | None = None,
    rescale_type: str | None = None,
    position_mm: Sequence[float] | None = None,
) -> Dataset:
    """An RTIMAGE with stored values ``raw`` (rows, columns) as unsigned 16-bit and the given tags."""
    ds = _base(RTImageStorage, "RTIMAGE", implicit=True)
    arr = np.asarray(raw, dtype=np.uint16)
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if manufacturer:
        ds.Manufacturer = manufacturer
    if image_plane_spacing_mm is not None:
        ds.ImagePlanePixelSpacing = [float(v) for v in image_plane_spacing_mm]
    if sid_mm is not None:
        ds.RTImageSID = sid_mm
    if sad_mm is not None:
        ds.RadiationMachineSAD = sad_mm
    if gantry_deg is not None:
        ds.GantryAngle = gantry_deg
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    if rescale_type is not None:
        ds.RescaleType = rescale_type
    if position_mm is not None:
        ds.RTImagePosition = [float(v) for v in position_mm]
    ds.RTImagePlane = "NORMAL"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "PORTAL"]
    ds.PixelData = arr.tobytes()
    return ds
