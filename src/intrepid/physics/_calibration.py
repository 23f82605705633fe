"""CT number (HU) calibrations: relative electron density (photons) and relative stopping power (protons).

A calibration is a piecewise-linear table ``HU -> value``, constant beyond its first and last points (as
``numpy.interp``, matRad and pyRadPlan apply their HLUTs). Tables are scanner- and protocol-specific: the
defaults below are documented, typical curves for tests and demonstrations, not a commissioned calibration.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import ParameterError
from intrepid.geometry import Quantity, Volume

__all__ = [
    "HUCalibration",
    "hu_to_relative_electron_density",
    "hu_to_relative_stopping_power",
]

_ALLOWED = (Quantity.RELATIVE_ELECTRON_DENSITY, Quantity.RELATIVE_STOPPING_POWER, Quantity.GENERIC)


@dataclass(frozen=True)
class HUCalibration:
    """Piecewise-linear conversion of CT numbers (HU) to a relative physical quantity.

    Parameters
    ----------
    hu : tuple of float
        CT numbers of the table points, strictly increasing (at least 2).
    values : tuple of float
        Value at each point (>= 0), e.g. relative electron density or relative stopping power.
    quantity : Quantity
        What the values are (``RELATIVE_ELECTRON_DENSITY``, ``RELATIVE_STOPPING_POWER`` or ``GENERIC``).
    name : str
        Short description, e.g. the scanner and protocol.
    reference : str
        Where the table comes from.

    Notes
    -----
    Between points the value is interpolated linearly; below the first and above the last point it is
    held constant (the end values).

    Examples
    --------
    >>> cal = HUCalibration.from_table([-1000, 0, 1000], [0.0, 1.0, 1.5])
    >>> cal([-2000, -500, 0, 500, 3000]).tolist()
    [0.0, 0.5, 1.0, 1.25, 1.5]
    """

    hu: tuple[float, ...]
    values: tuple[float, ...]
    quantity: Quantity = Quantity.RELATIVE_ELECTRON_DENSITY
    name: str = ""
    reference: str = ""

    def __post_init__(self) -> None:
        hu = np.asarray(self.hu, dtype=float).reshape(-1)
        val = np.asarray(self.values, dtype=float).reshape(-1)
        if hu.size != val.size:
            raise ParameterError(f"hu and values must have the same length, got {hu.size} and {val.size}")
        if hu.size < 2:
            raise ParameterError(f"a calibration needs at least 2 points, got {hu.size}")
        if not (np.all(np.isfinite(hu)) and np.all(np.isfinite(val))):
            raise ParameterError("calibration points must be finite")
        if np.any(np.diff(hu) <= 0):
            bad = int(np.argmin(np.diff(hu)))
            raise ParameterError(
                f"calibration HU must be strictly increasing, got {hu[bad]} followed by {hu[bad + 1]}"
            )
        if np.any(val < 0):
            raise ParameterError(f"calibration values must be >= 0, got a minimum of {val.min()}")
        if not isinstance(self.quantity, Quantity) or self.quantity not in _ALLOWED:
            raise ParameterError(
                f"quantity must be one of {[q.name for q in _ALLOWED]}, got {self.quantity!r}"
            )
        object.__setattr__(self, "hu", tuple(float(h) for h in hu))
        object.__setattr__(self, "values", tuple(float(v) for v in val))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_table(
        cls,
        hu: ArrayLike,
        values: ArrayLike,
        *,
        quantity: Quantity = Quantity.RELATIVE_ELECTRON_DENSITY,
        name: str = "",
        reference: str = "",
    ) -> HUCalibration:
        """A calibration from two sequences of equal length (HU and values).

        The points are sorted by HU; duplicate HU are refused.
        """
        h = np.asarray(hu, dtype=float).reshape(-1)
        v = np.asarray(values, dtype=float).reshape(-1)
        if h.size != v.size:
            raise ParameterError(f"hu and values must have the same length, got {h.size} and {v.size}")
        order = np.argsort(h, kind="stable")
        return cls(tuple(h[order]), tuple(v[order]), quantity, name, reference)

    @classmethod
    def from_matrad_hlut(
        cls,
        table: ArrayLike,
        *,
        quantity: Quantity = Quantity.RELATIVE_ELECTRON_DENSITY,
        name: str = "matRad hlut",
    ) -> HUCalibration:
        """A calibration from a matRad ``ct.hlut`` table, shape (n, 2): HU, value."""
        t = np.asarray(table, dtype=float)
        if t.ndim != 2 or t.shape[1] != 2:
            raise ParameterError(f"a matRad hlut must have shape (n, 2), got {t.shape}")
        return cls.from_table(t[:, 0], t[:, 1], quantity=quantity, name=name, reference="matRad ct.hlut")

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        *,
        quantity: Quantity = Quantity.RELATIVE_ELECTRON_DENSITY,
        name: str = "",
    ) -> HUCalibration:
        """Read a two-column CSV file ``hu,value`` (optional header line; lines starting with ``#`` skipped).

        Raises
        ------
        OSError
            The file cannot be read.
        ParameterError
            A line does not hold two numbers, or the table is invalid; the message names the file and line.
        """
        p = Path(path)
        hu: list[float] = []
        val: list[float] = []
        with p.open(newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                cells = [c.strip() for c in row]
                if not cells or not any(cells) or cells[0].startswith("#"):
                    continue
                if len(cells) < 2:
                    raise ParameterError(f"{p}: line {lineno} must hold two columns (hu, value), got {row}")
                try:
                    h, v = float(cells[0]), float(cells[1])
                except ValueError:
                    if not hu and lineno == 1:
                        continue  # a header line
                    raise ParameterError(f"{p}: line {lineno} is not two numbers: {row}") from None
                hu.append(h)
                val.append(v)
        try:
            return cls.from_table(hu, val, quantity=quantity, name=name or p.stem, reference=str(p))
        except ParameterError as exc:
            raise ParameterError(f"{p}: {exc}") from None

    # ------------------------------------------------------------------ use
    def __call__(self, hu: ArrayLike) -> NDArray[np.float64]:
        """Values at the given CT numbers (any shape), float64."""
        return np.interp(np.asarray(hu, dtype=float), self.hu, self.values)

    def to_volume(self, ct: Volume, dtype: type[np.floating] = np.float32) -> Volume:
        """Convert a CT volume in HU to this calibration's quantity (float32 by default), on the same grid.

        Raises
        ------
        ParameterError
            The volume is not in CT numbers (its quantity is not ``CT_NUMBER``), or holds NaN.
        """
        if not isinstance(ct, Volume):
            raise ParameterError(f"ct must be a Volume, got {type(ct).__name__}")
        if ct.quantity is not Quantity.CT_NUMBER:
            raise ParameterError(f"ct must hold CT numbers (quantity CT_NUMBER), got {ct.quantity.name}")
        ct.check_finite("ct")
        out = np.interp(ct.array, np.asarray(self.hu), np.asarray(self.values)).astype(dtype)
        meta = {**ct.metadata, "calibration": self.name, "calibration_reference": self.reference}
        return ct.with_array(out, quantity=self.quantity, units="relative", metadata=meta)

    def table(self) -> NDArray[np.float64]:
        """The table as an (n, 2) array ``[hu, value]``."""
        return np.column_stack([self.hu, self.values])


def _schneider_points(hu_points: Sequence[float]) -> list[float]:
    out = []
    for h in hu_points:
        if h <= -1000:
            out.append(0.00106)
        elif h <= 0:
            out.append(1.0 + 0.99894 * h / 1000.0)
        elif h <= 41.46:
            out.append(1.0 + 0.001174 * h)
        else:
            out.append(1.0279 + 0.0005011 * h)
    return out


# The two linear pieces meet at 41.46 HU with a step of 2e-6; the point just above keeps both exact.
_SCHNEIDER_HU = (-1000.0, 0.0, 41.46, 41.46 + 1e-6, 50000.0)

#: HU -> relative stopping power for protons, Schneider, Pedroni & Lomax (1996) Phys Med Biol 41:111,
#: doi:10.1088/0031-9155/41/1/009, in the piecewise form used by plastimatch: 0.00106 at and below -1000 HU;
#: ``1 + 0.99894 HU / 1000`` up to 0 HU; ``1 + 0.001174 HU`` up to 41.46 HU; ``1.0279 + 0.0005011 HU`` above
#: (the table is exact up to 50000 HU and constant beyond).
hu_to_relative_stopping_power = HUCalibration(
    hu=_SCHNEIDER_HU,
    values=tuple(_schneider_points(_SCHNEIDER_HU)),
    quantity=Quantity.RELATIVE_STOPPING_POWER,
    name="Schneider 1996 (plastimatch form)",
    reference="Schneider U, Pedroni E, Lomax A (1996) Phys Med Biol 41:111, doi:10.1088/0031-9155/41/1/009",
)

#: HU -> relative electron density, a typical curve: the nominal relative electron densities of the CIRS
#: Model 062M electron-density phantom inserts (CIRS data sheet) at CT numbers typical of a 120 kVp scan
#: (air -1000 -> 0.001, lung inhale -800 -> 0.190, lung exhale -500 -> 0.489, adipose -90 -> 0.949,
#: breast -45 -> 0.976, water 0 -> 1.000, muscle 40 -> 1.043, liver 55 -> 1.052, trabecular bone 240 ->
#: 1.117, dense bone 920 -> 1.456, 1250 mg/cm3 HA 1300 -> 1.695), constant beyond. The CT numbers vary between
#: scanners: commission your own table (``HUCalibration.from_csv``).
hu_to_relative_electron_density = HUCalibration(
    hu=(-1000.0, -800.0, -500.0, -90.0, -45.0, 0.0, 40.0, 55.0, 240.0, 920.0, 1300.0),
    values=(0.001, 0.190, 0.489, 0.949, 0.976, 1.000, 1.043, 1.052, 1.117, 1.456, 1.695),
    quantity=Quantity.RELATIVE_ELECTRON_DENSITY,
    name="typical CT-to-ED (CIRS 062M nominal densities, 120 kVp)",
    reference="CIRS Model 062M Electron Density Phantom data sheet (nominal RED); typical 120 kVp CT numbers",
)
