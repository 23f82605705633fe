"""Fuzz-suite settings: a short seeded run by default, a long random one on request.

- default (CI): ``INTREPID_FUZZ_EXAMPLES`` unset -> a fixed, derandomised set of examples per test, a few
  seconds in all;
- long run: ``INTREPID_FUZZ_EXAMPLES=3000 python -m pytest tests/fuzz -p no:cacheprovider`` -> that many
  random examples per test (hypothesis prints the failing example and its seed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(scope="session")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Valid seed files of every kind (see ``fuzz_mutations.make_seeds``)."""
    from fuzz_mutations import make_seeds

    return make_seeds(tmp_path_factory.mktemp("fuzz-seeds"))
