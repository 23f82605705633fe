"""Process-wide settings that InTrEPID needs to run its compiled kernels beside PyTorch.

numba's default OpenMP threading layer and PyTorch's own OpenMP runtime spin-wait against each other when both
run in one process (the 2D transit evaluation does: network predictions, then gamma): PyTorch became 10–300×
slower after a gamma call in our measurements. numba's ``workqueue`` layer has no such threads and is as fast
for our kernels, so InTrEPID asks for it — unless the user chose a layer with ``NUMBA_THREADING_LAYER``.
"""

from __future__ import annotations

import os
import sys

__all__ = ["prefer_workqueue_threading"]


def prefer_workqueue_threading() -> None:
    """Make numba use its ``workqueue`` threading layer unless the user set ``NUMBA_THREADING_LAYER``.

    Safe to call many times; has no effect once numba has launched a parallel kernel with another layer.
    """
    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba imported before us: its config was read already
        config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]
