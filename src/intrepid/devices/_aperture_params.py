"""Parameters of an aperture design: settings, organs, centre-line bands, override polygons, field rectangle.

Every length is in mm at the device plane (the aperture's downstream edge) unless a field says otherwise.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.devices._aperture_ops import CornerPlane, HalfPlane, MillMode, Mount
from intrepid.errors import ParameterError
from intrepid.geometry import TriangleMesh

__all__ = [
    "ApertureCenterline",
    "ApertureOrgan",
    "ApertureOverride",
    "AperturePlane",
    "ApertureSettings",
    "FieldRectangle",
    "OverrideMode",
    "StructureRole",
    "downstream_edge_from_tray",
]


def _number(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ParameterError(f"{name} must be finite, got {v}")
    return v


class AperturePlane(enum.Enum):
    """Plane in which 2D coordinates are given."""

    DEVICE = "device"  #: the aperture's downstream edge (true size on the device)
    ISOCENTER = "isocenter"  #: the isocentre plane (beam's-eye view at the isocentre)


class OverrideMode(enum.Enum):
    """What a manual override polygon does to the opening."""

    ADD = "add"  #: the opening is expanded to include the polygon
    LIMIT = "limit"  #: the opening is limited to the polygon


class StructureRole(enum.Enum):
    """Role of a projected structure in a drawing."""

    TARGET = "target"
    TARGET_MARGIN = "target_margin"
    ORGAN = "organ"
    ORGAN_CLIP = "organ_clip"
    CENTERLINE = "centerline"
    CENTERLINE_BAND = "centerline_band"
    OVERRIDE = "override"
    MOUNT = "mount"


def downstream_edge_from_tray(
    isocenter_to_tray_mm: float, thickness_mm: float, mounting_position: str = "PATIENT_SIDE"
) -> float:
    """Distance from the isocentre to the downstream (patient-side) face of an aperture, mm.

    DICOM defines Isocenter to Block Tray Distance (300A,00F7) as the distance to the downstream edge of the
    (possibly virtual) tray. A block mounted on the PATIENT_SIDE of the tray extends ``thickness_mm`` further
    towards the patient, so its downstream face is at ``tray − thickness``; a SOURCE_SIDE block ends at the
    tray's downstream edge (DICOM PS3.3 C.8.8.25.4).

    Parameters
    ----------
    isocenter_to_tray_mm : float
        Isocenter to Block Tray Distance, mm.
    thickness_mm : float
        Block Thickness (300A,0100), mm (>= 0).
    mounting_position : str
        Block Mounting Position (300A,00FB): PATIENT_SIDE or SOURCE_SIDE.
    """
    tray = _number("isocenter_to_tray_mm", isocenter_to_tray_mm)
    thick = _number("thickness_mm", thickness_mm)
    if thick < 0:
        raise ParameterError(f"thickness_mm must be >= 0, got {thick}")
    mount = str(mounting_position).strip().upper()
    if mount == "PATIENT_SIDE":
        return tray - thick
    if mount == "SOURCE_SIDE":
        return tray
    raise ParameterError(f"mounting_position must be PATIENT_SIDE or SOURCE_SIDE, got {mounting_position!r}")


@dataclass(frozen=True, eq=False)
class ApertureOrgan:
    """An organ whose projection (plus margin) is removed from the opening.

    Parameters
    ----------
    mesh : TriangleMesh
        The organ (LPS, mm).
    margin_mm : float
        Expansion of its projection at the device plane, mm; negative shrinks it.
    occlude_by_target : bool
        Leave out the parts of the organ hidden behind the target, seen from the source.
    name : str
    """

    mesh: TriangleMesh
    margin_mm: float = 0.0
    occlude_by_target: bool = False
    name: str = "organ"

    def __post_init__(self) -> None:
        if not isinstance(self.mesh, TriangleMesh):
            raise ParameterError(
                f"organ {self.name!r}: mesh must be a TriangleMesh, got {type(self.mesh).__name__}"
            )
        object.__setattr__(self, "margin_mm", _number(f"organ {self.name!r} margin_mm", self.margin_mm))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (without the mesh)."""
        return {
            "name": self.name, "margin_mm": self.margin_mm, "occlude_by_target": bool(self.occlude_by_target),
        }


@dataclass(frozen=True, eq=False)
class ApertureCenterline:
    """A band around the projected centre line of a structure, removed from the opening.

    Parameters
    ----------
    mesh : TriangleMesh
        The structure (LPS, mm).
    width_mm : float
        Full width of the band at the device plane (mm, > 0); the band reaches ``width_mm / 2`` on each side
        of the centre line, with round ends.
    name : str
    axis : array_like, 3, optional
        Slicing direction of :func:`structure_centerline` (default: the structure's principal axis).
    step_mm : float
        Distance between the cross-sections of the centre line (mm).
    """

    mesh: TriangleMesh
    width_mm: float
    name: str = "centerline"
    axis: tuple[float, float, float] | None = None
    step_mm: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.mesh, TriangleMesh):
            raise ParameterError(f"centre line {self.name!r}: mesh must be a TriangleMesh")
        w = _number("width_mm", self.width_mm)
        if w <= 0:
            raise ParameterError(f"centre line {self.name!r}: width_mm must be > 0, got {w}")
        object.__setattr__(self, "width_mm", w)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (without the mesh)."""
        return {"name": self.name, "width_mm": self.width_mm, "step_mm": self.step_mm,
                "axis": None if self.axis is None else list(self.axis)}


@dataclass(frozen=True, eq=False)
class ApertureOverride:
    """A manual override polygon.

    Parameters
    ----------
    polygon_mm : array_like, shape (n, 2)
        Vertices (x, y) in mm, beam-frame axes, in the plane given by ``plane`` (n >= 3).
    mode : OverrideMode
        ADD (expand the opening to include it) or LIMIT (limit the opening to it).
    plane : AperturePlane
        DEVICE (the seed's convention: coordinates at the downstream edge) or ISOCENTER.
    """

    polygon_mm: NDArray[np.float64]
    mode: OverrideMode
    plane: AperturePlane = AperturePlane.DEVICE

    def __post_init__(self) -> None:
        p = np.asarray(self.polygon_mm, dtype=float)
        if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 3:
            raise ParameterError(f"override polygon_mm must have shape (n >= 3, 2), got {p.shape}")
        if not np.all(np.isfinite(p)):
            raise ParameterError("override polygon_mm must be finite")
        p.setflags(write=False)
        object.__setattr__(self, "polygon_mm", p)
        if not isinstance(self.mode, OverrideMode):
            try:
                object.__setattr__(self, "mode", OverrideMode(str(self.mode).lower()))
            except ValueError:
                raise ParameterError(f"override mode must be 'add' or 'limit', got {self.mode!r}") from None
        if not isinstance(self.plane, AperturePlane):
            try:
                object.__setattr__(self, "plane", AperturePlane(str(self.plane).lower()))
            except ValueError:
                raise ParameterError(
                    f"override plane must be 'device' or 'isocenter', got {self.plane!r}"
                ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"mode": self.mode.value, "plane": self.plane.value, "polygon_mm": self.polygon_mm.tolist()}


#: Upper ends of the physical ranges of :class:`ApertureSettings` (mm). Snouts hold their apertures within
#: ~0.5 m of the isocentre (5 m is a hard ceiling); margins are millimetres to a few centimetres; milling
#: tools are a few mm in radius.
APERTURE_LIMITS: dict[str, float] = {
    "downstream_edge_mm": 5000.0,
    "target_margin_mm": 100.0,
    "mill_radius_mm": 50.0,
}
#: Most smoothing passes (each is one polygon buffer pair).
MAX_SMOOTHING_ITERATIONS = 100


@dataclass(frozen=True)
class ApertureSettings:
    """Parameters of an aperture design; lengths in mm at the device plane (its downstream edge).

    Parameters
    ----------
    downstream_edge_mm : float
        Distance from the isocentre to the downstream (patient-side) face of the aperture along the axis,
        mm (>= 0 and below both source distances); see :func:`downstream_edge_from_tray`.
    target_margin_mm : float
        Expansion of the targets' projection (round joins), mm (>= 0).
    mill_radius_mm : float
        Radius of the milling tool, mm (>= 0). The seed recommends 2.38 to 4.76 mm.
    mill_mode : MillMode
        OPEN (default, what the tool cuts), CLOSE or BOTH.
    smoothing : float
        Vertex-smoothing fraction in [0, 1] (0: none).
    smoothing_iterations : int
        Smoothing passes (>= 0).
    keep_islands : bool
        Keep holes of the opening (floating islands of material); removed by default.
    mount : Mount, optional
        Snout outline that bounds the opening.
    half_planes, corner_planes : tuple
        Match-field planes (:class:`HalfPlane`, :class:`CornerPlane`), coordinates at the device plane.
    thickness_mm : float, optional
        Device thickness (recorded for export; the model is infinitely thin).
    occlusion_pixel_mm : float
        Ray spacing (mm at the device plane) of the depth maps used for ``occlude_by_target``.
    coverage_tolerance_mm2 : float
        Uncovered target-plus-margin area (mm²) above which the mill and smoothing steps warn.
    """

    downstream_edge_mm: float
    target_margin_mm: float = 0.0
    mill_radius_mm: float = 0.0
    mill_mode: MillMode = MillMode.OPEN
    smoothing: float = 0.0
    smoothing_iterations: int = 0
    keep_islands: bool = False
    mount: Mount | None = None
    half_planes: tuple[HalfPlane, ...] = ()
    corner_planes: tuple[CornerPlane, ...] = ()
    thickness_mm: float | None = None
    occlusion_pixel_mm: float = 0.5
    coverage_tolerance_mm2: float = 0.01

    def __post_init__(self) -> None:
        for name in ("downstream_edge_mm", "target_margin_mm", "mill_radius_mm", "smoothing",
                     "occlusion_pixel_mm", "coverage_tolerance_mm2"):
            object.__setattr__(self, name, _number(name, getattr(self, name)))
        if self.downstream_edge_mm < 0:
            raise ParameterError(f"downstream_edge_mm must be >= 0, got {self.downstream_edge_mm}")
        if self.target_margin_mm < 0:
            raise ParameterError(f"target_margin_mm must be >= 0, got {self.target_margin_mm}")
        if self.mill_radius_mm < 0:
            raise ParameterError(f"mill_radius_mm must be >= 0, got {self.mill_radius_mm}")
        for name, ceiling in APERTURE_LIMITS.items():
            value = getattr(self, name)
            if value > ceiling:
                raise ParameterError(f"{name} must be <= {ceiling:g}, got {value:g} (physical range)")
        if not isinstance(self.mill_mode, MillMode):
            try:
                object.__setattr__(self, "mill_mode", MillMode(str(self.mill_mode).lower()))
            except ValueError:
                raise ParameterError(
                    f"mill_mode must be open, close or both, got {self.mill_mode!r}"
                ) from None
        if not 0.0 <= self.smoothing <= 1.0:
            raise ParameterError(f"smoothing must be in [0, 1], got {self.smoothing}")
        it = self.smoothing_iterations
        if isinstance(it, bool) or not isinstance(it, (int, np.integer)) or it < 0:
            raise ParameterError(f"smoothing_iterations must be an integer >= 0, got {it!r}")
        if it > MAX_SMOOTHING_ITERATIONS:
            raise ParameterError(f"smoothing_iterations must be <= {MAX_SMOOTHING_ITERATIONS}, got {it}")
        object.__setattr__(self, "smoothing_iterations", int(it))
        if self.occlusion_pixel_mm <= 0:
            raise ParameterError(f"occlusion_pixel_mm must be > 0, got {self.occlusion_pixel_mm}")
        if self.coverage_tolerance_mm2 < 0:
            raise ParameterError(f"coverage_tolerance_mm2 must be >= 0, got {self.coverage_tolerance_mm2}")
        if self.mount is not None and not isinstance(self.mount, Mount):
            raise ParameterError(f"mount must be a Mount, got {type(self.mount).__name__}")
        object.__setattr__(self, "half_planes", tuple(self.half_planes))
        object.__setattr__(self, "corner_planes", tuple(self.corner_planes))
        for p in self.half_planes:
            if not isinstance(p, HalfPlane):
                raise ParameterError(f"half_planes must hold HalfPlane items, got {type(p).__name__}")
        for c in self.corner_planes:
            if not isinstance(c, CornerPlane):
                raise ParameterError(f"corner_planes must hold CornerPlane items, got {type(c).__name__}")
        if self.thickness_mm is not None:
            t = _number("thickness_mm", self.thickness_mm)
            if t <= 0:
                raise ParameterError(f"thickness_mm must be > 0, got {t}")
            object.__setattr__(self, "thickness_mm", t)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of every setting."""
        return {
            "downstream_edge_mm": self.downstream_edge_mm,
            "target_margin_mm": self.target_margin_mm,
            "mill_radius_mm": self.mill_radius_mm,
            "mill_mode": self.mill_mode.value,
            "smoothing": self.smoothing,
            "smoothing_iterations": self.smoothing_iterations,
            "keep_islands": self.keep_islands,
            "mount": None if self.mount is None else self.mount.to_dict(),
            "half_planes": [p.to_dict() for p in self.half_planes],
            "corner_planes": [c.to_dict() for c in self.corner_planes],
            "thickness_mm": self.thickness_mm,
            "occlusion_pixel_mm": self.occlusion_pixel_mm,
            "coverage_tolerance_mm2": self.coverage_tolerance_mm2,
        }


@dataclass(frozen=True)
class FieldRectangle:
    """Axis-aligned bounding rectangle of an opening (mm, beam-frame axes, in one plane)."""

    x_min_mm: float
    x_max_mm: float
    y_min_mm: float
    y_max_mm: float

    @property
    def width_mm(self) -> float:
        """Extent along x, mm."""
        return self.x_max_mm - self.x_min_mm

    @property
    def height_mm(self) -> float:
        """Extent along y, mm."""
        return self.y_max_mm - self.y_min_mm

    def to_dict(self) -> dict[str, float]:
        """JSON-ready description."""
        return {
            "x_min_mm": self.x_min_mm, "x_max_mm": self.x_max_mm, "y_min_mm": self.y_min_mm,
            "y_max_mm": self.y_max_mm, "width_mm": self.width_mm, "height_mm": self.height_mm,
        }
