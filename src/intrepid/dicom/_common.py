"""Shared DICOM plumbing: safe reading with clear errors, tag access, UIDs and atomic writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid

from intrepid.errors import DicomError

__all__ = [
    "INTREPID_UID_ROOT",
    "atomic_write",
    "describe_tag",
    "get_tag",
    "new_uid",
    "read_dataset",
    "require_tag",
]

#: UID prefix of objects that InTrEPID creates (a pydicom-generated random suffix follows).
INTREPID_UID_ROOT = "2.25."


def describe_tag(keyword: str) -> str:
    """``"(3004,000E) DoseGridScaling"`` for a keyword, used in error messages."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    if tag is None:
        return keyword
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {keyword}"


def read_dataset(
    path: str | os.PathLike[str],
    *,
    modality: str | Iterable[str] | None = None,
    stop_before_pixels: bool = False,
) -> FileDataset:
    """Read a DICOM file, tolerating a missing preamble or transfer syntax, with clear errors.

    Elekta iView files often lack the File Meta Information (and so the Transfer Syntax UID); they are read
    with ``force=True`` and Implicit VR Little Endian is assumed, as the standard's default.

    Parameters
    ----------
    path : path-like
        The file.
    modality : str or iterable of str, optional
        Accepted values of Modality (0008,0060); anything else raises :class:`DicomError`.
    stop_before_pixels : bool
        Skip the pixel data (faster for headers).

    Raises
    ------
    DicomError
        The file is missing, not DICOM, truncated, or of another modality. The message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise DicomError(f"{p}: no such file")
    try:
        ds = pydicom.dcmread(p, force=True, stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise DicomError(f"{p}: not a readable DICOM file ({exc})") from exc
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    try:
        # Touch every top-level element so that truncation surfaces here, not later.
        keywords = [elem.keyword for elem in ds]
    except Exception as exc:  # pydicom raises assorted errors on truncated data
        raise DicomError(f"{p}: truncated or corrupt DICOM data ({exc})") from exc
    if not keywords:
        raise DicomError(f"{p}: not a DICOM file (no data elements)")
    if modality is not None:
        accepted = {modality} if isinstance(modality, str) else set(modality)
        found = ds.get("Modality")
        if found not in accepted:
            raise DicomError(
                f"{p}: {describe_tag('Modality')} is {found!r}, expected {' or '.join(sorted(accepted))}"
            )
    return ds


def get_tag(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """Value of ``keyword`` in ``ds`` or ``default`` when absent or empty."""
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    return value


def require_tag(ds: Dataset, keyword: str, path: str | os.PathLike[str] | None = None) -> Any:
    """Value of a tag that must be present, or :class:`DicomError` naming the file and the tag."""
    value = ds.get(keyword)
    if value is None or value == "":
        where = f"{path}: " if path is not None else ""
        raise DicomError(f"{where}missing required tag {describe_tag(keyword)}")
    return value


def new_uid() -> str:
    """A new globally unique DICOM UID (under the 2.25 root, from a random UUID)."""
    return str(generate_uid(prefix=None))


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Write a file atomically: ``write(tmp)`` fills a temporary file beside ``path``, then it is renamed.

    A failure inside ``write`` leaves no file (and no half file) at ``path``. The temporary name ends with
    the destination's name, so writers that pick a format by extension (``.nii.gz``) keep working.

    Parameters
    ----------
    path : path-like
        Destination. Its folder must exist.
    write : callable
        Receives the temporary path and writes the complete file there.
    """
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise OSError(2, "output folder does not exist", str(folder))
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{dest.name}", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
