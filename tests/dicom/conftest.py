"""Fixtures for the DICOM tests: synthetic-dataset builders from ``dicom_factories`` and pydicom's RT files.

``dicom_factories`` holds plain functions; this file puts its folder on ``sys.path`` so that any test can also
``from dicom_factories import ...`` directly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import dicom_factories  # noqa: E402


@pytest.fixture
def factories():  # type: ignore[no-untyped-def]
    """The :mod:`dicom_factories` module (ct_slice_dataset, rtdose_dataset, rtimage_dataset, save...)."""
    return dicom_factories


@pytest.fixture(scope="session")
def pydicom_file():  # type: ignore[no-untyped-def]
    """``pydicom_file(name)`` -> path of a file shipped in pydicom's test data (skips when absent)."""
    from pydicom.data import get_testdata_file

    def get(name: str) -> Path:
        found = get_testdata_file(name)
        if found is None:
            pytest.skip(f"pydicom test file {name} is not installed")
        return Path(str(found))

    return get
