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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run PyTorch on one thread in these tests (restored afterwards).

    The images are tiny, so a second thread brings nothing, and on a busy machine OpenMP's spinning threads
    can make a 2-thread convolution 30 times slower than a 1-thread one.
    """
    try:
        import torch
    except ImportError:  # the torch-free tests still run
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
