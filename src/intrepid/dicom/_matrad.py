"""Reader of matRad phantoms (``.mat`` files with ``ct`` and ``cst``), such as the AAPM TG-119 phantom.

matRad stores the CT cube in MATLAB order ``(y, x, z)`` = (row, column, slice), with voxel-centre world axes
``ct.x``, ``ct.y``, ``ct.z`` in mm, and the structures in ``cst`` as 1-based, column-major linear voxel
indices over that cube. matRad's x, y, z are the DICOM patient axes (LPS), as pyRadPlan reads them.

Axis mapping to an InTrEPID :class:`~intrepid.geometry.Volume` (arrays ``[k, j, i]``):
matRad x (cube dimension 2) -> i (columns), matRad y (cube dimension 1) -> j (rows), matRad z (dimension 3)
-> k (slices); ``array = cubeHU.transpose(2, 0, 1)``; ``origin_mm = (x[0], y[0], z[0])``; spacing
``(resolution.x, resolution.y, resolution.z)``; identity direction. Without ``ct.x/y/z`` the cube is centred
on the origin (as pyRadPlan does).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.dicom._validate import reader
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume

__all__ = ["MatradPhantom", "read_matrad_phantom"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class MatradPhantom:
    """A matRad phantom read by :func:`read_matrad_phantom`.

    Attributes
    ----------
    ct : Volume
        CT numbers (HU, ``Quantity.CT_NUMBER``) on the LPS grid described in the module notes.
    structures : dict of str to Volume
        One boolean mask Volume per ``cst`` row, on the CT grid, keyed by structure name.
    structure_types : dict of str to str
        matRad type of each structure (``"OAR"``, ``"TARGET"``...).
    hlut : ndarray or None
        ``ct.hlut`` as an (n, 2) table ``[HU, value]`` when the file has one; make it a calibration with
        ``intrepid.physics.HUCalibration.from_matrad_hlut``.
    """

    ct: Volume
    structures: dict[str, Volume] = field(default_factory=dict)
    structure_types: dict[str, str] = field(default_factory=dict)
    hlut: NDArray[np.float64] | None = None


def _field(obj: Any, name: str, path: Path, what: str) -> Any:
    if not hasattr(obj, name):
        raise ParameterError(f"{path}: not a matRad phantom: {what} has no field {name!r}")
    return getattr(obj, name)


def _axis(ct: Any, name: str, n: int, res: float, path: Path) -> float:
    """First voxel-centre coordinate along matRad axis ``name``, checked against the resolution."""
    if not hasattr(ct, name):
        return -(n - 1) * res / 2.0
    coords = np.asarray(getattr(ct, name), dtype=float).reshape(-1)
    if coords.size != n:
        raise GeometryError(f"{path}: ct.{name} has {coords.size} values but the cube has {n} along {name}")
    if n > 1:
        steps = np.diff(coords)
        if not np.allclose(steps, res, atol=1e-3 * res):
            raise GeometryError(
                f"{path}: ct.{name} is not evenly spaced at ct.resolution.{name} = {res} mm "
                f"(steps {steps.min():.4g} to {steps.max():.4g} mm)"
            )
    return float(coords[0])


@reader
def read_matrad_phantom(path: str | os.PathLike[str]) -> MatradPhantom:
    """Read a matRad ``.mat`` phantom (MATLAB v5/v7) into a CT Volume in HU with structure masks.

    Parameters
    ----------
    path : path-like
        The ``.mat`` file, with variables ``ct`` (``cubeHU``, ``resolution``, optional ``x``, ``y``, ``z``,
        ``hlut``) and optionally ``cst``.

    Returns
    -------
    MatradPhantom

    Raises
    ------
    FileNotFoundError
        No such file.
    ParameterError
        Not a MATLAB file, a v7.3 (HDF5) file, or a ``ct`` / ``cst`` without the fields matRad writes.
    GeometryError
        Inconsistent axes, or structure indices outside the cube.

    Examples
    --------
    >>> phantom = read_matrad_phantom("../shared/data/tg119/TG119.mat")  # doctest: +SKIP
    >>> phantom.ct.shape, sorted(phantom.structures)  # doctest: +SKIP
    ((129, 167, 167), ['BODY', 'Core', 'OuterTarget'])
    """
    import scipy.io

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(2, "no such matRad file", str(p))
    try:
        mat = scipy.io.loadmat(p, squeeze_me=True, struct_as_record=False)
    except NotImplementedError as exc:  # MATLAB v7.3 = HDF5
        raise ParameterError(
            f"{p}: MATLAB v7.3 (HDF5) files are not supported; save with -v7 ({exc})"
        ) from None
    except (ValueError, TypeError, OSError) as exc:
        raise ParameterError(f"{p}: not a readable MATLAB .mat file ({exc})") from None
    if "ct" not in mat:
        raise ParameterError(f"{p}: not a matRad phantom: no variable 'ct' (found {sorted(mat)})")
    ct = mat["ct"]
    cube = _field(ct, "cubeHU", p, "ct")
    if isinstance(cube, np.ndarray) and cube.dtype == object:
        _log.info("%s: %d CT scenarios, reading the first", p, cube.size)
        cube = cube.reshape(-1)[0]
    cube = np.asarray(cube)
    if cube.ndim != 3 or cube.dtype.kind not in "iuf":
        raise ParameterError(f"{p}: ct.cubeHU must be a 3D numeric array, got shape {cube.shape}")
    res = _field(ct, "resolution", p, "ct")
    rx, ry, rz = (float(_field(res, a, p, "ct.resolution")) for a in ("x", "y", "z"))
    if min(rx, ry, rz) <= 0:
        raise ParameterError(f"{p}: ct.resolution must be > 0, got x={rx}, y={ry}, z={rz}")
    ny, nx, nz = cube.shape
    origin = (_axis(ct, "x", nx, rx, p), _axis(ct, "y", ny, ry, p), _axis(ct, "z", nz, rz, p))
    grid = Grid((nz, ny, nx), origin, (rx, ry, rz))
    array = np.ascontiguousarray(np.transpose(cube, (2, 0, 1)), dtype=np.float32)
    meta = {"source_file": p.name, "format": "matRad"}
    ct_volume = Volume(array, grid, Quantity.CT_NUMBER, "HU", metadata=meta)

    hlut = None
    if hasattr(ct, "hlut"):
        t = np.asarray(ct.hlut, dtype=float)
        if t.ndim != 2 or t.shape[1] != 2:
            raise ParameterError(f"{p}: ct.hlut must be an (n, 2) table, got shape {t.shape}")
        hlut = t

    structures: dict[str, Volume] = {}
    types: dict[str, str] = {}
    if "cst" in mat:
        cst = np.asarray(mat["cst"], dtype=object)
        if cst.ndim == 1:
            cst = cst.reshape(1, -1)
        if cst.ndim != 2 or cst.shape[1] < 4:
            raise ParameterError(
                f"{p}: cst must have rows [id, name, type, indices, ...], got shape {cst.shape}"
            )
        n_vox = cube.size
        for row in cst:
            name = str(row[1])
            idx = row[3]
            if isinstance(idx, np.ndarray) and idx.dtype == object:
                idx = idx.reshape(-1)[0] if idx.size else np.zeros(0)
            idx = np.asarray(idx, dtype=np.int64).reshape(-1)
            if idx.size and (idx.min() < 1 or idx.max() > n_vox):
                raise GeometryError(
                    f"{p}: structure {name!r} has voxel indices outside 1..{n_vox} "
                    f"(got {idx.min()}..{idx.max()})"
                )
            iy, ix, iz = np.unravel_index(idx - 1, cube.shape, order="F")
            mask = np.zeros(grid.shape, dtype=bool)
            mask[iz, iy, ix] = True
            if name in structures:
                _log.warning("%s: structure name %r repeated; keeping the last", p, name)
            structures[name] = Volume(mask, grid, Quantity.MASK, "", metadata={"structure": name, **meta})
            types[name] = str(row[2])
    return MatradPhantom(ct_volume, structures, types, hlut)
