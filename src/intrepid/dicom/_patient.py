"""Modules shared by the RTDOSE and RTIMAGE writers: file meta, patient, study, series, frame, equipment.

3D Slicer (and most archives) refuse objects with an empty Patient Name or Patient ID, or whose SOP Instance
UID differs from the Media Storage SOP Instance UID of the file meta; these helpers make both impossible.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from intrepid import __version__
from intrepid.dicom._common import atomic_write, new_uid
from intrepid.errors import ParameterError

__all__ = ["new_instance", "save_instance"]

_UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")

#: Manufacturer (0008,0070) written on objects that InTrEPID creates.
MANUFACTURER = "InTrEPID"


def _check_uid(name: str, uid: str | None) -> None:
    if uid is None:
        return
    if not isinstance(uid, str) or len(uid) > 64 or not _UID_PATTERN.fullmatch(uid):
        raise ParameterError(f"{name} must be a valid DICOM UID (digits and dots, <= 64 chars), got {uid!r}")


def new_instance(
    sop_class_uid: str,
    modality: str,
    *,
    patient_id: str,
    patient_name: str,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_description: str = "",
    manufacturer: str = MANUFACTURER,
    model_name: str = "intrepid",
) -> Dataset:
    """A dataset with file meta and the Patient, General Study, Series, Frame of Reference, Equipment and
    SOP Common modules filled; new UIDs where none are given.

    Raises
    ------
    ParameterError
        Empty ``patient_id`` or ``patient_name``, or a malformed UID.
    """
    if not patient_id or not str(patient_id).strip():
        raise ParameterError(
            f"patient_id must be non-empty (3D Slicer rejects empty IDs), got {patient_id!r}"
        )
    if not patient_name or not str(patient_name).strip():
        raise ParameterError(
            f"patient_name must be non-empty (3D Slicer rejects empty names), got {patient_name!r}"
        )
    if len(patient_id) > 64:
        raise ParameterError(f"patient_id must have at most 64 characters, got {len(patient_id)}")
    for name, uid in (
        ("study_instance_uid", study_instance_uid),
        ("series_instance_uid", series_instance_uid),
        ("frame_of_reference_uid", frame_of_reference_uid),
    ):
        _check_uid(name, uid)
    sop_uid = new_uid()
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"INTREPID_{__version__}"[:16]

    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate, ds.StudyTime = date, time
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.ContentDate, ds.ContentTime = date, time
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = manufacturer
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = series_description[:64]
    ds.ManufacturerModelName = model_name
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.SoftwareVersions = f"intrepid {__version__}"
    ds.StudyInstanceUID = study_instance_uid or new_uid()
    ds.SeriesInstanceUID = series_instance_uid or new_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = frame_of_reference_uid or new_uid()
    ds.PositionReferenceIndicator = ""
    ds.OperatorsName = ""
    return ds


def save_instance(ds: Dataset, path: str | os.PathLike[str], *, file_meta: bool = True) -> Path:
    """Write ``ds`` atomically.

    ``file_meta=True``: a conformant Part 10 file (preamble, file meta, Explicit VR Little Endian).
    ``file_meta=False``: a bare Implicit VR Little Endian dataset without preamble or file meta, as some
    Elekta iView exports are (the reader must then assume the transfer syntax).
    """
    if file_meta:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian

        def write(tmp: Path) -> None:
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)

    else:
        bare = Dataset()
        bare.update(ds)

        def write(tmp: Path) -> None:
            pydicom.dcmwrite(tmp, bare, implicit_vr=True, little_endian=True)

    return atomic_write(path, write)
