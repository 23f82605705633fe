"""Arrays that carry their geometry: :class:`Volume` (3D) and 2D images, with quantity and units."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry._grid import Grid

__all__ = ["Quantity", "Volume"]


class Quantity(enum.Enum):
    """What the values of a :class:`Volume` mean."""

    GENERIC = "generic"
    CT_NUMBER = "ct_number"  #: Hounsfield units
    DOSE = "dose"  #: absorbed dose (Gy) or relative dose
    PORTAL_DOSE = "portal_dose"  #: dose to water at the EPID plane (Gy)
    EPID_SIGNAL = "epid_signal"  #: detector signal (calibrated units or raw counts)
    RELATIVE_ELECTRON_DENSITY = "relative_electron_density"
    RELATIVE_STOPPING_POWER = "relative_stopping_power"
    LENGTH = "length"  #: a path length or depth (mm), e.g. WEPL
    MASK = "mask"  #: binary (0/1) or fractional occupancy in [0, 1]
    GAMMA = "gamma"  #: gamma index (dimensionless)


@dataclass(frozen=True, eq=False)
class Volume:
    """A 2D image or 3D volume: an array with its grid, quantity, units and Frame of Reference.

    Parameters
    ----------
    array : ndarray
        Values indexed ``[slice, row, column]`` (3D) or ``[row, column]`` (2D); shape must equal
        ``grid.shape``.
    grid : Grid
        Where the samples are, in the patient frame (mm).
    quantity : Quantity
        What the values are.
    units : str
        Units of the values as a short string: ``"Gy"``, ``"HU"``, ``"relative"``, ``"CU"``, ``"mm"``.
    frame_of_reference_uid : str or None
        DICOM Frame of Reference UID (0020,0052); volumes in different frames are never combined silently.
    metadata : dict
        Extra, JSON-friendly facts (modality, summation type, source file...). Never patient names.
    """

    array: NDArray[Any]
    grid: Grid
    quantity: Quantity = Quantity.GENERIC
    units: str = ""
    frame_of_reference_uid: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.shape != self.grid.shape:
            raise GeometryError(
                f"array shape {arr.shape} does not match grid shape {self.grid.shape} "
                "(arrays are indexed [slice, row, column])"
            )
        if not isinstance(self.quantity, Quantity):
            raise ParameterError(f"quantity must be a Quantity, got {self.quantity!r}")
        object.__setattr__(self, "array", arr)

    @property
    def ndim(self) -> int:
        """2 for an image, 3 for a volume."""
        return self.grid.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape ``[slices, rows, columns]`` (2D: ``[rows, columns]``)."""
        return self.grid.shape

    def with_array(self, array: NDArray[Any], **changes: Any) -> Volume:
        """A copy on the same grid with another array (and optionally other quantity / units / metadata)."""
        return replace(self, array=np.asarray(array), **changes)

    def statistics(self) -> dict[str, float]:
        """``min``, ``max`` and ``mean`` of the finite values (NaN where there are none)."""
        a = np.asarray(self.array, dtype=float)
        finite = a[np.isfinite(a)]
        if finite.size == 0:
            return {"min": float("nan"), "max": float("nan"), "mean": float("nan")}
        return {"min": float(finite.min()), "max": float(finite.max()), "mean": float(finite.mean())}

    def check_finite(self, name: str = "volume") -> None:
        """Raise :class:`ParameterError` naming ``name`` when the array holds NaN or infinite values."""
        a = np.asarray(self.array)
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            bad = int(np.count_nonzero(~np.isfinite(a)))
            raise ParameterError(f"{name} contains {bad} NaN or infinite values")

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: shape, origin_mm, spacing_mm, direction, units, quantity, min, max, mean."""
        d = self.grid.to_dict()
        d.update(units=self.units, quantity=self.quantity.value)
        d.update(self.statistics())
        if self.frame_of_reference_uid:
            d["frame_of_reference_uid"] = self.frame_of_reference_uid
        return d
