"""Reading and writing DICOM RT (CT, RTDOSE, RTPLAN, RTSTRUCT, RTIMAGE) and NIfTI / NRRD / npz volumes."""

from intrepid.dicom._common import atomic_write, new_uid, read_dataset

__all__ = [
    "atomic_write",
    "new_uid",
    "read_dataset",
]
