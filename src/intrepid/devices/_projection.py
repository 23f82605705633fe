"""Beam's-eye-view projection of closed meshes: exact silhouettes and entry-depth maps (for occlusion).

Silhouette
----------
For a closed mesh with outward normals, the projection of the solid is the union of its *front-facing*
triangles (those whose projected signed area is positive: seen from the source they keep their
counter-clockwise order). The boundary of that union lies on the projected *contour-generator* edges, the
edges between a front-facing and a non-front-facing triangle. These few edges (O(√n) of n triangles) are
noded and polygonised; each resulting cell is wholly inside or outside the silhouette, and is classified by
one interior point. The result equals the union of all projected triangles (exact up to floating point) at
a small fraction of its cost. Meshes that are not closed fall back on that direct union.

Entry depth
-----------
:func:`entry_depth_map` rasterises the largest beam-frame ``z`` (the surface point nearest to the source)
of a mesh over a regular grid of rays on a plane, with a z-buffer. The depth inside each projected triangle
is interpolated linearly in the projection plane, exact at the vertices; the error is second order in the
triangle size (well below 0.01 mm for millimetre triangles at source distances of metres).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.devices._beam_geometry import BeamGeometry
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import TriangleMesh

__all__ = ["DepthMap", "entry_depth_map", "mask_to_geometry", "project_mesh"]

_log = logging.getLogger(__name__)

#: Parts (and holes) of a silhouette smaller than this (mm²) are floating-point debris and dropped.
_DEBRIS_MM2 = 1e-9


def _beam_uvz(
    mesh: TriangleMesh, geometry: BeamGeometry, plane_distance_mm: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    vb = geometry.to_beam(mesh.vertices_mm)
    limit = min(geometry.sad_mm)
    if vb.size and float(vb[:, 2].max()) >= limit:
        raise GeometryError(
            f"a structure reaches z = {float(vb[:, 2].max()):.1f} mm in the beam frame, at or behind the "
            f"virtual source ({limit} mm from the isocentre): check the isocentre and the source distances"
        )
    uv = geometry.project_beam_points(vb, plane_distance_mm)
    return uv, vb[:, 2]


def _clean(geom: Any) -> Any:
    """Valid (Multi)Polygon without debris parts or holes."""
    import shapely
    from shapely.geometry import MultiPolygon, Polygon

    geom = shapely.make_valid(geom)
    polys = [p for p in shapely.get_parts(geom) if isinstance(p, Polygon) and p.area > _DEBRIS_MM2]
    out = []
    for p in polys:
        holes = [h for h in p.interiors if Polygon(h).area > _DEBRIS_MM2]
        out.append(Polygon(p.exterior, holes))
    if not out:
        return Polygon()
    return out[0] if len(out) == 1 else MultiPolygon(out)


def _twins(faces: NDArray[np.int64], n_vertices: int) -> NDArray[np.int64] | None:
    """Index (into the 3m directed edges) of the reverse edge of each directed edge; None if not closed."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    n = np.int64(n_vertices)
    key = e[:, 0] * n + e[:, 1]
    rkey = e[:, 1] * n + e[:, 0]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    pos = np.clip(np.searchsorted(ks, rkey), 0, len(ks) - 1)
    if not np.array_equal(ks[pos], rkey):
        return None
    return np.asarray(order[pos], dtype=np.int64)


def project_mesh(mesh: TriangleMesh, geometry: BeamGeometry, plane_distance_mm: float) -> Any:
    """Exact beam's-eye-view silhouette of a closed mesh on a plane perpendicular to the beam axis.

    Parameters
    ----------
    mesh : TriangleMesh
        Closed mesh in LPS mm (outward normals; an inward-oriented mesh is flipped).
    geometry : BeamGeometry
        Beam (point or dual source).
    plane_distance_mm : float
        Plane position along the axis, from the isocentre towards the source (mm).

    Returns
    -------
    shapely Polygon or MultiPolygon
        In mm at that plane, beam-frame (x, y) axes; empty for an empty mesh.
    """
    import shapely
    from shapely.geometry import Polygon

    if not isinstance(mesh, TriangleMesh):
        raise ParameterError(f"mesh must be a TriangleMesh, got {type(mesh).__name__}")
    if mesh.is_empty:
        return Polygon()
    uv, _ = _beam_uvz(mesh, geometry, plane_distance_mm)
    faces = mesh.faces
    if mesh.volume_mm3() < 0:
        faces = faces[:, ::-1]
    tri = uv[faces]
    area = 0.5 * (
        (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1])
        - (tri[:, 2, 0] - tri[:, 0, 0]) * (tri[:, 1, 1] - tri[:, 0, 1])
    )
    twins = _twins(faces, mesh.n_vertices) if mesh.is_closed() else None
    if twins is None:
        _log.warning("mesh is not closed: projecting the union of all %d triangles (slow)", len(faces))
        keep = np.abs(area) > 0
        sel = tri[keep]
        rings = np.concatenate([sel, sel[:, :1]], axis=1)
        return _clean(shapely.union_all(shapely.polygons(rings)))
    front = area > 0
    if not front.any():
        return Polygon()
    m = len(faces)
    owner = np.tile(np.arange(m), 3)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    contour = front[owner] & ~front[owner[twins]]
    segs = uv[edges[contour]]
    noded = shapely.union_all(shapely.linestrings(segs))
    cells = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    if len(cells) == 0:
        return Polygon()
    ftri = tri[front]
    tree = shapely.STRtree(shapely.polygons(np.concatenate([ftri, ftri[:, :1]], axis=1)))
    probe = shapely.point_on_surface(cells)
    hit = tree.query(probe, predicate="intersects")
    inside = np.zeros(len(cells), dtype=bool)
    inside[hit[0]] = True
    return _clean(shapely.union_all(cells[inside]))


@dataclass(frozen=True, eq=False)
class DepthMap:
    """Entry depth of a mesh over a regular grid of rays on a plane.

    Parameters
    ----------
    depth_mm : ndarray, shape (nv, nu)
        Largest beam-frame z (mm, towards the source) of the surface along each ray; ``-inf`` where the ray
        misses the mesh. Row j, column i is the ray through ``(u0 + i·pixel, v0 + j·pixel)``.
    origin_mm : tuple of 2 float
        ``(u0, v0)``, plane coordinates (mm) of the ray of pixel (0, 0).
    pixel_mm : float
        Ray spacing in mm at the plane.
    """

    depth_mm: NDArray[np.float64]
    origin_mm: tuple[float, float]
    pixel_mm: float


def entry_depth_map(
    mesh: TriangleMesh,
    geometry: BeamGeometry,
    plane_distance_mm: float,
    bounds_mm: tuple[float, float, float, float],
    pixel_mm: float,
) -> DepthMap:
    """Entry depth (beam z of the surface nearest to the source) of a mesh along rays through a plane.

    Parameters
    ----------
    mesh : TriangleMesh
    geometry : BeamGeometry
    plane_distance_mm : float
        The plane (distance from the isocentre towards the source, mm) where the rays are laid out.
    bounds_mm : (u_min, v_min, u_max, v_max)
        Region of the plane to cover (mm).
    pixel_mm : float
        Ray spacing at the plane (mm, > 0).
    """
    if not (np.isfinite(pixel_mm) and pixel_mm > 0):
        raise ParameterError(f"pixel_mm must be > 0, got {pixel_mm}")
    u_min, v_min, u_max, v_max = (float(b) for b in bounds_mm)
    nu = int(np.floor((u_max - u_min) / pixel_mm)) + 1
    nv = int(np.floor((v_max - v_min) / pixel_mm)) + 1
    if nu * nv > 50_000_000:
        raise ParameterError(f"pixel_mm={pixel_mm} gives {nu} x {nv} rays; use a larger pixel")
    if mesh.is_empty:
        return DepthMap(np.full((nv, nu), -np.inf), (u_min, v_min), float(pixel_mm))
    from intrepid.devices._zbuffer import zbuffer_max

    uv, z = _beam_uvz(mesh, geometry, plane_distance_mm)
    depth = zbuffer_max(
        np.ascontiguousarray(uv[:, 0]), np.ascontiguousarray(uv[:, 1]), np.ascontiguousarray(z),
        np.ascontiguousarray(mesh.faces, dtype=np.int64), u_min, v_min, float(pixel_mm), nu, nv,
    )
    return DepthMap(depth, (u_min, v_min), float(pixel_mm))


def mask_to_geometry(mask: NDArray[np.bool_], origin_mm: tuple[float, float], pixel_mm: float) -> Any:
    """Union of the pixel squares (centred on the rays) of a 2D mask, as a shapely geometry (mm).

    Horizontal runs of set pixels become one rectangle each before the union, which keeps it fast.
    """
    import shapely
    from shapely.geometry import Polygon

    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return Polygon()
    padded = np.pad(m, ((0, 0), (1, 1))).astype(np.int8)
    diff = np.diff(padded, axis=1)
    rows_s, cols_s = np.nonzero(diff == 1)
    rows_e, cols_e = np.nonzero(diff == -1)
    u0, v0 = origin_mm
    h = 0.5 * pixel_mm
    x0 = u0 + cols_s * pixel_mm - h
    x1 = u0 + (cols_e - 1) * pixel_mm + h
    y0 = v0 + rows_s * pixel_mm - h
    y1 = v0 + rows_e * pixel_mm + h
    boxes = shapely.box(x0, y0, x1, y1)
    return _clean(shapely.union_all(boxes))
