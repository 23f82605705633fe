"""Dose arithmetic: difference maps, sums on a common grid, and dose profiles along a line.

Doses on different grids are brought onto one grid with :func:`intrepid.geometry.resample` (trilinear);
doses in different DICOM Frames of Reference are refused, never combined silently.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import FrameOfReferenceError, GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume

__all__ = [
    "DifferenceMode",
    "DoseProfile",
    "dose_difference",
    "dose_profile",
    "sum_doses",
]

_log = logging.getLogger(__name__)


class DifferenceMode(enum.Enum):
    """How :func:`dose_difference` expresses the difference."""

    ABSOLUTE = "absolute"  #: evaluated − reference, Gy
    PERCENT = "percent"  #: (evaluated − reference) / normalisation dose × 100, %


def _check_volume(name: str, v: Any) -> Volume:
    if not isinstance(v, Volume):
        raise ParameterError(f"{name} must be a Volume, got {type(v).__name__}")
    v.check_finite(name)
    return v


def _common_frame(volumes: Sequence[Volume], names: Sequence[str]) -> str | None:
    uids = {v.frame_of_reference_uid for v in volumes if v.frame_of_reference_uid}
    if len(uids) > 1:
        detail = ", ".join(f"{n}: {v.frame_of_reference_uid}" for n, v in zip(names, volumes, strict=True))
        raise FrameOfReferenceError(
            f"doses are in different Frames of Reference ({detail}); register them first"
        )
    return next(iter(uids)) if uids else None


def _check_units(volumes: Sequence[Volume], names: Sequence[str]) -> str:
    units = {v.units.strip().lower() for v in volumes}
    if len(units) > 1:
        detail = ", ".join(f"{n}: {v.units!r}" for n, v in zip(names, volumes, strict=True))
        raise ParameterError(f"doses must have the same units, got {detail}")
    return volumes[0].units


def _on_grid(v: Volume, grid: Grid) -> NDArray[np.float64]:
    """Values of ``v`` on ``grid`` (resampled trilinearly when the grids differ; 0 outside ``v``)."""
    if v.grid.is_close(grid):
        return np.asarray(v.array, dtype=float)
    from intrepid.geometry import Interpolation, resample

    if v.ndim != len(grid.shape):
        raise GeometryError(f"cannot put a {v.ndim}D dose onto a {len(grid.shape)}D grid")
    _log.info("resampling a dose of shape %s onto grid %s (trilinear)", v.shape, grid.shape)
    out = np.asarray(resample(v, grid, method=Interpolation.LINEAR).array, dtype=float)
    return np.nan_to_num(out, nan=0.0)


def dose_difference(
    evaluated: Volume,
    reference: Volume,
    *,
    mode: DifferenceMode = DifferenceMode.ABSOLUTE,
    normalisation_gy: float | None = None,
) -> Volume:
    """Dose difference map ``evaluated − reference`` on the reference grid.

    Parameters
    ----------
    evaluated, reference : Volume
        Doses (same units, same Frame of Reference). ``evaluated`` is resampled trilinearly onto the
        reference grid when the grids differ (0 outside its grid).
    mode : DifferenceMode
        ABSOLUTE: difference in the doses' units (Gy). PERCENT: difference in % of ``normalisation_gy``.
    normalisation_gy : float, optional
        Dose (> 0) that 100 % stands for in PERCENT mode; default the reference maximum (global
        normalisation).

    Returns
    -------
    Volume
        The difference (units ``"Gy"`` or ``"%"``), on the reference grid.

    Examples
    --------
    >>> import numpy as np
    >>> from intrepid.geometry import Grid, Volume
    >>> g = Grid((2, 2, 2), (0, 0, 0), (1, 1, 1))
    >>> ref = Volume(np.full(g.shape, 2.0), g, units="Gy")
    >>> ev = ref.with_array(np.full(g.shape, 2.1))
    >>> float(dose_difference(ev, ref, mode=DifferenceMode.PERCENT).array.max())
    5.000000000000004
    """
    _check_volume("evaluated", evaluated)
    _check_volume("reference", reference)
    if not isinstance(mode, DifferenceMode):
        raise ParameterError(f"mode must be a DifferenceMode, got {mode!r}")
    frame = _common_frame([evaluated, reference], ["evaluated", "reference"])
    units = _check_units([evaluated, reference], ["evaluated", "reference"])
    ev = _on_grid(evaluated, reference.grid)
    diff = ev - np.asarray(reference.array, dtype=float)
    meta: dict[str, Any] = {"difference_mode": mode.value}
    if mode is DifferenceMode.PERCENT:
        if normalisation_gy is None:
            norm = float(np.max(reference.array))
            if norm <= 0:
                raise ParameterError(
                    "reference maximum must be > 0 for a percent difference; give normalisation_gy"
                )
        else:
            norm = float(normalisation_gy)
            if not math.isfinite(norm) or norm <= 0:
                raise ParameterError(f"normalisation_gy must be > 0, got {normalisation_gy}")
        diff = diff / norm * 100.0
        meta["normalisation_gy"] = norm
        units = "%"
    elif normalisation_gy is not None:
        raise ParameterError("normalisation_gy is only used with mode=DifferenceMode.PERCENT")
    return Volume(diff, reference.grid, Quantity.DOSE, units, frame, meta)


def sum_doses(
    doses: Sequence[Volume],
    *,
    grid: Grid | None = None,
    weights: ArrayLike | None = None,
) -> Volume:
    """Sum of doses (beams, fractions) on one grid: ``Σ w_n · D_n``.

    Parameters
    ----------
    doses : sequence of Volume
        At least one dose, same units, same Frame of Reference (or none set).
    grid : Grid, optional
        Grid of the result (default: the first dose's grid). Doses on other grids are resampled trilinearly;
        outside its own grid a dose counts as 0.
    weights : array_like, optional
        One finite weight per dose (e.g. number of fractions); default 1 each.

    Returns
    -------
    Volume
        The summed dose on ``grid``, with ``metadata["summed_doses"]`` = number of doses.

    Raises
    ------
    FrameOfReferenceError
        Doses in different Frames of Reference.
    ParameterError
        No dose, different units, or bad weights.
    """
    items = list(doses)
    if not items:
        raise ParameterError("doses must hold at least one dose")
    names = [f"doses[{n}]" for n in range(len(items))]
    for n, v in zip(names, items, strict=True):
        _check_volume(n, v)
    frame = _common_frame(items, names)
    units = _check_units(items, names)
    if weights is None:
        w = np.ones(len(items))
    else:
        w = np.asarray(weights, dtype=float).reshape(-1)
        if w.size != len(items):
            raise ParameterError(f"weights must have one value per dose ({len(items)}), got {w.size}")
        if not np.all(np.isfinite(w)):
            raise ParameterError(f"weights must be finite, got {w.tolist()}")
    target = grid if grid is not None else items[0].grid
    if not isinstance(target, Grid):
        raise ParameterError(f"grid must be a Grid, got {type(target).__name__}")
    total = np.zeros(target.shape)
    for wn, v in zip(w, items, strict=True):
        total += wn * _on_grid(v, target)
    meta = {"summed_doses": len(items), "weights": w.tolist()}
    return Volume(total, target, Quantity.DOSE, units, frame, meta)


@dataclass(frozen=True, eq=False)
class DoseProfile:
    """Dose sampled along a straight line.

    Attributes
    ----------
    start_mm, stop_mm : tuple of 3 float
        World (LPS) end points, mm.
    distance_mm : ndarray, (n,)
        Distance of each sample from ``start_mm``, mm.
    points_mm : ndarray, (n, 3)
        World positions of the samples, mm.
    dose : ndarray, (n,)
        Dose at each sample (the volume's units, usually Gy); NaN outside the grid.
    units : str
        Units of ``dose``.
    """

    start_mm: tuple[float, float, float]
    stop_mm: tuple[float, float, float]
    distance_mm: NDArray[np.float64]
    points_mm: NDArray[np.float64]
    dose: NDArray[np.float64]
    units: str = "Gy"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: end points, step, ``distance_mm``, ``x_mm``, ``y_mm``, ``z_mm``, ``dose`` and units."""
        step = float(self.distance_mm[1] - self.distance_mm[0]) if self.distance_mm.size > 1 else 0.0
        return {
            "start_mm": list(self.start_mm),
            "stop_mm": list(self.stop_mm),
            "step_mm": step,
            "units": self.units,
            "distance_mm": self.distance_mm.tolist(),
            "x_mm": self.points_mm[:, 0].tolist(),
            "y_mm": self.points_mm[:, 1].tolist(),
            "z_mm": self.points_mm[:, 2].tolist(),
            "dose": self.dose.tolist(),
        }


def _triplet(name: str, value: ArrayLike) -> NDArray[np.float64]:
    a = np.asarray(value, dtype=float).reshape(-1)
    if a.size != 3 or not np.all(np.isfinite(a)):
        raise ParameterError(
            f"{name} must be 3 finite coordinates (x, y, z) in mm, got {np.asarray(value).tolist()}"
        )
    return a


def dose_profile(
    dose: Volume, start_mm: ArrayLike, stop_mm: ArrayLike, *, step_mm: float = 1.0
) -> DoseProfile:
    """Dose along the segment from ``start_mm`` to ``stop_mm``, sampled every ``step_mm``.

    Values are trilinear (bilinear for 2D images) interpolations between sample centres; within half a voxel
    of the grid's outer edge the nearest sample is used, and points farther out are NaN. For a 2D image the
    points are projected onto its plane.

    Parameters
    ----------
    dose : Volume
        2D or 3D dose.
    start_mm, stop_mm : array_like, 3
        World (LPS) end points, mm; they must differ.
    step_mm : float
        Sampling step along the line, mm (> 0). The last sample is ``stop_mm`` itself when the length is a
        whole number of steps, otherwise the last whole step before it.

    Examples
    --------
    >>> import numpy as np
    >>> from intrepid.geometry import Grid, Volume
    >>> g = Grid((3, 3, 11), (0, 0, 0), (1, 1, 1))
    >>> ramp = Volume(np.broadcast_to(np.arange(11.0), g.shape), g, units="Gy")
    >>> dose_profile(ramp, (0, 1, 1), (10, 1, 1), step_mm=2.5).dose.tolist()
    [0.0, 2.5, 5.0, 7.5, 10.0]
    """
    from scipy.ndimage import map_coordinates

    _check_volume("dose", dose)
    a = _triplet("start_mm", start_mm)
    b = _triplet("stop_mm", stop_mm)
    step = float(step_mm)
    if not math.isfinite(step) or step <= 0:
        raise ParameterError(f"step_mm must be > 0, got {step_mm}")
    length = float(np.linalg.norm(b - a))
    if length == 0:
        raise ParameterError("start_mm and stop_mm must differ")
    n = math.floor(length / step + 1e-9) + 1
    if n > 10_000_000:
        raise ParameterError(f"step_mm {step} gives {n} samples over {length:.1f} mm (max 1e7)")
    dist = np.arange(n) * step
    pts = a[None, :] + dist[:, None] * ((b - a) / length)[None, :]
    g = dose.grid
    idx = g.world_to_index(pts)
    shape_ijk = g.shape_ijk
    inside = np.ones(n, dtype=bool)
    axes = (0, 1) if dose.ndim == 2 else (0, 1, 2)
    for ax in axes:
        inside &= (idx[:, ax] >= -0.5 - 1e-9) & (idx[:, ax] <= shape_ijk[ax] - 0.5 + 1e-9)
        idx[:, ax] = np.clip(idx[:, ax], 0.0, shape_ijk[ax] - 1.0)
    arr = np.asarray(dose.array, dtype=float)
    coords = np.stack([idx[:, ax] for ax in reversed(axes)], axis=0)
    values = map_coordinates(arr, coords, order=1, mode="nearest")
    values = np.where(inside, values, np.nan)
    if not np.all(inside):
        _log.info("%d of %d profile samples lie outside the dose grid (NaN)", int((~inside).sum()), n)
    return DoseProfile(tuple(a.tolist()), tuple(b.tolist()), dist, pts, values, dose.units)  # type: ignore[arg-type]
