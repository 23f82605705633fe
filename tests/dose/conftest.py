"""Shared fixtures of the dose-engine tests: water phantoms and open fields, computed once per session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from intrepid.dose import (
    DoseSettings,
    PlanDose,
    central_axis_depth_dose,
    compute_dose,
    open_field_plan,
    water_phantom,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def reference_6mv() -> dict:
    return json.loads((DATA / "reference_6mv.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def water_fields() -> dict[int, PlanDose]:
    """Doses of 5x5, 10x10 and 20x20 cm2 jaw fields (100 MU) on a water cube at SSD 100 cm, 2.5 mm grid."""
    out = {}
    for f in (50, 100, 200):
        ct = water_phantom((max(f, 100) + 150.0, 300.0, max(f, 100) + 150.0), 2.5)
        out[f] = compute_dose(ct, open_field_plan(float(f), float(f), mu=100.0))
    return out


@pytest.fixture(scope="session")
def water_fields_consistent() -> dict[int, PlanDose]:
    """As ``water_fields`` with the kernel's primary share set to the spectrum's own (0.516; docs/dose.md)."""
    from intrepid.dose._kernel import spectrum_primary_share
    from intrepid.physics import BeamModel

    b = BeamModel.six_mv()
    settings = DoseSettings(kernel_primary_share=round(spectrum_primary_share(b.energies, b.weights), 3))
    out = {}
    for f in (50, 100, 200):
        ct = water_phantom((max(f, 100) + 150.0, 300.0, max(f, 100) + 150.0), 2.5)
        out[f] = compute_dose(ct, open_field_plan(float(f), float(f), mu=100.0), settings=settings)
    return out


@pytest.fixture(scope="session")
def water_fields_spectrum() -> dict[int, PlanDose]:
    """As ``water_fields`` with the kernel built for the beam's spectrum (kernel_source="spectrum")."""
    settings = DoseSettings(kernel_source="spectrum")
    out = {}
    for f in (50, 100, 200):
        ct = water_phantom((max(f, 100) + 150.0, 300.0, max(f, 100) + 150.0), 2.5)
        out[f] = compute_dose(ct, open_field_plan(float(f), float(f), mu=100.0), settings=settings)
    return out


def central_axis(dose: PlanDose) -> tuple[np.ndarray, np.ndarray]:
    """(depth_mm, dose_gy) along the central axis of a water_phantom dose (beam along +y from y = 0)."""
    return central_axis_depth_dose(dose.total)


def profile(dose: PlanDose, depth_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(x_mm, dose_gy) across the field (crossplane) at ``depth_mm``."""
    d = dose.total.array
    g = dose.total.grid
    x = g.origin_mm[0] + np.arange(d.shape[2]) * g.spacing_mm[0]
    y = g.origin_mm[1] + np.arange(d.shape[1]) * g.spacing_mm[1]
    z = g.origin_mm[2] + np.arange(d.shape[0]) * g.spacing_mm[2]
    return x, d[int(np.argmin(np.abs(z))), int(np.argmin(np.abs(y - depth_mm))), :].astype(float)
