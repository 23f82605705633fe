"""Exact divergent ray tracing through volumes: line integrals, radiological depth and WEPL along rays.

A ray from a point ``a`` to a point ``b`` crosses a voxel grid in a sequence of segments, one per voxel;
Siddon (1985, Med Phys 12:252, doi:10.1118/1.595715) computes their exact lengths from the parameters where
the ray crosses the planes between voxels, and Jacobs et al. (1998, J Comput Inf Technol 6:89) visit them
incrementally in O(1) per voxel. Summing ``value x length`` gives the line integral: the attenuation
exponent for μ (1/mm), the radiological (water-equivalent) depth for relative electron density or relative
stopping power. The kernels live in :mod:`intrepid.physics._siddon` and run in parallel with numba.

Conventions: positions in mm in the DICOM patient frame (LPS); voxel ``array[k, j, i]`` is the box of half
a spacing around its centre; a ray lying exactly on a plane between two voxels is counted in the voxel on
the side of increasing index. Grids must be axis-aligned (identity direction, or axes flipped or permuted);
oblique grids are refused with :class:`~intrepid.errors.GeometryError`.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Quantity, Volume

__all__ = [
    "DivergentRays",
    "RadiologicalDepth",
    "RayPath",
    "RayTraceMode",
    "RayWepl",
    "cumulative_path",
    "line_integrals",
    "radiological_depth",
    "trace_ray",
    "wepl_along_rays",
]

_log = logging.getLogger(__name__)

#: Rays shorter than this (mm) are refused as zero-length.
_MIN_RAY_MM = 1e-9
#: FAST mode: default lateral spacing of the beam's-eye-view grid, in units of the largest voxel spacing.
_FAST_LATERAL = 2.0


class RayTraceMode(enum.Enum):
    """How :func:`radiological_depth` computes the depth volumes."""

    #: Exact Siddon line integrals along a dense grid of divergent rays (see :func:`radiological_depth`).
    EXACT = "exact"
    #: Resample onto a divergent beam's-eye-view grid, cumulative sum along depth, interpolate back.
    FAST = "fast"


@dataclass(frozen=True, eq=False)
class RayPath:
    """The voxels one ray crosses, in order from the source, with the exact length in each.

    Attributes
    ----------
    ijk : ndarray, shape (n, 3), int
        Voxel indices ``(i, j, k)`` (column, row, slice).
    lengths_mm : ndarray, shape (n,)
        Length of the ray inside each voxel, mm.
    entry_distance_mm : ndarray, shape (n,)
        Distance from the source to where the ray enters each voxel, mm.
    values : ndarray, shape (n,)
        Volume values in those voxels.
    """

    ijk: NDArray[np.int64]
    lengths_mm: NDArray[np.float64]
    entry_distance_mm: NDArray[np.float64]
    values: NDArray[np.float64]

    @property
    def array_index(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """``(k, j, i)`` index arrays, so that ``volume.array[path.array_index]`` gives the values."""
        return self.ijk[:, 2], self.ijk[:, 1], self.ijk[:, 0]

    @property
    def total_length_mm(self) -> float:
        """Length of the ray inside the volume, mm."""
        return float(self.lengths_mm.sum())

    @property
    def line_integral(self) -> float:
        """Sum of value × length along the path (value units × mm)."""
        return float(np.sum(self.values * self.lengths_mm))


@dataclass(frozen=True)
class RadiologicalDepth:
    """Water-equivalent depth volumes of one beam (see :func:`radiological_depth`).

    Attributes
    ----------
    entrance_mm : Volume
        Water-equivalent path (mm) from where the ray enters the volume to the voxel (float32, NaN where no
        ray gives a value).
    exit_mm : Volume
        Water-equivalent path (mm) from the voxel to where the ray leaves the volume (the exit surface).
    source_mm, isocenter_mm : tuple of 3 float
        The beam geometry used (LPS, mm).
    mode : RayTraceMode
    """

    entrance_mm: Volume
    exit_mm: Volume
    source_mm: tuple[float, float, float]
    isocenter_mm: tuple[float, float, float]
    mode: RayTraceMode


@dataclass(frozen=True, eq=False)
class RayWepl:
    """Water-equivalent path lengths along rays given by start points and unit directions.

    Distances are in mm along each ray from its start point; WEPL values are line integrals of the volume
    (mm of water for relative stopping power) from the start point. NaN where the ray never reaches the
    volume or the mask. The mask surfaces are the voxel faces of the (voxelised) mask.

    Attributes
    ----------
    entry_mm, exit_mm : ndarray, shape (N,)
        Distance to where the ray enters and leaves the volume (0 for a start inside).
    wepl_mm : ndarray, shape (N,)
        WEPL through the whole volume (0 for a ray that misses).
    mask_entry_mm, mask_exit_mm : ndarray, shape (N,)
        Distance to the first entry into the mask and to the last exit from it (the distal surface).
    wepl_to_mask_entry_mm, wepl_to_mask_exit_mm : ndarray, shape (N,)
        WEPL from the start point to those two points.
    """

    entry_mm: NDArray[np.float64]
    exit_mm: NDArray[np.float64]
    wepl_mm: NDArray[np.float64]
    mask_entry_mm: NDArray[np.float64]
    mask_exit_mm: NDArray[np.float64]
    wepl_to_mask_entry_mm: NDArray[np.float64]
    wepl_to_mask_exit_mm: NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class DivergentRays:
    """Rays as start points and unit directions (LPS), for :func:`wepl_along_rays`, :func:`cumulative_path`.

    Attributes
    ----------
    starts_mm : ndarray, shape (N, 3)
    directions : ndarray, shape (N, 3)
        Unit vectors, pointing downstream (away from the source).
    """

    starts_mm: NDArray[np.float64]
    directions: NDArray[np.float64]

    def __post_init__(self) -> None:
        starts = _points("starts_mm", self.starts_mm).reshape(-1, 3)
        dirs = _unit_directions(self.directions, starts.shape[0])
        object.__setattr__(self, "starts_mm", starts)
        object.__setattr__(self, "directions", dirs)

    @classmethod
    def from_isocenter_plane(
        cls,
        positions_mm: ArrayLike,
        *,
        isocenter_mm: ArrayLike,
        beam_direction: ArrayLike,
        x_axis: ArrayLike,
        sad_mm: float | tuple[float, float],
        start_distance_mm: float | None = None,
    ) -> DivergentRays:
        """Rays of a divergent beam through points of the isocentre plane, with a point or dual source.

        In beam coordinates (origin at the isocentre, X along ``x_axis``, Z towards the source, Y = Z × X)
        the ray through ``(u, v)`` at the isocentre plane is the set of points
        ``(u (1 - z / D_x), v (1 - z / D_y), z)``: each lateral coordinate diverges from its own source
        distance (``sad_mm = (D_x, D_y)``; a point source when they are equal). These are straight lines;
        they pass through one point only when ``D_x = D_y``.

        Parameters
        ----------
        positions_mm : array_like, shape (N, 2)
            ``(u, v)`` of each ray at the isocentre plane, mm.
        isocenter_mm : array_like, shape (3,)
            Isocentre (LPS, mm).
        beam_direction : array_like, shape (3,)
            Central axis from the source towards the isocentre (normalised here).
        x_axis : array_like, shape (3,)
            Beam X axis (LPS), perpendicular to ``beam_direction``.
        sad_mm : float or (float, float)
            Source-axis distance, or one per lateral axis (X, Y), mm, > 0.
        start_distance_mm : float, optional
            Height ``z`` of the start points above the isocentre plane (default: the smaller source
            distance, where the rays start at the nearer virtual source line).

        Examples
        --------
        >>> rays = DivergentRays.from_isocenter_plane([[0, 0], [10, 0]], isocenter_mm=(0, 0, 0),
        ...     beam_direction=(0, 1, 0), x_axis=(1, 0, 0), sad_mm=1000.0)
        >>> rays.starts_mm.round(6).tolist()
        [[0.0, -1000.0, 0.0], [0.0, -1000.0, 0.0]]
        """
        pos = np.asarray(positions_mm, dtype=float)
        if pos.ndim != 2 or pos.shape[1] != 2 or not np.all(np.isfinite(pos)):
            raise ParameterError(
                f"positions_mm must be a finite (N, 2) array of (u, v), got shape {pos.shape}"
            )
        sad = np.broadcast_to(np.asarray(sad_mm, dtype=float), (2,)).copy()
        if not np.all(np.isfinite(sad)) or np.any(sad <= 0):
            raise ParameterError(f"sad_mm must be > 0 (one value or one per axis x, y), got {sad.tolist()}")
        iso = _points("isocenter_mm", isocenter_mm).reshape(3)
        w = _unit_directions(np.asarray(beam_direction, dtype=float).reshape(1, 3), 1, normalise=True)[0]
        xa = _unit_directions(np.asarray(x_axis, dtype=float).reshape(1, 3), 1, normalise=True)[0]
        if abs(float(np.dot(w, xa))) > 1e-6:
            raise ParameterError(
                f"x_axis must be perpendicular to beam_direction, got a dot product of "
                f"{float(np.dot(w, xa)):.3g}"
            )
        z_axis = -w
        y_axis = np.cross(z_axis, xa)
        z_start = float(np.min(sad)) if start_distance_mm is None else float(start_distance_mm)
        if not math.isfinite(z_start):
            raise ParameterError(f"start_distance_mm must be finite, got {start_distance_mm}")
        u, v = pos[:, 0], pos[:, 1]
        starts_b = np.column_stack(
            [u * (1 - z_start / sad[0]), v * (1 - z_start / sad[1]), np.full(u.shape, z_start)]
        )
        dirs_b = np.column_stack([u / sad[0], v / sad[1], -np.ones(u.shape)])
        dirs_b /= np.linalg.norm(dirs_b, axis=1, keepdims=True)
        basis = np.column_stack([xa, y_axis, z_axis])
        return cls(starts_b @ basis.T + iso, dirs_b @ basis.T)


# ------------------------------------------------------------------------------------ validation
def _points(name: str, value: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise ParameterError(
            f"{name} must have 3 coordinates (x, y, z) on its last axis, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} must be finite, got non-finite coordinates")
    return arr


def _unit_directions(value: ArrayLike, n: int, normalise: bool = False) -> NDArray[np.float64]:
    d = np.asarray(value, dtype=float).reshape(-1, 3) if np.size(value) % 3 == 0 else None
    if d is None or d.shape[0] != n:
        raise ParameterError(f"directions must have shape ({n}, 3), got {np.shape(value)}")
    if not np.all(np.isfinite(d)):
        raise ParameterError("directions must be finite")
    norm = np.linalg.norm(d, axis=1)
    if np.any(norm < _MIN_RAY_MM):
        raise ParameterError(f"directions must be non-zero, ray {int(np.argmin(norm))} has length 0")
    if normalise:
        return np.asarray(d / norm[:, None], dtype=float)
    if np.any(np.abs(norm - 1.0) > 1e-6):
        bad = int(np.argmax(np.abs(norm - 1.0)))
        raise ParameterError(f"directions must be unit vectors, ray {bad} has length {norm[bad]:.6g}")
    return d


@dataclass(frozen=True)
class _IndexFrame:
    """World <-> continuous index maps of an axis-aligned grid (``world = origin + A @ q``)."""

    a: NDArray[np.float64]
    a_inv: NDArray[np.float64]
    origin: NDArray[np.float64]
    shape_kji: NDArray[np.int64]

    def to_index(self, points_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray((points_mm - self.origin) @ self.a_inv.T, dtype=float)

    def vector_to_index(self, vectors_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(vectors_mm @ self.a_inv.T, dtype=float)


def _prepare(
    volume: Volume, name: str = "volume", check_finite: bool = True
) -> tuple[NDArray[np.float32], _IndexFrame]:
    if not isinstance(volume, Volume):
        raise ParameterError(f"{name} must be a Volume, got {type(volume).__name__}")
    if volume.ndim != 3:
        raise GeometryError(f"{name} must be 3D for ray tracing, got a {volume.ndim}D grid")
    grid = volume.grid
    if not grid.is_axis_permuted:
        raise GeometryError(
            f"{name} has an oblique grid (direction {np.round(grid.direction_matrix, 4).tolist()}); "
            "ray tracing "
            "needs an axis-aligned grid: resample it first"
        )
    if check_finite:
        volume.check_finite(name)
    values = np.ascontiguousarray(volume.array, dtype=np.float32)
    a = grid.direction_matrix * np.asarray(grid.spacing_mm)[None, :]
    frame = _IndexFrame(
        a, np.linalg.inv(a), np.asarray(grid.origin_mm, dtype=float), np.asarray(grid.shape, dtype=np.int64)
    )
    return values, frame


def _kernels() -> Any:
    from intrepid.physics import _siddon  # numba: imported on first use

    return _siddon


# ------------------------------------------------------------------------------------ line integrals
def line_integrals(
    volume: Volume,
    source_mm: ArrayLike,
    targets_mm: ArrayLike,
    *,
    stop_at_target: bool = True,
) -> NDArray[np.float64]:
    """Exact line integrals of a volume from a point source to many points (Siddon / Jacobs).

    Parameters
    ----------
    volume : Volume
        Values per voxel (μ in 1/mm, relative electron density, relative stopping power...) on an
        axis-aligned 3D grid; must be finite.
    source_mm : array_like, shape (3,) or like ``targets_mm``
        Source position(s), LPS mm. A source inside the volume is allowed: the integral starts there.
    targets_mm : array_like, shape (..., 3)
        End points (voxel centres, detector pixels), LPS mm.
    stop_at_target : bool
        True: integrate from the source to the target. False: along the whole half-line from the source
        through the target to where it leaves the volume (detector pixels behind the patient).

    Returns
    -------
    ndarray, shape ``targets_mm.shape[:-1]``
        Sum of value × intersection length (value units × mm); 0 for rays that miss the volume.

    Examples
    --------
    >>> from intrepid.geometry import Grid, Volume
    >>> water = Volume(np.ones((10, 10, 10)), Grid((10, 10, 10), (0.5, 0.5, 0.5), (1.0, 1.0, 1.0)))
    >>> float(line_integrals(water, (5, -100, 5), [(5, 200, 5)])[0])
    10.0
    """
    values, frame = _prepare(volume)
    targets = _points("targets_mm", targets_mm)
    out_shape = targets.shape[:-1]
    targets = targets.reshape(-1, 3)
    source = _points("source_mm", source_mm)
    if source.size == 3:
        sources = np.broadcast_to(source.reshape(1, 3), targets.shape)
    elif source.shape == targets.shape or source.reshape(-1, 3).shape == targets.shape:
        sources = source.reshape(-1, 3)
    else:
        raise ParameterError(f"source_mm must have shape (3,) or {targets.shape}, got {source.shape}")
    diff = targets - sources
    length = np.linalg.norm(diff, axis=1)
    if np.any(length < _MIN_RAY_MM):
        bad = int(np.argmin(length))
        raise ParameterError(
            f"zero-length ray: target {bad} coincides with the source at {sources[bad].tolist()}"
        )
    a = frame.to_index(sources)
    d = frame.vector_to_index(diff)
    n = targets.shape[0]
    hi = np.ones(n) if stop_at_target else np.full(n, np.inf)
    info, _ = _kernels().trace_rays(
        values, np.zeros((1, 1, 1), np.uint8), False, a, d, length, np.zeros(n), hi, np.zeros((n, 0))
    )
    return np.asarray(info[:, 0].reshape(out_shape), dtype=float)


def trace_ray(volume: Volume, source_mm: ArrayLike, target_mm: ArrayLike) -> RayPath:
    """The voxels crossed by the segment from ``source_mm`` to ``target_mm``, with exact lengths (mm).

    Parameters
    ----------
    volume : Volume
        Axis-aligned 3D volume (its values are returned along the path).
    source_mm, target_mm : array_like, shape (3,)
        End points, LPS mm.

    Examples
    --------
    >>> from intrepid.geometry import Grid, Volume
    >>> vol = Volume(np.zeros((1, 1, 3)), Grid((1, 1, 3), (0, 0, 0), (2.0, 2.0, 2.0)))
    >>> trace_ray(vol, (-10, 0, 0), (10, 0, 0)).lengths_mm.tolist()
    [2.0, 2.0, 2.0]
    """
    values, frame = _prepare(volume)
    src = _points("source_mm", source_mm).reshape(-1)
    tgt = _points("target_mm", target_mm).reshape(-1)
    if src.size != 3 or tgt.size != 3:
        raise ParameterError("source_mm and target_mm must be single points (3 coordinates)")
    diff = tgt - src
    length = float(np.linalg.norm(diff))
    if length < _MIN_RAY_MM:
        raise ParameterError(f"zero-length ray: target coincides with the source at {src.tolist()}")
    a = frame.to_index(src[None, :])[0]
    d = frame.vector_to_index(diff[None, :])[0]
    ijk, alphas = _kernels().trace_path(a, d, frame.shape_kji, 0.0, 1.0)
    lengths = np.diff(alphas) * length
    vals = values[ijk[:, 2], ijk[:, 1], ijk[:, 0]].astype(float)
    return RayPath(ijk.copy(), lengths, alphas[:-1] * length, vals)


def _far_distance(frame: _IndexFrame, starts: NDArray[np.float64]) -> NDArray[np.float64]:
    """A distance (mm) beyond the whole volume from each start point."""
    nk, nj, ni = frame.shape_kji
    corners_q = np.array(
        [[x, y, z] for x in (-0.5, ni - 0.5) for y in (-0.5, nj - 0.5) for z in (-0.5, nk - 0.5)]
    )
    corners = corners_q @ frame.a.T + frame.origin
    far = np.max(np.linalg.norm(corners[None, :, :] - starts[:, None, :], axis=2), axis=1)
    return np.asarray(far + 1.0, dtype=float)


def _rays(starts_mm: ArrayLike, directions: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    starts = _points("starts_mm", starts_mm).reshape(-1, 3)
    dirs = _unit_directions(directions, starts.shape[0])
    return starts, dirs


def cumulative_path(
    volume: Volume,
    starts_mm: ArrayLike,
    directions: ArrayLike,
    distances_mm: ArrayLike,
) -> NDArray[np.float64]:
    """Exact cumulative line integral along rays, at given distances from their start points.

    Parameters
    ----------
    volume : Volume
        Axis-aligned 3D volume (e.g. relative stopping power: the result is WEPL in mm).
    starts_mm : array_like, shape (N, 3)
        Start point of each ray, LPS mm.
    directions : array_like, shape (N, 3)
        Unit direction of each ray.
    distances_mm : array_like, shape (M,) or (N, M)
        Geometric distances (mm, >= 0) from the start point, shared by all rays or one row per ray.

    Returns
    -------
    ndarray, shape (N, M)
        Integral of the volume from the start point to each distance (exact: the integrand is constant per
        voxel, so the cumulative path is piecewise linear between plane crossings).
    """
    values, frame = _prepare(volume)
    starts, dirs = _rays(starts_mm, directions)
    n = starts.shape[0]
    dist = np.asarray(distances_mm, dtype=float)
    if dist.ndim == 1:
        dist = np.broadcast_to(dist[None, :], (n, dist.size))
    if dist.ndim != 2 or dist.shape[0] != n:
        raise ParameterError(f"distances_mm must have shape (M,) or ({n}, M), got {np.shape(distances_mm)}")
    if not np.all(np.isfinite(dist)) or np.any(dist < 0):
        raise ParameterError("distances_mm must be finite and >= 0")
    order = np.argsort(dist, axis=1, kind="stable")
    sorted_q = np.take_along_axis(dist, order, axis=1)
    a = frame.to_index(starts)
    d = frame.vector_to_index(dirs)
    _, cum = _kernels().trace_rays(
        values,
        np.zeros((1, 1, 1), np.uint8),
        False,
        a,
        d,
        np.ones(n),
        np.zeros(n),
        np.full(n, np.inf),
        np.ascontiguousarray(sorted_q),
    )
    out = np.empty_like(cum)
    np.put_along_axis(out, order, cum, axis=1)
    return out


def wepl_along_rays(
    volume_rsp: Volume,
    starts_mm: ArrayLike | DivergentRays,
    directions: ArrayLike | None = None,
    *,
    mask: Volume | None = None,
) -> RayWepl:
    """Water-equivalent path lengths along rays, and where each ray enters and last leaves a mask.

    For a range compensator: with ``volume_rsp`` the relative stopping power and ``mask`` the target,
    ``wepl_to_mask_exit_mm`` is the WEPL of the distal target surface along each ray.

    Parameters
    ----------
    volume_rsp : Volume
        Relative stopping power (or any value to integrate) on an axis-aligned 3D grid.
    starts_mm : array_like, shape (N, 3), or DivergentRays
        Start points (LPS, mm); a :class:`DivergentRays` carries the directions too.
    directions : array_like, shape (N, 3)
        Unit directions (omit when ``starts_mm`` is a :class:`DivergentRays`).
    mask : Volume, optional
        Boolean (or 0/1) volume on the same grid as ``volume_rsp``.

    Returns
    -------
    RayWepl
    """
    if isinstance(starts_mm, DivergentRays):
        if directions is not None:
            raise ParameterError("directions must be omitted when starts_mm is a DivergentRays")
        starts, dirs = starts_mm.starts_mm, starts_mm.directions
    else:
        if directions is None:
            raise ParameterError("directions is required with start points")
        starts, dirs = _rays(starts_mm, directions)
    values, frame = _prepare(volume_rsp, "volume_rsp")
    if mask is not None:
        if not isinstance(mask, Volume) or not mask.grid.is_close(volume_rsp.grid):
            raise GeometryError("mask must be a Volume on the same grid as volume_rsp")
        mask_arr = np.ascontiguousarray(mask.array != 0, dtype=np.uint8)
    else:
        mask_arr = np.zeros((1, 1, 1), np.uint8)
    n = starts.shape[0]
    a = frame.to_index(starts)
    d = frame.vector_to_index(dirs)
    info, _ = _kernels().trace_rays(
        values,
        mask_arr,
        mask is not None,
        a,
        d,
        np.ones(n),
        np.zeros(n),
        np.full(n, np.inf),
        np.zeros((n, 0)),
    )
    return RayWepl(
        entry_mm=info[:, 1].copy(),
        exit_mm=info[:, 2].copy(),
        wepl_mm=info[:, 0].copy(),
        mask_entry_mm=info[:, 3].copy(),
        mask_exit_mm=info[:, 4].copy(),
        wepl_to_mask_entry_mm=info[:, 5].copy(),
        wepl_to_mask_exit_mm=info[:, 6].copy(),
    )


# ------------------------------------------------------------------------------------ radiological depth
def _beam_axes(source: NDArray[np.float64], iso: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    """Central axis ``w`` (source -> isocentre) and lateral axes ``e_x``, ``e_z`` of the beam's-eye view.

    ``e_z`` is the patient's superior direction (+z) made perpendicular to ``w`` and ``e_x = w × e_z``; for
    a couch at 0 this is matRad's / pyRadPlan's beam frame (``e_x = (cos g, sin g, 0)`` at gantry ``g``).
    A beam along z uses +y instead of +z.
    """
    axis = iso - source
    w = axis / np.linalg.norm(axis)
    up = np.array([0.0, 0.0, 1.0])
    ez = up - np.dot(up, w) * w
    if np.linalg.norm(ez) < 1e-6:
        up = np.array([0.0, 1.0, 0.0])
        ez = up - np.dot(up, w) * w
    ez /= np.linalg.norm(ez)
    ex = np.cross(w, ez)
    return w, ex, ez


def radiological_depth(
    volume: Volume,
    source_mm: ArrayLike,
    *,
    isocenter_mm: ArrayLike | None = None,
    mode: RayTraceMode = RayTraceMode.EXACT,
    ray_spacing_mm: float | None = None,
    lateral_spacing_mm: float | None = None,
    depth_step_mm: float | None = None,
) -> RadiologicalDepth:
    """Radiological (water-equivalent) depth of every voxel for a divergent beam, from entrance and to exit.

    Parameters
    ----------
    volume : Volume
        Relative electron density (photons) or relative stopping power (protons), >= 0, axis-aligned 3D.
        Convert CT numbers first (:data:`hu_to_relative_stopping_power`).
    source_mm : array_like, shape (3,)
        Point source (LPS, mm), outside the volume, e.g. from
        :func:`intrepid.geometry.source_position_mm`.
    isocenter_mm : array_like, shape (3,), optional
        Isocentre; with the source it fixes the central axis and the beam's-eye-view frame (default: the
        centre of the volume).
    mode : RayTraceMode
        ``EXACT`` (default) or ``FAST``.
    ray_spacing_mm : float, optional
        EXACT: ray spacing on the ray plane (default ``min(spacing) / sqrt(2)``, as matRad).
    lateral_spacing_mm, depth_step_mm : float, optional
        FAST: lateral spacing of the beam's-eye-view grid at the volume centre and its step along the
        central axis (defaults: the largest and the smallest voxel spacing).

    Returns
    -------
    RadiologicalDepth
        ``entrance_mm`` and ``exit_mm`` as float32 volumes (mm of water) on the input grid. Voxels that no
        ray reaches are NaN; the volume boundary is the entrance and exit surface (put air around the
        patient at ~0 density: it adds nothing).

    Notes
    -----
    **EXACT** is the radiological depth of matRad (``matRad_rayTracing``) and pyRadPlan
    (``RayTracerSiddon.trace_cubes``), computed with the same geometry so that the two agree voxel by
    voxel: divergent rays from the source to a square grid of points spaced ``ray_spacing_mm`` on a plane
    perpendicular to the central axis, one largest voxel spacing beyond the farthest voxel centre; each ray
    is traced exactly (Siddon / Jacobs); each voxel takes its value from the ray nearest the central
    projection of its centre onto that plane, and the value is the exact cumulative path to the *midpoint
    of that ray's chord through the voxel* (cumulative sum minus half the voxel's own segment). ``exit_mm``
    is the rest of the same ray's path to the volume edge. The rays pass within ``ray_spacing / 2`` (in
    projection) of the voxel centre, so the depth refers to a point of the voxel near its centre, not
    exactly to its centre; :func:`line_integrals` gives the exact path to any point.

    **FAST** samples the volume (trilinear) on a divergent beam's-eye-view grid, integrates along depth
    (trapezoid rule) and interpolates back to the voxel centres (trilinear); its error is a fraction of a
    voxel at interfaces and it needs less time.

    References
    ----------
    Siddon RL (1985) Med Phys 12:252, doi:10.1118/1.595715. Jacobs F et al. (1998) J Comput Inf Technol
    6:89. Wieser H-P et al. (2017) matRad, Med Phys 44:2556, doi:10.1002/mp.12251.
    """
    values, frame = _prepare(volume, check_finite=False)
    # finite iff the minimum and the maximum are (NaN propagates): two fast reductions, no boolean temporary
    vmin = float(values.min())
    if not (math.isfinite(vmin) and math.isfinite(float(values.max()))):
        volume.check_finite("volume")  # raises, counting the bad values
        raise ParameterError(
            f"volume contains NaN or infinite values after conversion to float32 (min {vmin})"
        )
    kern = _kernels()
    if volume.quantity is Quantity.CT_NUMBER:
        raise ParameterError(
            "volume holds CT numbers (HU): convert it first, e.g. hu_to_relative_stopping_power.to_volume(ct)"
        )
    if vmin < 0:
        raise ParameterError(
            f"volume values must be >= 0 (densities or stopping powers), got a minimum of {vmin}"
        )
    if not isinstance(mode, RayTraceMode):
        raise ParameterError(f"mode must be a RayTraceMode, got {mode!r}")
    source = _points("source_mm", source_mm).reshape(-1)
    if source.size != 3:
        raise ParameterError(f"source_mm must be one point (x, y, z), got {source.size} values")
    if isocenter_mm is None:
        lo, hi = volume.grid.bounds_mm()
        iso = (lo + hi) / 2.0
    else:
        iso = _points("isocenter_mm", isocenter_mm).reshape(-1)
        if iso.size != 3:
            raise ParameterError(f"isocenter_mm must be one point (x, y, z), got {iso.size} values")
    if float(np.linalg.norm(iso - source)) < _MIN_RAY_MM:
        raise ParameterError("isocenter_mm coincides with source_mm: the beam axis is undefined")
    if bool(volume.grid.contains(source[None, :])[0]):
        raise GeometryError(
            f"source_mm {source.tolist()} lies inside the volume; radiological_depth needs a "
            "source outside it"
        )
    w, ex, ez = _beam_axes(source, iso)
    # voxel index (i, j, k, 1) -> beam's-eye view (x, depth, z) relative to the source
    rot = np.stack([ex, w, ez])
    bev = np.zeros((3, 4))
    bev[:, :3] = rot @ frame.a
    bev[:, 3] = rot @ (frame.origin - source)
    nk, nj, ni = (int(s) for s in frame.shape_kji)
    corners = (
        np.array([[x, y, z, 1.0] for x in (0, ni - 1) for y in (0, nj - 1) for z in (0, nk - 1)]) @ bev.T
    )
    if np.any(corners[:, 1] <= 0):
        raise GeometryError(
            "part of the volume lies at or behind the source plane; move the source further away"
        )
    spacing = np.asarray(volume.grid.spacing_mm)
    # the EXACT ray grid: spacing sp on the plane at `plane` mm from the source (FAST refers to the same rays)
    sp = (
        float(spacing.min() / np.sqrt(2.0))
        if ray_spacing_mm is None
        else _positive("ray_spacing_mm", ray_spacing_mm)
    )
    plane = float(corners[:, 1].max() + spacing.max())
    if mode is RayTraceMode.EXACT:
        entrance = np.full(volume.shape, np.nan, dtype=np.float32)
        exit_ = np.full(volume.shape, np.nan, dtype=np.float32)
        proj = corners[:, [0, 2]] * (plane / corners[:, 1])[:, None] / sp
        n_lo = np.ceil(proj.min(axis=0) - 0.5).astype(np.int64) - 1
        n_hi = np.ceil(proj.max(axis=0) - 0.5).astype(np.int64) + 1
        src_q = frame.to_index(source[None, :])[0]
        t0 = frame.to_index((source + plane * w)[None, :])[0]
        tx = frame.vector_to_index((sp * ex)[None, :])[0]
        tz = frame.vector_to_index((sp * ez)[None, :])[0]
        _log.debug(
            "radiological_depth EXACT: %d x %d rays at %.3f mm on the plane at %.1f mm",
            n_hi[0] - n_lo[0] + 1,
            n_hi[1] - n_lo[1] + 1,
            sp,
            plane,
        )
        kern.radiological_depth_exact(
            values,
            src_q,
            t0,
            tx,
            tz,
            np.array([n_lo[0], n_hi[0]]),
            np.array([n_lo[1], n_hi[1]]),
            bev,
            plane,
            sp,
            entrance,
            exit_,
        )
    else:
        lat = (
            _FAST_LATERAL * float(spacing.max())
            if lateral_spacing_mm is None
            else _positive("lateral_spacing_mm", lateral_spacing_mm)
        )
        # default step: the voxel spacing along the central axis (1 / |w| in index units per mm)
        along = float(1.0 / np.linalg.norm(frame.vector_to_index(w[None, :])[0]))
        step = along if depth_step_mm is None else _positive("depth_step_mm", depth_step_mm)
        centre = np.array([(ni - 1) / 2, (nj - 1) / 2, (nk - 1) / 2, 1.0]) @ bev.T
        ref = float(centre[1])
        proj = corners[:, [0, 2]] * (ref / corners[:, 1])[:, None]
        # lateral columns at multiples of `lat` from the central axis (mirror-symmetric beam geometry)
        u0, v0 = (np.floor(proj.min(axis=0) / lat) - 1.0) * lat
        n_u, n_v = (np.ceil((proj.max(axis=0) - np.array([u0, v0])) / lat).astype(int) + 2).tolist()
        edges = (
            np.array(
                [[x, y, z, 1.0] for x in (-0.5, ni - 0.5) for y in (-0.5, nj - 0.5) for z in (-0.5, nk - 0.5)]
            )
            @ bev.T
        )
        # depth samples on the planes of the voxel centres nearest the source (exact where the beam is
        # along a grid axis and the step is the voxel spacing), starting outside the volume's edges
        first = float(corners[:, 1].min())
        d0 = first - step * (math.ceil((first - float(edges[:, 1].min())) / step) + 1)
        n_d = int(np.ceil((edges[:, 1].max() - d0) / step)) + 2
        _log.debug("radiological_depth FAST: %d x %d x %d beam's-eye-view samples", n_v, n_u, n_d)
        # the kernels write every element (NaN where there is no value): no initialisation needed
        cum = np.empty((n_v, n_u, n_d), dtype=np.float32)
        totals = np.empty((n_v, n_u), dtype=np.float32)
        entrance = np.empty(volume.shape, dtype=np.float32)
        exit_ = np.empty(volume.shape, dtype=np.float32)
        kern.bev_cumulative(
            values,
            frame.to_index(source[None, :])[0],
            frame.vector_to_index(w[None, :])[0],
            frame.vector_to_index(ex[None, :])[0],
            frame.vector_to_index(ez[None, :])[0],
            float(u0),
            float(v0),
            lat,
            d0,
            step,
            ref,
            cum,
            totals,
        )
        kern.bev_interpolate(
            cum,
            totals,
            bev,
            float(u0),
            float(v0),
            lat,
            d0,
            step,
            ref,
            plane,
            sp,
            frame.shape_kji,
            entrance,
            exit_,
        )
    meta = {"beam_source_mm": source.tolist(), "isocenter_mm": iso.tolist(), "mode": mode.value}
    common: dict[str, Any] = {
        "quantity": Quantity.LENGTH,
        "units": "mm",
        "frame_of_reference_uid": volume.frame_of_reference_uid,
    }
    return RadiologicalDepth(
        entrance_mm=Volume(entrance, volume.grid, metadata={**meta, "depth": "entrance"}, **common),
        exit_mm=Volume(exit_, volume.grid, metadata={**meta, "depth": "exit"}, **common),
        source_mm=(float(source[0]), float(source[1]), float(source[2])),
        isocenter_mm=(float(iso[0]), float(iso[1]), float(iso[2])),
        mode=mode,
    )


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ParameterError(f"{name} must be > 0, got {value}")
    return v
