"""Process-wide runtime choices: numba's threading layer beside PyTorch, and no torch on import."""

from __future__ import annotations

import os
import subprocess
import sys


def _run(code: str, env_extra: dict[str, str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip()


def test_import_intrepid_selects_workqueue_and_not_torch() -> None:
    code = "import sys, intrepid, numba; print(numba.config.THREADING_LAYER, 'torch' in sys.modules)"
    assert _run(code) == "workqueue False"


def test_user_choice_of_threading_layer_is_kept() -> None:
    code = "import intrepid, numba; print(numba.config.THREADING_LAYER)"
    assert _run(code, {"NUMBA_THREADING_LAYER": "omp"}) == "omp"


def test_numba_imported_first_is_configured_too() -> None:
    code = "import numba, intrepid; print(numba.config.THREADING_LAYER)"
    assert _run(code) == "workqueue"
