"""Shared test fixtures and the opt-in markers (slow, gpu) and external-data skips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")
    parser.addoption("--run-gpu", action="store_true", help="run tests marked gpu (needs CUDA)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow test: pass --run-slow to run it")
    skip_gpu = pytest.mark.skip(reason="GPU test: pass --run-gpu on a machine with CUDA")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not config.getoption("--run-gpu"):
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def external_data() -> Path:
    """Folder of the real DICOM files (``../shared/data``), named by ``INTREPID_EXTERNAL_DATA``.

    Tests that use it skip, with a visible reason, where the variable is unset or the folder is missing.
    """
    value = os.environ.get("INTREPID_EXTERNAL_DATA")
    if not value:
        pytest.skip("external data not configured: set INTREPID_EXTERNAL_DATA to ../shared/data")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"external data folder {path} does not exist")
    return path


# Property tests: CI runs a fixed, reproducible set of examples (derandomised), so that a submission's
# result does not depend on the draw; locally, hypothesis explores new examples on every run.
if os.environ.get("CI"):
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    settings.load_profile("ci")
