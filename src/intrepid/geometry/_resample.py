"""Resampling a volume onto another grid by patient coordinates (co-registration), and point sampling.

Every target sample is placed in the world (LPS, mm) by its grid, optionally moved into the frame of the
moving volume by a :class:`~intrepid.geometry.RigidTransform`, and looked up in the moving volume by that
volume's grid: array indices are never matched directly. The composition is one affine map from target index
to moving (continuous) index.

Two code paths give the same values:

* **separable** — when each moving index axis depends on one target index axis only (axis-aligned or
  axis-permuted grids, flips, any spacing; the usual CT / RTDOSE case), the index computation is done once
  per axis in small lookup tables (start offset, weight, inside flag) and a parallel numba loop only combines
  them;
* **affine** — any direction matrices (oblique grids, rotations): the continuous index is computed per sample.

Inside / outside: a point is inside when its continuous index lies within the voxel *edges*
(``-0.5 <= q <= n - 0.5`` along every axis, with 1e-6 of slack), as :meth:`Grid.contains` and ITK's
interpolators count it; between the last sample centre and the edge the interpolation is clamped to the edge
sample (nearest along that axis). A 2D image is a volume one sample thick: points within half its nominal
thickness (``spacing_mm[2]``) from its plane are on it. Outside points get ``fill_value``.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import FrameOfReferenceError, ParameterError
from intrepid.geometry._grid import Grid
from intrepid.geometry._transform import RigidTransform
from intrepid.geometry._volume import Quantity, Volume

__all__ = ["Interpolation", "resample", "sample_points"]

logger = logging.getLogger(__name__)

#: Slack (in index units) on the inside test, so that points on the outer edge stay inside despite round-off.
INDEX_SLACK = 1e-6
#: Largest off-axis drift (index units over the whole target extent) that still counts as separable.
SEPARABLE_TOLERANCE = 1e-3


class Interpolation(enum.Enum):
    """How values are interpolated between samples."""

    NEAREST = "nearest"  #: value of the nearest sample (masks, labels)
    LINEAR = "linear"  #: trilinear (bilinear on a plane)


# ---------------------------------------------------------------------------------------------- kernels
@numba.njit(cache=True, inline="always")
def _interp_one(arr: Any, qi: float, qj: float, qk: float, linear: bool, fill: float) -> float:
    """Value of ``arr[k, j, i]`` (3D, C order) at continuous index (qi, qj, qk); ``fill`` outside."""
    nk, nj, ni = arr.shape
    lo = -0.5 - INDEX_SLACK
    if not (lo <= qi <= ni - 0.5 + INDEX_SLACK and lo <= qj <= nj - 0.5 + INDEX_SLACK):
        return fill
    if not (lo <= qk <= nk - 0.5 + INDEX_SLACK):
        return fill
    if not linear:
        i = min(max(int(np.floor(qi + 0.5)), 0), ni - 1)
        j = min(max(int(np.floor(qj + 0.5)), 0), nj - 1)
        k = min(max(int(np.floor(qk + 0.5)), 0), nk - 1)
        return float(arr[k, j, i])
    qi = min(max(qi, 0.0), ni - 1.0)
    qj = min(max(qj, 0.0), nj - 1.0)
    qk = min(max(qk, 0.0), nk - 1.0)
    i0 = min(int(qi), max(ni - 2, 0))
    j0 = min(int(qj), max(nj - 2, 0))
    k0 = min(int(qk), max(nk - 2, 0))
    wi = qi - i0
    wj = qj - j0
    wk = qk - k0
    i1 = min(i0 + 1, ni - 1)
    j1 = min(j0 + 1, nj - 1)
    k1 = min(k0 + 1, nk - 1)
    c00 = arr[k0, j0, i0] * (1.0 - wi) + arr[k0, j0, i1] * wi
    c01 = arr[k0, j1, i0] * (1.0 - wi) + arr[k0, j1, i1] * wi
    c10 = arr[k1, j0, i0] * (1.0 - wi) + arr[k1, j0, i1] * wi
    c11 = arr[k1, j1, i0] * (1.0 - wi) + arr[k1, j1, i1] * wi
    c0 = c00 * (1.0 - wj) + c01 * wj
    c1 = c10 * (1.0 - wj) + c11 * wj
    return float(c0 * (1.0 - wk) + c1 * wk)


@numba.njit(cache=True, parallel=True)
def _resample_separable(
    flat: Any, out: Any, offs: Any, weights: Any, inside: Any, axis_of: Any, steps: Any, fill: float
) -> None:  # pragma: no cover - compiled
    """``out[k, j, i]`` from per-axis tables; moving axis ``a`` reads its table at target axis ``axis_of[a]``.

    ``offs[a, t]`` is the flat offset of the lower neighbour along moving axis ``a``, ``weights[a, t]`` the
    weight of the upper one (offset ``steps[a]`` further), ``inside[a, t]`` whether the sample is inside.
    """
    nk, nj, ni = out.shape
    b0 = axis_of[0]
    b1 = axis_of[1]
    b2 = axis_of[2]
    s0 = steps[0]
    s1 = steps[1]
    s2 = steps[2]
    for kp in numba.prange(nk):
        k = np.int64(kp)
        for j in range(nj):
            for i in range(ni):
                t0 = i if b0 == 0 else (j if b0 == 1 else k)
                t1 = i if b1 == 0 else (j if b1 == 1 else k)
                t2 = i if b2 == 0 else (j if b2 == 1 else k)
                if not (inside[0, t0] and inside[1, t1] and inside[2, t2]):
                    out[k, j, i] = fill
                    continue
                base = offs[0, t0] + offs[1, t1] + offs[2, t2]
                w0 = weights[0, t0]
                w1 = weights[1, t1]
                w2 = weights[2, t2]
                a00 = flat[base] * (1.0 - w0) + flat[base + s0] * w0
                a01 = flat[base + s1] * (1.0 - w0) + flat[base + s1 + s0] * w0
                a10 = flat[base + s2] * (1.0 - w0) + flat[base + s2 + s0] * w0
                a11 = flat[base + s2 + s1] * (1.0 - w0) + flat[base + s2 + s1 + s0] * w0
                a0 = a00 * (1.0 - w1) + a01 * w1
                a1 = a10 * (1.0 - w1) + a11 * w1
                out[k, j, i] = a0 * (1.0 - w2) + a1 * w2


@numba.njit(cache=True, parallel=True)
def _resample_affine(
    arr: Any, out: Any, m: Any, linear: bool, fill: float
) -> None:  # pragma: no cover - compiled
    """``out[k, j, i] = arr`` at continuous index ``m[:3, :3] @ (i, j, k) + m[:3, 3]``."""
    nk, nj, ni = out.shape
    for k in numba.prange(nk):
        for j in range(nj):
            bi = m[0, 1] * j + m[0, 2] * k + m[0, 3]
            bj = m[1, 1] * j + m[1, 2] * k + m[1, 3]
            bk = m[2, 1] * j + m[2, 2] * k + m[2, 3]
            for i in range(ni):
                qi = bi + m[0, 0] * i
                qj = bj + m[1, 0] * i
                qk = bk + m[2, 0] * i
                out[k, j, i] = _interp_one(arr, qi, qj, qk, linear, fill)


@numba.njit(cache=True, parallel=True)
def _sample_indices(arr: Any, q: Any, out: Any, linear: bool, fill: float) -> None:  # pragma: no cover
    """``out[n]`` = ``arr`` at continuous index ``q[n] = (i, j, k)``."""
    for n in numba.prange(q.shape[0]):
        out[n] = _interp_one(arr, q[n, 0], q[n, 1], q[n, 2], linear, fill)


# ---------------------------------------------------------------------------------------------- helpers
def _check_method(method: Interpolation) -> bool:
    if not isinstance(method, Interpolation):
        raise ParameterError(f"method must be an Interpolation (NEAREST or LINEAR), got {method!r}")
    return method is Interpolation.LINEAR


def _default_fill(volume: Volume, fill_value: float | None) -> float:
    if fill_value is None:
        return -1000.0 if volume.quantity is Quantity.CT_NUMBER else 0.0
    fill = float(fill_value)
    if np.isnan(fill):
        raise ParameterError("fill_value must be a number, got NaN")
    return fill


def _working_array(volume: Volume, name: str) -> NDArray[Any]:
    """The moving array as a C-contiguous float32 / float64 3D array ``[k, j, i]`` after the NaN check."""
    if not isinstance(volume, Volume):
        raise ParameterError(f"{name} must be a Volume, got {type(volume).__name__}")
    a = volume.array
    if a.dtype.kind not in "biuf":
        raise ParameterError(f"{name} must hold real numbers, got dtype {a.dtype}")
    volume.check_finite(
        f"{name} ({volume.quantity.value}, {volume.units or 'no units'}, shape {volume.shape})"
    )
    wide = a.dtype == np.float64 or (a.dtype.kind in "iu" and a.dtype.itemsize > 2)
    work = np.float64 if wide else np.float32
    ni, nj, nk = volume.grid.shape_ijk
    return np.ascontiguousarray(a, dtype=work).reshape(nk, nj, ni)


def _output_dtype(volume: Volume, work: np.dtype[Any], linear: bool, fill: float) -> np.dtype[Any]:
    """Nearest keeps integer / boolean types when the fill value fits; otherwise the working float type."""
    src = volume.array.dtype
    if linear or src.kind == "f":
        return work
    if src.kind == "b":
        return src if fill in (0.0, 1.0) else work
    info = np.iinfo(src)
    if float(fill).is_integer() and info.min <= fill <= info.max:
        return src
    return work


def _axis_table(
    q: NDArray[np.float64], n: int, stride: int, linear: bool
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.bool_]]:
    """Lookup table for one moving axis of ``n`` samples: lower flat offset, upper weight, inside flag."""
    rounded = np.round(q)
    q = np.where(np.abs(q - rounded) < 1e-9, rounded, q)  # exact hits on sample centres stay exact
    inside = (q >= -0.5 - INDEX_SLACK) & (q <= n - 0.5 + INDEX_SLACK)
    if linear:
        qc = np.clip(q, 0.0, n - 1.0)
        lo = np.minimum(np.floor(qc), max(n - 2, 0)).astype(np.int64)
        w = qc - lo
    else:
        lo = np.clip(np.floor(q + 0.5), 0, n - 1).astype(np.int64)
        w = np.zeros_like(q)
    return lo * stride, w, inside


def _index_map(volume: Volume, onto: Grid, transform: RigidTransform | None) -> NDArray[np.float64]:
    """4 × 4 affine from target index (i, j, k, 1) to continuous moving index."""
    world = onto.affine
    if transform is not None:
        world = transform.matrix @ world
    return np.asarray(np.linalg.inv(volume.grid.affine) @ world, dtype=float)


def _separable_axes(m: NDArray[np.float64], shape_ijk: tuple[int, int, int]) -> list[int] | None:
    """For each moving axis the one target axis it depends on, or None when the map mixes axes."""
    extent = np.maximum(np.asarray(shape_ijk, dtype=float) - 1.0, 0.0)
    axis_of: list[int] = []
    for a in range(3):
        drift = np.abs(m[a, :3]) * extent
        significant = np.flatnonzero(drift > SEPARABLE_TOLERANCE)
        if significant.size > 1:
            return None
        axis_of.append(int(significant[0]) if significant.size else int(np.argmax(np.abs(m[a, :3]))))
    return axis_of


# ---------------------------------------------------------------------------------------------- public API
def resample(
    volume: Volume,
    onto: Grid | Volume,
    *,
    method: Interpolation = Interpolation.LINEAR,
    fill_value: float | None = None,
    transform: RigidTransform | None = None,
) -> Volume:
    """Resample ``volume`` onto another grid by patient coordinates (never by index).

    Parameters
    ----------
    volume : Volume
        The moving 2D image or 3D volume. NaN or infinite values are refused.
    onto : Grid or Volume
        The target grid, or a volume whose grid (and Frame of Reference) is the target.
    method : Interpolation
        ``LINEAR`` (trilinear) or ``NEAREST``.
    fill_value : float, optional
        Value outside the moving volume; default -1000 (air) for ``Quantity.CT_NUMBER``, 0 otherwise.
    transform : RigidTransform, optional
        Registration mapping points of the target frame (mm) into the frame of ``volume``. Required when
        ``onto`` is a Volume whose Frame of Reference UID differs from that of ``volume``.

    Returns
    -------
    Volume
        On ``onto``'s grid, with ``volume``'s quantity, units and metadata. Its Frame of Reference is the
        target's: ``onto``'s UID when it is a Volume with one; otherwise ``volume``'s UID when no transform
        was given (same frame), else None. Linear resampling returns float32 (float64 for float64 or wide
        integer input); nearest keeps integer and boolean types when the fill value fits.

    Raises
    ------
    FrameOfReferenceError
        Different, non-empty Frame of Reference UIDs and no ``transform``.
    ParameterError
        NaN in the input, bad method or fill value.

    Examples
    --------
    >>> ct = Grid((160, 512, 512), origin_mm=(-250, -250, -100), spacing_mm=(0.98, 0.98, 2.0))
    >>> dose_on_ct = resample(dose, ct)  # doctest: +SKIP
    """
    linear = _check_method(method)
    arr = _working_array(volume, "volume")
    fill = _default_fill(volume, fill_value)
    if transform is not None and not isinstance(transform, RigidTransform):
        raise ParameterError(f"transform must be a RigidTransform, got {type(transform).__name__}")
    if isinstance(onto, Volume):
        target = onto.grid
        uid_moving = volume.frame_of_reference_uid
        uid_target = onto.frame_of_reference_uid
        if uid_moving and uid_target and uid_moving != uid_target and transform is None:
            raise FrameOfReferenceError(
                f"cannot resample: volume Frame of Reference UID (0020,0052) {uid_moving} differs from the "
                f"target's {uid_target}; pass transform= (a registration from the target frame into the "
                "volume's frame)"
            )
        out_uid = uid_target or (uid_moving if transform is None else None)
    elif isinstance(onto, Grid):
        target = onto
        out_uid = volume.frame_of_reference_uid if transform is None else None
    else:
        raise ParameterError(f"onto must be a Grid or a Volume, got {type(onto).__name__}")

    m = _index_map(volume, target, transform)
    ni, nj, nk = target.shape_ijk
    out = np.empty((nk, nj, ni), dtype=arr.dtype)
    axis_of = _separable_axes(m, target.shape_ijk)
    if axis_of is not None:
        mk, mj, mi = arr.shape
        sizes = (mi, mj, mk)
        strides = (1, mi, mi * mj)
        length = max(target.shape_ijk)
        offs = np.zeros((3, length), dtype=np.int64)
        weights = np.zeros((3, length), dtype=np.float64)
        inside = np.zeros((3, length), dtype=np.bool_)
        steps = np.zeros(3, dtype=np.int64)
        extent = np.asarray(target.shape_ijk, dtype=float) - 1.0
        for a in range(3):
            b = axis_of[a]
            others = [c for c in range(3) if c != b]
            # Negligible off-axis terms (below SEPARABLE_TOLERANCE) are taken at the middle of their range.
            const = m[a, 3] + sum(m[a, c] * extent[c] / 2.0 for c in others)
            t = np.arange(target.shape_ijk[b], dtype=float)
            o, w, ins = _axis_table(m[a, b] * t + const, sizes[a], strides[a], linear)
            offs[a, : t.size] = o
            weights[a, : t.size] = w
            inside[a, : t.size] = ins
            steps[a] = strides[a] if (linear and sizes[a] > 1) else 0
        axes = np.asarray(axis_of, dtype=np.int64)
        _resample_separable(arr.reshape(-1), out, offs, weights, inside, axes, steps, fill)
        path = "separable"
    else:
        _resample_affine(arr, out, m, linear, fill)
        path = "affine"
    logger.debug("resampled %s onto %s (%s path, %s)", volume.shape, target.shape, path, method.value)

    out_dtype = _output_dtype(volume, out.dtype, linear, fill)
    result = out.reshape(target.shape)
    if out_dtype != result.dtype:
        result = result.astype(out_dtype)
    return Volume(
        result,
        target,
        quantity=volume.quantity,
        units=volume.units,
        frame_of_reference_uid=out_uid,
        metadata=dict(volume.metadata),
    )


def sample_points(
    volume: Volume,
    points_mm: ArrayLike,
    method: Interpolation = Interpolation.LINEAR,
    fill_value: float | None = None,
) -> NDArray[np.float64]:
    """Values of ``volume`` at arbitrary world points.

    Parameters
    ----------
    volume : Volume
        2D image or 3D volume (NaN refused).
    points_mm : array_like, shape (..., 3)
        LPS points in mm, in the volume's Frame of Reference.
    method : Interpolation
        ``LINEAR`` or ``NEAREST``.
    fill_value : float, optional
        Value for points outside (default as in :func:`resample`).

    Returns
    -------
    ndarray, shape (...)
        float64 values, one per point.
    """
    linear = _check_method(method)
    arr = _working_array(volume, "volume")
    fill = _default_fill(volume, fill_value)
    p = np.asarray(points_mm, dtype=float)
    if p.ndim == 0 or p.shape[-1] != 3:
        raise ParameterError(f"points_mm must have shape (..., 3) (x, y, z), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ParameterError("points_mm must be finite, got NaN or infinite coordinates")
    q = np.ascontiguousarray(volume.grid.world_to_index(p.reshape(-1, 3)))
    out = np.empty(q.shape[0], dtype=np.float64)
    _sample_indices(arr, q, out, linear, fill)
    return out.reshape(p.shape[:-1])
