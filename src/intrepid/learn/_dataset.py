"""Data sets of paired EPID / portal-dose images, read from a folder with a ``manifest.csv``.

A data set is a folder holding ``manifest.csv`` (the format written by ``intrepid simulate pairs``) and the
images it names, with paths relative to the manifest::

    DATA/manifest.csv
    DATA/epid/0000_x.dcm            (or .npz / .npy)
    DATA/portal_dose/0000_x.dcm

Required columns: ``epid_file`` and ``portal_dose_file``. Used when present: ``phantom``, ``family``,
``field``, ``field_group``, ``rotation_deg``, ``mu``, ``seed``, ``split``, ``vendor``, ``name``; for NumPy
images ``pixel_spacing_mm`` (detector pixel spacing, one value or ``"row;column"``); and for raw EPID
signals ``dark_file`` / ``flood_file`` (dark-field and flood-field images on the EPID grid, see
:func:`intrepid.learn.epid_signal`). Every other column is kept in :attr:`PairRecord.extra`.

Image formats, chosen by the file suffix:

* ``.dcm`` (or no suffix): DICOM RT Image read by :func:`intrepid.dicom.read_rtimage` (vendor encoding undone:
  Elekta inverted counts, Varian calibrated units, portal dose in Gy);
* ``.npz``: the archive of :func:`intrepid.dicom.write_npz` (array + grid);
* ``.npy``: a bare 2D array (no pickles); its grid is centred on the beam axis with the manifest's
  ``pixel_spacing_mm`` (1 mm with a warning when the column is absent).
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np

from intrepid.errors import DicomError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume

__all__ = ["MANIFEST_NAME", "Pair", "PairDataset", "PairRecord", "load_dataset", "read_image"]

_log = logging.getLogger(__name__)

#: Name of the manifest inside a data-set folder.
MANIFEST_NAME = "manifest.csv"
_REQUIRED = ("epid_file", "portal_dose_file")
_KNOWN = (
    "name",
    "epid_file",
    "portal_dose_file",
    "phantom",
    "family",
    "field",
    "field_group",
    "rotation_deg",
    "mu",
    "seed",
    "split",
    "vendor",
    "pixel_spacing_mm",
    "dark_file",
    "flood_file",
)


@dataclass(frozen=True)
class PairRecord:
    """One row of a data-set manifest: where the two images are and what they show.

    Attributes
    ----------
    index : int
        Row number (0-based) in the manifest.
    name : str
        Pair name (manifest ``name``, else the EPID file stem).
    epid_file, portal_dose_file : Path
        Absolute paths of the EPID image (network input) and the portal-dose image (target, Gy).
    phantom : str
        Phantom name (``"6s10b3"``, ``"CIRS"``...); the grouping unit of the cross-validation.
    family : str
        Phantom family (``"OMG"``, ``"CIRS"``, ``"SLAB"``, ``"MP"``, ``"PATIENT"``); a stratum.
    field : str
        Field name (``"10x10"``, ``"ellipse 4x8"``).
    field_group : str
        Field group of the seed's Table 1 (``"10x10"``, ``"Ellipses"``); a stratum.
    rotation_deg : float
        Phantom rotation in degrees (NaN when unknown).
    mu : float
        Monitor units (NaN when unknown).
    seed : int or None
        Simulation seed, where the pair was simulated.
    split : str
        ``"train"``, ``"test"`` or ``""``.
    vendor : str
        EPID vendor named by the manifest (``""`` when absent).
    pixel_spacing_mm : tuple of 2 float or None
        (row, column) detector spacing for ``.npy`` images.
    dark_file, flood_file : Path or None
        Dark-field and flood-field images for the EPID signal, where given.
    extra : dict
        The other manifest columns, as strings.
    """

    index: int
    name: str
    epid_file: Path
    portal_dose_file: Path
    phantom: str = ""
    family: str = ""
    field: str = ""
    field_group: str = ""
    rotation_deg: float = float("nan")
    mu: float = float("nan")
    seed: int | None = None
    split: str = ""
    vendor: str = ""
    pixel_spacing_mm: tuple[float, float] | None = None
    dark_file: Path | None = None
    flood_file: Path | None = None
    extra: dict[str, str] = dataclass_field(default_factory=dict)

    @property
    def group(self) -> str:
        """Cross-validation group: images of one phantom with one field group (``"6s10b3|10x10"``)."""
        return f"{self.phantom or self.name}|{self.field_group or self.field}"

    @property
    def stratum(self) -> str:
        """Cross-validation stratum: phantom family × field group (``"OMG|10x10"``)."""
        return f"{self.family}|{self.field_group or self.field}"

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (paths as strings)."""
        return {
            "index": self.index,
            "name": self.name,
            "epid_file": str(self.epid_file),
            "portal_dose_file": str(self.portal_dose_file),
            "phantom": self.phantom,
            "family": self.family,
            "field": self.field,
            "field_group": self.field_group,
            "split": self.split,
            "group": self.group,
            "stratum": self.stratum,
        }


@dataclass(frozen=True, eq=False)
class Pair:
    """A loaded pair: the EPID signal and the portal dose (Gy) on the detector grid.

    Attributes
    ----------
    record : PairRecord
        Where it came from.
    epid : Volume
        2D EPID signal ``[row, column]`` (larger = more radiation; dark and flood applied where given).
    portal_dose : Volume
        2D portal dose ``[row, column]`` in Gy, on a grid of the same shape as ``epid``.
    """

    record: PairRecord
    epid: Volume
    portal_dose: Volume


def _spacing_from_text(text: str, where: str) -> tuple[float, float] | None:
    if not text.strip():
        return None
    parts = [p for p in text.replace(",", ";").replace(" ", ";").split(";") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise ParameterError(f"{where}: pixel_spacing_mm must be numbers, got {text!r}") from exc
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ParameterError(f"{where}: pixel_spacing_mm must be one or two values > 0, got {text!r}")
    return (values[0], values[1])


def _float(text: str, name: str, where: str) -> float:
    if not text.strip():
        return float("nan")
    try:
        return float(text)
    except ValueError as exc:
        raise ParameterError(f"{where}: column {name} must be a number, got {text!r}") from exc


def read_image(
    path: str | os.PathLike[str],
    quantity: Quantity,
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> Volume:
    """Read one 2D image of a data set (DICOM RT Image, ``.npz`` or ``.npy``) as a :class:`Volume`.

    Parameters
    ----------
    path : path-like
        The file; the suffix picks the reader (see the module docstring).
    quantity : Quantity
        :attr:`Quantity.EPID_SIGNAL` or :attr:`Quantity.PORTAL_DOSE`: what the image must be. DICOM portal
        dose must be in Gy; NumPy images are taken as that quantity.
    pixel_spacing_mm : (row, column), optional
        Detector spacing for ``.npy`` files (1 mm, with a warning, when None).

    Returns
    -------
    Volume
        2D float64 image; its ``metadata`` holds ``source`` and, for DICOM, ``vendor`` / ``sid_mm``.

    Raises
    ------
    ParameterError
        Not 2D, non-finite values, an unreadable or pickled ``.npy``, a portal dose not in Gy.
    DicomError
        An unreadable DICOM file (message names the file and the tag).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.is_file():
        raise ParameterError(f"{p}: no such image file")
    if suffix == ".npy":
        try:
            array = np.load(p, allow_pickle=False)
        except Exception as exc:  # numpy raises ValueError on pickles, OSError / EOFError on broken files
            raise ParameterError(f"{p}: not a readable .npy array without pickles ({exc})") from exc
        spacing = pixel_spacing_mm
        if spacing is None:
            _log.warning("%s: no pixel_spacing_mm in the manifest; assuming 1 mm", p)
            spacing = (1.0, 1.0)
        array = np.asarray(array, dtype=np.float64)
        if array.ndim != 2:
            raise ParameterError(f"{p}: image must be 2D [row, column], got shape {array.shape}")
        rows, cols = array.shape
        grid = Grid(
            (rows, cols),
            origin_mm=(-(cols - 1) / 2 * spacing[1], -(rows - 1) / 2 * spacing[0], 0.0),
            spacing_mm=(spacing[1], spacing[0], 1.0),
        )
        units = "Gy" if quantity is Quantity.PORTAL_DOSE else "raw"
        volume = Volume(array, grid, quantity, units, metadata={"source": str(p)})
    elif suffix == ".npz":
        from intrepid.dicom import read_npz

        v = read_npz(p)
        array = np.asarray(v.array, dtype=np.float64)
        if array.ndim == 3 and array.shape[0] == 1:
            g = v.grid
            grid = Grid(array.shape[1:], g.origin_mm, g.spacing_mm, g.direction)
            array = array[0]
        elif array.ndim == 2:
            grid = v.grid
        else:
            raise ParameterError(f"{p}: image must be 2D [row, column], got shape {array.shape}")
        volume = Volume(array, grid, quantity, v.units, metadata={"source": str(p)})
    else:
        from intrepid.dicom import read_rtimage

        img = read_rtimage(p)
        if quantity is Quantity.PORTAL_DOSE and img.image.quantity is not Quantity.PORTAL_DOSE:
            raise DicomError(
                f"{p}: portal_dose_file must be a portal-dose RT Image (Rescale Type Gy or Image Type "
                f"PORTAL_DOSE), got quantity {img.image.quantity.value} in units {img.pixel_units!r}"
            )
        meta = {"source": str(p), "vendor": img.vendor.value, "sid_mm": img.sid_mm, "sad_mm": img.sad_mm}
        volume = Volume(
            np.asarray(img.image.array, dtype=np.float64),
            img.image.grid,
            quantity,
            img.pixel_units,
            img.frame_of_reference_uid,
            meta,
        )
    volume.check_finite(str(p))
    return volume


class PairDataset(Sequence[Pair]):
    """Paired EPID / portal-dose images listed by a manifest; images are read on access (and cached).

    Use :func:`load_dataset` to create one. Indexing returns a :class:`Pair`; :meth:`subset` a new data set
    of some rows; :attr:`records` the manifest rows without reading images.

    Parameters
    ----------
    records : sequence of PairRecord
        Manifest rows.
    root : Path
        Folder of the manifest.
    cache : bool
        Keep loaded pairs in memory (default True: training reads every pair many times).
    """

    def __init__(self, records: Sequence[PairRecord], root: Path, cache: bool = True) -> None:
        self._records = tuple(records)
        self.root = Path(root)
        self._cache: dict[int, Pair] | None = {} if cache else None

    @property
    def records(self) -> tuple[PairRecord, ...]:
        """The manifest rows."""
        return self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Pair]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int) -> Pair:  # type: ignore[override]
        if not isinstance(index, (int, np.integer)):
            raise ParameterError(f"PairDataset index must be an integer, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise ParameterError(f"pair index {index} out of range for {len(self)} pairs")
        i = int(index) % len(self)
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        pair = self._load(self._records[i])
        if self._cache is not None:
            self._cache[i] = pair
        return pair

    def _load(self, rec: PairRecord) -> Pair:
        from intrepid.learn._preprocess import epid_signal

        epid = read_image(rec.epid_file, Quantity.EPID_SIGNAL, rec.pixel_spacing_mm)
        dose = read_image(rec.portal_dose_file, Quantity.PORTAL_DOSE, rec.pixel_spacing_mm)
        if epid.shape != dose.shape:
            raise ParameterError(
                f"pair {rec.name!r}: EPID image {rec.epid_file} has shape {epid.shape} but portal dose "
                f"{rec.portal_dose_file} has {dose.shape}; both must be on the same detector grid"
            )
        if rec.dark_file is not None or rec.flood_file is not None:
            dark = (
                read_image(rec.dark_file, Quantity.EPID_SIGNAL, rec.pixel_spacing_mm)
                if rec.dark_file
                else None
            )
            flood = (
                read_image(rec.flood_file, Quantity.EPID_SIGNAL, rec.pixel_spacing_mm)
                if rec.flood_file
                else None
            )
            epid = epid.with_array(
                epid_signal(
                    epid.array, None if dark is None else dark.array, None if flood is None else flood.array
                )
            )
        return Pair(rec, epid, dose)

    def subset(self, indices: Sequence[int]) -> PairDataset:
        """A data set of the rows ``indices`` (sharing the already loaded images)."""
        idx = [int(i) for i in indices]
        for i in idx:
            if not 0 <= i < len(self):
                raise ParameterError(f"pair index {i} out of range for {len(self)} pairs")
        sub = PairDataset([self._records[i] for i in idx], self.root, cache=self._cache is not None)
        if self._cache is not None and sub._cache is not None:
            for new, old in enumerate(idx):
                if old in self._cache:
                    sub._cache[new] = self._cache[old]
        return sub

    def split(self, name: str) -> PairDataset:
        """The rows whose manifest ``split`` is ``name`` (``"train"``, ``"test"``)."""
        return self.subset([i for i, r in enumerate(self._records) if r.split == name])

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts: ``pairs``, ``by_family``, ``by_field_group``, ``by_split``, ``by_vendor``,
        ``groups`` (number of phantom × field-group groups) and ``root``."""
        recs = self._records
        return {
            "root": str(self.root),
            "pairs": len(recs),
            "by_family": dict(Counter(r.family for r in recs)),
            "by_field_group": dict(Counter(r.field_group or r.field for r in recs)),
            "by_split": dict(Counter(r.split for r in recs)),
            "by_vendor": dict(Counter(r.vendor for r in recs)),
            "groups": len({r.group for r in recs}),
        }


def _path(root: Path, text: str, column: str, where: str) -> Path:
    if not text.strip():
        raise ParameterError(f"{where}: column {column} is empty")
    p = Path(text.strip())
    return p if p.is_absolute() else root / p


def load_dataset(
    path: str | os.PathLike[str], *, split: str | None = None, cache: bool = True
) -> PairDataset:
    """Open a data set of EPID / portal-dose pairs.

    Parameters
    ----------
    path : path-like
        The data-set folder (holding ``manifest.csv``) or the manifest itself.
    split : str, optional
        Keep only the rows of this ``split`` (``"train"``, ``"test"``); every row when None.
    cache : bool
        Keep loaded images in memory.

    Returns
    -------
    PairDataset
        The rows of the manifest; images are read when accessed.

    Raises
    ------
    ParameterError
        No manifest, missing required columns, empty manifest (or split), a referenced file missing, bad
        numbers. Messages name the manifest, the row and the column.

    Examples
    --------
    >>> ds = load_dataset("pairs/")  # doctest: +SKIP
    >>> ds.summary()["by_family"]  # doctest: +SKIP
    {'OMG': 71, 'CIRS': 48, ...}
    """
    p = Path(path)
    manifest = p / MANIFEST_NAME if p.is_dir() else p
    if not manifest.is_file():
        raise ParameterError(f"{manifest}: no such manifest (a data set is a folder with {MANIFEST_NAME})")
    root = manifest.parent
    try:
        with manifest.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ParameterError(f"{manifest}: unreadable manifest ({exc})") from exc
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise ParameterError(f"{manifest}: manifest lacks the column(s) {', '.join(missing)}")
    records = []
    for n, row in enumerate(rows):
        where = f"{manifest} row {n + 1}"
        row = {k: (v or "") for k, v in row.items() if k is not None}
        if split is not None and row.get("split", "") != split:
            continue
        epid = _path(root, row["epid_file"], "epid_file", where)
        dose = _path(root, row["portal_dose_file"], "portal_dose_file", where)
        for col, f in (("epid_file", epid), ("portal_dose_file", dose)):
            if not f.is_file():
                raise ParameterError(f"{where}: {col} {f} does not exist")
        dark = _path(root, row["dark_file"], "dark_file", where) if row.get("dark_file", "").strip() else None
        flood = (
            _path(root, row["flood_file"], "flood_file", where) if row.get("flood_file", "").strip() else None
        )
        seed_text = row.get("seed", "").strip()
        try:
            seed = int(seed_text) if seed_text else None
        except ValueError as exc:
            raise ParameterError(f"{where}: column seed must be an integer, got {seed_text!r}") from exc
        records.append(
            PairRecord(
                index=n,
                name=row.get("name", "").strip() or epid.stem,
                epid_file=epid,
                portal_dose_file=dose,
                phantom=row.get("phantom", "").strip(),
                family=row.get("family", "").strip(),
                field=row.get("field", "").strip(),
                field_group=row.get("field_group", "").strip(),
                rotation_deg=_float(row.get("rotation_deg", ""), "rotation_deg", where),
                mu=_float(row.get("mu", ""), "mu", where),
                seed=seed,
                split=row.get("split", "").strip(),
                vendor=row.get("vendor", "").strip(),
                pixel_spacing_mm=_spacing_from_text(row.get("pixel_spacing_mm", ""), where),
                dark_file=dark,
                flood_file=flood,
                extra={k: v for k, v in row.items() if k not in _KNOWN},
            )
        )
    if not records:
        what = f"rows with split {split!r}" if split is not None else "rows"
        raise ParameterError(f"{manifest}: no {what}")
    return PairDataset(records, root, cache=cache)
