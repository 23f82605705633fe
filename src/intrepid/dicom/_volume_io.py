"""One entry point to read or write any volume or image, whatever its format.

:func:`read_volume` accepts a DICOM RTDOSE, RTIMAGE or CT file, a folder of CT slices, NIfTI (``.nii``,
``.nii.gz``), NRRD (``.nrrd``) or the ``.npz`` archive; :func:`write_volume` picks the format from the
extension. The CLI's ``resample``, ``gamma`` and friends use these two functions only.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

from intrepid.dicom._common import read_dataset
from intrepid.dicom._formats import read_nifti, read_npz, read_nrrd, write_nifti, write_npz, write_nrrd
from intrepid.dicom._validate import reader
from intrepid.errors import DicomError, ParameterError
from intrepid.geometry import Quantity, Volume

__all__ = ["VolumeFormat", "read_volume", "volume_format", "write_volume"]


class VolumeFormat(enum.Enum):
    """File formats that :func:`read_volume` and :func:`write_volume` understand."""

    DICOM = "dicom"
    DICOM_FOLDER = "dicom-folder"
    NIFTI = "nifti"
    NRRD = "nrrd"
    NPZ = "npz"


def volume_format(path: str | os.PathLike[str]) -> VolumeFormat:
    """The format of ``path`` from its extension (a folder is a DICOM series; no extension is DICOM)."""
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        return VolumeFormat.DICOM_FOLDER
    if name.endswith((".nii", ".nii.gz")):
        return VolumeFormat.NIFTI
    if name.endswith((".nrrd", ".nhdr")):
        return VolumeFormat.NRRD
    if name.endswith(".npz"):
        return VolumeFormat.NPZ
    if name.endswith((".dcm", ".dicom", ".ima")) or "." not in name:
        return VolumeFormat.DICOM
    raise ParameterError(
        f"{p}: unknown volume format (expected .dcm, a DICOM folder, .nii, .nii.gz, .nrrd or .npz)"
    )


@reader
def read_volume(path: str | os.PathLike[str]) -> Volume:
    """Read a dose, CT or EPID image from any supported format into a :class:`Volume`.

    DICOM files are dispatched by Modality: RTDOSE (Dose Grid Scaling applied, in Gy), RTIMAGE (the EPID
    signal or portal dose on the detector-plane grid), CT (a single slice; pass the folder for a series).

    Parameters
    ----------
    path : path-like
        A file or a folder of CT slices.

    Raises
    ------
    DicomError
        A DICOM object that is not a volume (RTPLAN, RTSTRUCT) or cannot be read; the message names the file.
    ParameterError
        An unknown extension or a broken NIfTI / NRRD / npz file.
    """
    p = Path(path)
    if not p.exists():
        raise ParameterError(f"{p}: no such file or folder")
    fmt = volume_format(p)
    if fmt is VolumeFormat.NIFTI:
        return read_nifti(p)
    if fmt is VolumeFormat.NRRD:
        return read_nrrd(p)
    if fmt is VolumeFormat.NPZ:
        return read_npz(p)
    if fmt is VolumeFormat.DICOM_FOLDER:
        from intrepid.dicom._ct import read_ct_series

        return read_ct_series(p)
    header = read_dataset(p, stop_before_pixels=True)
    modality = header.get("Modality")
    if modality == "RTDOSE":
        from intrepid.dicom._rtdose import read_rtdose

        return read_rtdose(p).volume
    if modality == "RTIMAGE":
        from intrepid.dicom._rtimage import read_rtimage

        return read_rtimage(p).image
    if modality == "CT":
        from intrepid.dicom._ct import read_ct_series

        return read_ct_series(p)
    raise DicomError(
        f"{p}: (0008,0060) Modality {modality!r} is not a volume; expected RTDOSE, RTIMAGE or CT"
    )


def write_volume(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write ``volume`` in the format given by the extension of ``path`` (atomically).

    ``.nii`` / ``.nii.gz`` → NIfTI (RAS affine), ``.nrrd`` → NRRD (LPS), ``.npz`` → the plain archive,
    ``.dcm`` → RTDOSE for doses and gamma or other maps (2D images as a one-frame RTDOSE), RTIMAGE for
    portal dose and EPID signal images. CT numbers are not written as DICOM (use NIfTI, NRRD or npz).
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return write_nifti(volume, p)
    if name.endswith(".nrrd"):
        return write_nrrd(volume, p)
    if name.endswith(".npz"):
        return write_npz(volume, p)
    if name.endswith(".dcm"):
        if volume.quantity is Quantity.CT_NUMBER:
            raise ParameterError(
                f"{p}: CT volumes are not written as DICOM; choose .nii, .nii.gz, .nrrd or .npz"
            )
        if volume.ndim == 2 and volume.quantity in (Quantity.PORTAL_DOSE, Quantity.EPID_SIGNAL):
            from intrepid.dicom._write_rtimage import write_rtimage

            spacing = volume.grid.spacing_mm
            meta = volume.metadata
            return write_rtimage(
                p,
                volume.array,
                pixel_spacing_mm=(spacing[1], spacing[0]),
                sid_mm=float(meta.get("sid_mm", 1600.0)),
                sad_mm=float(meta.get("sad_mm", 1000.0)),
                gantry_deg=meta.get("gantry_deg", 0.0),
                image_position_mm=(
                    (volume.grid.origin_mm[0], volume.grid.origin_mm[1])
                    if meta.get("coordinate_frame") == "IEC_IMAGE_RECEPTOR"
                    else None
                ),
                quantity=volume.quantity,
                units=volume.units or "Gy",
                frame_of_reference_uid=volume.frame_of_reference_uid,
            )
        from intrepid.dicom._write_rtdose import write_rtdose

        return write_rtdose(volume, p)
    raise ParameterError(f"{p}: unknown output format (expected .dcm, .nii, .nii.gz, .nrrd or .npz)")
