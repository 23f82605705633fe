"""Regular grids in the DICOM patient frame (LPS), in millimetres.

A :class:`Grid` describes where the samples of a 2D image or a 3D volume sit in the world. Arrays are indexed
``[k, j, i]`` = ``[slice, row, column]`` (2D: ``[j, i]`` = ``[row, column]``); ``origin_mm`` is the world
position of the centre of sample ``(i, j, k) = (0, 0, 0)``; ``spacing_mm`` lists the sample spacing along
i, j and k (the "x, y, z" order of ITK, NIfTI and DICOM Pixel Spacing reversed); the direction matrix has as
columns the world directions of the i, j and k index axes (the ITK / SimpleITK convention). For DICOM images
the i column is the first three values of Image Orientation (Patient), the j column the last three, and the k
column the slice normal (their cross product), oriented along increasing slice position.

This module is the one place where that convention is written down and implemented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import GeometryError, ParameterError

__all__ = ["Grid"]

#: Tolerance (dimensionless) on direction cosines when checking orthonormality or comparing grids.
DIRECTION_TOLERANCE = 1e-4
#: Tolerance (mm) on positions when comparing grids.
POSITION_TOLERANCE_MM = 1e-3


def _as_triplet(name: str, value: ArrayLike) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.size != 3:
        raise ParameterError(f"{name} must have 3 values (x, y, z), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} must be finite, got {arr.tolist()}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class Grid:
    """A regular 2D or 3D sampling grid with its position in the patient frame.

    Parameters
    ----------
    shape : tuple of int
        Array shape, ``(slices, rows, columns)`` for 3D or ``(rows, columns)`` for 2D.
    origin_mm : tuple of 3 float
        World (LPS) position, in mm, of the centre of the first sample (index 0, 0, 0).
    spacing_mm : tuple of 3 float
        Spacing in mm along the column (i), row (j) and slice (k) index axes. For 2D grids the third value is
        the nominal thickness of the plane (1 mm unless known).
    direction : (3, 3) array_like, optional
        Columns are the unit world vectors of the i, j and k index axes. Identity by default (i along +x
        = patient left, j along +y = posterior, k along +z = superior).

    Examples
    --------
    >>> g = Grid((2, 3, 4), origin_mm=(0, 0, 0), spacing_mm=(1, 2, 3))
    >>> g.index_to_world([3, 2, 1]).tolist()
    [3.0, 4.0, 3.0]
    """

    shape: tuple[int, ...]
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    direction: tuple[float, ...] = field(default=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) not in (2, 3):
            raise ParameterError(f"shape must have 2 or 3 dimensions, got {shape}")
        if any(s < 1 for s in shape):
            raise ParameterError(f"shape must be positive in every dimension, got {shape}")
        origin = _as_triplet("origin_mm", self.origin_mm)
        spacing = _as_triplet("spacing_mm", self.spacing_mm)
        if any(s <= 0 for s in spacing):
            raise ParameterError(f"spacing_mm must be > 0 along every axis, got {spacing}")
        direction = np.asarray(self.direction, dtype=float)
        if direction.size != 9:
            raise ParameterError(f"direction must be a 3 x 3 matrix, got {direction.size} values")
        direction = direction.reshape(3, 3)
        if not np.all(np.isfinite(direction)):
            raise ParameterError("direction must be finite")
        if not np.allclose(direction.T @ direction, np.eye(3), atol=DIRECTION_TOLERANCE):
            raise GeometryError(
                "direction must be orthonormal (columns = unit vectors of the i, j, k axes), got "
                f"{np.round(direction, 6).tolist()}"
            )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "origin_mm", origin)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "direction", tuple(float(v) for v in direction.reshape(-1)))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dicom_plane(
        cls,
        shape: Sequence[int],
        image_position_mm: ArrayLike,
        image_orientation: ArrayLike,
        pixel_spacing_mm: ArrayLike,
        slice_spacing_mm: float = 1.0,
    ) -> Grid:
        """Build a grid from DICOM image-plane attributes.

        Parameters
        ----------
        shape : sequence of int
            ``(rows, columns)`` or ``(slices, rows, columns)``.
        image_position_mm : array_like, 3
            Image Position (Patient) (0020,0032) of the first slice.
        image_orientation : array_like, 6
            Image Orientation (Patient) (0020,0037): row direction (along a row, i.e. the column index i)
            then column direction (down a column, the row index j).
        pixel_spacing_mm : array_like, 2
            Pixel Spacing (0028,0030) as stored in DICOM: *row spacing first* (distance between rows, along
            j), then column spacing (along i). Swapping them is a classic error for non-square pixels.
        slice_spacing_mm : float
            Distance between slices along the slice normal.
        """
        orient = np.asarray(image_orientation, dtype=float).reshape(-1)
        if orient.size != 6:
            raise ParameterError(f"image_orientation must have 6 values, got {orient.size}")
        row_dir = orient[:3] / np.linalg.norm(orient[:3])
        col_dir = orient[3:] / np.linalg.norm(orient[3:])
        normal = np.cross(row_dir, col_dir)
        ps = np.asarray(pixel_spacing_mm, dtype=float).reshape(-1)
        if ps.size != 2:
            raise ParameterError(f"pixel_spacing_mm must have 2 values (row, column), got {ps.size}")
        direction = np.column_stack([row_dir, col_dir, normal])
        return cls(
            shape=tuple(int(s) for s in shape),
            origin_mm=_as_triplet("image_position_mm", image_position_mm),
            spacing_mm=(float(ps[1]), float(ps[0]), float(slice_spacing_mm)),
            direction=tuple(direction.reshape(-1)),
        )

    @classmethod
    def from_bounds(
        cls,
        min_mm: ArrayLike,
        max_mm: ArrayLike,
        spacing_mm: ArrayLike,
    ) -> Grid:
        """Axis-aligned 3D grid whose voxel centres cover ``[min_mm, max_mm]`` (x, y, z) at ``spacing_mm``."""
        lo = np.asarray(_as_triplet("min_mm", min_mm))
        hi = np.asarray(_as_triplet("max_mm", max_mm))
        sp = np.asarray(_as_triplet("spacing_mm", spacing_mm))
        if np.any(hi < lo):
            raise ParameterError(f"max_mm must be >= min_mm, got {lo.tolist()} and {hi.tolist()}")
        if np.any(sp <= 0):
            raise ParameterError(f"spacing_mm must be > 0, got {sp.tolist()}")
        n = np.floor((hi - lo) / sp + 1e-6).astype(int) + 1
        return cls((int(n[2]), int(n[1]), int(n[0])), tuple(lo), tuple(sp))

    # ------------------------------------------------------------------ basic properties
    @property
    def ndim(self) -> int:
        """Number of array dimensions (2 or 3)."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of samples."""
        return int(np.prod(self.shape))

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        """Number of samples along (i, j, k); a 2D grid has one sample along k."""
        if self.ndim == 2:
            return (self.shape[1], self.shape[0], 1)
        return (self.shape[2], self.shape[1], self.shape[0])

    @property
    def direction_matrix(self) -> NDArray[np.float64]:
        """(3, 3) matrix whose columns are the world directions of the i, j and k index axes."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def affine(self) -> NDArray[np.float64]:
        """4 x 4 matrix mapping homogeneous index ``(i, j, k, 1)`` to world LPS ``(x, y, z, 1)`` in mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing_mm)[None, :]
        a[:3, 3] = self.origin_mm
        return a

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm³ (area × nominal thickness for 2D grids)."""
        return float(np.prod(self.spacing_mm))

    @property
    def is_axis_aligned(self) -> bool:
        """True when the direction matrix is the identity (the common, fast case)."""
        return bool(np.allclose(self.direction_matrix, np.eye(3), atol=DIRECTION_TOLERANCE))

    @property
    def is_axis_permuted(self) -> bool:
        """True when each index axis runs along one world axis (identity up to a signed permutation)."""
        d = np.abs(self.direction_matrix)
        return bool(np.allclose(np.sort(d, axis=0)[:2], 0.0, atol=DIRECTION_TOLERANCE))

    # ------------------------------------------------------------------ transforms
    def index_to_world(self, index: ArrayLike) -> NDArray[np.float64]:
        """World (LPS, mm) position of continuous index coordinates.

        Parameters
        ----------
        index : array_like, shape (..., 3) or (..., 2)
            Index coordinates in ``(i, j, k)`` order (column, row, slice); ``(i, j)`` for 2D grids.

        Returns
        -------
        ndarray, shape (..., 3)
            World coordinates (x, y, z) in mm.
        """
        idx = np.asarray(index, dtype=float)
        if idx.shape[-1] == 2:
            idx = np.concatenate([idx, np.zeros((*idx.shape[:-1], 1))], axis=-1)
        if idx.shape[-1] != 3:
            raise ParameterError(f"index must have 2 or 3 components on its last axis, got {idx.shape}")
        m = self.direction_matrix * np.asarray(self.spacing_mm)[None, :]
        return np.asarray(idx @ m.T + np.asarray(self.origin_mm), dtype=float)

    def world_to_index(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """Continuous ``(i, j, k)`` index coordinates of world points (inverse of :meth:`index_to_world`).

        Parameters
        ----------
        points_mm : array_like, shape (..., 3)
            World LPS coordinates in mm.
        """
        p = np.asarray(points_mm, dtype=float)
        if p.shape[-1] != 3:
            raise ParameterError(f"points_mm must have 3 components (x, y, z), got shape {p.shape}")
        m_inv = (self.direction_matrix / 1.0).T / np.asarray(self.spacing_mm)[:, None]
        return np.asarray((p - np.asarray(self.origin_mm)) @ m_inv.T, dtype=float)

    def axis_coordinates_mm(self, axis: int) -> NDArray[np.float64]:
        """Offsets in mm of the sample centres along index axis 0 = i, 1 = j or 2 = k from the origin.

        Together with :attr:`origin_mm` and the direction column this gives the sample positions; for an
        axis-aligned grid ``origin_mm[a] + axis_coordinates_mm(a)`` are the world coordinates along x, y, z.
        """
        if axis not in (0, 1, 2):
            raise ParameterError(f"axis must be 0 (i), 1 (j) or 2 (k), got {axis}")
        return np.arange(self.shape_ijk[axis], dtype=float) * self.spacing_mm[axis]

    def world_axes_mm(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """World x, y and z coordinates of the sample centres along i, j and k for an axis-aligned grid."""
        if not self.is_axis_aligned:
            raise GeometryError("world_axes_mm needs an axis-aligned grid (identity direction)")
        return (
            self.origin_mm[0] + self.axis_coordinates_mm(0),
            self.origin_mm[1] + self.axis_coordinates_mm(1),
            self.origin_mm[2] + self.axis_coordinates_mm(2),
        )

    def world_points(self) -> NDArray[np.float64]:
        """World coordinates of every sample, shape ``(*shape, 3)`` in array order."""
        ni, nj, nk = self.shape_ijk
        k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
        pts = self.index_to_world(np.stack([i, j, k], axis=-1))
        return pts.reshape(*self.shape, 3)

    def bounds_mm(self, edges: bool = False) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Axis-aligned world bounding box ``(min_xyz, max_xyz)`` in mm.

        Parameters
        ----------
        edges : bool
            False: box of the sample centres. True: box of the voxel edges (half a voxel further out).
        """
        ni, nj, nk = self.shape_ijk
        half = 0.5 if edges else 0.0
        lo = np.array([-half, -half, -half])
        hi = np.array([ni - 1 + half, nj - 1 + half, nk - 1 + half])
        if self.ndim == 2:
            lo[2] = hi[2] = 0.0
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        w = self.index_to_world(corners)
        return w.min(axis=0), w.max(axis=0)

    def contains(self, points_mm: ArrayLike, edges: bool = True) -> NDArray[np.bool_]:
        """Whether world points lie inside the grid (inside the voxel edges by default)."""
        idx = self.world_to_index(points_mm)
        half = 0.5 if edges else 0.0
        tol = 1e-9
        inside = np.ones(idx.shape[:-1], dtype=bool)
        for a, n in enumerate(self.shape_ijk):
            if self.ndim == 2 and a == 2:
                continue
            inside &= (idx[..., a] >= -half - tol) & (idx[..., a] <= n - 1 + half + tol)
        return inside

    # ------------------------------------------------------------------ derived grids
    def subgrid(self, start_ijk: Sequence[int], stop_ijk: Sequence[int]) -> Grid:
        """Grid of the index box ``[start, stop)`` along (i, j, k) (for 2D, (i, j)).

        The returned grid shares spacing and direction; its origin is the world position of ``start``.
        Use with :meth:`array_slices` to cut the matching part of an array.
        """
        n = self.ndim
        start = [int(s) for s in start_ijk]
        stop = [int(s) for s in stop_ijk]
        if len(start) != n or len(stop) != n:
            raise ParameterError(f"start_ijk and stop_ijk must have {n} values for a {n}D grid")
        full = self.shape_ijk[:n]
        for a in range(n):
            if not (0 <= start[a] < stop[a] <= full[a]):
                raise ParameterError(
                    f"sub-grid index range along axis {'ijk'[a]} must satisfy 0 <= start < stop <= "
                    f"{full[a]}, got [{start[a]}, {stop[a]})"
                )
        origin = self.index_to_world(start + [0] * (3 - n))
        shape_ijk = [stop[a] - start[a] for a in range(n)]
        return Grid(tuple(reversed(shape_ijk)), tuple(origin), self.spacing_mm, self.direction)

    def array_slices(self, start_ijk: Sequence[int], stop_ijk: Sequence[int]) -> tuple[slice, ...]:
        """Array slices (``[k, j, i]`` order) matching :meth:`subgrid` with the same arguments."""
        return tuple(
            slice(int(a), int(b)) for a, b in zip(reversed(start_ijk), reversed(stop_ijk), strict=True)
        )

    def with_shape_spacing(self, shape: Sequence[int], spacing_mm: ArrayLike) -> Grid:
        """Grid with the same origin and direction but another shape and spacing."""
        return Grid(
            tuple(int(s) for s in shape),
            self.origin_mm,
            _as_triplet("spacing_mm", spacing_mm),
            self.direction,
        )

    def is_close(self, other: Grid, tolerance_mm: float = POSITION_TOLERANCE_MM) -> bool:
        """True when both grids have the same shape and place their samples within ``tolerance_mm``."""
        if self.shape != other.shape:
            return False
        if not np.allclose(self.direction_matrix, other.direction_matrix, atol=DIRECTION_TOLERANCE):
            return False
        if not np.allclose(self.origin_mm, other.origin_mm, atol=tolerance_mm):
            return False
        extent = np.asarray(self.shape_ijk) - 1
        return bool(np.all(np.abs(np.subtract(self.spacing_mm, other.spacing_mm)) * extent <= tolerance_mm))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: shape, origin_mm, spacing_mm (i, j, k) and direction (3 × 3, columns)."""
        return {
            "shape": list(self.shape),
            "origin_mm": list(self.origin_mm),
            "spacing_mm": list(self.spacing_mm),
            "direction": self.direction_matrix.tolist(),
        }
