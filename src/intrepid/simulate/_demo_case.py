"""A small synthetic DICOM RT case (CT + RTSTRUCT + RTDOSE) with known answers, for the demo and tests.

The case is a water cylinder (radius 90 mm, 0 HU) in air with a spherical target (radius 20 mm, +40 HU) and
a lung-like cylinder (-700 HU). The dose lives on its own, coarser and shifted grid — as a planning system
exports it — and is an analytic function of position: a plateau of ``prescription_gy`` inside the target
that falls off as a Gaussian of the distance to the target surface (σ = 10 mm). Because every quantity is
known in closed form, the co-registration and structure statistics can be checked against exact values.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from intrepid.dicom import StructureDefinition, new_uid, write_ct_series, write_rtstruct
from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume

__all__ = ["DemoCase", "analytic_demo_dose", "make_demo_case"]

TARGET_RADIUS_MM = 20.0
TARGET_CENTRE_MM = (10.0, -5.0, 0.0)
BODY_RADIUS_MM = 90.0
FALLOFF_SIGMA_MM = 10.0


@dataclass(frozen=True)
class DemoCase:
    """Paths and known facts of a generated demo case."""

    folder: Path
    ct_folder: Path
    rtstruct_path: Path
    rtdose_path: Path
    prescription_gy: float
    target_name: str
    target_volume_cc: float  #: exact sphere volume, 4/3 π r³
    frame_of_reference_uid: str


def analytic_demo_dose(points_mm: NDArray[np.float64], prescription_gy: float) -> NDArray[np.float64]:
    """The demo's dose at world points (mm): plateau in the target, Gaussian fall-off outside."""
    r = np.linalg.norm(np.asarray(points_mm) - np.asarray(TARGET_CENTRE_MM), axis=-1)
    outside = np.clip(r - TARGET_RADIUS_MM, 0.0, None)
    return np.asarray(prescription_gy * np.exp(-0.5 * (outside / FALLOFF_SIGMA_MM) ** 2), dtype=float)


def _sphere_contours(n_points: int, z_planes: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    cx, cy, cz = TARGET_CENTRE_MM
    out = []
    t = np.linspace(0.0, 2 * np.pi, n_points, endpoint=False)
    for z in z_planes:
        dz = z - cz
        if abs(dz) >= TARGET_RADIUS_MM:
            continue
        rho = math.sqrt(TARGET_RADIUS_MM**2 - dz**2)
        out.append(np.column_stack([cx + rho * np.cos(t), cy + rho * np.sin(t), np.full_like(t, z)]))
    return tuple(out)


def make_demo_case(
    folder: str | os.PathLike[str],
    *,
    prescription_gy: float = 2.0,
    ct_spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.5),
) -> DemoCase:
    """Write the demo case (CT series, RTSTRUCT, RTDOSE) into ``folder``.

    Parameters
    ----------
    folder : path-like
        Output folder (created; must be empty if it exists).
    prescription_gy : float
        Dose in the target, Gy (> 0).
    ct_spacing_mm : tuple of 3 float
        CT voxel size (x, y, z) in mm.
    """
    from intrepid.dicom._write_rtdose import write_rtdose

    if not (prescription_gy > 0 and math.isfinite(prescription_gy)):
        raise ParameterError(f"prescription_gy must be > 0, got {prescription_gy}")
    out = Path(folder)
    if out.exists() and any(out.iterdir()):
        raise ParameterError(f"{out}: output folder exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    for_uid = new_uid()

    # CT: 100 x 100 x 41 voxels covering ±99 mm in x, y and ±50 mm in z.
    half = np.array([99.0, 99.0, 50.0])
    ct_grid = Grid.from_bounds(-half, half, ct_spacing_mm)
    pts = ct_grid.world_points()
    x, y = pts[..., 0], pts[..., 1]
    hu = np.full(ct_grid.shape, -1000.0)
    body = x**2 + y**2 <= BODY_RADIUS_MM**2
    hu[body] = 0.0
    lung = (x + 45.0) ** 2 + (y - 10.0) ** 2 <= 25.0**2
    hu[lung] = -700.0
    target = np.linalg.norm(pts - np.asarray(TARGET_CENTRE_MM), axis=-1) <= TARGET_RADIUS_MM
    hu[target] = 40.0
    ct = Volume(hu, ct_grid, Quantity.CT_NUMBER, "HU", for_uid)
    series = write_ct_series(ct, out / "CT", series_description="InTrEPID demo phantom")

    body_mask = Volume(body, ct_grid, Quantity.MASK, "1", for_uid)
    lung_mask = Volume(lung, ct_grid, Quantity.MASK, "1", for_uid)
    z_planes = ct_grid.origin_mm[2] + ct_grid.axis_coordinates_mm(2)
    structures = [
        StructureDefinition("BODY", mask=body_mask, roi_type="EXTERNAL", color_rgb=(0, 255, 0)),
        StructureDefinition(
            "PTV", contours=_sphere_contours(72, z_planes), roi_type="PTV", color_rgb=(255, 0, 0)
        ),
        StructureDefinition("Lung", mask=lung_mask, roi_type="ORGAN", color_rgb=(0, 128, 255)),
    ]
    rtstruct = write_rtstruct(out / "RTSTRUCT.dcm", structures, series)

    # Dose: a coarser grid, shifted by a fraction of a voxel, covering the body — as a TPS would export it.
    dose_grid = Grid.from_bounds((-90.7, -90.7, -40.3), (90.0, 90.0, 40.0), (3.0, 3.0, 3.0))
    dose = analytic_demo_dose(dose_grid.world_points(), prescription_gy)
    dose_volume = Volume(dose.astype(np.float32), dose_grid, Quantity.DOSE, "Gy", for_uid)
    rtdose = write_rtdose(
        dose_volume,
        out / "RTDOSE.dcm",
        study_instance_uid=series.study_instance_uid,
        frame_of_reference_uid=for_uid,
        patient_id=series.patient_id,
    )
    volume_cc = 4.0 / 3.0 * math.pi * TARGET_RADIUS_MM**3 / 1000.0
    return DemoCase(out, series.folder, rtstruct, Path(rtdose), prescription_gy, "PTV", volume_cc, for_uid)
