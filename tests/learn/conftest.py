"""Fixtures for the ``intrepid.learn`` tests: tiny data sets from ``learn_factories``.

This file puts its folder on ``sys.path`` so that tests can ``from learn_factories import ...``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from learn_factories import make_dicom_dataset, make_numpy_dataset  # noqa: E402


@pytest.fixture(scope="session")
def dicom_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 9-pair DICOM data set (8 train, 1 test; 4 groups x 2 strata), shared by the session (read only)."""
    return make_dicom_dataset(tmp_path_factory.mktemp("learn_dicom"))


@pytest.fixture(scope="session")
def npz_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-pair ``.npz`` data set (read only)."""
    return make_numpy_dataset(tmp_path_factory.mktemp("learn_npz"), fmt="npz")
