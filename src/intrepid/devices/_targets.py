"""Targets and organs as closed triangle meshes: from RTSTRUCT ROIs or a dose iso-level; unions; centre lines.

All meshes are in the DICOM patient frame (LPS, mm) with outward normals (:class:`TriangleMesh`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, TriangleMesh, Volume, isosurface_mesh

__all__ = ["combine_meshes", "structure_centerline", "target_mesh_from_dose", "target_mesh_from_roi"]

_log = logging.getLogger(__name__)


def _positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ParameterError(f"{name} must be > 0, got {v}")
    return v


def target_mesh_from_roi(roi: Any, *, min_spacing_mm: float = 1.0) -> TriangleMesh:
    """Closed triangle mesh of an RTSTRUCT ROI (LPS, mm).

    The ROI's exact fractional occupancy (half-slice end caps) is meshed at its 0.5 iso-surface by marching
    cubes on a working grid of ``min_spacing_mm`` (see :func:`intrepid.dicom.roi_mesh`); the mesh's edges are
    of the order of this spacing, which bounds the number of triangles (and the design time).

    Parameters
    ----------
    roi : ROI
        From :func:`intrepid.dicom.read_rtstruct`.
    min_spacing_mm : float
        Working-grid spacing in mm (> 0); 1 mm resolves clinical targets, 2 mm is four times faster.

    Returns
    -------
    TriangleMesh

    Raises
    ------
    GeometryError
        The ROI encloses no volume (empty, point or open contours).
    """
    from intrepid.dicom import roi_mesh

    spacing = _positive("min_spacing_mm", min_spacing_mm)
    mesh = roi_mesh(roi, spacing_mm=spacing)
    if mesh.is_empty:
        raise GeometryError(f"ROI {roi.name!r} encloses no volume (empty, point or open contours): no mesh")
    return mesh


def target_mesh_from_dose(
    dose: Volume, level_gy: float, *, min_spacing_mm: float | None = None
) -> TriangleMesh:
    """Closed iso-dose surface ``dose == level_gy`` as a target mesh (marching cubes, LPS mm).

    Parameters
    ----------
    dose : Volume
        3D dose in Gy (``Quantity.DOSE``).
    level_gy : float
        Iso-level in Gy (> 0 and below the maximum dose).
    min_spacing_mm : float, optional
        Coarsest voxel size wanted for the meshing: where the dose grid is finer along an axis, the dose is
        resampled (trilinear) onto a grid of this spacing over the region above the level first.

    Returns
    -------
    TriangleMesh
        Outward normals (towards lower dose).

    Raises
    ------
    ParameterError
        Not a dose, bad level, or the dose never reaches the level.

    References
    ----------
    Lewiner T et al. Efficient implementation of marching cubes' cases with topological guarantees.
    J Graphics Tools 2003;8:1-15. doi:10.1080/10867651.2003.10487582
    """
    if not isinstance(dose, Volume):
        raise ParameterError(f"dose must be a Volume, got {type(dose).__name__}")
    if dose.ndim != 3:
        raise GeometryError(f"dose must be a 3D volume, got {dose.ndim}D")
    if dose.quantity is not Quantity.DOSE:
        raise ParameterError(f"dose must have Quantity.DOSE, got {dose.quantity.name}")
    level = _positive("level_gy", level_gy)
    arr = np.asarray(dose.array, dtype=np.float32)
    above = np.isfinite(arr) & (arr >= level)
    if not above.any():
        raise ParameterError(
            f"level_gy must be reached by the dose, got {level} Gy > maximum {float(np.nanmax(arr)):.4g} Gy"
        )
    spacing = None if min_spacing_mm is None else _positive("min_spacing_mm", min_spacing_mm)
    # Crop to the region above the level, with two (coarse) voxels of context, so marching cubes works on a
    # small block.
    sp_kji = np.asarray(dose.grid.spacing_mm)[::-1]
    context = 2 + (0 if spacing is None else np.ceil(2.0 * spacing / sp_kji).astype(int))
    idx = np.argwhere(above)
    lo = np.maximum(idx.min(axis=0) - context, 0)
    hi = np.minimum(idx.max(axis=0) + context + 1, np.asarray(arr.shape))
    start_ijk = (int(lo[2]), int(lo[1]), int(lo[0]))
    stop_ijk = (int(hi[2]), int(hi[1]), int(hi[0]))
    sub_grid = dose.grid.subgrid(start_ijk, stop_ijk)
    sub = dose.with_array(arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], grid=sub_grid)
    if spacing is not None:
        current = np.asarray(sub_grid.spacing_mm)
        if np.any(current < spacing):
            from intrepid.geometry import resample

            new_sp = np.maximum(current, spacing)
            extent = (np.asarray(sub_grid.shape_ijk) - 1) * current
            n = np.maximum(np.ceil(extent / new_sp - 1e-9).astype(int) + 1, 1)  # cover the block
            coarse = Grid(
                (int(n[2]), int(n[1]), int(n[0])), sub_grid.origin_mm, tuple(new_sp), sub_grid.direction
            )
            sub = resample(sub, coarse)
    mesh = isosurface_mesh(sub, level, pad=True)
    if mesh.is_empty:
        raise ParameterError(f"level_gy {level} Gy gives no iso-surface at min_spacing_mm={min_spacing_mm}")
    _log.info("dose iso-surface at %g Gy: %d faces", level, mesh.n_faces)
    return mesh


def combine_meshes(meshes: Sequence[TriangleMesh]) -> TriangleMesh:
    """One mesh holding every shell of ``meshes`` (the union of several targets for projection).

    The shells are concatenated, not merged: overlapping targets stay separate closed shells. This is exact
    for everything the aperture design does with them (the beam's-eye-view projection of a union is the
    union of the projections; the entry depth along a ray is the largest over the shells).

    Raises
    ------
    ParameterError
        No mesh given, or an item is not a TriangleMesh.
    """
    items = list(meshes)
    if not items:
        raise ParameterError("meshes must hold at least one TriangleMesh, got none")
    for n, m in enumerate(items):
        if not isinstance(m, TriangleMesh):
            raise ParameterError(f"meshes[{n}] must be a TriangleMesh, got {type(m).__name__}")
    if len(items) == 1:
        return items[0]
    verts, faces, offset = [], [], 0
    for m in items:
        verts.append(m.vertices_mm)
        faces.append(m.faces + offset)
        offset += m.n_vertices
    return TriangleMesh(np.concatenate(verts), np.concatenate(faces))


def _section_centroid(
    mesh: TriangleMesh, axis: NDArray[np.float64], e1: NDArray[np.float64], e2: NDArray[np.float64], s: float
) -> NDArray[np.float64] | None:
    """Area centroid (LPS) of the cross-section of ``mesh`` by the plane ``p · axis = s``; None if empty."""
    import shapely

    v = mesh.vertices_mm
    d = v @ axis - s
    f = mesh.faces
    df = d[f]
    # Triangles that straddle the plane (one vertex on one side, two on the other).
    pos = df > 0
    npos = pos.sum(axis=1)
    cut = (npos == 1) | (npos == 2)
    if not cut.any():
        return None
    f, df = f[cut], df[cut]
    pts = v[f]
    segs = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        da, db = df[:, a], df[:, b]
        cross = (da > 0) != (db > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(cross, da / (da - db), np.nan)
        p = pts[:, a] + t[:, None] * (pts[:, b] - pts[:, a])
        segs.append(np.where(cross[:, None], p, np.nan))
    stacked = np.stack(segs, axis=1)  # (m, 3 edges, 3)
    ok = np.isfinite(stacked[..., 0])
    two = stacked[ok].reshape(-1, 2, 3)  # each cut triangle crosses exactly two edges
    uv = np.stack([two @ e1, two @ e2], axis=-1)
    lines = shapely.linestrings(uv)
    polys = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.union_all(lines))))
    if len(polys) == 0:
        return None
    # Nested cells (a hollow section) are combined by symmetric difference: the even-odd rule.
    area = shapely.union_all(polys[:1])
    for p in polys[1:]:
        area = shapely.symmetric_difference(area, p)
    if area.is_empty or area.area <= 0:
        return None
    c = area.centroid
    return np.asarray(axis * s + c.x * e1 + c.y * e2, dtype=float)


def structure_centerline(
    mesh: TriangleMesh, *, axis: ArrayLike | None = None, step_mm: float = 2.0
) -> NDArray[np.float64]:
    """Centre line of a structure: the path of the area centroids of its cross-sections.

    The structure is cut by planes perpendicular to ``axis`` every ``step_mm`` (half a step inside its ends);
    the centroid of each cross-section (holes honoured) is a point of the centre line. For an elongated
    organ (spinal cord, optic nerve, rectum) the default axis, the principal axis of the mesh vertices, runs
    along it.

    Parameters
    ----------
    mesh : TriangleMesh
        Closed mesh (LPS, mm).
    axis : array_like, 3, optional
        Direction (LPS) along which to slice; default the principal axis of the vertices.
    step_mm : float
        Distance between cutting planes in mm (> 0).

    Returns
    -------
    ndarray, shape (n, 2..., 3)
        Centre-line points (LPS, mm) in order along the axis; at least 2 points.

    Raises
    ------
    GeometryError
        Empty mesh, or fewer than two non-empty cross-sections.
    """
    step = _positive("step_mm", step_mm)
    if mesh.is_empty:
        raise GeometryError("structure_centerline needs a non-empty mesh")
    v = mesh.vertices_mm
    if axis is None:
        centred = v - v.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        a = vt[0]
    else:
        a = np.asarray(axis, dtype=float).reshape(-1)
        if a.size != 3 or not np.all(np.isfinite(a)) or np.linalg.norm(a) == 0:
            raise ParameterError(f"axis must be a non-zero 3-vector, got {a.tolist()}")
    a = a / np.linalg.norm(a)
    helper = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(a, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(a, e1)
    proj = v @ a
    lo, hi = float(proj.min()), float(proj.max())
    n = max(int(np.floor((hi - lo) / step)), 1)
    centre = 0.5 * (lo + hi)
    positions = centre + (np.arange(n) - (n - 1) / 2.0) * step
    positions = np.clip(positions, lo + 1e-6 * step, hi - 1e-6 * step)
    pts = [c for s in positions if (c := _section_centroid(mesh, a, e1, e2, float(s))) is not None]
    if len(pts) < 2:
        raise GeometryError(
            f"structure_centerline found {len(pts)} cross-section(s) along the axis at step_mm={step}; "
            "use a smaller step"
        )
    return np.asarray(pts, dtype=float)
