"""Closed triangle meshes in world coordinates (mm) and iso-surfaces of volumes (marching cubes)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry._volume import Volume

__all__ = ["TriangleMesh", "isosurface_mesh"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class TriangleMesh:
    """A triangle mesh in world (LPS) coordinates.

    Parameters
    ----------
    vertices_mm : array_like, shape (n, 3)
        Vertex positions in mm.
    faces : array_like of int, shape (m, 3)
        Vertex indices of each triangle. For a closed mesh made by this package the vertices of each face
        run counter-clockwise seen from outside (normals point out), so :meth:`volume_mm3` is positive.

    Examples
    --------
    >>> v = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    >>> f = [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]
    >>> m = TriangleMesh(v, f)
    >>> m.is_closed(), round(m.volume_mm3(), 6)
    (True, 0.166667)
    """

    vertices_mm: NDArray[np.float64]
    faces: NDArray[np.int64]

    def __post_init__(self) -> None:
        v = np.array(self.vertices_mm, dtype=float).reshape(-1, 3) if np.size(self.vertices_mm) else \
            np.zeros((0, 3))
        f = np.array(self.faces, dtype=np.int64).reshape(-1, 3) if np.size(self.faces) else \
            np.zeros((0, 3), dtype=np.int64)
        if not np.all(np.isfinite(v)):
            raise ParameterError("vertices_mm must be finite")
        if f.size and (f.min() < 0 or f.max() >= v.shape[0]):
            raise ParameterError(
                f"faces must index vertices 0..{v.shape[0] - 1}, got range {int(f.min())}..{int(f.max())}"
            )
        v.setflags(write=False)
        f.setflags(write=False)
        object.__setattr__(self, "vertices_mm", v)
        object.__setattr__(self, "faces", f)

    @property
    def n_vertices(self) -> int:
        """Number of vertices."""
        return int(self.vertices_mm.shape[0])

    @property
    def n_faces(self) -> int:
        """Number of triangles."""
        return int(self.faces.shape[0])

    @property
    def is_empty(self) -> bool:
        """True when the mesh has no triangle."""
        return self.n_faces == 0

    @property
    def bounds(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(min_xyz, max_xyz)`` of the vertices in mm (NaN for an empty mesh)."""
        if self.n_vertices == 0:
            return np.full(3, np.nan), np.full(3, np.nan)
        return self.vertices_mm.min(axis=0), self.vertices_mm.max(axis=0)

    def _corners(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        v = self.vertices_mm
        return v[self.faces[:, 0]], v[self.faces[:, 1]], v[self.faces[:, 2]]

    def volume_mm3(self) -> float:
        """Signed enclosed volume in mm³ (divergence theorem); positive for outward-oriented closed meshes."""
        if self.is_empty:
            return 0.0
        a, b, c = self._corners()
        return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)

    def area_mm2(self) -> float:
        """Total surface area in mm²."""
        if self.is_empty:
            return 0.0
        a, b, c = self._corners()
        return float(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())

    def face_normals(self) -> NDArray[np.float64]:
        """Unit normals of the faces, shape (m, 3) (zero for degenerate faces)."""
        a, b, c = self._corners()
        n = np.cross(b - a, c - a)
        length = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, length, out=np.zeros_like(n), where=length > 0)

    def is_closed(self) -> bool:
        """True when the mesh is watertight and consistently oriented.

        Every directed edge ``(a, b)`` of a face must occur exactly once, and its reverse ``(b, a)`` exactly
        once (each edge shared by two faces that traverse it in opposite directions). An empty mesh is not
        closed.
        """
        if self.is_empty:
            return False
        f = self.faces
        a = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
        b = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
        n = np.int64(self.n_vertices)
        directed = a * n + b
        uniq, counts = np.unique(directed, return_counts=True)
        if np.any(counts != 1):
            return False
        reverse = b * n + a
        return bool(np.all(np.isin(reverse, uniq, assume_unique=False)))

    def transformed(self, matrix: ArrayLike) -> TriangleMesh:
        """The mesh moved by a 4 × 4 homogeneous transform (faces flipped if it mirrors)."""
        m = np.asarray(matrix, dtype=float)
        if m.shape != (4, 4):
            raise ParameterError(f"matrix must be 4 x 4, got shape {m.shape}")
        v = self.vertices_mm @ m[:3, :3].T + m[:3, 3]
        f = self.faces if np.linalg.det(m[:3, :3]) >= 0 else self.faces[:, ::-1]
        return TriangleMesh(v, f)


def isosurface_mesh(volume: Volume, level: float, *, pad: bool = True) -> TriangleMesh:
    """Closed iso-surface ``value == level`` of a 3D volume by marching cubes, in world mm.

    The surface is oriented with normals pointing towards values below ``level`` (outwards for a mask or a
    dose hot spot). With ``pad`` the volume is surrounded by one voxel below the level, so that regions
    touching the border are closed too.

    Parameters
    ----------
    volume : Volume
        3D volume on any grid (oblique included: vertices are mapped by the grid's affine).
    level : float
        Iso-value, in the volume's units (0.5 for a fractional mask).
    pad : bool
        Close the surface at the volume's border.

    Returns
    -------
    TriangleMesh
        Empty when the level is not crossed.

    References
    ----------
    Lewiner T, Lopes H, Vieira AW, Tavares G. Efficient implementation of marching cubes' cases with
    topological guarantees. J Graphics Tools 2003;8:1-15. doi:10.1080/10867651.2003.10487582
    """
    from skimage.measure import marching_cubes

    if volume.ndim != 3:
        raise GeometryError(f"isosurface_mesh needs a 3D volume, got {volume.ndim}D")
    level = float(level)
    if not np.isfinite(level):
        raise ParameterError(f"level must be finite, got {level}")
    arr = np.asarray(volume.array, dtype=np.float32)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0 or not (finite.min() < level < finite.max() or (pad and finite.max() > level)):
        return TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    offset = 0
    if pad:
        low = np.float32(min(float(finite.min()), level) - 1.0)
        arr = np.pad(arr, 1, constant_values=low)
        offset = 1
    arr = np.where(np.isfinite(arr), arr, np.float32(min(float(finite.min()), level) - 1.0))
    # Samples exactly at the level (common in masks: 0.5) put vertices on grid points, where skimage's
    # marching cubes can leave cracks; nudging them one ulp above the level, and keeping the zero-area
    # triangles this creates, gives a watertight surface (tested on every ROI of a clinical structure set).
    at_level = arr == np.float32(level)
    arr[at_level] = np.nextafter(np.float32(level), np.float32(np.inf))
    verts, faces, _, _ = marching_cubes(arr, level=level, allow_degenerate=True, method="lewiner")
    # verts are (k, j, i) array coordinates
    ijk = verts[:, ::-1] - offset
    world = volume.grid.index_to_world(ijk)
    mesh = TriangleMesh(world, faces.astype(np.int64))
    if mesh.volume_mm3() < 0:
        mesh = TriangleMesh(world, faces[:, ::-1].astype(np.int64))
    _log.debug("isosurface at %g: %d vertices, %d faces", level, mesh.n_vertices, mesh.n_faces)
    return mesh
