"""Non-DICOM volume formats: NumPy archive (``.npz``), NIfTI (``.nii``, ``.nii.gz``) and NRRD (``.nrrd``).

All three keep the geometry exactly:

- ``.npz`` — the plain archive for scripts, with the arrays ``array`` (indexed ``[slice, row, column]``),
  ``origin_mm`` (3), ``spacing_mm`` (3, along the column, row and slice index axes = x, y, z order),
  ``direction`` (3 × 3, columns = world LPS directions of the column, row and slice index axes) and
  ``units`` (a string), plus ``quantity`` and ``frame_of_reference_uid`` when known. Loaded without pickle.
- NIfTI stores world coordinates in RAS (+x right, +y anterior); InTrEPID works in DICOM LPS, so the affine
  is flipped on the first two world axes when writing and reading: ``A_RAS = diag(-1, -1, 1, 1) · A_LPS``.
  The NIfTI array is indexed ``[i, j, k]``; ours is its transpose.
- NRRD is written with ``space: left-posterior-superior``, so no flip is needed.

2D images are written as 2D arrays (one plane) and read back as 2D :class:`~intrepid.geometry.Volume`.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.dicom._common import atomic_write
from intrepid.dicom._validate import check_array_budget, reader
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume

__all__ = [
    "read_nifti",
    "read_npz",
    "read_nrrd",
    "write_nifti",
    "write_npz",
    "write_nrrd",
]

_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_NPZ_REQUIRED = ("array", "origin_mm", "spacing_mm", "direction", "units")


def _quantity_from_text(text: str) -> Quantity:
    try:
        return Quantity(text)
    except ValueError:
        return Quantity.GENERIC


def _grid_from_affine(affine_lps: NDArray[np.float64], shape_ijk: tuple[int, ...], path: Path) -> Grid:
    """Grid from a 4 × 4 index→LPS affine; refuses sheared affines."""
    m = affine_lps[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    if np.any(spacing <= 0):
        raise GeometryError(f"{path}: affine has a zero-length index axis")
    direction = m / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise GeometryError(f"{path}: affine is sheared (non-orthogonal axes); InTrEPID needs rigid grids")
    shape = tuple(reversed(shape_ijk))
    return Grid(shape, tuple(affine_lps[:3, 3]), tuple(spacing), tuple(direction.reshape(-1)))


def _affine_lps(grid: Grid) -> NDArray[np.float64]:
    return grid.affine


# ---------------------------------------------------------------------------------------------- npz
def write_npz(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write ``volume`` as the plain ``.npz`` archive described in the module docstring (atomic)."""
    g = volume.grid

    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                array=np.asarray(volume.array),
                origin_mm=np.asarray(g.origin_mm),
                spacing_mm=np.asarray(g.spacing_mm),
                direction=g.direction_matrix,
                units=np.asarray(volume.units),
                quantity=np.asarray(volume.quantity.value),
                frame_of_reference_uid=np.asarray(volume.frame_of_reference_uid or ""),
            )

    return atomic_write(path, _write)


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Shape and dtype of every member of an ``.npz``, read from the ``.npy`` headers without decompressing
    the data, so that a small archive declaring a huge array is refused before it is inflated."""
    headers: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            headers[info.filename[:-4]] = (tuple(int(n) for n in shape), dtype)
    return headers


def _check_npz_member(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    if dtype.hasobject or dtype.fields is not None:
        raise ParameterError(f"{path}: key {key!r} has dtype {dtype}, which InTrEPID does not load")
    check_array_budget(shape, max(dtype.itemsize, 1), path, f"key {key!r}")
    if key != "array":
        if dtype.kind == "c":
            raise ParameterError(f"{path}: key {key!r} is complex ({dtype}); geometry must be real")
        if dtype.kind not in "US" and int(np.prod(shape)) > 64:
            raise ParameterError(f"{path}: key {key!r} declares shape {shape}; expected a few values")
        return
    if dtype.kind == "c":
        raise ParameterError(
            f"{path}: key 'array' is complex ({dtype}); InTrEPID volumes are real (take .real or abs() first)"
        )
    if dtype.kind not in "biuf":
        raise ParameterError(f"{path}: key 'array' has dtype {dtype}; expected a real number or boolean type")


def _check_data(path: Path, shape: tuple[int, ...], dtype: np.dtype[Any], what: str) -> None:
    """Refuse complex / non-numeric data and declared sizes over budget, before the data are decoded."""
    if dtype.kind == "c":
        raise ParameterError(f"{path}: {what} is complex ({dtype}); InTrEPID volumes are real")
    if dtype.kind not in "biuf":
        raise ParameterError(f"{path}: {what} has dtype {dtype}; expected a real number or boolean type")
    check_array_budget(shape, max(dtype.itemsize, 1), path, what)


#: Largest |coordinate| of a volume origin (mm): 100 m, any room or patient position.
MAX_COORDINATE_MM = 1.0e5
#: Largest |value| in a volume: doses (<= 1e4 Gy), CT numbers (<= 1e5 HU), EPID signals (< 1e6).
MAX_VALUE = 1.0e6


def _check_magnitude(path: Path, data: NDArray[Any], what: str) -> None:
    if data.dtype.kind not in "fiu" or data.size == 0:
        return
    finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
    if finite.size and float(np.max(np.abs(finite))) > MAX_VALUE:
        raise ParameterError(
            f"{path}: {what} reaches {float(np.max(np.abs(finite))):g}, above the plausible {MAX_VALUE:g}"
        )


def _check_values(path: Path, data: NDArray[Any], geometry: NDArray[np.float64], what: str) -> None:
    if not np.all(np.isfinite(geometry)) or np.any(np.abs(geometry) > MAX_COORDINATE_MM):
        raise ParameterError(f"{path}: {what} geometry (affine / space directions) is not finite and bounded")
    _check_magnitude(path, data, f"{what} data")
    if data.dtype.kind == "f" and np.any(np.isinf(data)):
        raise ParameterError(f"{path}: {what} data hold infinite values (NaN, 'no value', is accepted)")


@reader
def read_npz(path: str | os.PathLike[str]) -> Volume:
    """Read the ``.npz`` archive written by :func:`write_npz` (or by a script following the same keys).

    Member headers are checked before anything is decompressed: a complex, object or string ``array``, or
    any member larger than :data:`~intrepid.dicom._validate.MAX_ARRAY_BYTES`, is refused.

    Raises
    ------
    ParameterError
        A required key is missing, has the wrong shape or dtype, or holds NaN / infinite values; the message
        names the file and the key.
    """
    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"{p}: no such file")
    try:
        headers = _npz_headers(p)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ParameterError(f"{p}: not a readable npz archive ({exc})") from exc
    missing = [k for k in _NPZ_REQUIRED if k not in headers]
    if missing:
        raise ParameterError(
            f"{p}: npz archive lacks key(s) {', '.join(missing)}; expected {', '.join(_NPZ_REQUIRED)}"
        )
    for key, (shape, dtype) in headers.items():
        _check_npz_member(p, key, shape, dtype)
    try:
        with np.load(p, allow_pickle=False) as data:
            array = np.asarray(data["array"])
            origin = np.asarray(data["origin_mm"], dtype=float).reshape(-1)
            spacing = np.asarray(data["spacing_mm"], dtype=float).reshape(-1)
            direction = np.asarray(data["direction"], dtype=float)
            units = str(data["units"])
            quantity = _quantity_from_text(str(data["quantity"])) if "quantity" in data.files else None
            for_uid = str(data["frame_of_reference_uid"]) if "frame_of_reference_uid" in data.files else ""
    except ParameterError:
        raise
    except Exception as exc:  # zipfile, zlib and numpy raise assorted errors on broken archives
        raise ParameterError(f"{p}: not a readable npz archive ({exc})") from exc
    if array.ndim not in (2, 3):
        raise ParameterError(f"{p}: key 'array' must be 2D or 3D, got shape {array.shape}")
    if origin.size != 3 or spacing.size != 3:
        raise ParameterError(f"{p}: keys 'origin_mm' and 'spacing_mm' must hold 3 values (x, y, z)")
    if direction.shape != (3, 3):
        raise ParameterError(f"{p}: key 'direction' must be 3 x 3, got shape {direction.shape}")
    for key, values in (("origin_mm", origin), ("spacing_mm", spacing), ("direction", direction)):
        if not np.all(np.isfinite(values)):
            raise ParameterError(f"{p}: key {key!r} holds NaN or infinite values {values.tolist()}")
    if np.any(spacing < 1e-3) or np.any(spacing > 1e3):
        raise ParameterError(f"{p}: key 'spacing_mm' must lie in [0.001, 1000] mm, got {spacing.tolist()}")
    if np.any(np.abs(origin) > MAX_COORDINATE_MM):
        raise ParameterError(
            f"{p}: key 'origin_mm' must lie within ±{MAX_COORDINATE_MM:g} mm, got {origin.tolist()}"
        )
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-3):
        raise ParameterError(
            f"{p}: key 'direction' must be orthonormal (a rotation), got {direction.tolist()}"
        )
    _check_magnitude(p, array, "key 'array'")
    if array.dtype.kind == "f" and np.any(np.isinf(array)):
        raise ParameterError(f"{p}: key 'array' holds infinite values (NaN, 'no value', is accepted)")
    grid = Grid(array.shape, tuple(origin), tuple(spacing), tuple(direction.reshape(-1)))
    if quantity is None:
        quantity = Quantity.DOSE if units.lower() == "gy" else Quantity.GENERIC
    return Volume(array, grid, quantity, units, for_uid or None, {"source_format": "npz"})


# ---------------------------------------------------------------------------------------------- NIfTI
def write_nifti(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write ``volume`` as NIfTI-1 (``.nii`` or ``.nii.gz``), converting LPS to the RAS affine (atomic)."""
    import nibabel as nib

    arr = np.asarray(volume.array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    data = arr.T  # [k, j, i] -> [i, j, k]
    affine = _LPS_RAS @ _affine_lps(volume.grid)
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = f"intrepid units={volume.units} quantity={volume.quantity.value}"[:79].encode()
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)

    def _write(tmp: Path) -> None:
        nib.save(img, str(tmp))

    return atomic_write(path, _write)


def _parse_descrip(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for token in text.split():
        if "=" in token:
            key, value = token.split("=", 1)
            fields[key] = value
    return fields


@reader
def read_nifti(path: str | os.PathLike[str]) -> Volume:
    """Read a NIfTI-1/2 file into an LPS :class:`Volume` (the sform, else the qform, gives the geometry)."""
    import nibabel as nib

    p = Path(path)
    try:
        img: Any = nib.load(str(p))
        _check_data(p, tuple(img.shape), np.dtype(img.get_data_dtype()), "the NIfTI data")
        data = np.asarray(img.dataobj)
    except ParameterError:
        raise
    except Exception as exc:  # nibabel raises assorted errors for broken files
        raise ParameterError(f"{p}: not a readable NIfTI file ({exc})") from exc
    _check_values(p, data, np.asarray(img.affine, dtype=float), "the NIfTI")
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise ParameterError(f"{p}: NIfTI data must be 2D or 3D, got shape {data.shape}")
    affine_lps = _LPS_RAS @ np.asarray(img.affine, dtype=float)
    shape_ijk = data.shape
    if data.ndim == 2:
        grid3 = _grid_from_affine(affine_lps, (*shape_ijk, 1), p)
        grid = Grid(tuple(reversed(shape_ijk)), grid3.origin_mm, grid3.spacing_mm, grid3.direction)
    else:
        grid = _grid_from_affine(affine_lps, shape_ijk, p)
    descrip = img.header.get("descrip")
    text = descrip.tobytes().decode("latin-1", "ignore").strip("\x00 ") if descrip is not None else ""
    info = _parse_descrip(text)
    units = info.get("units", "")
    quantity = _quantity_from_text(info.get("quantity", "generic"))
    return Volume(np.ascontiguousarray(data.T), grid, quantity, units, None, {"source_format": "nifti"})


# ---------------------------------------------------------------------------------------------- NRRD
def write_nrrd(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write ``volume`` as NRRD in the ``left-posterior-superior`` space (atomic, gzip-encoded)."""
    import nrrd

    arr = np.asarray(volume.array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    g = volume.grid
    n_axes = arr.ndim
    directions = (g.direction_matrix * np.asarray(g.spacing_mm)[None, :]).T[:n_axes]
    header: dict[str, Any] = {
        "space": "left-posterior-superior",
        "space directions": directions,
        "space origin": np.asarray(g.origin_mm, dtype=float),
        "kinds": ["domain"] * n_axes,
        "encoding": "gzip",
        "intrepid_units": volume.units or "none",
        "intrepid_quantity": volume.quantity.value,
    }
    if volume.frame_of_reference_uid:
        header["intrepid_frame_of_reference_uid"] = volume.frame_of_reference_uid

    def _write(tmp: Path) -> None:
        nrrd.write(str(tmp), np.ascontiguousarray(arr.T), header, index_order="F")

    return atomic_write(path, _write)


@reader
def read_nrrd(path: str | os.PathLike[str]) -> Volume:
    """Read a NRRD file with a ``space`` field (LPS, RAS or LAS are converted to LPS)."""
    import nrrd

    p = Path(path)
    try:
        head = nrrd.read_header(str(p))
        sizes = tuple(int(n) for n in np.asarray(head.get("sizes", ()), dtype=np.int64))
        _check_data(p, sizes, np.dtype(nrrd.reader._determine_datatype(head)), "the NRRD data")
        data, header = nrrd.read(str(p), index_order="F")
    except ParameterError:
        raise
    except Exception as exc:  # pynrrd raises assorted errors for broken files
        raise ParameterError(f"{p}: not a readable NRRD file ({exc})") from exc
    _check_values(p, data, np.asarray(header.get("space directions", np.zeros(1)), dtype=float), "the NRRD")
    if data.ndim not in (2, 3):
        raise ParameterError(f"{p}: NRRD data must be 2D or 3D, got shape {data.shape}")
    space = str(header.get("space", "left-posterior-superior")).lower()
    flips = {
        "left-posterior-superior": (1.0, 1.0, 1.0),
        "right-anterior-superior": (-1.0, -1.0, 1.0),
        "left-anterior-superior": (1.0, -1.0, 1.0),
    }
    if space not in flips:
        raise ParameterError(f"{p}: NRRD space {space!r} is not supported (LPS, RAS or LAS)")
    flip = np.asarray(flips[space])
    dirs = header.get("space directions")
    origin = header.get("space origin")
    if dirs is None or origin is None:
        raise ParameterError(f"{p}: NRRD header lacks 'space directions' or 'space origin'")
    dirs = np.asarray(dirs, dtype=float)
    if dirs.shape != (data.ndim, 3):
        raise ParameterError(f"{p}: NRRD 'space directions' must be {data.ndim} x 3, got {dirs.shape}")
    m = (dirs * flip[None, :]).T  # columns = index axes
    if data.ndim == 2:
        normal = np.cross(m[:, 0], m[:, 1])
        normal = normal / np.linalg.norm(normal)
        m = np.column_stack([m, normal])
    affine = np.eye(4)
    affine[:3, :3] = m
    affine[:3, 3] = np.asarray(origin, dtype=float) * flip
    shape_ijk = data.shape if data.ndim == 3 else (*data.shape, 1)
    grid3 = _grid_from_affine(affine, shape_ijk, p)
    grid = (
        grid3
        if data.ndim == 3
        else Grid(tuple(reversed(data.shape)), grid3.origin_mm, grid3.spacing_mm, grid3.direction)
    )
    units = str(header.get("intrepid_units", ""))
    units = "" if units == "none" else units
    quantity = _quantity_from_text(str(header.get("intrepid_quantity", "generic")))
    for_uid = header.get("intrepid_frame_of_reference_uid")
    return Volume(
        np.ascontiguousarray(data.T),
        grid,
        quantity,
        units,
        str(for_uid) if for_uid else None,
        {"source_format": "nrrd"},
    )
