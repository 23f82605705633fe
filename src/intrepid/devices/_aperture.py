"""Aperture design from the beam's-eye view of the targets: margin, organ clipping, bands, overrides, planes,
mount, mill radius, smoothing and islands, for point- and dual-source proton beams.

The aperture is modelled as infinitely thin at its *downstream edge* (the patient-side face of the device),
``downstream_edge_mm`` from the isocentre along the axis; every length of :class:`ApertureSettings` (margins,
band widths, half-plane origins, mount, mill radius) is in mm *at that plane*, i.e. true size on the device.
The opening is reported at the device plane and scaled to the isocentre plane per axis by
``SAD_a / (SAD_a − downstream_edge_mm)`` (dual source: two different factors).

Order of the steps (:func:`design_aperture`)
--------------------------------------------
1. Project every target mesh (exact silhouette), union, expand by the target margin (round joins).
2. Organ clipping: remove each organ's projection expanded by its margin (negative margins shrink it). With
   ``occlude_by_target`` the parts of the organ that lie behind the target seen from the source (along each
   ray the target's entry point is nearer to the source than the organ's) are left out of the projection
   first, so they do not close the opening.
3. Centre-line bands: remove a band of ``width_mm`` centred on the projected centre line of a structure
   (the path of its cross-section centroids, :func:`structure_centerline`).
4. Manual overrides: ADD unites a polygon with the opening, LIMIT intersects it.
5. Half planes, then corner planes: remove their positive sides.
6. Mount: intersect with the snout's circle or rectangle.
7. Mill radius (:func:`apply_mill_radius`), 8. vertex smoothing (:func:`smooth_outline`), clipped to the mount
   again, then 9. floating islands (holes of the opening) filled unless ``keep_islands``.

After the mill radius and after smoothing, the part of the target-plus-margin region that the step uncovered
is measured; a warning names the step and the area when it exceeds ``coverage_tolerance_mm2``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from intrepid.devices._aperture_ops import (
    QUAD_SEGS,
    apply_mill_radius,
    as_polygonal,
    corner_plane_region,
    count_islands,
    fill_islands,
    half_plane_region,
    min_feature_size_mm,
    mount_region,
    smooth_outline,
)
from intrepid.devices._aperture_params import (
    ApertureCenterline,
    ApertureOrgan,
    ApertureOverride,
    AperturePlane,
    ApertureSettings,
    FieldRectangle,
    OverrideMode,
    StructureRole,
)
from intrepid.devices._beam_geometry import BeamGeometry
from intrepid.devices._projection import entry_depth_map, mask_to_geometry, project_mesh
from intrepid.devices._targets import combine_meshes, structure_centerline
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import TriangleMesh

__all__ = ["ApertureResult", "ProjectedStructure", "design_aperture", "visible_organ_projection"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ProjectedStructure:
    """A structure's shape at the device plane, kept for drawings (shapely geometry, mm)."""

    name: str
    role: StructureRole
    shape_device: Any


def _rings(geom: Any) -> list[dict[str, Any]]:
    import shapely
    from shapely.geometry import Polygon

    out = []
    for p in shapely.get_parts(geom):
        if isinstance(p, Polygon) and not p.is_empty:
            out.append({
                "exterior": np.asarray(p.exterior.coords)[:-1].tolist(),
                "holes": [np.asarray(h.coords)[:-1].tolist() for h in p.interiors],
            })
    return out


def _rectangle(geom: Any) -> FieldRectangle | None:
    if geom.is_empty:
        return None
    x0, y0, x1, y1 = geom.bounds
    return FieldRectangle(float(x0), float(x1), float(y0), float(y1))


@dataclass(frozen=True, eq=False)
class ApertureResult:
    """A designed aperture.

    Parameters
    ----------
    opening_device, opening_iso : shapely Polygon or MultiPolygon
        The opening in mm at the device plane (true size) and scaled to the isocentre plane.
    area_device_mm2, area_iso_mm2 : float
        Areas of the opening at the two planes.
    perimeter_mm : float
        Length of the opening's outline at the device plane (the milling path), mm.
    perimeter_iso_mm : float
        Outline length at the isocentre plane, mm.
    min_feature_size_mm : float or None
        See :func:`min_feature_size_mm`.
    field_rectangle_device, field_rectangle_iso : FieldRectangle or None
        Bounding rectangle of the opening at each plane (None when the opening is empty); the isocentre one
        is the field size to cover with a bixel grid.
    scale_to_iso : tuple of 2 float
        Per-axis factors from the device plane to the isocentre plane.
    uncovered_by_mill_mm2, uncovered_by_smoothing_mm2 : float
        Target-plus-margin area that the mill radius / the smoothing uncovered.
    uncovered_target_mm2 : float
        Area of the targets' projection (no margin) outside the final opening, for any reason (organ
        clipping, planes and overrides included).
    islands_removed : int
        Holes of the opening filled (0 with ``keep_islands``).
    step_areas_mm2 : tuple of (str, float)
        Opening area at the device plane after each step.
    warnings : tuple of str
    settings : ApertureSettings
    geometry : BeamGeometry
    structures : tuple of ProjectedStructure
        Projections at the device plane, for drawings.
    organs, centerlines, overrides : tuple of dict
        Descriptions of the manipulations used.
    """

    opening_device: Any
    opening_iso: Any
    area_device_mm2: float
    area_iso_mm2: float
    perimeter_mm: float
    perimeter_iso_mm: float
    min_feature_size_mm: float | None
    field_rectangle_device: FieldRectangle | None
    field_rectangle_iso: FieldRectangle | None
    scale_to_iso: tuple[float, float]
    uncovered_by_mill_mm2: float
    uncovered_by_smoothing_mm2: float
    uncovered_target_mm2: float
    islands_removed: int
    step_areas_mm2: tuple[tuple[str, float], ...]
    warnings: tuple[str, ...]
    settings: ApertureSettings
    geometry: BeamGeometry
    structures: tuple[ProjectedStructure, ...] = ()
    organs: tuple[dict[str, Any], ...] = ()
    centerlines: tuple[dict[str, Any], ...] = ()
    overrides: tuple[dict[str, Any], ...] = ()

    def polygons(self, plane: AperturePlane = AperturePlane.DEVICE) -> list[dict[str, Any]]:
        """The opening's polygons ``[{"exterior": [[x, y], ...], "holes": [...]}, ...]``, mm at ``plane``."""
        return _rings(self.opening_device if plane is AperturePlane.DEVICE else self.opening_iso)

    def to_iso(self, geom: Any) -> Any:
        """A device-plane geometry scaled to the isocentre plane."""
        from shapely import affinity

        return affinity.scale(geom, self.scale_to_iso[0], self.scale_to_iso[1], origin=(0.0, 0.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready result: areas, perimeter, polygons at both planes, field rectangles, every setting."""
        fr_d, fr_i = self.field_rectangle_device, self.field_rectangle_iso
        return {
            "area_iso_mm2": self.area_iso_mm2,
            "area_device_mm2": self.area_device_mm2,
            "perimeter_mm": self.perimeter_mm,
            "perimeter_iso_mm": self.perimeter_iso_mm,
            "min_feature_size_mm": self.min_feature_size_mm,
            "polygons_iso_mm": self.polygons(AperturePlane.ISOCENTER),
            "polygons_device_mm": self.polygons(AperturePlane.DEVICE),
            "field_rectangle_iso_mm": None if fr_i is None else fr_i.to_dict(),
            "field_rectangle_device_mm": None if fr_d is None else fr_d.to_dict(),
            "scale_device_to_iso": list(self.scale_to_iso),
            "uncovered_by_mill_mm2": self.uncovered_by_mill_mm2,
            "uncovered_by_smoothing_mm2": self.uncovered_by_smoothing_mm2,
            "uncovered_target_mm2": self.uncovered_target_mm2,
            "islands_removed": self.islands_removed,
            "step_areas_mm2": [{"step": s, "area_mm2": a} for s, a in self.step_areas_mm2],
            "warnings": list(self.warnings),
            "settings": self.settings.to_dict(),
            "geometry": self.geometry.to_dict(),
            "organs": list(self.organs),
            "centerlines": list(self.centerlines),
            "overrides": list(self.overrides),
        }


def _as_meshes(targets: TriangleMesh | Sequence[TriangleMesh]) -> list[TriangleMesh]:
    items = [targets] if isinstance(targets, TriangleMesh) else list(targets)
    if not items:
        raise ParameterError("targets must hold at least one TriangleMesh, got none")
    for n, m in enumerate(items):
        if not isinstance(m, TriangleMesh):
            raise ParameterError(f"targets[{n}] must be a TriangleMesh, got {type(m).__name__}")
        if m.is_empty:
            raise GeometryError(f"targets[{n}] is an empty mesh")
    return items


def visible_organ_projection(
    organ: TriangleMesh,
    target: TriangleMesh,
    geometry: BeamGeometry,
    plane_distance_mm: float,
    *,
    pixel_mm: float = 0.5,
    organ_projection: Any = None,
    target_projection: Any = None,
) -> Any:
    """The organ's projection without the parts hidden behind the target, seen from the source.

    Along each ray (a grid of ``pixel_mm`` at the plane) the entry depths of both meshes are compared: where
    the target's surface is nearer to the source than the organ's, the organ is hidden. The hidden region is
    traced from the ray grid, widened by 0.75 pixel (to cover the staircase of the grid) and cut to the
    target's exact projection, then removed from the organ's exact projection. The boundary between hidden
    and visible parts inside the target's silhouette is thus accurate to about one pixel.

    Returns
    -------
    shapely geometry (mm at the plane)
    """
    o_proj = organ_projection
    if o_proj is None:
        o_proj = project_mesh(organ, geometry, plane_distance_mm)
    t_proj = target_projection
    if t_proj is None:
        t_proj = project_mesh(target, geometry, plane_distance_mm)
    overlap = o_proj.intersection(t_proj)
    if overlap.is_empty or overlap.area <= 0:
        return o_proj
    u0, v0, u1, v1 = overlap.bounds
    pad = 2.0 * pixel_mm
    bounds = (u0 - pad, v0 - pad, u1 + pad, v1 + pad)
    d_org = entry_depth_map(organ, geometry, plane_distance_mm, bounds, pixel_mm)
    d_tgt = entry_depth_map(target, geometry, plane_distance_mm, bounds, pixel_mm)
    hidden = np.isfinite(d_org.depth_mm) & np.isfinite(d_tgt.depth_mm) & (d_org.depth_mm < d_tgt.depth_mm)
    if not hidden.any():
        return o_proj
    hidden_geom = mask_to_geometry(hidden, d_org.origin_mm, pixel_mm)
    hidden_geom = hidden_geom.buffer(0.75 * pixel_mm, quad_segs=2).intersection(t_proj)
    return as_polygonal(o_proj.difference(hidden_geom))


def _scale_override(ov: ApertureOverride, iso_to_device: tuple[float, float]) -> Any:
    from shapely.geometry import Polygon

    p = np.asarray(ov.polygon_mm, dtype=float)
    if ov.plane is AperturePlane.ISOCENTER:
        p = p * np.asarray(iso_to_device)
    poly = as_polygonal(Polygon(p))
    if poly.is_empty:
        raise ParameterError("override polygon_mm encloses no area")
    return poly


def design_aperture(
    targets: TriangleMesh | Sequence[TriangleMesh],
    geometry: BeamGeometry,
    settings: ApertureSettings,
    *,
    organs: Sequence[ApertureOrgan] = (),
    centerlines: Sequence[ApertureCenterline] = (),
    overrides: Sequence[ApertureOverride] = (),
) -> ApertureResult:
    """Design an aperture opening from the beam's-eye view of the targets (steps in the module docstring).

    Parameters
    ----------
    targets : TriangleMesh or sequence of TriangleMesh
        Closed target meshes in LPS mm (:func:`target_mesh_from_roi`, :func:`target_mesh_from_dose`).
    geometry : BeamGeometry
        The beam (point or dual source).
    settings : ApertureSettings
        Device plane, margin, mill radius, smoothing, islands, mount, half and corner planes.
    organs : sequence of ApertureOrgan
        Organs whose projection (plus margin) closes the opening.
    centerlines : sequence of ApertureCenterline
        Bands around projected centre lines, removed from the opening.
    overrides : sequence of ApertureOverride
        Manual polygons that add to or limit the opening, applied in order.

    Returns
    -------
    ApertureResult

    Raises
    ------
    ParameterError, GeometryError
        Bad parameters, a structure at or behind a source, or targets whose projection is empty.

    Examples
    --------
    A sphere of radius R whose centre is at distance d from a point source projects, at a plane at distance p
    from the source, to a circle of radius ``p R / sqrt(d² − R²)`` (the tangent cone's half-angle α has
    ``sin α = R / d``); the opening is that circle grown by the margin.
    """
    import shapely
    from shapely import affinity
    from shapely.geometry import LineString

    if not isinstance(geometry, BeamGeometry):
        raise ParameterError(f"geometry must be a BeamGeometry, got {type(geometry).__name__}")
    if not isinstance(settings, ApertureSettings):
        raise ParameterError(f"settings must be ApertureSettings, got {type(settings).__name__}")
    zd = settings.downstream_edge_mm
    if zd >= min(geometry.sad_mm):
        raise ParameterError(
            f"downstream_edge_mm must be < the source distances {list(geometry.sad_mm)} mm, got {zd}"
        )
    meshes = _as_meshes(targets)
    organ_list = list(organs)
    band_list = list(centerlines)
    override_list = list(overrides)
    for o in organ_list:
        if not isinstance(o, ApertureOrgan):
            raise ParameterError(f"organs must hold ApertureOrgan items, got {type(o).__name__}")
    for b in band_list:
        if not isinstance(b, ApertureCenterline):
            raise ParameterError(f"centerlines must hold ApertureCenterline items, got {type(b).__name__}")
    for ov in override_list:
        if not isinstance(ov, ApertureOverride):
            raise ParameterError(f"overrides must hold ApertureOverride items, got {type(ov).__name__}")

    mag = geometry.magnification(zd)  # device size / isocentre size, per axis
    scale_to_iso = (1.0 / mag[0], 1.0 / mag[1])
    structures: list[ProjectedStructure] = []
    steps: list[tuple[str, float]] = []
    warnings: list[str] = []

    # 1. targets, union, margin
    target = combine_meshes(meshes)
    t_proj = as_polygonal(shapely.union_all([project_mesh(m, geometry, zd) for m in meshes]))
    if t_proj.is_empty:
        raise GeometryError("the targets' beam's-eye-view projection is empty")
    structures.append(ProjectedStructure("target", StructureRole.TARGET, t_proj))
    steps.append(("target_projection", float(t_proj.area)))
    m = settings.target_margin_mm
    t_margin = as_polygonal(t_proj.buffer(m, quad_segs=QUAD_SEGS)) if m > 0 else t_proj
    if m > 0:
        structures.append(ProjectedStructure("target + margin", StructureRole.TARGET_MARGIN, t_margin))
    opening = t_margin
    steps.append(("target_margin", float(opening.area)))

    # 2. organs
    for organ in organ_list:
        o_proj = project_mesh(organ.mesh, geometry, zd)
        structures.append(ProjectedStructure(organ.name, StructureRole.ORGAN, o_proj))
        visible = o_proj
        if organ.occlude_by_target:
            visible = visible_organ_projection(
                organ.mesh, target, geometry, zd, pixel_mm=settings.occlusion_pixel_mm,
                organ_projection=o_proj, target_projection=t_proj,
            )
        clip = visible
        if organ.margin_mm:
            clip = as_polygonal(visible.buffer(organ.margin_mm, quad_segs=QUAD_SEGS))
        structures.append(ProjectedStructure(f"{organ.name} clip", StructureRole.ORGAN_CLIP, clip))
        opening = as_polygonal(opening.difference(clip))
        steps.append((f"organ:{organ.name}", float(opening.area)))

    # 3. centre-line bands
    for band in band_list:
        line_lps = structure_centerline(band.mesh, axis=band.axis, step_mm=band.step_mm)
        uv = geometry.project_to_plane(line_lps, zd)
        line = LineString(uv)
        region = as_polygonal(line.buffer(0.5 * band.width_mm, quad_segs=QUAD_SEGS))
        structures.append(ProjectedStructure(band.name, StructureRole.CENTERLINE, line))
        structures.append(ProjectedStructure(f"{band.name} band", StructureRole.CENTERLINE_BAND, region))
        opening = as_polygonal(opening.difference(region))
        steps.append((f"centerline:{band.name}", float(opening.area)))

    # 4. overrides
    for n, ov in enumerate(override_list):
        poly = _scale_override(ov, mag)
        label = f"override {n + 1} ({ov.mode.value})"
        structures.append(ProjectedStructure(label, StructureRole.OVERRIDE, poly))
        changed = opening.union(poly) if ov.mode is OverrideMode.ADD else opening.intersection(poly)
        opening = as_polygonal(changed)
        steps.append((f"override:{ov.mode.value}", float(opening.area)))

    # 5. half and corner planes
    for hp in settings.half_planes:
        opening = as_polygonal(opening.difference(half_plane_region(hp)))
        steps.append(("half_plane", float(opening.area)))
    for cp in settings.corner_planes:
        opening = as_polygonal(opening.difference(corner_plane_region(cp)))
        steps.append(("corner_plane", float(opening.area)))

    # 6. mount
    mount = mount_region(settings.mount) if settings.mount is not None else None
    if mount is not None:
        structures.append(ProjectedStructure("mount", StructureRole.MOUNT, mount))
        opening = as_polygonal(opening.intersection(mount))
        steps.append(("mount", float(opening.area)))

    # 7. mill radius
    wanted = t_margin.intersection(opening)
    before = opening
    opening = apply_mill_radius(opening, settings.mill_radius_mm, settings.mill_mode)
    uncovered_mill = float(wanted.intersection(before).difference(opening).area)
    steps.append(("mill_radius", float(opening.area)))
    if uncovered_mill > settings.coverage_tolerance_mm2:
        warnings.append(
            f"the mill radius ({settings.mill_radius_mm} mm, {settings.mill_mode.value}) uncovered "
            f"{uncovered_mill:.2f} mm² of the target + margin at the device plane"
        )

    # 8. smoothing (then the mount again: smoothing may push concave vertices outwards)
    before = opening
    opening = smooth_outline(opening, settings.smoothing, settings.smoothing_iterations)
    if mount is not None:
        opening = as_polygonal(opening.intersection(mount))
    uncovered_smooth = float(wanted.intersection(before).difference(opening).area)
    steps.append(("smoothing", float(opening.area)))
    if uncovered_smooth > settings.coverage_tolerance_mm2:
        warnings.append(
            f"smoothing (fraction {settings.smoothing}, {settings.smoothing_iterations} iterations) "
            "uncovered "
            f"{uncovered_smooth:.2f} mm² of the target + margin at the device plane"
        )

    # 9. floating islands
    islands = count_islands(opening)
    removed = 0
    if islands and not settings.keep_islands:
        before_area = float(opening.area)
        opening = fill_islands(opening)
        removed = islands
        steps.append(("islands", float(opening.area)))
        warnings.append(
            f"{islands} floating island(s) of material removed, reopening "
            f"{opening.area - before_area:.2f} mm² (an organ or band wholly inside the opening cannot be "
            "held; keep_islands keeps them)"
        )
    elif islands:
        warnings.append(f"the opening keeps {islands} floating island(s) of material (keep_islands)")

    if opening.is_empty:
        warnings.append("the aperture opening is empty")
    uncovered_target = float(t_proj.difference(opening).area)
    if uncovered_target > settings.coverage_tolerance_mm2:
        warnings.append(f"{uncovered_target:.2f} mm² of the targets' projection lies outside the opening")
    for w in warnings:
        _log.warning("aperture: %s", w)

    opening_iso = affinity.scale(opening, scale_to_iso[0], scale_to_iso[1], origin=(0.0, 0.0))
    return ApertureResult(
        opening_device=opening,
        opening_iso=opening_iso,
        area_device_mm2=float(opening.area),
        area_iso_mm2=float(opening_iso.area),
        perimeter_mm=float(opening.length),
        perimeter_iso_mm=float(opening_iso.length),
        min_feature_size_mm=min_feature_size_mm(opening),
        field_rectangle_device=_rectangle(opening),
        field_rectangle_iso=_rectangle(opening_iso),
        scale_to_iso=scale_to_iso,
        uncovered_by_mill_mm2=uncovered_mill,
        uncovered_by_smoothing_mm2=uncovered_smooth,
        uncovered_target_mm2=uncovered_target,
        islands_removed=removed,
        step_areas_mm2=tuple(steps),
        warnings=tuple(warnings),
        settings=settings,
        geometry=geometry,
        structures=tuple(structures),
        organs=tuple(o.to_dict() for o in organ_list),
        centerlines=tuple(b.to_dict() for b in band_list),
        overrides=tuple(ov.to_dict() for ov in override_list),
    )

