"""Shared DICOM plumbing: safe reading with clear errors, tag access, UIDs and atomic writes."""

from __future__ import annotations

import contextlib
import contextvars
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import dictionary_has_tag
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid

from intrepid.dicom._validate import check_dataset, reader
from intrepid.errors import DicomError

__all__ = [
    "INTREPID_UID_ROOT",
    "STALE_TEMPORARY_S",
    "all_or_nothing",
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


@reader
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
    if ds.preamble is None and not ds.file_meta.get("MediaStorageSOPClassUID"):
        _check_headerless(ds, p)
    check_dataset(ds, p)
    if modality is not None:
        accepted = {modality} if isinstance(modality, str) else set(modality)
        found = ds.get("Modality")
        found = str(found) if found is not None else None
        if found not in accepted:
            raise DicomError(
                f"{p}: {describe_tag('Modality')} is {found!r}, expected {' or '.join(sorted(accepted))}"
            )
    return ds


def _check_headerless(ds: Dataset, path: Path) -> None:
    """A file without the 128-byte preamble and "DICM" (Elekta iView writes such files) is accepted only when
    it looks like DICOM: every top-level tag is a standard or a private one and it names its SOP Class or
    Modality. Random bytes parse as one or two unknown elements and are refused here."""
    unknown = [e.tag for e in ds if not e.tag.is_private and not dictionary_has_tag(e.tag)]
    if unknown or not ("SOPClassUID" in ds or "Modality" in ds):
        raise DicomError(
            f"{path}: not a DICOM file (no 'DICM' header, and no standard SOP Class UID or Modality element)"
        )


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


#: A temporary file of a write that was killed (SIGKILL, power loss) is removed by the next write to the same
#: destination once it is older than this (s); younger ones may belong to a write still running.
STALE_TEMPORARY_S = 3600.0

_TMP_PREFIX = ".tmp-"

#: The pending renames of the innermost :func:`all_or_nothing` block (None outside any block).
_PENDING: contextvars.ContextVar[list[tuple[Path, Path]] | None] = contextvars.ContextVar(
    "intrepid_pending_outputs", default=None
)


def _remove_stale_temporaries(folder: Path, name: str) -> None:
    now = time.time()
    for old in folder.glob(f"{_TMP_PREFIX}*-{name}"):
        try:
            if now - old.stat().st_mtime > STALE_TEMPORARY_S:
                old.unlink()
        except OSError:
            pass


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Write a file atomically: ``write(tmp)`` fills a temporary file beside ``path``, then it is renamed.

    A failure inside ``write`` leaves no file (and no half file) at ``path`` and removes the temporary one;
    an :class:`OSError` names the destination, not the temporary file. The temporary name is
    ``.tmp-<random>-<destination name>``, so writers that pick a format by extension (``.nii.gz``) keep
    working, and leftovers of killed writes older than :data:`STALE_TEMPORARY_S` are removed. Inside an
    :func:`all_or_nothing` block the rename waits for the end of the block.

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
    if dest.is_dir():
        raise OSError(21, "is a folder, not a file", str(dest))
    _remove_stale_temporaries(folder, dest.name)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=f"-{dest.name}", dir=folder)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(dest)) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    pending = _PENDING.get()
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the usual permissions
        if pending is None:
            os.replace(tmp, dest)
        else:
            pending.append((tmp, dest))
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is not None and str(exc.filename) == str(tmp):
            raise OSError(exc.errno, exc.strerror, str(dest)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Make every :func:`atomic_write` inside the block part of one transaction.

    The files are written to their temporary names as usual; the renames to the destinations happen together
    when the block ends without error. On any error every temporary file is removed and no destination is
    touched: a command that writes ``a.json`` and ``a.svg`` writes both or neither.

    Examples
    --------
    >>> from pathlib import Path
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> try:
    ...     with all_or_nothing():
    ...         _ = atomic_write(folder / "a.txt", lambda t: t.write_text("a"))
    ...         raise RuntimeError("the second output failed")
    ... except RuntimeError:
    ...     pass
    >>> sorted(p.name for p in folder.iterdir())
    []
    """
    pending: list[tuple[Path, Path]] = []
    token = _PENDING.set(pending)
    try:
        yield
    except BaseException:
        for tmp, _dest in pending:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _PENDING.reset(token)
    for n, (tmp, dest) in enumerate(pending):
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            for later, _ in pending[n:]:
                later.unlink(missing_ok=True)
            raise OSError(exc.errno, exc.strerror, str(dest)) from exc
