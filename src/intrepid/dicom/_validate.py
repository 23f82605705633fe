"""Checks that every DICOM reader applies before it interprets a dataset.

One walk over the whole dataset (sequences included) refuses, with the file and the tag path in the message:

- a numeric value that does not parse, or is NaN / infinite (DS, IS, FL, FD and the binary integer VRs);
- a standard tag whose value multiplicity contradicts the DICOM dictionary (``PixelSpacing`` with one value,
  ``Modality`` with two), for the fixed multiplicities 1, 2, 3, 4 and 6 and the ``2-2n`` / ``3-3n`` patterns;
- a value outside the physical range of :data:`TAG_RANGES` (a 1e-30 mm pixel spacing, a 1e308 rescale
  intercept, a gantry angle of 1e9 degrees, a source-axis distance of 1e-9 mm).

The ranges are deliberately wide (an order of magnitude or more beyond any clinical device), so real files
pass; they exist to stop absurd numbers from turning into NaN doses or metre-wide voxels downstream.

Sizes are bounded too: :data:`MAX_ARRAY_BYTES` caps any array a reader materialises (declared sizes are
checked before decoding), so a small file cannot ask for gigabytes.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydicom.datadict import dictionary_has_tag, dictionary_VM, dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from intrepid.errors import DicomError, IntrepidError

__all__ = [
    "MAX_ARRAY_BYTES",
    "MAX_DOSE_GY",
    "PATTERN_RANGES",
    "TAG_RANGES",
    "check_array_budget",
    "check_dataset",
    "check_finite_array",
    "check_orientation",
    "reader",
]

#: Largest array, in bytes, that a reader will decode or decompress (4 GiB; a 512 × 512 × 1000 float64 CT is
#: 2 GiB). Declared sizes above it are refused before any decoding.
MAX_ARRAY_BYTES = 4 * 2**30

#: Largest dose value accepted in Gy. Clinical prescriptions stay below ~100 Gy in total and single-fraction
#: radiosurgery below ~90 Gy (ICRU Report 91, 2017, doi:10.1093/jicru/ndx017); 10 kGy is two orders beyond.
MAX_DOSE_GY = 1.0e4

_ANGLE = (-360.0, 360.0)
_POSITION_MM = (-1.0e5, 1.0e5)  # 100 m: any patient or room coordinate
_DISTANCE_MM = (100.0, 1.0e4)  # source distances: 10 cm to 10 m (linac SAD 1000 mm, EPID SID 1000-1800 mm)
_SPACING_MM = (1.0e-3, 1.0e3)  # 1 µm to 1 m per pixel
_LARGE = (-1.0e6, 1.0e6)

#: Physical range (inclusive) of the numeric tags that InTrEPID interprets, in the tag's DICOM unit
#: (mm, degrees, MU, MeV). Values outside are refused with the file and the tag in the message.
TAG_RANGES: dict[str, tuple[float, float]] = {
    "GantryAngle": _ANGLE,
    "BeamLimitingDeviceAngle": _ANGLE,
    "PatientSupportAngle": _ANGLE,
    "TableTopEccentricAngle": _ANGLE,
    "GantryPitchAngle": _ANGLE,
    "TableTopPitchAngle": _ANGLE,
    "TableTopRollAngle": _ANGLE,
    "WedgeAngle": (0.0, 90.0),
    "WedgeOrientation": _ANGLE,
    "PixelSpacing": _SPACING_MM,
    "ImagePlanePixelSpacing": _SPACING_MM,
    "CompensatorPixelSpacing": _SPACING_MM,
    "SliceThickness": (0.0, 1.0e3),
    "RTImageSID": _DISTANCE_MM,
    "RadiationMachineSAD": _DISTANCE_MM,
    "SourceAxisDistance": _DISTANCE_MM,
    "VirtualSourceAxisDistances": (_DISTANCE_MM[0], 1.0e6),  # scanned ion beams: up to tens of metres
    "SourceToSurfaceDistance": (0.0, 1.0e4),
    "SourceToBeamLimitingDeviceDistance": (0.0, 1.0e4),
    "IsocenterToBeamLimitingDeviceDistance": (-1.0e4, 1.0e4),
    "ImagePositionPatient": _POSITION_MM,
    "IsocenterPosition": _POSITION_MM,
    "RTImagePosition": _POSITION_MM,
    "XRayImageReceptorTranslation": _POSITION_MM,
    "GridFrameOffsetVector": _POSITION_MM,
    "ContourData": _POSITION_MM,
    "ImageOrientationPatient": (-1.001, 1.001),
    "RTImageOrientation": (-1.001, 1.001),
    "LeafJawPositions": (-1.0e4, 1.0e4),
    "LeafPositionBoundaries": (-1.0e4, 1.0e4),
    "BlockData": (-1.0e4, 1.0e4),
    "RescaleSlope": _LARGE,
    "RescaleIntercept": _LARGE,
    "DoseGridScaling": (0.0, 1.0e2),
    "CumulativeMetersetWeight": (0.0, 1.0e15),
    "FinalCumulativeMetersetWeight": (0.0, 1.0e15),
    "BeamMeterset": (0.0, 1.0e15),  # MU for photons; number of particles (NP) for ions (~1e10-1e11)
    "BeamDose": (-MAX_DOSE_GY, MAX_DOSE_GY),
    "MetersetExposure": (0.0, 1.0e15),
    "ExposureTime": (0.0, 1.0e8),
    "NominalBeamEnergy": (0.0, 1.0e4),
    "SnoutPosition": (-1.0e4, 1.0e4),
    "ScanSpotPositionMap": (-1.0e4, 1.0e4),
    "ScanSpotMetersetWeights": (0.0, 1.0e15),
    "RangeShifterWaterEquivalentThickness": (0.0, 1.0e3),
    "CompensatorThicknessData": (-1.0e4, 1.0e4),
    "NumberOfFrames": (1.0, 1.0e5),
    "BitsAllocated": (1.0, 64.0),
    "BitsStored": (1.0, 64.0),
    "NumberOfLeafJawPairs": (1.0, 1.0e3),
    "NumberOfControlPoints": (1.0, 1.0e5),
    "CompensatorRows": (1.0, 1.0e4),
    "CompensatorColumns": (1.0, 1.0e4),
    "BlockNumberOfPoints": (0.0, 1.0e6),
    "NumberOfContourPoints": (0.0, 1.0e7),
}

#: Ranges by keyword pattern, for numeric tags not in :data:`TAG_RANGES` (first match wins), and the
#: ceiling of any other decimal value.
PATTERN_RANGES: tuple[tuple[str, tuple[float, float]], ...] = (
    (r"Angle$", _ANGLE),
    (r"(Position|Point|Coordinates|Translation)", _POSITION_MM),
    (r"Distance", (-1.0e6, 1.0e6)),
)
ANY_DECIMAL_LIMIT = 1.0e20

_NUMERIC_VRS = frozenset({"DS", "IS", "FL", "FD", "SS", "US", "SL", "UL", "SV", "UV"})
_TEXT_VRS = frozenset({"CS", "UI", "LO", "SH", "PN", "DA", "TM", "DT", "AS", "AE", "ST", "LT"})
_BULK_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "UT", "UR", "UC"})
_MAX_DEPTH = 16  # nested sequences deeper than this are refused (no real IOD nests beyond ~6)


def _describe(tag: Any, keyword: str) -> str:
    return f"({int(tag) >> 16:04X},{int(tag) & 0xFFFF:04X}) {keyword or 'unknown tag'}"


def _multiplicity_ok(vm: str, count: int) -> bool:
    if count == 0:
        return True  # an empty (type 2) value
    if vm.isdigit():
        return count == int(vm)
    if vm in ("2-2n", "3-3n"):
        step = int(vm[0])
        return count % step == 0
    return True


def _values(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (MultiValue, list, tuple)):
        return list(value)
    return [value]


def check_dataset(ds: Dataset, path: str | os.PathLike[str]) -> None:
    """Refuse unparsable, non-finite, out-of-range or wrongly multiplied values anywhere in ``ds``.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The dataset, pixel data not needed.
    path : path-like
        The file, named in the messages.

    Raises
    ------
    DicomError
        Naming the file, the sequence path (``BeamSequence[0] > ControlPointSequence[2]``) and the tag.
    """
    _walk(ds, str(path), "", 0)


def _raw_text_numbers(raw: RawDataElement) -> NDArray[np.float64]:
    """The values of an unconverted DS / IS element, parsed by NumPy straight from its bytes (pydicom's
    per-value DSfloat conversion is ~10x slower on a structure set's ContourData)."""
    data = bytes(raw.value or b"").strip(b" \x00")
    if not data:
        return np.zeros(0)
    count = data.count(b"\\") + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy warns (and stops) at a token that is not a number
        numbers = np.fromstring(data.replace(b"\\", b" ").decode("latin-1"), dtype=float, sep=" ")
    if numbers.size != count:
        raise ValueError(f"{count} values expected, {numbers.size} parsed")
    return numbers


def _walk(ds: Dataset, path: str, where: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise DicomError(f"{path}: sequences nested deeper than {_MAX_DEPTH} levels at {where}")
    for tag in list(ds.keys()):
        if tag == 0x7FE00010 or tag.group in (0x7FE0, 0xFFFE):
            continue
        raw = ds.get_item(tag)
        known = dictionary_has_tag(tag)
        keyword = keyword_for_tag(tag) if known else ""
        vr = str(raw.VR) if raw.VR else (dictionary_VR(tag) if known else "UN")
        label = f"{where}{_describe(tag, keyword)}"
        if isinstance(raw, RawDataElement) and vr in ("DS", "IS") and isinstance(raw.value, bytes):
            try:
                numbers = _raw_text_numbers(raw)
            except (TypeError, ValueError, OverflowError) as exc:
                raise DicomError(f"{path}: {label} is not a number ({_short(raw.value)})") from exc
            _check_numbers(path, label, tag, keyword, vr, numbers, raw.value)
            continue
        elem = ds[tag]
        vr = str(elem.VR)
        if vr == "SQ":
            for n, item in enumerate(elem.value or []):
                _walk(item, path, f"{where}{keyword or _describe(tag, '')}[{n}] > ", depth + 1)
            continue
        if vr in _BULK_VRS:
            continue
        try:
            values = _values(elem.value)
        except Exception as exc:  # pydicom raises assorted errors converting malformed values
            raise DicomError(f"{path}: unreadable value of {label} ({exc})") from exc
        if vr not in _NUMERIC_VRS:
            if keyword and known and vr in _TEXT_VRS:
                _check_multiplicity(path, label, tag, len(values))
            continue
        try:
            numbers = np.asarray([float(v) for v in values], dtype=float)
        except (TypeError, ValueError, OverflowError) as exc:
            raise DicomError(f"{path}: {label} is not a number ({_short(elem.value)})") from exc
        _check_numbers(path, label, tag, keyword, vr, numbers, elem.value)


def _check_multiplicity(path: str, label: str, tag: Any, count: int) -> None:
    vm = dictionary_VM(tag)
    if not _multiplicity_ok(vm, count):
        raise DicomError(f"{path}: {label} has {count} value(s), the DICOM standard requires {vm}")


def _check_numbers(
    path: str, label: str, tag: Any, keyword: str, vr: str, numbers: NDArray[np.float64], shown: Any
) -> None:
    if keyword:
        _check_multiplicity(path, label, tag, int(numbers.size))
    if not numbers.size:
        return
    if not np.all(np.isfinite(numbers)):
        raise DicomError(f"{path}: {label} holds a non-finite value ({_short(shown)})")
    bounds = _bounds(keyword, vr)
    if bounds is not None and (numbers.min() < bounds[0] or numbers.max() > bounds[1]):
        bad = numbers[(numbers < bounds[0]) | (numbers > bounds[1])][0]
        raise DicomError(
            f"{path}: {label} is {bad:g}, outside the physical range [{bounds[0]:g}, {bounds[1]:g}]"
        )


def _bounds(keyword: str, vr: str) -> tuple[float, float] | None:
    bounds = TAG_RANGES.get(keyword)
    if bounds is not None or not keyword:
        return bounds
    for pattern, pattern_bounds in PATTERN_RANGES:
        if re.search(pattern, keyword):
            return pattern_bounds
    if vr in ("DS", "FL", "FD"):
        return (-ANY_DECIMAL_LIMIT, ANY_DECIMAL_LIMIT)
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_array_budget(
    shape: tuple[int, ...], itemsize: int, path: str | os.PathLike[str], what: str
) -> None:
    """Refuse an array whose declared size exceeds :data:`MAX_ARRAY_BYTES`, before it is decoded."""
    count = 1
    for n in shape:
        if n < 0:
            raise DicomError(f"{path}: {what} declares a negative dimension {shape}")
        count *= int(n)
    if count * itemsize > MAX_ARRAY_BYTES:
        raise DicomError(
            f"{path}: {what} declares shape {tuple(int(n) for n in shape)} "
            f"({count * itemsize / 2**30:.1f} GiB), above the {MAX_ARRAY_BYTES / 2**30:.0f} GiB limit"
        )


def check_finite_array(
    array: NDArray[Any], path: str | os.PathLike[str], what: str, limit: float | None = None
) -> None:
    """Refuse NaN / infinite values (and magnitudes above ``limit``) in a decoded array."""
    if array.size == 0:
        return
    if not np.all(np.isfinite(array)):
        raise DicomError(f"{path}: {what} holds NaN or infinite values after rescaling")
    if limit is not None:
        peak = float(np.max(np.abs(array)))
        if peak > limit:
            raise DicomError(f"{path}: {what} reaches {peak:g}, above the plausible limit {limit:g}")


def check_orientation(
    values: NDArray[np.float64], path: str | os.PathLike[str], label: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The unit row and column directions of a 6-value orientation, refusing zero, non-unit or skew vectors.

    A tolerance of 1e-3 on the norms and on the dot product admits the rounding of 6-digit DS strings.
    """
    row, col = values[:3], values[3:6]
    norms = (float(np.linalg.norm(row)), float(np.linalg.norm(col)))
    if values.size != 6 or any(abs(n - 1.0) > 1e-3 for n in norms):
        raise DicomError(f"{path}: {label} must hold two unit vectors, got {values.tolist()}")
    row, col = row / norms[0], col / norms[1]
    if abs(float(np.dot(row, col))) > 1e-3:
        raise DicomError(f"{path}: {label} vectors are not orthogonal: {values.tolist()}")
    return row, col


P = ParamSpec("P")
R = TypeVar("R")


def reader(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a reader whose first argument is the path: any unexpected error becomes a :class:`DicomError`.

    Errors raised on purpose (:class:`~intrepid.errors.IntrepidError`) pass unchanged; anything else that
    a malformed file provokes in pydicom or NumPy (``TypeError``, ``IndexError``, ``MemoryError``...)
    becomes one line naming the file, never a traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except IntrepidError:
            raise
        except OSError as exc:
            if exc.filename is not None or exc.errno is not None:
                raise  # a file-system error (missing file, permissions): the CLI names exc.filename
            where = args[0] if args else kwargs.get("path", "?")
            detail = " ".join(str(exc).split())
            raise DicomError(f"{Path(str(where))}: malformed or truncated data ({_short(detail)})") from exc
        except MemoryError as exc:
            where = args[0] if args else kwargs.get("path", "?")
            raise DicomError(f"{where}: too large to read in memory") from exc
        except Exception as exc:  # a malformed file: name it instead of showing a traceback
            where = args[0] if args else kwargs.get("path", "?")
            detail = f"{type(exc).__name__}: {_short(str(exc))}"
            raise DicomError(f"{Path(str(where))}: malformed or inconsistent data ({detail})") from exc

    return wrapper
