"""Shared DICOM plumbing: reading with clear errors, tag descriptions, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from intrepid.dicom import atomic_write, read_dataset
from intrepid.dicom._common import describe_tag, require_tag
from intrepid.errors import DicomError


def test_atomic_write_gives_usual_permissions_and_no_temporary_files(tmp_path: Path) -> None:
    dest = atomic_write(tmp_path / "a.txt", lambda p: p.write_text("x"))
    mode = stat.S_IMODE(os.stat(dest).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_failure_leaves_nothing(tmp_path: Path) -> None:
    def boom(p: Path) -> None:
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "b.txt", boom)
    assert list(tmp_path.iterdir()) == []


def test_read_dataset_errors_name_the_file_and_tag(tmp_path: Path) -> None:
    with pytest.raises(DicomError, match="no such file"):
        read_dataset(tmp_path / "missing.dcm")
    with pytest.raises(DicomError, match=r"\(0008,0060\) Modality is 'RTDOSE', expected CT"):
        read_dataset(get_testdata_file("rtdose.dcm"), modality="CT")
    ds = read_dataset(get_testdata_file("rtdose.dcm"))
    with pytest.raises(DicomError, match=r"x\.dcm: missing required tag \(300A,00B3\) PrimaryDosimeterUnit"):
        require_tag(ds, "PrimaryDosimeterUnit", "x.dcm")
    assert describe_tag("DoseGridScaling") == "(3004,000E) DoseGridScaling"
