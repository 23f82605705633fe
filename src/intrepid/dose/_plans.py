"""Small synthetic plans and phantoms for validation, benchmarks and tests (a jaw field, slab phantoms)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from intrepid.dicom import (
    Beam,
    BeamLimitingDevice,
    BeamLimitingDeviceType,
    BeamType,
    ControlPoint,
    FractionGroup,
    ReferencedBeam,
    RotationDirection,
    RTPlan,
)
from intrepid.errors import ParameterError
from intrepid.geometry import Grid, PatientPosition, Quantity, Volume

__all__ = ["open_field_plan", "slab_phantom"]


def open_field_plan(
    x_mm: float,
    y_mm: float,
    *,
    mu: float = 100.0,
    gantry_deg: float = 0.0,
    collimator_deg: float = 0.0,
    couch_deg: float = 0.0,
    isocenter_mm: Sequence[float] = (0.0, 0.0, 0.0),
    energy_mv: float = 6.0,
    source: str = "synthetic plan",
) -> RTPlan:
    """A one-beam 6 MV plan: a static symmetric jaw field ``x_mm`` × ``y_mm`` (isocentre plane), HFS.

    Parameters
    ----------
    x_mm, y_mm : float
        Full X and Y jaw openings (mm), 5–400.
    mu : float
        Beam Meterset (MU per fraction).
    gantry_deg, collimator_deg, couch_deg : float
        IEC 61217 angles.
    isocenter_mm : 3 floats
        Isocentre (LPS, mm).
    """
    if not (5 <= float(x_mm) <= 400 and 5 <= float(y_mm) <= 400):
        raise ParameterError(f"field must be 5..400 mm on each side, got {x_mm} x {y_mm}")
    iso = tuple(float(v) for v in isocenter_mm)
    T = BeamLimitingDeviceType
    dev = {T.ASYMX: np.array([-x_mm / 2, x_mm / 2]), T.ASYMY: np.array([-y_mm / 2, y_mm / 2])}
    cps = tuple(
        ControlPoint(i, w, mu * w, float(gantry_deg), RotationDirection.NONE, float(collimator_deg),
                     float(couch_deg), iso, float(energy_mv), dev)  # type: ignore[arg-type]
        for i, w in ((0, 0.0), (1, 1.0))
    )  # fmt: skip
    beam = Beam(
        1, f"{x_mm / 10:g}x{y_mm / 10:g}", "PHOTON", "TREATMENT", BeamType.STATIC, "MU", (1000.0, 1000.0),
        float(energy_mv), "MV", float(mu), None, 1.0,
        (BeamLimitingDevice(T.ASYMX, 1, None, 367.0), BeamLimitingDevice(T.ASYMY, 1, None, 280.0)), cps,
        patient_position=PatientPosition.HFS,
    )  # fmt: skip
    fg = FractionGroup(1, 1, (ReferencedBeam(1, float(mu), None),))
    return RTPlan("synthetic", "synthetic", "1.2.3", None, PatientPosition.HFS, (fg,), (beam,), source)


def slab_phantom(
    layers: Sequence[tuple[float, float]],
    *,
    width_mm: float = 300.0,
    spacing_mm: float = 2.5,
) -> Volume:
    """A laterally infinite (``width_mm``) slab phantom, anterior surface at y = 0 (the isocentre plane).

    Parameters
    ----------
    layers : sequence of (thickness_mm, hu)
        Slabs from the surface down (along +y, the beam direction at gantry 0 for HFS).
    width_mm : float
        Lateral size in x and z.
    spacing_mm : float
        Isotropic voxel size.
    """
    h = float(spacing_mm)
    thick = [float(t) for t, _ in layers]
    if not layers or any(t <= 0 for t in thick):
        raise ParameterError("layers must be (thickness_mm > 0, hu) pairs")
    ny = max(1, round(sum(thick) / h))
    nx = nz = max(1, round(float(width_mm) / h))
    y = (np.arange(ny) + 0.5) * h
    hu_y = np.empty(ny, dtype=np.float32)
    edges = np.cumsum([0.0, *thick])
    for (t, hu), lo in zip(layers, edges[:-1], strict=True):
        hu_y[(y >= lo) & (y < lo + t)] = float(hu)
    arr = np.broadcast_to(hu_y[None, :, None], (nz, ny, nx)).copy()
    grid = Grid((nz, ny, nx), origin_mm=(-(nx - 1) * h / 2, h / 2, -(nz - 1) * h / 2), spacing_mm=(h, h, h))
    return Volume(arr, grid, Quantity.CT_NUMBER, "HU")
