"""Read a CT image series (one DICOM file per slice) into a :class:`~intrepid.geometry.Volume` in HU.

Slices are sorted by their position along the slice normal (the cross product of the two Image Orientation
(Patient) vectors), never by Instance Number, and Rescale Slope / Intercept are applied slice by slice.
Problems that make the geometry ambiguous are refused with a message that says what was found and how to
proceed: several series in one folder, two slices at the same position, missing slices, non-uniform
spacing, mixed orientations, a tilted (sheared) stack, another modality. :func:`inspect_ct_series` reports
the same facts without raising, for the command line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from intrepid.dicom._common import describe_tag, read_dataset
from intrepid.dicom._validate import check_finite_array, check_orientation, reader
from intrepid.errors import DicomError, GeometryError
from intrepid.geometry import Grid, Quantity, Volume

__all__ = [
    "CTSeriesReport",
    "DuplicateSlices",
    "SeriesSummary",
    "SliceGap",
    "inspect_ct_series",
    "read_ct_series",
]

_log = logging.getLogger(__name__)

#: Two slices closer than this along the normal (mm) share a position.
DUPLICATE_TOLERANCE_MM = 0.01
#: A slice may deviate from the uniform lattice by this much (mm) or 1 % of the spacing, whichever is larger.
SPACING_TOLERANCE_MM = 0.01
#: Image Orientation (Patient) values of all slices must agree within this (dimensionless).
ORIENTATION_TOLERANCE = 1e-4
#: In-plane drift of Image Position (Patient) across the stack (mm) above which the stack is sheared.
SHEAR_TOLERANCE_MM = 0.05
#: Largest |CT number| accepted (HU). Extended-scale CT of metal implants reaches ~30 000 HU
#: (Coolens & Childs 2003, doi:10.1088/0031-9155/48/11/403); beyond 1e5 the rescale tags are broken.
MAX_CT_NUMBER_HU = 1.0e5
#: File names skipped when scanning a folder.
_SKIPPED_NAMES = {"DICOMDIR"}


@dataclass(frozen=True)
class SeriesSummary:
    """One series found while scanning: its UID, modality, description and number of files."""

    series_instance_uid: str
    modality: str
    number_of_files: int
    series_description: str = ""


@dataclass(frozen=True)
class DuplicateSlices:
    """Files whose slices sit at the same position along the slice normal (``position_mm``)."""

    position_mm: float
    files: tuple[str, ...]


@dataclass(frozen=True)
class SliceGap:
    """A step between consecutive slices that breaks the uniform spacing.

    ``missing_slices`` is the number of slices that would fill the gap when it is a whole multiple of the
    nominal spacing, and 0 when the step is simply irregular (non-uniform spacing).
    """

    after_position_mm: float
    before_position_mm: float
    gap_mm: float
    missing_slices: int


@dataclass(frozen=True)
class CTSeriesReport:
    """What :func:`inspect_ct_series` found: series, slice count, spacing statistics and problems.

    Attributes
    ----------
    path : str
        The folder or file inspected.
    series : tuple of SeriesSummary
        Every CT series found (and, for folders, the other objects as modality summaries).
    selected_series_uid : str or None
        The CT series the statistics describe (None when none could be chosen).
    number_of_slices : int
        Slices of the selected series.
    rows, columns : int or None
        Image size.
    pixel_spacing_mm : tuple of 2 float or None
        Pixel Spacing as stored: (row spacing, column spacing) in mm.
    slice_positions_mm : tuple of float
        Sorted positions along the slice normal, in mm.
    slice_spacing_min_mm, slice_spacing_median_mm, slice_spacing_max_mm : float or None
        Statistics of the steps between consecutive slices (None for fewer than 2 slices).
    duplicates : tuple of DuplicateSlices
        Positions shared by several files.
    gaps : tuple of SliceGap
        Missing slices and irregular steps.
    problems : tuple of str
        One readable sentence per problem; empty when :func:`read_ct_series` would succeed.
    skipped_files : tuple of str
        Files that were not DICOM or not CT.
    """

    path: str
    series: tuple[SeriesSummary, ...]
    selected_series_uid: str | None
    number_of_slices: int
    rows: int | None = None
    columns: int | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    slice_positions_mm: tuple[float, ...] = ()
    slice_spacing_min_mm: float | None = None
    slice_spacing_median_mm: float | None = None
    slice_spacing_max_mm: float | None = None
    duplicates: tuple[DuplicateSlices, ...] = ()
    gaps: tuple[SliceGap, ...] = ()
    problems: tuple[str, ...] = ()
    skipped_files: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the series can be read as one regular volume."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every field plus ``ok``."""
        d = asdict(self)
        d["ok"] = self.ok
        return d


@dataclass
class _Slice:
    path: Path
    ds: Dataset
    series_uid: str
    modality: str
    orientation: NDArray[np.float64] | None
    position: NDArray[np.float64] | None


# ---------------------------------------------------------------------------------------------- scanning
def _list_files(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> tuple[list[Path], bool]:
    """Files to read and whether they came from a folder scan (True) or were named explicitly."""
    if isinstance(path, (str, os.PathLike)):
        p = Path(path)
        if p.is_dir():
            files = sorted(
                f
                for f in p.iterdir()
                if f.is_file() and not f.name.startswith(".") and f.name not in _SKIPPED_NAMES
            )
            if not files:
                raise DicomError(f"{p}: the folder holds no files")
            return files, True
        if not p.exists():
            raise DicomError(f"{p}: no such file or folder")
        return [p], False
    files = [Path(f) for f in path]
    if not files:
        raise DicomError("no CT files given (empty list)")
    return files, False


def _looks_like_dicom(path: Path) -> bool:
    """Part 10 preamble + "DICM", or a bare dataset starting with group 0002 / 0008 (iView-style exports)."""
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError:
        return False
    if head[128:132] == b"DICM":
        return True
    return len(head) >= 8 and int.from_bytes(head[:2], "little") in (0x0002, 0x0008)


def _read_one(path: Path, stop_before_pixels: bool, sniff: bool, errors: list[str] | None) -> _Slice | None:
    """One file as a :class:`_Slice`; None for a non-DICOM file found by a folder scan (``sniff``).

    A file that looks like DICOM but cannot be read raises, unless ``errors`` collects the message.
    """
    if sniff and not _looks_like_dicom(path):
        _log.debug("%s: skipped (not a DICOM file)", path)
        return None
    try:
        ds = read_dataset(path, stop_before_pixels=stop_before_pixels)
        iop = ds.get("ImageOrientationPatient")
        ipp = ds.get("ImagePositionPatient")
        try:
            orientation = np.asarray([float(v) for v in iop], dtype=float) if iop else None
            position = np.asarray([float(v) for v in ipp], dtype=float) if ipp else None
        except (TypeError, ValueError) as exc:
            raise DicomError(f"{path}: unreadable Image Position / Orientation ({exc})") from exc
        if orientation is not None:
            check_orientation(orientation, path, describe_tag("ImageOrientationPatient"))
    except DicomError as exc:
        if errors is None:
            raise
        errors.append(str(exc))
        return None
    return _Slice(
        path=path,
        ds=ds,
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        modality=str(ds.get("Modality", "")),
        orientation=orientation,
        position=position,
    )


def _read_all(
    files: list[Path], stop_before_pixels: bool, sniff: bool, errors: list[str] | None = None
) -> list[_Slice]:
    def one(f: Path) -> _Slice | None:
        return _read_one(f, stop_before_pixels, sniff, errors)

    if len(files) == 1:
        results = [one(files[0])]
    else:
        workers = min(8, max(2, os.cpu_count() or 2))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, files))
    return [r for r in results if r is not None]


def _summaries(slices: list[_Slice]) -> tuple[SeriesSummary, ...]:
    groups: dict[tuple[str, str], list[_Slice]] = {}
    for s in slices:
        groups.setdefault((s.series_uid, s.modality), []).append(s)
    return tuple(
        SeriesSummary(uid, modality, len(members), str(members[0].ds.get("SeriesDescription", "")))
        for (uid, modality), members in sorted(groups.items(), key=lambda kv: (kv[0][1] != "CT", kv[0][0]))
    )


def _select_series(
    where: str, slices: list[_Slice], series_instance_uid: str | None, from_folder: bool
) -> tuple[list[_Slice], list[str], str | None]:
    """CT slices of the chosen series, the files skipped, and a problem sentence (None when fine)."""
    ct = [s for s in slices if s.modality == "CT"]
    other = [s for s in slices if s.modality != "CT"]
    if other and not from_folder:
        s = other[0]
        return (
            [],
            [],
            (
                f"{s.path}: {describe_tag('Modality')} is {s.modality!r}, expected 'CT' "
                "(read RTDOSE with read_rtdose, RTIMAGE with read_rtimage)"
            ),
        )
    skipped = [str(s.path) for s in other]
    if not ct:
        found = sorted({s.modality or "?" for s in other})
        return (
            [],
            skipped,
            (
                f"{where}: no CT slices found ({describe_tag('Modality')} 'CT'); "
                f"found {found or 'no DICOM files'}"
            ),
        )
    uids = sorted({s.series_uid for s in ct})
    if series_instance_uid is not None:
        chosen = [s for s in ct if s.series_uid == series_instance_uid]
        if not chosen:
            return (
                [],
                skipped,
                (f"{where}: no CT slices of series {series_instance_uid}; series present: {', '.join(uids)}"),
            )
        skipped += [str(s.path) for s in ct if s.series_uid != series_instance_uid]
        return chosen, skipped, None
    if len(uids) > 1:
        counts = {u: sum(s.series_uid == u for s in ct) for u in uids}
        listing = "; ".join(f"{u} ({n} slices)" for u, n in counts.items())
        return (
            ct,
            skipped,
            (
                f"{where}: mixed CT series, {describe_tag('SeriesInstanceUID')} values: {listing}; "
                "choose one with series_instance_uid=... (CLI: --series UID)"
            ),
        )
    return ct, skipped, None


# ---------------------------------------------------------------------------------------------- geometry
@dataclass
class _Stack:
    slices: list[_Slice]
    normal: NDArray[np.float64]
    positions: NDArray[np.float64]
    duplicates: list[DuplicateSlices]
    gaps: list[SliceGap]
    spacing_mm: float
    problems: list[str]
    shear_error: str | None


def _analyse(where: str, ct: list[_Slice]) -> _Stack:
    """Sort the slices along the normal and find duplicates, gaps, mixed orientation and shear."""
    problems: list[str] = []
    missing = [s for s in ct if s.orientation is None or s.position is None or s.orientation.size != 6]
    if missing:
        raise DicomError(
            f"{missing[0].path}: missing or malformed {describe_tag('ImageOrientationPatient')} or "
            f"{describe_tag('ImagePositionPatient')}"
        )
    ref = ct[0].orientation
    assert ref is not None
    for s in ct[1:]:
        assert s.orientation is not None
        if not np.allclose(s.orientation, ref, atol=ORIENTATION_TOLERANCE):
            problems.append(
                f"{where}: mixed orientations, {describe_tag('ImageOrientationPatient')} is "
                f"{np.round(ref, 5).tolist()} in {ct[0].path.name} but {np.round(s.orientation, 5).tolist()} "
                f"in {s.path.name}"
            )
            break
    sizes = {(int(s.ds.get("Rows", 0)), int(s.ds.get("Columns", 0))) for s in ct}
    if len(sizes) > 1:
        problems.append(f"{where}: slices of different sizes (rows, columns): {sorted(sizes)}")
    spacings = {tuple(round(float(v), 6) for v in s.ds.get("PixelSpacing", [])) for s in ct}
    if len(spacings) > 1:
        problems.append(f"{where}: slices with different {describe_tag('PixelSpacing')}: {sorted(spacings)}")
    row_dir = ref[:3] / np.linalg.norm(ref[:3])
    col_dir = ref[3:] / np.linalg.norm(ref[3:])
    normal = np.cross(row_dir, col_dir)
    positions = np.array([s.position for s in ct], dtype=float)  # all present: checked above
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    ct = [ct[i] for i in order]
    along = along[order]

    duplicates: list[DuplicateSlices] = []
    i = 0
    while i < len(ct):
        j = i + 1
        while j < len(ct) and along[j] - along[i] <= DUPLICATE_TOLERANCE_MM:
            j += 1
        if j - i > 1:
            duplicates.append(DuplicateSlices(float(along[i]), tuple(str(s.path) for s in ct[i:j])))
        i = j
    for d in duplicates:
        problems.append(
            f"{where}: duplicate slice position {d.position_mm:.3f} mm along the normal in files "
            f"{', '.join(Path(f).name for f in d.files)}"
        )

    unique = np.array(sorted({round(float(a), 4) for a in along})) if len(along) else along
    gaps: list[SliceGap] = []
    spacing = 0.0
    if unique.size >= 2:
        steps = np.diff(unique)
        spacing = float(np.median(steps))
        tol = max(SPACING_TOLERANCE_MM, 0.01 * spacing)
        for a, b, step in zip(unique[:-1], unique[1:], steps, strict=True):
            if abs(step - spacing) <= tol:
                continue
            multiple = round(step / spacing)
            whole = multiple >= 2 and abs(step - multiple * spacing) <= tol
            gaps.append(SliceGap(float(a), float(b), float(step), int(multiple - 1) if whole else 0))
        for g in gaps:
            if g.missing_slices:
                problems.append(
                    f"{where}: {g.missing_slices} missing slice(s) between {g.after_position_mm:.3f} and "
                    f"{g.before_position_mm:.3f} mm (gap {g.gap_mm:.3f} mm, spacing {spacing:.3f} mm)"
                )
            else:
                problems.append(
                    f"{where}: non-uniform slice spacing, step of {g.gap_mm:.3f} mm between "
                    f"{g.after_position_mm:.3f} and {g.before_position_mm:.3f} mm "
                    f"(median step {spacing:.3f} mm)"
                )
        if not gaps:
            # Steps may each be within tolerance yet drift; check against the fitted lattice.
            spacing = float((unique[-1] - unique[0]) / (unique.size - 1))
            drift = np.abs(unique - (unique[0] + spacing * np.arange(unique.size)))
            if float(drift.max()) > tol:
                worst = int(np.argmax(drift))
                problems.append(
                    f"{where}: non-uniform slice spacing, slice at {unique[worst]:.3f} mm lies "
                    f"{drift[worst]:.3f} mm off a regular {spacing:.4f} mm lattice"
                )
    shear_error = None
    if len(ct) >= 2:
        stacked = np.array([s.position for s in ct], dtype=float)
        inplane = stacked - np.outer(stacked @ normal, normal)
        drift_mm = float(np.max(np.linalg.norm(inplane - inplane[0], axis=1)))
        if drift_mm > SHEAR_TOLERANCE_MM:
            shear_error = (
                f"{where}: the slices are sheared (gantry tilt?): "
                f"{describe_tag('ImagePositionPatient')} drifts "
                f"{drift_mm:.3f} mm within the image plane across the stack; only stacks along the slice "
                "normal are supported"
            )
            problems.append(shear_error)
    return _Stack(ct, normal, along, duplicates, gaps, spacing, problems, shear_error)


# ---------------------------------------------------------------------------------------------- pixels
def _pixels(s: _Slice) -> NDArray[Any]:
    ds = s.ds
    try:
        tsyntax = ds.file_meta.TransferSyntaxUID
        bits = int(ds.BitsAllocated)
        stored = int(ds.get("BitsStored", bits))
        if (
            not tsyntax.is_compressed
            and tsyntax.is_little_endian
            and bits == 16
            and int(ds.get("SamplesPerPixel", 1)) == 1
            and (stored == 16 or int(ds.PixelRepresentation) == 0)
            and "PixelData" in ds
        ):
            rows, cols = int(ds.Rows), int(ds.Columns)
            buf = ds.PixelData
            if len(buf) < rows * cols * 2:
                raise DicomError(
                    f"{s.path}: truncated pixel data ({len(buf)} bytes, expected {rows * cols * 2})"
                )
            dtype = "<i2" if int(ds.PixelRepresentation) == 1 else "<u2"
            return np.frombuffer(buf, dtype=dtype, count=rows * cols).reshape(rows, cols)
        return np.asarray(ds.pixel_array)
    except DicomError:
        raise
    except Exception as exc:  # pydicom raises assorted errors on truncated / odd pixel data
        raise DicomError(f"{s.path}: cannot decode the pixel data ({exc})") from exc


def _rescale(s: _Slice) -> tuple[float, float]:
    """Rescale Slope and Intercept (finite and in range: checked when the file was read); slope 0 refused."""
    raw_slope = s.ds.get("RescaleSlope")
    raw_intercept = s.ds.get("RescaleIntercept")
    slope = 1.0 if raw_slope in (None, "") else float(raw_slope)
    intercept = 0.0 if raw_intercept in (None, "") else float(raw_intercept)
    if slope == 0.0:
        raise DicomError(f"{s.path}: {describe_tag('RescaleSlope')} is 0; every CT number would be equal")
    return slope, intercept


# ---------------------------------------------------------------------------------------------- public API
@reader
def inspect_ct_series(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    series_instance_uid: str | None = None,
) -> CTSeriesReport:
    """Describe a CT series without reading pixels and without raising for series problems.

    Parameters
    ----------
    path : path-like or sequence of path-like
        A folder of slices, one file, or a list of files.
    series_instance_uid : str, optional
        Series to describe when several are present (otherwise the largest CT series is described and the
        mix is listed in ``problems``).

    Returns
    -------
    CTSeriesReport
        Series found, slice count, spacing statistics, duplicates, gaps and readable problem sentences.

    Raises
    ------
    DicomError
        Only when ``path`` does not exist or is an empty folder; unreadable files become ``problems``.
    """
    files, from_folder = _list_files(path)
    where = str(path) if isinstance(path, (str, os.PathLike)) else f"{len(files)} files"
    errors: list[str] = []
    slices = _read_all(files, stop_before_pixels=True, sniff=from_folder, errors=errors)
    unreadable = sorted({str(f) for f in files} - {str(s.path) for s in slices})
    ct, skipped, problem = _select_series(where, slices, series_instance_uid, from_folder=True)
    skipped = sorted(set(skipped) | set(unreadable))
    problems: list[str] = list(errors)
    if not from_folder and skipped:
        problems.append(f"{where}: not CT or not readable: {', '.join(Path(f).name for f in skipped)}")
    if problem is not None:
        problems.append(problem)
    if ct and problem is not None and series_instance_uid is None:
        # Mixed series: describe the largest one.
        counts: dict[str, int] = {}
        for s in ct:
            counts[s.series_uid] = counts.get(s.series_uid, 0) + 1
        biggest = max(counts, key=lambda u: counts[u])
        ct = [s for s in ct if s.series_uid == biggest]
    summaries = _summaries(slices)
    if not ct:
        return CTSeriesReport(
            str(path), summaries, None, 0, problems=tuple(problems), skipped_files=tuple(skipped)
        )
    try:
        stack = _analyse(where, ct)
    except DicomError as exc:
        problems.append(str(exc))
        return CTSeriesReport(
            str(path),
            summaries,
            ct[0].series_uid,
            len(ct),
            problems=tuple(problems),
            skipped_files=tuple(skipped),
        )
    problems.extend(stack.problems)
    steps = np.diff(np.unique(np.round(stack.positions, 4)))
    ds0 = stack.slices[0].ds
    ps = ds0.get("PixelSpacing")
    return CTSeriesReport(
        path=str(path),
        series=summaries,
        selected_series_uid=ct[0].series_uid,
        number_of_slices=len(ct),
        rows=int(ds0.Rows) if "Rows" in ds0 else None,
        columns=int(ds0.Columns) if "Columns" in ds0 else None,
        pixel_spacing_mm=(float(ps[0]), float(ps[1])) if ps is not None and len(ps) == 2 else None,
        slice_positions_mm=tuple(float(a) for a in stack.positions),
        slice_spacing_min_mm=float(steps.min()) if steps.size else None,
        slice_spacing_median_mm=float(np.median(steps)) if steps.size else None,
        slice_spacing_max_mm=float(steps.max()) if steps.size else None,
        duplicates=tuple(stack.duplicates),
        gaps=tuple(stack.gaps),
        problems=tuple(problems),
        skipped_files=tuple(skipped),
    )


@reader
def read_ct_series(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    series_instance_uid: str | None = None,
) -> Volume:
    """Read a CT series into a 3D volume of CT numbers (HU, float32).

    Slices are sorted by position along the slice normal (not by Instance Number); Rescale Slope (0028,1053)
    and Rescale Intercept (0028,1052) are applied per slice. In a folder, files that are not DICOM or not CT
    (an RTSTRUCT beside the images, say) are skipped; named files must all be CT.

    Parameters
    ----------
    path : path-like or sequence of path-like
        A folder of slices, a single file (a one-slice volume) or a list of files.
    series_instance_uid : str, optional
        Series Instance UID (0020,000E) to read when the input holds several series.

    Returns
    -------
    Volume
        Shape ``(slices, rows, columns)``, :attr:`Quantity.CT_NUMBER`, units ``"HU"``, float32, with the
        Frame of Reference UID; ``metadata`` holds ``modality``, ``series_instance_uid``,
        ``study_instance_uid``, ``series_description``, ``patient_position``, ``number_of_slices``,
        ``sop_instance_uids`` (in slice order) and ``source``. A single slice gets the Slice Thickness
        (0018,0050) (else 1 mm) as its k spacing.

    Raises
    ------
    DicomError
        Mixed series (the message lists the UIDs and how to choose), duplicate positions (names the files),
        missing slices or non-uniform spacing (gives the positions and the gap), mixed orientations or
        sizes, another modality, unreadable or truncated files.
    GeometryError
        A sheared stack (gantry tilt): positions drift within the image plane.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> ct = read_ct_series(get_testdata_file("CT_small.dcm"))
    >>> ct.shape
    (1, 128, 128)
    """
    files, from_folder = _list_files(path)
    where = str(path) if isinstance(path, (str, os.PathLike)) else f"{len(files)} CT files"
    slices = _read_all(files, stop_before_pixels=False, sniff=from_folder)
    ct, _, problem = _select_series(where, slices, series_instance_uid, from_folder)
    if problem is not None:
        raise DicomError(problem)
    stack = _analyse(where, ct)
    if stack.shear_error is not None:
        raise GeometryError(stack.shear_error)
    if stack.problems:
        raise DicomError(
            stack.problems[0] + ("" if len(stack.problems) == 1 else f" (+{len(stack.problems) - 1} more)")
        )
    ordered = stack.slices
    first = ordered[0].ds
    rows, cols = int(first.Rows), int(first.Columns)
    out = np.empty((len(ordered), rows, cols), dtype=np.float32)

    def fill(index: int) -> None:
        s = ordered[index]
        slope, intercept = _rescale(s)
        raw = _pixels(s)
        if raw.shape != (rows, cols):
            raise DicomError(
                f"{s.path}: pixel array shape {raw.shape} differs from (Rows, Columns) {(rows, cols)}"
            )
        np.multiply(raw, np.float32(slope), out=out[index], casting="unsafe")
        out[index] += np.float32(intercept)

    if len(ordered) > 4:
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2)) as pool:
            list(pool.map(fill, range(len(ordered))))
    else:
        for n in range(len(ordered)):
            fill(n)

    check_finite_array(out, ordered[0].path, "CT numbers (HU)", limit=MAX_CT_NUMBER_HU)
    ps = first.get("PixelSpacing")
    if ps is None or len(ps) != 2:
        raise DicomError(f"{ordered[0].path}: missing required tag {describe_tag('PixelSpacing')}")
    if len(ordered) >= 2:
        slice_spacing = float((stack.positions[-1] - stack.positions[0]) / (len(ordered) - 1))
    else:
        thickness = first.get("SliceThickness")
        slice_spacing = float(thickness) if thickness not in (None, "") and float(thickness) > 0 else 1.0
    ref = ordered[0].orientation
    assert ref is not None and ordered[0].position is not None
    row_dir, col_dir = check_orientation(ref, ordered[0].path, describe_tag("ImageOrientationPatient"))
    grid = Grid(
        shape=out.shape,
        origin_mm=tuple(ordered[0].position),
        spacing_mm=(float(ps[1]), float(ps[0]), slice_spacing),
        direction=tuple(np.column_stack([row_dir, col_dir, stack.normal]).reshape(-1)),
    )
    metadata = {
        "modality": "CT",
        "series_instance_uid": ordered[0].series_uid,
        "study_instance_uid": str(first.get("StudyInstanceUID", "")),
        "series_description": str(first.get("SeriesDescription", "")),
        "patient_position": str(first.get("PatientPosition", "")),
        "number_of_slices": len(ordered),
        "sop_instance_uids": [str(s.ds.get("SOPInstanceUID", "")) for s in ordered],
        "source": str(path) if isinstance(path, (str, os.PathLike)) else [str(s.path) for s in ordered],
    }
    for_uid = first.get("FrameOfReferenceUID")
    _log.info(
        "read CT series %s: %d slices of %d x %d", metadata["series_instance_uid"], len(ordered), rows, cols
    )
    return Volume(
        out,
        grid,
        quantity=Quantity.CT_NUMBER,
        units="HU",
        frame_of_reference_uid=str(for_uid) if for_uid else None,
        metadata=metadata,
    )
