"""Geometric (ray-traced) range-compensator design: distal WEPL, margins, shifts, smearing, border, material.

Grid and rays
-------------
The compensator is a thickness map on a regular grid at its plane, ``isocenter_to_compensator_mm`` above the
isocentre (beam ``z``, the tray / downstream face). Pixel ``[row, col]`` has its centre at beam
``x = x0 + col · s``, ``y = y0 − row · s`` (columns along +x, rows along −y: the DICOM upper-left-corner
convention) and defines one divergent ray through the isocentre plane at ``u = x / m_x``, ``v = y / m_y``
with ``m_a = (SAD_a − z_c) / SAD_a`` (point or dual source, :class:`BeamGeometry`).

Design (per ray, in this order)
-------------------------------
1. ``W`` = WEPL from outside the patient to the *last* exit from the target along the ray (exact Siddon
   integral of the HU → relative-stopping-power calibration, default Schneider et al. 1996). Patch fields:
   ``W`` is instead the WEPL where an existing dose, followed along the ray inside the target, first reaches
   ``patch_isodose_percent`` of its maximum (the through field already covers what lies beyond); rays where
   it never does keep the target's distal surface.
2. Distal margin: ``R = W (1 + p / 100) + d``.
3. Shifts: with ``shift_mm = S`` the map is the maximum of itself shifted by ``±S`` along x and along y
   (isocentre plane): the design covers the target displaced by a setup error ``S`` in either direction.
4. Smearing (Urie et al. 1984): ``R`` at each ray becomes the maximum of ``R`` over the rays within the
   smearing radius (a disc of ``smearing_radius_mm`` at the isocentre plane, an ellipse on the grid for a
   dual source).
5. Border: rays that still see no target take ``R`` from :class:`BorderHandling`: ``EXTRAPOLATE`` (the
   nearest designed ray's value), ``MAX_THICKNESS`` (the shallowest designed range, i.e. the thickest
   compensator of the field) or ``MIN_THICKNESS`` (the deepest range: thinnest compensator).
6. Thickness: ``t = (R_beam − R) / RSP_material``, clipped to ``[min_thickness_mm, max_thickness_mm]``,
   where the beam range ``R_beam`` (water depth of the distal isodose of the depth dose, without the
   compensator) is given, or by default ``max(R) + RSP_material · min_thickness_mm`` — so the deepest ray
   gets exactly the minimum thickness. Rays clipped at the minimum are *under-ranged* (counted).

References
----------
Urie M, Goitein M, Wagner M (1984) Compensating for heterogeneities in proton radiation therapy. Phys Med Biol
29:553, doi:10.1088/0031-9155/29/5/008. Moyers MF et al. (2001) Methodologies and tools for proton beam
design for lung tumors. IJROBP 49:1429, doi:10.1016/S0360-3016(00)01555-8. Schneider U, Pedroni E, Lomax A
(1996) Phys Med Biol 41:111, doi:10.1088/0031-9155/41/1/009.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.devices._beam_geometry import BeamGeometry
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Quantity, Volume

__all__ = [
    "PMMA",
    "WAX",
    "BorderHandling",
    "CompensatorMaterial",
    "CompensatorResult",
    "CompensatorSettings",
    "DistalCoverage",
    "design_compensator",
]

_log = logging.getLogger(__name__)


class BorderHandling(enum.Enum):
    """Thickness of the rays that see no target (after shifts and smearing)."""

    #: The value of the nearest designed ray (a surface that continues smoothly to the edge).
    EXTRAPOLATE = "extrapolate"
    #: The thickest compensator of the designed rays (shallowest range): little dose beyond the target.
    MAX_THICKNESS = "max_thickness"
    #: The thinnest compensator of the designed rays (deepest range).
    MIN_THICKNESS = "min_thickness"


@dataclass(frozen=True)
class CompensatorMaterial:
    """A compensator material.

    Parameters
    ----------
    name : str
    relative_stopping_power : float
        Stopping power relative to water (the water-equivalent thickness is ``RSP × thickness``).
    density_g_cm3 : float
    radiation_length_mm : float
        For multiple scattering in the dose engine.
    """

    name: str
    relative_stopping_power: float
    density_g_cm3: float
    radiation_length_mm: float

    def __post_init__(self) -> None:
        for key in ("relative_stopping_power", "density_g_cm3", "radiation_length_mm"):
            v = float(getattr(self, key))
            if not math.isfinite(v) or v <= 0:
                raise ParameterError(f"material {key} must be > 0, got {getattr(self, key)}")
            object.__setattr__(self, key, v)

    @classmethod
    def parse(cls, text: str) -> CompensatorMaterial:
        """``"pmma"``, ``"wax"`` or ``"RSP:DENSITY"`` (e.g. ``"1.03:1.05"``; X0 scaled from water by density).

        Raises
        ------
        ParameterError
            Anything else.
        """
        key = text.strip().lower()
        if key in ("pmma", "lucite", "acrylic"):
            return PMMA
        if key in ("wax", "machinable_wax"):
            return WAX
        parts = key.split(":")
        if len(parts) == 2:
            try:
                rsp, rho = float(parts[0]), float(parts[1])
            except ValueError:
                rsp = rho = float("nan")
            if math.isfinite(rsp) and math.isfinite(rho) and rsp > 0 and rho > 0:
                return cls(f"custom RSP {rsp:g}", rsp, rho, 360.8 / rho)
        raise ParameterError(f"material must be 'pmma', 'wax' or 'RSP:DENSITY' (both > 0), got {text!r}")


#: PMMA (Lucite): RSP 1.165, 1.19 g/cm³ (team REFERENCES); radiation length 40.55 g/cm² / 1.19 = 340.7 mm
#: (PDG).
PMMA = CompensatorMaterial("PMMA", 1.165, 1.19, 340.7)
#: Machinable (paraffin-based) wax: 0.93 g/cm³; RSP 0.99 from the Bethe formula with Z/A 0.5706 and
#: I = 55.9 eV at 150 MeV (:func:`intrepid.physics.relative_stopping_power`); radiation length
#: 44.85 g/cm² / 0.93 (PDG).
WAX = CompensatorMaterial("wax", 0.99, 0.93, 482.3)


@dataclass(frozen=True)
class CompensatorSettings:
    """Parameters of a range-compensator design (see the module notes for the order of the steps).

    Parameters
    ----------
    distal_margin_percent : float
        ``p``: margin proportional to the distal WEPL, percent (Moyers et al. 2001 suggest 3.5).
    distal_margin_mm : float
        ``d``: fixed water-equivalent distal margin, mm (Moyers: 3; clinics 1–3).
    smearing_radius_mm : float
        Urie smearing radius at the isocentre plane, mm (0: none).
    shift_mm : float
        Lateral setup shift S at the isocentre plane, mm: the design also covers the target moved by ±S along
        x and y.
    min_thickness_mm, max_thickness_mm : float, float or None
        Physical thickness limits, mm.
    material : CompensatorMaterial
        :data:`PMMA` (default), :data:`WAX` or custom.
    border : BorderHandling
        Rays without target.
    pixel_spacing_mm : float
        Grid spacing at the compensator plane, mm.
    isocenter_to_compensator_mm : float
        Beam-axis distance from the isocentre to the compensator's downstream face (tray), mm.
    beam_range_mm : float or None
        Water depth of the beam's distal isodose without the compensator, mm; None: derived (notes, step 6).
    field_margin_mm : float
        The grid covers the target projection (and the aperture) plus this margin at the isocentre plane, mm.
    patch_isodose_percent : float
        Patch fields: level of the existing dose, percent of its maximum.
    distal_isodose_percent : float
        Dose optimisation: the isodose (percent of the plateau) placed on the distal surface.
    iterations : int
        Dose-based optimisation iterations (0: geometric design only).
    milling_tool_diameter_mm : float or None
        Written to DICOM (Compensator Milling Tool Diameter).
    """

    distal_margin_percent: float = 0.0
    distal_margin_mm: float = 0.0
    smearing_radius_mm: float = 0.0
    shift_mm: float = 0.0
    min_thickness_mm: float = 0.0
    max_thickness_mm: float | None = None
    material: CompensatorMaterial = PMMA
    border: BorderHandling = BorderHandling.EXTRAPOLATE
    pixel_spacing_mm: float = 2.0
    isocenter_to_compensator_mm: float = 200.0
    beam_range_mm: float | None = None
    field_margin_mm: float = 10.0
    patch_isodose_percent: float = 50.0
    distal_isodose_percent: float = 90.0
    iterations: int = 0
    milling_tool_diameter_mm: float | None = None

    def __post_init__(self) -> None:
        def check(name: str, lo: float, strict: bool = False, hi: float = math.inf) -> None:
            v = getattr(self, name)
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise ParameterError(f"{name} must be a number, got {v!r}") from None
            ok = math.isfinite(x) and (x > lo if strict else x >= lo) and x <= hi
            if not ok:
                rule = f"> {lo:g}" if strict else f">= {lo:g}"
                if hi < math.inf:
                    rule += f" and <= {hi:g}"
                raise ParameterError(f"{name} must be {rule}, got {v}")
            object.__setattr__(self, name, x)

        check("distal_margin_percent", 0.0, hi=100.0)
        check("distal_margin_mm", 0.0)
        check("smearing_radius_mm", 0.0)
        check("shift_mm", 0.0)
        check("min_thickness_mm", 0.0)
        check("pixel_spacing_mm", 0.0, strict=True)
        check("isocenter_to_compensator_mm", 0.0, strict=True)
        check("field_margin_mm", 0.0)
        check("patch_isodose_percent", 0.0, strict=True, hi=100.0)
        check("distal_isodose_percent", 0.0, strict=True, hi=100.0)
        if self.max_thickness_mm is not None:
            check("max_thickness_mm", self.min_thickness_mm, strict=True)
        if self.beam_range_mm is not None:
            check("beam_range_mm", 0.0, strict=True)
        if self.milling_tool_diameter_mm is not None:
            check("milling_tool_diameter_mm", 0.0, strict=True)
        if not isinstance(self.material, CompensatorMaterial):
            raise ParameterError(f"material must be a CompensatorMaterial, got {self.material!r}")
        if not isinstance(self.border, BorderHandling):
            raise ParameterError(f"border must be a BorderHandling, got {self.border!r}")
        if (
            isinstance(self.iterations, bool)
            or not isinstance(self.iterations, (int, np.integer))
            or self.iterations < 0
        ):
            raise ParameterError(f"iterations must be an integer >= 0, got {self.iterations!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        d = asdict(self)
        d["material"] = asdict(self.material)
        d["border"] = self.border.value
        return d


@dataclass(frozen=True)
class DistalCoverage:
    """How well the chosen distal isodose follows the intended distal surface, for one design iteration.

    Errors are geometric distances along each ray (mm), positive when the isodose lies *beyond* the intended
    surface (target distal surface plus margins, shifts and smearing). Only interior target rays (whose eight
    neighbours also cross the target) inside the aperture (full transmission) are evaluated.

    Attributes
    ----------
    iteration : int
        0 is the geometric design.
    rays : int
        Rays evaluated.
    mean_error_mm, mean_abs_error_mm, max_abs_error_mm : float
    within_1mm_percent : float
        Rays whose isodose lies within ±1 mm of the intended surface.
    covered_percent : float
        Rays whose isodose reaches at least the intended surface minus 1 mm.
    isodose_not_reached : int
        Rays on which the dose never reaches the isodose level.
    """

    iteration: int
    rays: int
    mean_error_mm: float
    mean_abs_error_mm: float
    max_abs_error_mm: float
    within_1mm_percent: float
    covered_percent: float
    isodose_not_reached: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True, eq=False)
class CompensatorResult:
    """A designed range compensator.

    Attributes
    ----------
    thickness_mm : ndarray, shape (rows, columns)
        Physical thickness along the beam, mm.
    pixel_spacing_mm : tuple of 2 float
        ``(row, column)`` spacing at the compensator plane (true size, for milling), mm.
    first_pixel_mm : tuple of 2 float
        Beam-frame ``(x, y)`` of the centre of pixel ``[0, 0]`` at the compensator plane, mm.
    isocenter_to_compensator_mm : float
        Beam-axis position of the compensator's downstream face.
    material : CompensatorMaterial
    beam_range_mm : float
        Water range (distal isodose depth) of the beam without the compensator, mm.
    required_range_mm : ndarray, shape (rows, columns)
        Water-equivalent range each ray must reach (after margins, shifts, smearing and border), mm.
    intended_range_mm : ndarray, shape (rows, columns)
        Same before the border step: NaN on rays that see no target (the goal of the dose optimisation).
    distal_wepl_mm : ndarray, shape (rows, columns)
        WEPL of the distal surface (target, or patch isodose) along each ray; NaN where the ray misses.
    aperture_transmission : ndarray, shape (rows, columns)
        Fraction of each pixel's ray cell inside the aperture (1 everywhere without an aperture).
    under_range_rays, clipped_max_rays : int
        Rays clipped at the minimum thickness with a required range beyond the beam's, and at the maximum.
    coverage : tuple of DistalCoverage
        One per iteration of the dose optimisation (empty for a geometric design).
    settings : CompensatorSettings
    geometry : BeamGeometry
    effective_range_mm : ndarray or None
        The optimised per-ray range actually used to cut the surface (dose optimisation only).
    """

    thickness_mm: NDArray[np.float64]
    pixel_spacing_mm: tuple[float, float]
    first_pixel_mm: tuple[float, float]
    isocenter_to_compensator_mm: float
    material: CompensatorMaterial
    beam_range_mm: float
    required_range_mm: NDArray[np.float64]
    intended_range_mm: NDArray[np.float64]
    distal_wepl_mm: NDArray[np.float64]
    aperture_transmission: NDArray[np.float64]
    under_range_rays: int
    clipped_max_rays: int
    settings: CompensatorSettings
    geometry: BeamGeometry
    coverage: tuple[DistalCoverage, ...] = ()
    effective_range_mm: NDArray[np.float64] | None = None
    depth_dose_description: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)``."""
        r, c = self.thickness_mm.shape
        return (int(r), int(c))

    @property
    def magnification(self) -> tuple[float, float]:
        """Per-axis factors from the isocentre plane to the compensator plane."""
        return self.geometry.magnification(self.isocenter_to_compensator_mm)

    @property
    def pixel_spacing_iso_mm(self) -> tuple[float, float]:
        """``(row, column)`` spacing projected to the isocentre plane, mm."""
        mx, my = self.magnification
        return (self.pixel_spacing_mm[0] / my, self.pixel_spacing_mm[1] / mx)

    @property
    def first_pixel_iso_mm(self) -> tuple[float, float]:
        """``(x, y)`` of pixel ``[0, 0]``'s centre projected to the isocentre plane, mm."""
        mx, my = self.magnification
        return (self.first_pixel_mm[0] / mx, self.first_pixel_mm[1] / my)

    def ray_positions_mm(self, plane: str = "device") -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(x, y)`` arrays, shape (rows, columns), of pixel centres at ``"device"`` or ``"iso"`` plane."""
        rows, cols = self.shape
        x = self.first_pixel_mm[0] + np.arange(cols) * self.pixel_spacing_mm[1]
        y = self.first_pixel_mm[1] - np.arange(rows) * self.pixel_spacing_mm[0]
        xx, yy = np.meshgrid(x, y)
        if plane == "iso":
            mx, my = self.magnification
            return xx / mx, yy / my
        if plane != "device":
            raise ParameterError(f"plane must be 'device' or 'iso', got {plane!r}")
        return xx, yy

    @property
    def field_mask(self) -> NDArray[np.bool_]:
        """Pixels over which the statistics are taken: inside the aperture (any transmission), or all."""
        return np.asarray(self.aperture_transmission > 0)

    def statistics(self) -> dict[str, float]:
        """``thickness_min_mm``, ``thickness_max_mm``, ``thickness_mean_mm`` over :attr:`field_mask`, and the
        water-equivalent maximum."""
        t = self.thickness_mm[self.field_mask]
        if t.size == 0:
            t = self.thickness_mm.ravel()
        return {
            "thickness_min_mm": float(t.min()),
            "thickness_max_mm": float(t.max()),
            "thickness_mean_mm": float(t.mean()),
            "water_equivalent_max_mm": float(t.max() * self.material.relative_stopping_power),
        }

    def to_map(self) -> Any:
        """The compensator as the dose engine's :class:`~intrepid.physics.CompensatorMap`."""
        from intrepid.physics._proton_pencil import CompensatorMap

        return CompensatorMap(
            self.thickness_mm,
            self.first_pixel_mm,
            self.pixel_spacing_mm,
            self.isocenter_to_compensator_mm,
            self.material.relative_stopping_power,
            self.material.radiation_length_mm,
        )

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        """JSON-ready result: statistics, grid, material, beam range, coverage, settings, geometry."""
        d: dict[str, Any] = {
            **self.statistics(),
            "rows": self.shape[0],
            "columns": self.shape[1],
            "pixel_spacing_mm": list(self.pixel_spacing_mm),
            "pixel_spacing_iso_mm": list(self.pixel_spacing_iso_mm),
            "first_pixel_mm": list(self.first_pixel_mm),
            "first_pixel_iso_mm": list(self.first_pixel_iso_mm),
            "isocenter_to_compensator_mm": self.isocenter_to_compensator_mm,
            "material": asdict(self.material),
            "beam_range_mm": self.beam_range_mm,
            "target_rays": int(np.count_nonzero(np.isfinite(self.distal_wepl_mm))),
            "under_range_rays": self.under_range_rays,
            "clipped_max_rays": self.clipped_max_rays,
            "iterations": len(self.coverage) - 1 if self.coverage else 0,
            "distal_coverage": [c.to_dict() for c in self.coverage],
            "depth_dose": self.depth_dose_description,
            "settings": self.settings.to_dict(),
            "geometry": self.geometry.to_dict(),
        }
        if include_arrays:
            d["thickness_mm"] = np.round(self.thickness_mm, 4).tolist()
        return d


# ---------------------------------------------------------------------------------------------- helpers
def aperture_geometry(aperture: Any) -> Any:
    """The opening at the isocentre plane: an ``ApertureResult``'s ``opening_iso`` or a shapely geometry."""
    if aperture is None:
        return None
    geom = getattr(aperture, "opening_iso", aperture)
    if not hasattr(geom, "bounds") or not hasattr(geom, "is_empty"):
        raise ParameterError(
            f"aperture must be an ApertureResult or a shapely geometry, got {type(aperture).__name__}"
        )
    if geom.is_empty:
        raise ParameterError("aperture opening is empty")
    return geom


def to_stopping_power(ct: Volume, calibration: Any = None) -> Volume:
    """Relative stopping power from a CT in HU (calibration default: Schneider 1996), or the volume itself."""
    from intrepid.physics import hu_to_relative_stopping_power

    if not isinstance(ct, Volume) or ct.ndim != 3:
        raise ParameterError("ct must be a 3D Volume (CT numbers in HU, or relative stopping power)")
    if ct.quantity is Quantity.CT_NUMBER:
        return (calibration or hu_to_relative_stopping_power).to_volume(ct)
    if ct.quantity is Quantity.RELATIVE_STOPPING_POWER:
        return ct
    raise ParameterError(f"ct must hold CT numbers or relative stopping power, got {ct.quantity.name}")


def _check_mask(mask: Volume, ct: Volume, name: str = "target_mask") -> NDArray[np.bool_]:
    if not isinstance(mask, Volume):
        raise ParameterError(f"{name} must be a Volume, got {type(mask).__name__}")
    if not mask.grid.is_close(ct.grid):
        raise GeometryError(
            f"{name} must be on the CT grid (shape {ct.grid.shape}), got shape {mask.grid.shape}"
        )
    arr = np.asarray(mask.array) != 0
    if not arr.any():
        raise ParameterError(f"{name} is empty: no voxel inside the target")
    return arr


def _grid_for(
    ct: Volume,
    target: NDArray[np.bool_],
    geometry: BeamGeometry,
    settings: CompensatorSettings,
    aperture: Any,
) -> tuple[tuple[float, float], int, int]:
    """First pixel (x, y) and the grid size (rows, cols) at the compensator plane."""
    idx = np.argwhere(target)[:, ::-1].astype(float)  # (i, j, k)
    # the eight corners of every target voxel would be exact; voxel centres plus half a voxel is enough
    pts = ct.grid.index_to_world(idx)
    uv = geometry.project_to_plane(pts, 0.0)
    if not np.all(np.isfinite(uv)):
        raise GeometryError("part of the target lies at or behind a virtual source")
    half = 0.5 * max(ct.grid.spacing_mm)
    u0, v0 = uv.min(axis=0) - half
    u1, v1 = uv.max(axis=0) + half
    if aperture is not None:
        a0, b0, a1, b1 = aperture.bounds
        u0, v0, u1, v1 = min(u0, a0), min(v0, b0), max(u1, a1), max(v1, b1)
    pad = settings.field_margin_mm + settings.smearing_radius_mm + settings.shift_mm
    u0, v0, u1, v1 = u0 - pad, v0 - pad, u1 + pad, v1 + pad
    mx, my = geometry.magnification(settings.isocenter_to_compensator_mm)
    s = settings.pixel_spacing_mm
    cols = math.ceil((u1 - u0) * mx / s) + 1
    rows = math.ceil((v1 - v0) * my / s) + 1
    if rows * cols > 4_000_000:
        raise ParameterError(
            f"compensator grid of {rows} x {cols} pixels is too large: increase pixel_spacing_mm"
        )
    cx, cy = (u0 + u1) / 2 * mx, (v0 + v1) / 2 * my
    first = (cx - (cols - 1) / 2 * s, cy + (rows - 1) / 2 * s)
    return first, rows, cols


def _rays(
    geometry: BeamGeometry, first: tuple[float, float], rows: int, cols: int, spacing: float, z_c: float
) -> tuple[Any, NDArray[np.float64], NDArray[np.float64]]:
    from intrepid.physics import DivergentRays

    x = first[0] + np.arange(cols) * spacing
    y = first[1] - np.arange(rows) * spacing
    xx, yy = np.meshgrid(x, y)
    mx, my = geometry.magnification(z_c)
    uu, vv = xx / mx, yy / my
    view = geometry.beam_line_view()
    rays = DivergentRays.from_isocenter_plane(
        np.column_stack([uu.ravel(), vv.ravel()]),
        isocenter_mm=view.isocenter_mm,
        beam_direction=view.beam_axis,
        x_axis=view.x_axis,
        sad_mm=geometry.sad_mm,
    )
    return rays, uu, vv


def _patch_distal(
    rsp: Volume, rays: Any, info: Any, patch_dose: Volume, percent: float, target_vol: Volume
) -> NDArray[np.float64]:
    """WEPL of the patch surface: where the existing dose first reaches ``percent`` inside the target."""
    from intrepid.geometry import sample_points
    from intrepid.physics import cumulative_path

    if not isinstance(patch_dose, Volume) or patch_dose.ndim != 3:
        raise ParameterError("patch_dose must be a 3D dose Volume")
    if (
        patch_dose.frame_of_reference_uid
        and rsp.frame_of_reference_uid
        and patch_dose.frame_of_reference_uid != rsp.frame_of_reference_uid
    ):
        from intrepid.errors import FrameOfReferenceError

        raise FrameOfReferenceError(
            f"patch_dose frame of reference {patch_dose.frame_of_reference_uid} differs "
            f"from the CT's {rsp.frame_of_reference_uid}"
        )
    ref = float(np.nanmax(patch_dose.array))
    if not ref > 0:
        raise ParameterError("patch_dose has no positive dose")
    level = percent / 100.0 * ref
    distal = np.asarray(info.wepl_to_mask_exit_mm, dtype=float).copy()
    hit = np.isfinite(info.mask_exit_mm) & np.isfinite(info.mask_entry_mm)
    idx = np.nonzero(hit)[0]
    if idx.size == 0:
        return distal
    step = 0.5 * min(min(rsp.grid.spacing_mm), min(patch_dose.grid.spacing_mm))
    entry, exit_ = info.mask_entry_mm[idx], info.mask_exit_mm[idx]
    n = int(np.ceil(float(np.max(exit_ - entry)) / step)) + 1
    t = entry[:, None] + np.minimum(np.arange(n)[None, :] * step, (exit_ - entry)[:, None])
    pts = rays.starts_mm[idx, None, :] + t[..., None] * rays.directions[idx, None, :]
    dose = sample_points(patch_dose, pts, fill_value=0.0)
    inside = sample_points(target_vol, pts, fill_value=0.0) > 0.5
    reached = (dose >= level) & inside
    first = np.where(reached.any(axis=1), reached.argmax(axis=1), -1)
    sel = first >= 0
    if np.any(sel):
        rows = idx[sel]
        dist = t[np.nonzero(sel)[0], first[sel]]
        w = cumulative_path(rsp, rays.starts_mm[rows], rays.directions[rows], dist[:, None])[:, 0]
        distal[rows] = np.minimum(distal[rows], w)
    _log.info(
        "patch field: %d of %d target rays stop at the %.0f %% isodose of the existing dose",
        int(sel.sum()),
        idx.size,
        percent,
    )
    return distal


def _disc(radius_x_px: float, radius_y_px: float) -> NDArray[np.bool_]:
    rx, ry = math.floor(radius_x_px), math.floor(radius_y_px)
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        fx = (xx / radius_x_px) ** 2 if radius_x_px > 0 else np.where(xx == 0, 0.0, np.inf)
        fy = (yy / radius_y_px) ** 2 if radius_y_px > 0 else np.where(yy == 0, 0.0, np.inf)
    return np.asarray(fx + fy <= 1.0 + 1e-9)


def shape_required_range(
    required_mm: NDArray[np.float64],
    pixel_spacing_mm: float,
    magnification: tuple[float, float],
    *,
    shift_mm: float = 0.0,
    smearing_radius_mm: float = 0.0,
) -> NDArray[np.float64]:
    """Apply setup shifts and Urie smearing (maximum filters) to a required-range map (NaN: no target).

    Distances are at the isocentre plane; ``magnification = (m_x, m_y)`` converts them to the grid.
    """
    from scipy.ndimage import maximum_filter

    filled = np.where(np.isfinite(required_mm), required_mm, -np.inf)
    mx, my = magnification
    if shift_mm > 0:
        sx = round(shift_mm * mx / pixel_spacing_mm)
        sy = round(shift_mm * my / pixel_spacing_mm)
        out = filled.copy()
        for dr, dc in ((0, sx), (0, -sx), (sy, 0), (-sy, 0)):
            shifted = np.full_like(filled, -np.inf)
            r0, r1 = max(dr, 0), filled.shape[0] + min(dr, 0)
            c0, c1 = max(dc, 0), filled.shape[1] + min(dc, 0)
            shifted[r0:r1, c0:c1] = filled[r0 - dr : r1 - dr, c0 - dc : c1 - dc]
            out = np.maximum(out, shifted)
        filled = out
    if smearing_radius_mm > 0:
        foot = _disc(smearing_radius_mm * mx / pixel_spacing_mm, smearing_radius_mm * my / pixel_spacing_mm)
        filled = maximum_filter(filled, footprint=foot, mode="constant", cval=-np.inf)
    return np.where(np.isfinite(filled), filled, np.nan)


def fill_border(required_mm: NDArray[np.float64], border: BorderHandling) -> NDArray[np.float64]:
    """Give every NaN ray a range by :class:`BorderHandling`."""
    from scipy.ndimage import distance_transform_edt

    valid = np.isfinite(required_mm)
    if valid.all():
        return required_mm.copy()
    if not valid.any():
        raise ParameterError("no ray of the compensator grid crosses the target")
    if border is BorderHandling.MAX_THICKNESS:
        return np.where(valid, required_mm, float(np.nanmin(required_mm)))
    if border is BorderHandling.MIN_THICKNESS:
        return np.where(valid, required_mm, float(np.nanmax(required_mm)))
    _, (ri, ci) = distance_transform_edt(~valid, return_indices=True)
    return np.asarray(required_mm[ri, ci], dtype=float)


def thickness_from_range(
    required_mm: NDArray[np.float64], beam_range_mm: float, settings: CompensatorSettings
) -> tuple[NDArray[np.float64], int, int]:
    """``t = (R_beam − R) / RSP`` clipped to the limits, with the under-range and clipped-max counts."""
    rsp = settings.material.relative_stopping_power
    raw = (beam_range_mm - required_mm) / rsp
    under = int(np.count_nonzero(raw < settings.min_thickness_mm - 1e-6))
    t = np.maximum(raw, settings.min_thickness_mm)
    over = 0
    if settings.max_thickness_mm is not None:
        over = int(np.count_nonzero(t > settings.max_thickness_mm + 1e-9))
        t = np.minimum(t, settings.max_thickness_mm)
    return np.asarray(t, dtype=float), under, over


# ---------------------------------------------------------------------------------------------- design
def design_compensator(
    ct: Volume,
    target_mask: Volume,
    geometry: BeamGeometry,
    settings: CompensatorSettings | None = None,
    *,
    aperture: Any = None,
    patch_dose: Volume | None = None,
    depth_dose: Any = None,
    calibration: Any = None,
    source_size_mm: float = 0.0,
) -> CompensatorResult:
    """Design a range compensator for one proton field (geometric; dose-optimised when ``iterations > 0``).

    Parameters
    ----------
    ct : Volume
        CT in HU (converted with ``calibration``) or relative stopping power, axis-aligned 3D.
    target_mask : Volume
        Target (boolean or 0/1) on the CT grid.
    geometry : BeamGeometry
        The beam: virtual source distances (point or dual source), angles, isocentre.
    settings : CompensatorSettings, optional
        Margins, smearing, shifts, limits, material, border, grid, iterations.
    aperture : ApertureResult or shapely geometry, optional
        The opening at the isocentre plane (:func:`design_aperture`); statistics and the dose optimisation
        are restricted to it.
    patch_dose : Volume, optional
        Existing (through-field) dose: makes a patch-field compensator (module notes, step 1).
    depth_dose : BraggPeak or SpreadOutBraggPeak, optional
        Dose optimisation only: the beam's depth dose (default: an SOBP whose distal isodose is the beam
        range and whose plateau covers the target's water-equivalent thickness plus margins).
    calibration : HUCalibration, optional
        HU → relative stopping power (default Schneider 1996).
    source_size_mm : float
        Dose optimisation only: effective source size σ, mm.

    Returns
    -------
    CompensatorResult

    Raises
    ------
    ParameterError
        Empty target, no ray crossing the target, bad settings.
    GeometryError
        Target not on the CT grid, oblique CT, target behind a source.

    Examples
    --------
    >>> res = design_compensator(ct, target, BeamGeometry(sad_mm=(2000, 2000)))      # doctest: +SKIP
    >>> res.statistics()["thickness_max_mm"]                                          # doctest: +SKIP
    """
    settings = settings or CompensatorSettings()
    if not isinstance(settings, CompensatorSettings):
        raise ParameterError(f"settings must be CompensatorSettings, got {type(settings).__name__}")
    if not isinstance(geometry, BeamGeometry):
        raise ParameterError(f"geometry must be a BeamGeometry, got {type(geometry).__name__}")
    if settings.iterations > 0:
        from intrepid.devices._compensator_opt import optimize_compensator

        return optimize_compensator(
            ct,
            target_mask,
            geometry,
            settings,
            aperture=aperture,
            patch_dose=patch_dose,
            depth_dose=depth_dose,
            calibration=calibration,
            source_size_mm=source_size_mm,
        )
    return geometric_design(
        ct, target_mask, geometry, settings, aperture=aperture, patch_dose=patch_dose, calibration=calibration
    )[0]


def geometric_design(
    ct: Volume,
    target_mask: Volume,
    geometry: BeamGeometry,
    settings: CompensatorSettings,
    *,
    aperture: Any = None,
    patch_dose: Volume | None = None,
    calibration: Any = None,
) -> tuple[CompensatorResult, dict[str, Any]]:
    """The geometric design (iteration 0) and the intermediate products the optimiser reuses."""
    from intrepid.physics import wepl_along_rays

    rsp = to_stopping_power(ct, calibration)
    target = _check_mask(target_mask, rsp)
    ap = aperture_geometry(aperture)
    z_c = settings.isocenter_to_compensator_mm
    if z_c >= min(geometry.sad_mm):
        raise ParameterError(
            f"isocenter_to_compensator_mm = {z_c} must be < the source distance {min(geometry.sad_mm)} mm"
        )
    first, rows, cols = _grid_for(rsp, target, geometry, settings, ap)
    s = settings.pixel_spacing_mm
    rays, uu, vv = _rays(geometry, first, rows, cols, s, z_c)
    target_vol = Volume(target.astype(np.uint8), rsp.grid, Quantity.MASK)
    info = wepl_along_rays(rsp, rays, mask=target_vol)
    if patch_dose is not None:
        distal = _patch_distal(rsp, rays, info, patch_dose, settings.patch_isodose_percent, target_vol)
    else:
        distal = np.asarray(info.wepl_to_mask_exit_mm, dtype=float)
    distal = np.where(np.isfinite(info.mask_exit_mm), distal, np.nan).reshape(rows, cols)
    if not np.isfinite(distal).any():
        raise ParameterError("no ray of the compensator grid crosses the target")
    required = distal * (1.0 + settings.distal_margin_percent / 100.0) + settings.distal_margin_mm
    mag = geometry.magnification(z_c)
    intended = shape_required_range(
        required, s, mag, shift_mm=settings.shift_mm, smearing_radius_mm=settings.smearing_radius_mm
    )
    full = fill_border(intended, settings.border)
    rsp_c = settings.material.relative_stopping_power
    beam_range = settings.beam_range_mm
    if beam_range is None:
        beam_range = float(np.nanmax(intended)) + rsp_c * settings.min_thickness_mm
    thickness, under, over = thickness_from_range(full, beam_range, settings)
    if under:
        _log.warning(
            "%d rays need more range than the beam's %.1f mm: clipped at the minimum thickness",
            under,
            beam_range,
        )
    if ap is not None:
        from intrepid.physics._proton_pencil import PencilLattice, _transmission

        trans = _transmission(ap, PencilLattice(uu[0], vv[:, 0]))
    else:
        trans = np.ones((rows, cols))
    result = CompensatorResult(
        thickness_mm=thickness,
        pixel_spacing_mm=(s, s),
        first_pixel_mm=(float(first[0]), float(first[1])),
        isocenter_to_compensator_mm=z_c,
        material=settings.material,
        beam_range_mm=float(beam_range),
        required_range_mm=full,
        intended_range_mm=intended,
        distal_wepl_mm=distal,
        aperture_transmission=trans,
        under_range_rays=under,
        clipped_max_rays=over,
        settings=settings,
        geometry=geometry,
    )
    proximal = np.where(np.isfinite(info.mask_entry_mm), info.wepl_to_mask_entry_mm, np.nan).reshape(
        rows, cols
    )
    _log.info(
        "compensator %d x %d at %.0f mm: thickness %.1f–%.1f mm, beam range %.1f mm",
        rows,
        cols,
        z_c,
        float(thickness.min()),
        float(thickness.max()),
        beam_range,
    )
    return result, {"rsp": rsp, "rays": rays, "proximal_wepl_mm": proximal, "aperture": ap, "u": uu, "v": vv}
