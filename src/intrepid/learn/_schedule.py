"""Learning-rate schedules shared by the 2D and 3D trainers.

``"constant"`` keeps the base rate. ``"cosine"`` follows half a cosine over a run's epochs from the base rate
down to 5 % of it at the last epoch (Loshchilov & Hutter 2017, SGDR, arXiv:1608.03983, without restarts), so a
long run ends with small steps instead of oscillating around its best validation loss.
"""

from __future__ import annotations

import math

from intrepid.errors import ParameterError

__all__ = ["LR_SCHEDULES", "check_lr_schedule", "scheduled_learning_rate"]

#: The schedules the trainers accept.
LR_SCHEDULES = ("constant", "cosine")
#: Final learning rate of the cosine schedule as a fraction of the base rate.
COSINE_FLOOR = 0.05


def check_lr_schedule(name: object) -> None:
    """Raise :class:`ParameterError` (one line) unless ``name`` is a known schedule."""
    if name not in LR_SCHEDULES:
        raise ParameterError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {name!r}")


def scheduled_learning_rate(schedule: str, base: float, epoch: int, epochs: int) -> float:
    """Learning rate of ``epoch`` (0-based) in a run of ``epochs`` epochs.

    Parameters
    ----------
    schedule : {"constant", "cosine"}
    base : float
        The configured (first-epoch) learning rate.
    epoch, epochs : int
        Current epoch (0-based) and the run's length.
    """
    check_lr_schedule(schedule)
    if schedule == "constant" or epochs <= 1:
        return base
    floor = COSINE_FLOOR * base
    phase = min(max(epoch, 0), epochs - 1) / (epochs - 1)
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * phase))
