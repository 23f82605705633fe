"""Results of the dose engine: per-beam and plan doses as :class:`~intrepid.geometry.Volume` in Gy."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from intrepid.geometry import Grid, Volume

__all__ = ["BeamDose", "DoseQuantity", "PlanDose"]


class DoseQuantity(enum.Enum):
    """Which absorbed dose the engine reports.

    The collapsed-cone engine transports energy with water kernels and water interaction coefficients
    scaled by
    the relative electron density η of each voxel (Ahnesjö 1989; O'Connor's theorem). The energy imparted is
    divided by the mass of a water-like medium of density η: this is **dose to water-like medium**, called
    dose to medium (D_m) in the TPS literature for superposition engines; no stopping-power-ratio
    conversion to
    dose to water (D_w) is applied (Siebers et al. 2000, Phys Med Biol 45:983). In water both are equal.
    """

    MEDIUM = "dose_to_medium"


@dataclass(frozen=True, eq=False)
class BeamDose:
    """Dose of one beam.

    Parameters
    ----------
    number, name : int, str
        Beam Number and Beam Name of the RTPLAN.
    mu : float
        Meterset used (MU per fraction).
    dose : Volume
        Dose per fraction (Gy) on the output grid.
    seconds : float
        Wall-clock compute time of this beam (s).
    """

    number: int
    name: str
    mu: float
    dose: Volume
    seconds: float

    @property
    def max_gy(self) -> float:
        """Maximum dose (Gy)."""
        return float(np.max(self.dose.array)) if self.dose.array.size else 0.0


@dataclass(frozen=True, eq=False)
class PlanDose:
    """Per-beam doses and their sum for one fraction of a plan.

    Parameters
    ----------
    beams : tuple of BeamDose
    total : Volume
        Sum of the beam doses (Gy per fraction).
    quantity : DoseQuantity
        Dose to medium (see :class:`DoseQuantity`).
    engine : str
        ``"ccc-numba"`` or ``"ccc-torch-<device>"``.
    compute_seconds : float
        Wall-clock time of the whole computation (s).
    metadata : dict
        Kernel, number of cones, grid, calibration facts.
    """

    beams: tuple[BeamDose, ...]
    total: Volume
    quantity: DoseQuantity
    engine: str
    compute_seconds: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        """The output grid."""
        return self.total.grid

    @property
    def max_gy(self) -> float:
        """Maximum of the plan dose (Gy)."""
        return float(np.max(self.total.array)) if self.total.array.size else 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (the CLI's ``--json`` keys)."""
        return {
            "beams": [
                {"number": b.number, "name": b.name, "mu": b.mu, "max_gy": b.max_gy, "seconds": b.seconds}
                for b in self.beams
            ],
            "max_gy": self.max_gy,
            "grid": self.grid.to_dict(),
            "engine": self.engine,
            "compute_seconds": self.compute_seconds,
            "dose_quantity": self.quantity.value,
        }
