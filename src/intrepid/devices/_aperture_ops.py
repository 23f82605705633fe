"""Two-dimensional manipulations of an aperture opening at the device plane (shapely geometries, mm).

Every function takes and returns a shapely ``Polygon`` / ``MultiPolygon`` of the *opening* (where radiation
passes) in beam-frame coordinates ``(x, y)`` in mm at one plane; none of them mutates its input.

Mill (tool) radius
------------------
An aperture is milled out of a slab: the tool of radius ``r`` cuts the opening, its centre travelling inside
it. What a tool can cut is a union of discs of radius ``r``, i.e. the morphological *opening* of the wanted
shape by a disc: ``O ⊖ r ⊕ r`` (an inward offset, then the same outward offset). The convex corners of the
opening (the pocket corners) get the tool radius and parts narrower than ``2 r`` disappear; corners of the
material that point into the opening may stay sharp, since the tool goes round them. :attr:`MillMode.OPEN`
(the default) does exactly that. :attr:`MillMode.CLOSE` is the outward-then-inward offset ``O ⊕ r ⊖ r``: it
fills notches of the opening narrower than ``2 r`` and rounds the material's corners, never removing opening;
:attr:`MillMode.BOTH` closes, then opens. Opening, closing and the open-after-close filter are idempotent
(Matheron 1975; Serra 1982), so applying the mill radius twice changes nothing.

Smoothing
---------
Each vertex ``v`` of every ring, with neighbours ``a`` and ``b``: the midpoints of its two edges,
``m1 = (a + v)/2`` and ``m2 = (v + b)/2``, define Line1; Line2 runs from ``v`` to the centre of Line1,
``c = (m1 + m2)/2 = (a + 2v + b)/4``. The vertex moves along Line2 by the fraction ``f`` in [0, 1]:
``v ← v + f (c − v)`` (0: no change, 0.5: half-way, 1: onto Line1), all vertices at once, repeated
``iterations`` times.

References
----------
Matheron G. Random Sets and Integral Geometry. Wiley, 1975. Serra J. Image Analysis and Mathematical
Morphology. Academic Press, 1982 (openings, closings and their idempotence).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from intrepid.errors import ParameterError

__all__ = [
    "CornerPlane",
    "HalfPlane",
    "MillMode",
    "Mount",
    "MountShape",
    "apply_mill_radius",
    "corner_plane_region",
    "fill_islands",
    "half_plane_region",
    "min_feature_size_mm",
    "mount_region",
    "smooth_outline",
]

#: Segments per quarter circle of every offset (chord sag r·(1 − cos(π/64)) ≈ 0.0012 r).
QUAD_SEGS = 16
#: Half-size (mm) of the polygons that stand for half planes.
_FAR_MM = 1.0e5


def _number(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ParameterError(f"{name} must be finite, got {v}")
    return v


def _empty() -> Any:
    from shapely.geometry import Polygon

    return Polygon()


def as_polygonal(geom: Any) -> Any:
    """Keep only the polygonal parts of a geometry (a difference may leave lines or points)."""
    import shapely
    from shapely.geometry import MultiPolygon, Polygon

    if geom is None or geom.is_empty:
        return _empty()
    geom = shapely.make_valid(geom)
    flat: list[Polygon] = []
    for part in shapely.get_parts(geom):
        if isinstance(part, Polygon) and not part.is_empty:
            flat.append(part)
        elif isinstance(part, MultiPolygon):
            flat.extend(q for q in part.geoms if not q.is_empty)
    if not flat:
        return _empty()
    return flat[0] if len(flat) == 1 else shapely.union_all(flat)


class MillMode(enum.Enum):
    """How the mill (tool) radius is enforced (see the module docstring)."""

    OPEN = "open"  #: what the tool can cut: inward then outward offset (may remove opening)
    CLOSE = "close"  #: outward then inward offset: fills narrow notches (never removes opening)
    BOTH = "both"  #: close, then open


class MountShape(enum.Enum):
    """Outline of the snout / mount that holds the aperture."""

    CIRCLE = "circle"
    RECTANGLE = "rectangle"


@dataclass(frozen=True)
class HalfPlane:
    """A half plane whose positive side (where the normal points) is removed from the opening.

    Parameters
    ----------
    origin_mm : tuple of 2 float
        A point of the boundary line, (x, y) in mm at the device plane.
    angle_deg : float
        Direction of the normal, degrees counter-clockwise from +x (0: +x, 90: +y).
    """

    origin_mm: tuple[float, float]
    angle_deg: float

    def __post_init__(self) -> None:
        o = np.asarray(self.origin_mm, dtype=float).reshape(-1)
        if o.size != 2 or not np.all(np.isfinite(o)):
            raise ParameterError(f"origin_mm must be 2 finite values (x, y), got {o.tolist()}")
        object.__setattr__(self, "origin_mm", (float(o[0]), float(o[1])))
        object.__setattr__(self, "angle_deg", _number("angle_deg", self.angle_deg))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"origin_mm": list(self.origin_mm), "angle_deg": self.angle_deg}


@dataclass(frozen=True)
class CornerPlane:
    """Two half planes through one origin; the region on the positive side of *both* is removed.

    Parameters
    ----------
    origin_mm : tuple of 2 float
        Common point (x, y) of the two boundary lines, mm at the device plane.
    angle1_deg, angle2_deg : float
        Normal directions of the two half planes, degrees counter-clockwise from +x.
    """

    origin_mm: tuple[float, float]
    angle1_deg: float
    angle2_deg: float

    def __post_init__(self) -> None:
        o = np.asarray(self.origin_mm, dtype=float).reshape(-1)
        if o.size != 2 or not np.all(np.isfinite(o)):
            raise ParameterError(f"origin_mm must be 2 finite values (x, y), got {o.tolist()}")
        object.__setattr__(self, "origin_mm", (float(o[0]), float(o[1])))
        a1 = _number("angle1_deg", self.angle1_deg)
        a2 = _number("angle2_deg", self.angle2_deg)
        if math.isclose(math.cos(math.radians(a1 - a2)), 1.0, abs_tol=1e-12):
            raise ParameterError(f"angle1_deg and angle2_deg must differ, got {a1} and {a2}")
        object.__setattr__(self, "angle1_deg", a1)
        object.__setattr__(self, "angle2_deg", a2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "origin_mm": list(self.origin_mm), "angle1_deg": self.angle1_deg, "angle2_deg": self.angle2_deg,
        }


@dataclass(frozen=True)
class Mount:
    """The mount (snout) that bounds the aperture, centred on the beam axis, at the device plane.

    Parameters
    ----------
    shape : MountShape
    radius_mm : float
        Circle radius (CIRCLE), mm.
    width_mm, height_mm : float
        Rectangle size along x and y (RECTANGLE), mm.
    """

    shape: MountShape
    radius_mm: float | None = None
    width_mm: float | None = None
    height_mm: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.shape, MountShape):
            try:
                object.__setattr__(self, "shape", MountShape(str(self.shape).lower()))
            except ValueError:
                raise ParameterError(f"shape must be 'circle' or 'rectangle', got {self.shape!r}") from None
        needed = ("radius_mm",) if self.shape is MountShape.CIRCLE else ("width_mm", "height_mm")
        for name in needed:
            value = getattr(self, name)
            if value is None:
                raise ParameterError(f"{name} is required for a {self.shape.value} mount")
            v = _number(name, value)
            if v <= 0:
                raise ParameterError(f"{name} must be > 0, got {v}")
            object.__setattr__(self, name, v)

    @classmethod
    def circle(cls, radius_mm: float) -> Mount:
        """A circular snout of ``radius_mm``."""
        return cls(MountShape.CIRCLE, radius_mm=radius_mm)

    @classmethod
    def rectangle(cls, width_mm: float, height_mm: float) -> Mount:
        """A rectangular snout ``width_mm`` (x) by ``height_mm`` (y)."""
        return cls(MountShape.RECTANGLE, width_mm=width_mm, height_mm=height_mm)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        if self.shape is MountShape.CIRCLE:
            return {"shape": "circle", "radius_mm": self.radius_mm}
        return {"shape": "rectangle", "width_mm": self.width_mm, "height_mm": self.height_mm}


def half_plane_region(plane: HalfPlane) -> Any:
    """The positive side of a half plane as a (large, 100 m) polygon, mm."""
    from shapely.geometry import Polygon

    a = math.radians(plane.angle_deg)
    n = np.array([math.cos(a), math.sin(a)])
    t = np.array([-n[1], n[0]])
    o = np.asarray(plane.origin_mm)
    pts = [o - _FAR_MM * t, o + _FAR_MM * t, o + _FAR_MM * t + _FAR_MM * n, o - _FAR_MM * t + _FAR_MM * n]
    return Polygon([tuple(p) for p in pts])


def corner_plane_region(plane: CornerPlane) -> Any:
    """The region on the positive side of both half planes of a corner plane."""
    first = half_plane_region(HalfPlane(plane.origin_mm, plane.angle1_deg))
    second = half_plane_region(HalfPlane(plane.origin_mm, plane.angle2_deg))
    return first.intersection(second)


def mount_region(mount: Mount) -> Any:
    """The mount's opening as a polygon centred on the axis (mm at the device plane)."""
    from shapely.geometry import Point, box

    if mount.shape is MountShape.CIRCLE:
        return Point(0.0, 0.0).buffer(float(mount.radius_mm or 0.0), quad_segs=4 * QUAD_SEGS)
    w, h = float(mount.width_mm or 0.0), float(mount.height_mm or 0.0)
    return box(-w / 2.0, -h / 2.0, w / 2.0, h / 2.0)


def apply_mill_radius(opening: Any, radius_mm: float, mode: MillMode = MillMode.OPEN) -> Any:
    """Make an opening machinable by a tool of radius ``radius_mm`` (see the module docstring).

    Parameters
    ----------
    opening : shapely Polygon or MultiPolygon
        Opening at the device plane (mm).
    radius_mm : float
        Tool radius in mm (>= 0; 0 returns the opening unchanged).
    mode : MillMode
        OPEN (what the tool can cut), CLOSE (fill narrow notches) or BOTH.

    Notes
    -----
    Offsets approximate arcs by inscribed chords (``QUAD_SEGS`` per quarter circle, sag ≈ 0.0012 r), so a
    second pass moves the outline by at most two sags — except at a neck whose width is within a sag of the
    tool diameter 2 r, which the second pass may close: such a neck is at the limit of what the tool can cut.

    Returns
    -------
    shapely Polygon or MultiPolygon
    """
    r = _number("radius_mm", radius_mm)
    if r < 0:
        raise ParameterError(f"mill radius_mm must be >= 0, got {r}")
    if not isinstance(mode, MillMode):
        raise ParameterError(f"mode must be a MillMode, got {mode!r}")
    if r == 0 or opening.is_empty:
        return opening
    out = opening
    if mode in (MillMode.CLOSE, MillMode.BOTH):
        out = out.buffer(r, quad_segs=QUAD_SEGS).buffer(-r, quad_segs=QUAD_SEGS)
    if mode in (MillMode.OPEN, MillMode.BOTH):
        out = out.buffer(-r, quad_segs=QUAD_SEGS).buffer(r, quad_segs=QUAD_SEGS)
    return as_polygonal(out)


def _smooth_ring(coords: np.ndarray, fraction: float, iterations: int) -> np.ndarray:
    v = np.asarray(coords, dtype=float)
    if len(v) > 1 and np.allclose(v[0], v[-1]):
        v = v[:-1]
    for _ in range(iterations):
        prev = np.roll(v, 1, axis=0)
        nxt = np.roll(v, -1, axis=0)
        centre = 0.25 * (prev + 2.0 * v + nxt)  # centre of the segment joining the two edge midpoints
        v = v + fraction * (centre - v)
    return v


def smooth_outline(opening: Any, fraction: float, iterations: int) -> Any:
    """Vertex smoothing of every ring of an opening (see the module docstring for the exact rule).

    Parameters
    ----------
    opening : shapely Polygon or MultiPolygon
    fraction : float
        How far each vertex moves along Line2, in [0, 1].
    iterations : int
        Number of passes (>= 0).

    Returns
    -------
    shapely Polygon or MultiPolygon
        Rings that collapse or self-intersect are repaired (``make_valid``).
    """
    import shapely
    from shapely.geometry import Polygon

    f = _number("fraction", fraction)
    if not 0.0 <= f <= 1.0:
        raise ParameterError(f"smoothing fraction must be in [0, 1], got {f}")
    if isinstance(iterations, bool) or int(iterations) != iterations or iterations < 0:
        raise ParameterError(f"iterations must be an integer >= 0, got {iterations!r}")
    n = int(iterations)
    if f == 0 or n == 0 or opening.is_empty:
        return opening
    out = []
    for poly in shapely.get_parts(opening):
        if not isinstance(poly, Polygon) or poly.is_empty:
            continue
        shell = _smooth_ring(np.asarray(poly.exterior.coords), f, n)
        holes = [_smooth_ring(np.asarray(h.coords), f, n) for h in poly.interiors]
        holes = [h for h in holes if len(h) >= 3]
        if len(shell) >= 3:
            out.append(Polygon(shell, holes))
    if not out:
        return _empty()
    return as_polygonal(shapely.union_all([shapely.make_valid(p) for p in out]))


def fill_islands(opening: Any) -> Any:
    """The opening with its holes filled: floating islands of material (held by nothing) are removed."""
    import shapely
    from shapely.geometry import Polygon

    if opening.is_empty:
        return opening
    shells = [Polygon(p.exterior) for p in shapely.get_parts(opening) if isinstance(p, Polygon)]
    return as_polygonal(shapely.union_all(shells))


def count_islands(opening: Any) -> int:
    """Number of holes (islands of material) in an opening."""
    import shapely
    from shapely.geometry import Polygon

    return sum(len(p.interiors) for p in shapely.get_parts(opening) if isinstance(p, Polygon))


def min_feature_size_mm(opening: Any, *, tolerance_mm: float = 0.02) -> float | None:
    """Smallest feature of an opening that a tool must reproduce, in mm.

    The smaller of (a) the diameter ``2 r`` of the largest disc whose morphological opening leaves the
    shape unchanged (within ``tolerance_mm + 0.006 r`` in Hausdorff distance, which absorbs the polygonal
    approximation of arcs): the narrowest part of the opening or its tightest convex corner, and (b) the
    thinnest wall of material between two separate openings. A shape milled with radius ``r`` has a feature
    size of at least ``2 r``; sharp corners give 0. The search for (a) stops at 90 % of the largest inscribed
    disc (offsets near the collapse of the shape are slow), so a round opening reports 1.8 × its inscribed
    radius: a lower bound, far above any tool.

    Returns
    -------
    float or None
        None for an empty opening.
    """
    import shapely

    if opening.is_empty:
        return None
    tol = _number("tolerance_mm", tolerance_mm)
    # A simplified copy (vertices within tol/2 of the outline) and 8 segments per quarter circle (chord sag
    # 0.0048 r, absorbed by the 0.006 r term) keep the bisection fast on outlines with thousands of vertices;
    # the bisection stops at a 0.02 mm bracket.
    shape = opening.simplify(0.5 * tol, preserve_topology=True)

    def unchanged(r: float) -> bool:
        opened = shape.buffer(-r, quad_segs=8).buffer(r, quad_segs=8)
        if opened.is_empty:
            return False
        return bool(shapely.hausdorff_distance(shape.boundary, opened.boundary) <= tol + 0.006 * r)

    parts = list(shapely.get_parts(shape))
    inscribed = max(float(shapely.length(shapely.maximum_inscribed_circle(p, tolerance=0.01))) for p in parts)
    # GEOS offsets slow down sharply as they near the collapse of the shape, so the search stops at 90 % of
    # the largest inscribed disc: round openings (a disc, a stadium) report 1.8 × their inscribed radius.
    lo, hi = 0.0, 0.9 * inscribed
    if unchanged(hi):
        lo = hi
    else:
        while hi - lo > 0.02:
            mid = 0.5 * (lo + hi)
            if unchanged(mid):
                lo = mid
            else:
                hi = mid
    size = 2.0 * lo
    for a in range(len(parts)):
        for b in range(a + 1, len(parts)):
            size = min(size, float(parts[a].distance(parts[b])))
    return size
