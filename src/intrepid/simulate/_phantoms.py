"""Synthetic CT phantoms (HU volumes with a grid) for EPID / portal-dose simulation.

The library mirrors the phantom families of the seed's data set (seed 000, Table 1 and the test-set table):

- :func:`make_slab_phantom` — homogeneous solid-water slab stacks ("OMG", names like ``6s10b3``);
- :func:`make_thorax_phantom` — an elliptic thorax with two lungs, a spine and an optional lesion, like the
  CIRS 002LFC IMRT thorax phantom ("CIRS", names like ``CIRS_0gradi_ISOlesione_1``);
- :func:`make_insert_slab_phantom` — a solid-water slab stack with bone or air inserts ("SLAB", names like
  ``SLABBone_3``, ``SLABinhomAir2_1``);
- :func:`make_multiplug_phantom` — a water-equivalent cylinder with PMMA, titanium or air plugs ("MP", names
  like ``Multiplug_PMMA_90g_3``);
- :func:`make_patient_phantom` — a patient-like elliptic body with the AAPM TG-119 C-shaped target around a
  core (Ezzell et al. 2009, doi:10.1118/1.3238104).

Conventions. Every phantom is centred on the world origin of the DICOM patient frame (LPS, mm), its long axis
along z (the couch / superior-inferior axis); the beam at gantry 0 enters anteriorly (from -y) for a
head-first-supine set-up. ``rotation_deg`` rolls the phantom about the +z axis by the right-hand rule: a point
on +x (patient left) moves to +y (posterior) at 90°; these are the "0gradi / 90gradi / 180gradi / 270gradi"
(and "90g", "180g") of the seed's image names. Multiples of 90° are applied with exact integer rotation
matrices, so a phantom rotated by 90° is exactly ``numpy.rot90`` of the unrotated one when the x and y
spacings are equal.
``isocenter`` places the isocentre at the phantom centre (``ISOcentro``) or at the lesion / insert
(``ISOlesione``).

CT numbers are written in HU and clipped to :data:`CT_NUMBER_RANGE_HU`, an extended CT scale (-1024 to
+8191 HU) that keeps titanium (about +8000 HU on extended-scale scanners, Coolens & Childs 2003,
doi:10.1088/0031-9155/48/11/308) instead of saturating it at the +3071 HU of a standard 12-bit scale.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume

__all__ = [
    "AIR_HU",
    "BONE_HU",
    "CT_NUMBER_RANGE_HU",
    "LUNG_HU",
    "PMMA_HU",
    "SOFT_TISSUE_HU",
    "SPINE_HU",
    "TITANIUM_HU",
    "WATER_HU",
    "InsertMaterial",
    "IsocenterMode",
    "Phantom",
    "PhantomFamily",
    "PlugMaterial",
    "SlabCode",
    "decode_slab_code",
    "make_insert_slab_phantom",
    "make_multiplug_phantom",
    "make_patient_phantom",
    "make_phantom",
    "make_slab_phantom",
    "make_thorax_phantom",
]

_log = logging.getLogger(__name__)

#: CT numbers (HU) of the phantom materials. Solid water / water-equivalent plastic ≈ 0 HU.
WATER_HU = 0.0
#: Air.
AIR_HU = -1000.0
#: Lung-equivalent material (CIRS 002LFC lung, ≈ 0.2 g/cm³).
LUNG_HU = -800.0
#: Soft tissue (muscle-equivalent body of the thorax phantom).
SOFT_TISSUE_HU = 40.0
#: Spine (vertebral bone equivalent of the CIRS thorax).
SPINE_HU = 700.0
#: Cortical-bone-equivalent slabs and inserts.
BONE_HU = 900.0
#: PMMA (acrylic, 1.19 g/cm³).
PMMA_HU = 120.0
#: Titanium (4.5 g/cm³) on an extended CT scale.
TITANIUM_HU = 8000.0
#: Range (HU) to which every phantom is clipped: -1024 to +8191 (extended scale, see the module notes).
CT_NUMBER_RANGE_HU = (-1024.0, 8191.0)

#: Namespace of the deterministic Frame of Reference UIDs of the phantoms.
_UID_NAMESPACE = uuid.UUID("6f1c8d4e-3b1a-4b7e-9a55-2d0f5e3c9a10")

_ROTATIONS_DEG = (0, 90, 180, 270)
# exact (cos, sin) of the allowed rotations
_COS_SIN = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}


class PhantomFamily(enum.Enum):
    """Phantom families of the seed's Table 1 (values are the table's column labels)."""

    HOMOGENEOUS = "OMG"
    CIRS = "CIRS"
    SLAB = "SLAB"
    MULTIPLUG = "MP"
    PATIENT = "PATIENT"


class IsocenterMode(enum.Enum):
    """Where the isocentre is placed (values as in the seed's image names)."""

    CENTER = "ISOcentro"  #: at the phantom centre
    LESION = "ISOlesione"  #: at the lesion, insert or plug (the target for the patient phantom)


class InsertMaterial(enum.Enum):
    """Materials of the inserts of :func:`make_insert_slab_phantom` (values are names)."""

    BONE = "bone"
    AIR = "air"

    @property
    def hu(self) -> float:
        """CT number (HU) of the material."""
        return BONE_HU if self is InsertMaterial.BONE else AIR_HU


class PlugMaterial(enum.Enum):
    """Materials of the plugs of :func:`make_multiplug_phantom` (values are names)."""

    PMMA = "pmma"
    TITANIUM = "titanium"
    AIR = "air"
    WATER = "water"

    @property
    def hu(self) -> float:
        """CT number (HU) of the material."""
        return {"pmma": PMMA_HU, "titanium": TITANIUM_HU, "air": AIR_HU, "water": WATER_HU}[self.value]


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic CT phantom.

    Parameters
    ----------
    ct : Volume
        CT numbers in HU (``Quantity.CT_NUMBER``, units ``"HU"``, float32) on an axis-aligned grid centred on
        the world origin, with a Frame of Reference UID and ``metadata`` describing the phantom.
    name : str
        Short name in the style of the seed's image names (``"6s10b3"``, ``"CIRS_90gradi_ISOlesione"``).
    family : PhantomFamily
        The Table 1 family.
    isocenter_mm : tuple of 3 float
        Isocentre (x, y, z) in mm, LPS.
    rotation_deg : int
        Roll about the couch (+z) axis, one of 0, 90, 180, 270.
    structures : dict of str to ndarray of bool
        Masks on ``ct.grid`` (shape ``ct.shape``), e.g. ``"body"``, ``"lung_left"``, ``"lesion"``.
    """

    ct: Volume
    name: str
    family: PhantomFamily
    isocenter_mm: tuple[float, float, float]
    rotation_deg: int
    structures: dict[str, NDArray[np.bool_]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: name, family, rotation, isocentre, grid and structure voxel counts."""
        return {
            "name": self.name,
            "family": self.family.value,
            "rotation_deg": self.rotation_deg,
            "isocenter_mm": list(self.isocenter_mm),
            "grid": self.ct.grid.to_dict(),
            "structures": {k: int(np.count_nonzero(v)) for k, v in self.structures.items()},
        }


@dataclass(frozen=True)
class SlabCode:
    """A decoded homogeneous-slab name such as ``6s10b3``.

    Our reading of the seed's names (the seed does not spell it out): ``6`` is the beam energy (6 MV),
    ``s<T>`` the thickness of the solid-water stack in cm and ``b<B>`` an extra ``B`` cm of solid-water
    build-up on the beam-entrance side (absent: no build-up). The stack is centred on the isocentre.
    """

    energy_mv: int
    thickness_mm: float
    buildup_mm: float

    @property
    def name(self) -> str:
        """The code back in the seed's style (``6s10b3``)."""
        t = _fmt_cm(self.thickness_mm)
        b = f"b{_fmt_cm(self.buildup_mm)}" if self.buildup_mm > 0 else ""
        return f"{self.energy_mv}s{t}{b}"


def _fmt_cm(value_mm: float) -> str:
    cm = value_mm / 10.0
    return str(int(cm)) if float(cm).is_integer() else f"{cm:g}"


def decode_slab_code(code: str) -> SlabCode:
    """Decode a homogeneous-slab name of the seed (``6s10b3``, ``6s30b1``, ``6s20``).

    Parameters
    ----------
    code : str
        ``<energy MV>s<thickness cm>[b<build-up cm>]``, optionally followed by ``_<index>`` (ignored).

    Returns
    -------
    SlabCode

    Examples
    --------
    >>> decode_slab_code("6s10b3_1")
    SlabCode(energy_mv=6, thickness_mm=100.0, buildup_mm=30.0)
    """
    import re

    m = re.fullmatch(r"(\d+)s(\d+(?:\.\d+)?)(?:b(\d+(?:\.\d+)?))?(?:_\d+)?", code.strip())
    if m is None:
        raise ParameterError(
            f"slab code must look like '6s10b3' (<MV>s<thickness cm>[b<build-up cm>]), got {code!r}"
        )
    thickness = float(m.group(2)) * 10.0
    if thickness <= 0:
        raise ParameterError(f"slab code thickness must be > 0 cm, got {code!r}")
    return SlabCode(int(m.group(1)), thickness, float(m.group(3) or 0.0) * 10.0)


# ---------------------------------------------------------------------------------------------- helpers
Shape2D = Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.bool_]]


def _check_common(spacing_mm: float | tuple[float, float, float], rotation_deg: int,
                  isocenter: IsocenterMode) -> tuple[tuple[float, float, float], int]:
    if isinstance(spacing_mm, (int, float)):
        sp = (float(spacing_mm),) * 3
    else:
        sp = tuple(float(s) for s in spacing_mm)  # type: ignore[assignment]
        if len(sp) != 3:
            raise ParameterError(f"spacing_mm must be a number or 3 values (x, y, z), got {spacing_mm!r}")
    if not all(math.isfinite(s) and 0.2 <= s <= 20.0 for s in sp):
        raise ParameterError(f"spacing_mm must be within [0.2, 20] mm, got {spacing_mm!r}")
    rot = int(rotation_deg) if float(rotation_deg).is_integer() else -1
    if rot not in _ROTATIONS_DEG:
        raise ParameterError(f"rotation_deg must be one of 0, 90, 180, 270, got {rotation_deg!r}")
    if not isinstance(isocenter, IsocenterMode):
        raise ParameterError(f"isocenter must be an IsocenterMode, got {isocenter!r}")
    return (sp[0], sp[1], sp[2]), rot


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        rule = ">= 0" if allow_zero else "> 0"
        raise ParameterError(f"{name} must be {rule}, got {value!r}")
    return v


class _Builder:
    """Samples a phantom defined in its own frame onto a world grid rolled by ``rotation_deg``."""

    def __init__(self, half_extent_mm: tuple[float, float, float], spacing_mm: tuple[float, float, float],
                 rotation_deg: int) -> None:
        hx, hy, hz = half_extent_mm
        if rotation_deg in (90, 270):
            hx, hy = hy, hx
        self.rotation_deg = rotation_deg
        self.cos, self.sin = _COS_SIN[rotation_deg]
        counts = [
            max(1, math.ceil(2.0 * h / s - 1e-9)) for h, s in zip((hx, hy, hz), spacing_mm, strict=True)
        ]
        origin = [-(n - 1) * s / 2.0 for n, s in zip(counts, spacing_mm, strict=True)]
        self.grid = Grid((counts[2], counts[1], counts[0]), (origin[0], origin[1], origin[2]), spacing_mm)
        x, y, z = self.grid.world_axes_mm()
        wx = x[None, :]
        wy = y[:, None]
        # phantom frame = world rotated back by -rotation: q = Rz(-θ) p
        self.qx = self.cos * wx + self.sin * wy
        self.qy = -self.sin * wx + self.cos * wy
        self.z = z[:, None, None]
        self.hu = np.full(self.grid.shape, AIR_HU, dtype=np.float32)
        self.structures: dict[str, NDArray[np.bool_]] = {}

    def to_world(self, q: tuple[float, float, float]) -> tuple[float, float, float]:
        """World position of a point given in the phantom frame."""
        return (self.cos * q[0] - self.sin * q[1], self.sin * q[0] + self.cos * q[1], q[2])

    def prism(self, shape: Shape2D, z_half_mm: float, z_center_mm: float = 0.0) -> NDArray[np.bool_]:
        """Mask of a prism: a cross-section (function of phantom x, y) extruded along z."""
        inside_xy = shape(self.qx, self.qy)[None, :, :]
        inside_z = np.abs(self.z - z_center_mm) <= z_half_mm + 1e-9
        return np.asarray(inside_xy & inside_z)

    def sphere(self, center: tuple[float, float, float], radius_mm: float) -> NDArray[np.bool_]:
        """Mask of a sphere given in the phantom frame."""
        d2 = (self.qx - center[0]) ** 2 + (self.qy - center[1]) ** 2
        return np.asarray(d2[None, :, :] + (self.z - center[2]) ** 2 <= radius_mm**2 + 1e-9)

    def paint(self, name: str | None, mask: NDArray[np.bool_], hu: float) -> None:
        self.hu[mask] = hu
        if name is not None:
            self.structures[name] = mask

    def finish(self, *, name: str, family: PhantomFamily, isocenter_mm: tuple[float, float, float],
               isocenter: IsocenterMode, description: str, params: Mapping[str, Any]) -> Phantom:
        lo, hi = CT_NUMBER_RANGE_HU
        np.clip(self.hu, lo, hi, out=self.hu)
        key = f"{family.value}|{name}|{sorted(params.items())}|{self.rotation_deg}|{self.grid.spacing_mm}"
        for_uid = "2.25." + str(uuid.uuid5(_UID_NAMESPACE, key).int)
        iso = tuple(float(v) + 0.0 for v in isocenter_mm)
        metadata = {
            "modality": "CT",
            "phantom": name,
            "family": family.value,
            "rotation_deg": self.rotation_deg,
            "isocenter": isocenter.value,
            "isocenter_mm": list(iso),
            "description": description,
            "parameters": {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in params.items()},
            "hu_range": list(CT_NUMBER_RANGE_HU),
            "content_hash": hashlib.sha1(self.hu.tobytes()).hexdigest()[:16],
        }
        ct = Volume(self.hu, self.grid, Quantity.CT_NUMBER, "HU", for_uid, metadata)
        _log.debug("phantom %s: grid %s, isocentre %s mm", name, self.grid.shape, iso)
        return Phantom(ct, name, family, (iso[0], iso[1], iso[2]), self.rotation_deg, dict(self.structures))


def _rotation_tag(rotation_deg: int) -> str:
    return f"{rotation_deg}gradi"


def _ellipse(cx: float, cy: float, ax: float, ay: float) -> Shape2D:
    return lambda x, y: ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0 + 1e-9


def _box(x0: float, x1: float, y0: float, y1: float) -> Shape2D:
    return lambda x, y: (x >= x0 - 1e-9) & (x <= x1 + 1e-9) & (y >= y0 - 1e-9) & (y <= y1 + 1e-9)


# ---------------------------------------------------------------------------------------------- phantoms
def make_slab_phantom(
    thickness_mm: float = 200.0,
    *,
    buildup_mm: float = 0.0,
    width_mm: float = 300.0,
    length_mm: float = 300.0,
    spacing_mm: float | tuple[float, float, float] = 2.5,
    rotation_deg: int = 0,
    isocenter: IsocenterMode = IsocenterMode.CENTER,
    energy_mv: int = 6,
) -> Phantom:
    """Homogeneous solid-water slab stack (family ``OMG``).

    The stack (``thickness_mm + buildup_mm`` thick along y, ``width_mm`` along x, ``length_mm`` along z) is
    centred on the origin; the build-up layer is the anterior (beam-entrance at gantry 0) part, structure
    ``"buildup"``. Both isocentre modes put the isocentre at the stack centre (there is no insert).

    Parameters
    ----------
    thickness_mm : float
        Thickness of the stack in mm (> 0).
    buildup_mm : float
        Extra solid water on the entrance side in mm (>= 0).
    width_mm, length_mm : float
        Lateral (x) and longitudinal (z) size in mm; 300 mm like the common 30 × 30 cm² slabs.
    spacing_mm : float or 3 floats
        Voxel size in mm (x, y, z).
    rotation_deg : {0, 90, 180, 270}
        Roll about the couch axis (90° stands the stack on its side).
    isocenter : IsocenterMode
        Isocentre placement.
    energy_mv : int
        Nominal energy used in the name (``6s20``), not in the geometry.

    Examples
    --------
    >>> p = make_slab_phantom(100.0, buildup_mm=30.0, spacing_mm=5.0)
    >>> p.name, p.ct.units
    ('6s10b3', 'HU')
    """
    sp, rot = _check_common(spacing_mm, rotation_deg, isocenter)
    t = _positive("thickness_mm", thickness_mm)
    b = _positive("buildup_mm", buildup_mm, allow_zero=True)
    w = _positive("width_mm", width_mm)
    ln = _positive("length_mm", length_mm)
    total = t + b
    bld = _Builder((w / 2.0, total / 2.0, ln / 2.0), sp, rot)
    body = bld.prism(_box(-w / 2, w / 2, -total / 2, total / 2), ln / 2)
    bld.paint("body", body, WATER_HU)
    if b > 0:
        bld.structures["buildup"] = body & bld.prism(_box(-w / 2, w / 2, -total / 2, -total / 2 + b), ln / 2)
    name = SlabCode(int(energy_mv), t, b).name
    return bld.finish(
        name=name, family=PhantomFamily.HOMOGENEOUS, isocenter_mm=(0.0, 0.0, 0.0), isocenter=isocenter,
        description=f"solid-water slab stack {t:g} mm + {b:g} mm build-up, {w:g} x {ln:g} mm",
        params={"thickness_mm": t, "buildup_mm": b, "width_mm": w, "length_mm": ln},
    )


def make_thorax_phantom(
    *,
    lesion: bool = True,
    lesion_diameter_mm: float = 20.0,
    length_mm: float = 240.0,
    spacing_mm: float | tuple[float, float, float] = 2.5,
    rotation_deg: int = 0,
    isocenter: IsocenterMode = IsocenterMode.CENTER,
) -> Phantom:
    """Thorax-like phantom after the CIRS 002LFC IMRT thorax (family ``CIRS``).

    Elliptic body 300 mm wide (x) and 200 mm deep (y) of soft tissue (:data:`SOFT_TISSUE_HU`); two lungs
    (:data:`LUNG_HU`), ellipses of half-axes 45 × 65 mm centred at x = ±65 mm, y = -5 mm; a spine
    (:data:`SPINE_HU`), a 36 mm diameter cylinder at y = +65 mm (posterior); an optional spherical lesion
    (:data:`SOFT_TISSUE_HU`) in the left lung at (+65, -5, 0) mm. ``IsocenterMode.LESION`` puts the isocentre
    at the lesion centre (``ISOlesione``), ``CENTER`` at the body centre (``ISOcentro``).

    Parameters
    ----------
    lesion : bool
        Include the lesion (needed for ``IsocenterMode.LESION``).
    lesion_diameter_mm : float
        Lesion diameter in mm (> 0, <= 80: it must fit in the lung).
    length_mm : float
        Length along z in mm.
    spacing_mm, rotation_deg, isocenter
        As in :func:`make_slab_phantom`.
    """
    sp, rot = _check_common(spacing_mm, rotation_deg, isocenter)
    d = _positive("lesion_diameter_mm", lesion_diameter_mm)
    if d > 80.0:
        raise ParameterError(
            f"lesion_diameter_mm must be <= 80 (it sits in the lung), got {lesion_diameter_mm}"
        )
    ln = _positive("length_mm", length_mm)
    if isocenter is IsocenterMode.LESION and not lesion:
        raise ParameterError("isocenter ISOlesione needs lesion=True")
    bld = _Builder((150.0, 100.0, ln / 2.0), sp, rot)
    bld.paint("body", bld.prism(_ellipse(0, 0, 150.0, 100.0), ln / 2), SOFT_TISSUE_HU)
    bld.paint("lung_left", bld.prism(_ellipse(65.0, -5.0, 45.0, 65.0), ln / 2), LUNG_HU)
    bld.paint("lung_right", bld.prism(_ellipse(-65.0, -5.0, 45.0, 65.0), ln / 2), LUNG_HU)
    bld.paint("spine", bld.prism(_ellipse(0.0, 65.0, 18.0, 18.0), ln / 2), SPINE_HU)
    lesion_center = (65.0, -5.0, 0.0)
    if lesion:
        bld.paint("lesion", bld.sphere(lesion_center, d / 2.0), SOFT_TISSUE_HU)
    iso = bld.to_world(lesion_center) if isocenter is IsocenterMode.LESION else (0.0, 0.0, 0.0)
    name = f"CIRS_{_rotation_tag(rot)}_{isocenter.value}"
    return bld.finish(
        name=name, family=PhantomFamily.CIRS, isocenter_mm=iso, isocenter=isocenter,
        description="thorax 300 x 200 mm: lungs -800 HU, spine +700 HU, soft tissue +40 HU"
        + (f", {d:g} mm lesion in the left lung" if lesion else ""),
        params={"lesion": lesion, "lesion_diameter_mm": d, "length_mm": ln},
    )


def make_insert_slab_phantom(
    material: InsertMaterial = InsertMaterial.BONE,
    *,
    n_inserts: int = 1,
    insert_thickness_mm: float = 20.0,
    insert_width_mm: float = 100.0,
    insert_offset_mm: float = 40.0,
    thickness_mm: float = 150.0,
    buildup_mm: float = 0.0,
    width_mm: float = 300.0,
    length_mm: float = 300.0,
    spacing_mm: float | tuple[float, float, float] = 2.5,
    rotation_deg: int = 0,
    isocenter: IsocenterMode = IsocenterMode.CENTER,
) -> Phantom:
    """Solid-water slab stack with bone or air inserts (family ``SLAB``).

    ``n_inserts`` insert slabs (each ``insert_thickness_mm`` thick, ``insert_width_mm`` wide in x and along z)
    replace water in the middle of the stack, separated by ``insert_thickness_mm`` of water and centred at
    x = ``insert_offset_mm`` (off-axis, so a rotation moves them in the beam's eye view). Our reading of the
    seed's names: ``SLABBone`` one bone insert, ``SLAB_Bone_2slab`` two, ``SLABinhomAir2`` two air inserts,
    ``b2`` 2 cm build-up as in :class:`SlabCode`. ``IsocenterMode.LESION`` puts the isocentre at the centre of
    the insert block.

    Parameters
    ----------
    material : InsertMaterial
        Bone (:data:`BONE_HU`) or air (:data:`AIR_HU`).
    n_inserts : int
        Number of insert slabs (1-5).
    insert_thickness_mm, insert_width_mm, insert_offset_mm : float
        Size of one insert along y, its size along x and z, and its centre's x (mm).
    thickness_mm, buildup_mm, width_mm, length_mm, spacing_mm, rotation_deg, isocenter
        As in :func:`make_slab_phantom`.
    """
    sp, rot = _check_common(spacing_mm, rotation_deg, isocenter)
    if not isinstance(material, InsertMaterial):
        raise ParameterError(f"material must be an InsertMaterial (bone, air), got {material!r}")
    if int(n_inserts) != n_inserts or not 1 <= n_inserts <= 5:
        raise ParameterError(f"n_inserts must be an integer in [1, 5], got {n_inserts!r}")
    ti = _positive("insert_thickness_mm", insert_thickness_mm)
    wi = _positive("insert_width_mm", insert_width_mm)
    t = _positive("thickness_mm", thickness_mm)
    b = _positive("buildup_mm", buildup_mm, allow_zero=True)
    w = _positive("width_mm", width_mm)
    ln = _positive("length_mm", length_mm)
    off = float(insert_offset_mm)
    block = (2 * n_inserts - 1) * ti
    if block > t:
        raise ParameterError(
            f"the inserts ({n_inserts} x {ti:g} mm with {ti:g} mm water between) need {block:g} mm, "
            f"more than thickness_mm = {t:g}"
        )
    if abs(off) + wi / 2 > w / 2 or wi > ln:
        raise ParameterError(
            f"insert_width_mm = {wi:g} at insert_offset_mm = {off:g} must fit in the {w:g} x {ln:g} mm slabs"
        )
    total = t + b
    bld = _Builder((w / 2.0, total / 2.0, ln / 2.0), sp, rot)
    bld.paint("body", bld.prism(_box(-w / 2, w / 2, -total / 2, total / 2), ln / 2), WATER_HU)
    if b > 0:
        bld.structures["buildup"] = bld.prism(_box(-w / 2, w / 2, -total / 2, -total / 2 + b), ln / 2)
    # the stack proper spans [-total/2 + b, total/2]; centre the insert block in it
    y_mid = (-total / 2 + b + total / 2) / 2.0
    y0 = y_mid - block / 2.0
    inserts = np.zeros(bld.grid.shape, dtype=bool)
    for n in range(int(n_inserts)):
        top = y0 + 2 * n * ti
        inserts |= bld.prism(_box(off - wi / 2, off + wi / 2, top, top + ti), wi / 2)
    bld.paint("inserts", inserts, material.hu)
    iso = bld.to_world((off, y_mid, 0.0)) if isocenter is IsocenterMode.LESION else (0.0, 0.0, 0.0)
    tag = "Bone" if material is InsertMaterial.BONE else "inhomAir"
    name = f"SLAB{tag}{n_inserts}" + (f"b{_fmt_cm(b)}" if b > 0 else "")
    if rot:
        name += f"_{_rotation_tag(rot)}"
    return bld.finish(
        name=name, family=PhantomFamily.SLAB, isocenter_mm=iso, isocenter=isocenter,
        description=f"{t:g} mm solid water with {n_inserts} x {ti:g} mm {material.value} insert(s) "
        f"{wi:g} mm wide at x = {off:g} mm",
        params={"material": material, "n_inserts": int(n_inserts), "insert_thickness_mm": ti,
                "insert_width_mm": wi, "insert_offset_mm": off, "thickness_mm": t, "buildup_mm": b,
                "width_mm": w, "length_mm": ln},
    )


#: Plug positions of :func:`make_multiplug_phantom` in the phantom frame (x, y) mm: centre, then a ring of
#: radius 50 mm at 0°, 120° and 240° (three-fold, so a 90° roll visibly moves the plugs).
MULTIPLUG_HOLES_MM = (
    (0.0, 0.0),
    (50.0, 0.0),
    (50.0 * math.cos(math.radians(120.0)), 50.0 * math.sin(math.radians(120.0))),
    (50.0 * math.cos(math.radians(240.0)), 50.0 * math.sin(math.radians(240.0))),
)


def make_multiplug_phantom(
    plug: PlugMaterial = PlugMaterial.PMMA,
    *,
    filled_holes: tuple[int, ...] = (1, 2, 3),
    plug_diameter_mm: float = 30.0,
    diameter_mm: float = 200.0,
    length_mm: float = 200.0,
    spacing_mm: float | tuple[float, float, float] = 2.5,
    rotation_deg: int = 0,
    isocenter: IsocenterMode = IsocenterMode.CENTER,
) -> Phantom:
    """Water-equivalent cylinder with PMMA, titanium or air plugs (family ``MP``).

    A cylinder (axis along z) of ``diameter_mm`` with four holes (:data:`MULTIPLUG_HOLES_MM`: centre and a
    ring of radius 50 mm); the holes listed in ``filled_holes`` hold rods of ``plug`` material running the
    full length, the others water-equivalent rods. ``IsocenterMode.LESION`` puts the isocentre on the axis of
    the first filled hole (our reading of ``Multiplug_90g_5cm_ARIA``: isocentre on the plug 5 cm off-axis).

    Parameters
    ----------
    plug : PlugMaterial
        Material of the filled holes: PMMA (:data:`PMMA_HU`), titanium (:data:`TITANIUM_HU`) or air.
    filled_holes : tuple of int
        Indices (0-3) into :data:`MULTIPLUG_HOLES_MM`.
    plug_diameter_mm, diameter_mm, length_mm : float
        Plug and cylinder diameters and the length, in mm.
    spacing_mm, rotation_deg, isocenter
        As in :func:`make_slab_phantom`.
    """
    sp, rot = _check_common(spacing_mm, rotation_deg, isocenter)
    if not isinstance(plug, PlugMaterial):
        raise ParameterError(f"plug must be a PlugMaterial (pmma, titanium, air, water), got {plug!r}")
    holes = tuple(int(h) for h in filled_holes)
    n_holes = len(MULTIPLUG_HOLES_MM)
    if not holes or len(set(holes)) != len(holes) or any(h not in range(n_holes) for h in holes):
        raise ParameterError(f"filled_holes must be distinct indices in 0-3, got {filled_holes!r}")
    dp = _positive("plug_diameter_mm", plug_diameter_mm)
    dc = _positive("diameter_mm", diameter_mm)
    ln = _positive("length_mm", length_mm)
    if dp > 45.0 or dc / 2 < 50.0 + dp / 2 + 5.0:
        raise ParameterError(
            f"plug_diameter_mm must be <= 45 and diameter_mm >= {2 * (55.0 + dp / 2):g} so that the plugs "
            f"fit, got {plug_diameter_mm} and {diameter_mm}"
        )
    bld = _Builder((dc / 2, dc / 2, ln / 2), sp, rot)
    bld.paint("body", bld.prism(_ellipse(0, 0, dc / 2, dc / 2), ln / 2), WATER_HU)
    plugs = np.zeros(bld.grid.shape, dtype=bool)
    for h in holes:
        cx, cy = MULTIPLUG_HOLES_MM[h]
        mask = bld.prism(_ellipse(cx, cy, dp / 2, dp / 2), ln / 2)
        bld.structures[f"plug_{h}"] = mask
        plugs |= mask
    bld.paint("plugs", plugs, plug.hu)
    first = MULTIPLUG_HOLES_MM[holes[0]]
    iso = bld.to_world((first[0], first[1], 0.0)) if isocenter is IsocenterMode.LESION else (0.0, 0.0, 0.0)
    tag = {"pmma": "PMMA", "titanium": "Ti", "air": "ARIA", "water": "H2O"}[plug.value]
    name = f"Multiplug_{tag}_{rot}g" + ("_ISOplug" if isocenter is IsocenterMode.LESION else "")
    return bld.finish(
        name=name, family=PhantomFamily.MULTIPLUG, isocenter_mm=iso, isocenter=isocenter,
        description=f"{dc:g} mm water-equivalent cylinder, {plug.value} plugs ({dp:g} mm) in holes {holes}",
        params={"plug": plug, "filled_holes": list(holes), "plug_diameter_mm": dp, "diameter_mm": dc,
                "length_mm": ln},
    )


def make_patient_phantom(
    *,
    length_mm: float = 200.0,
    spacing_mm: float | tuple[float, float, float] = 2.5,
    rotation_deg: int = 0,
    isocenter: IsocenterMode = IsocenterMode.CENTER,
) -> Phantom:
    """Patient-like water body with the AAPM TG-119 C-shape target around a core (family ``PATIENT``).

    After TG-119 (Ezzell et al. 2009, Med Phys 36:5359, doi:10.1118/1.3238104) as sampled in matRad's TG119
    phantom: an elliptic water body 300 × 150 mm (x × y); the ``core`` a cylinder of radius 10 mm, 100 mm
    long; the ``target`` a C: the annulus between radii 15 and 37 mm, with y <= 5 mm (open posteriorly),
    80 mm long. Both are structures only (water, 0 HU), as in TG-119. ``IsocenterMode.LESION`` puts the
    isocentre at the target's centroid, ``CENTER`` at the core centre.

    Parameters
    ----------
    length_mm : float
        Body length along z in mm (>= 100, to hold the core).
    spacing_mm, rotation_deg, isocenter
        As in :func:`make_slab_phantom`.
    """
    sp, rot = _check_common(spacing_mm, rotation_deg, isocenter)
    ln = _positive("length_mm", length_mm)
    if ln < 100.0:
        raise ParameterError(f"length_mm must be >= 100 (the TG-119 core is 100 mm long), got {length_mm}")
    bld = _Builder((150.0, 75.0, ln / 2.0), sp, rot)
    bld.paint("body", bld.prism(_ellipse(0, 0, 150.0, 75.0), ln / 2), WATER_HU)
    bld.structures["core"] = bld.prism(_ellipse(0, 0, 10.0, 10.0), 50.0)

    def c_shape(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.bool_]:
        r2 = x**2 + y**2
        return np.asarray((r2 >= 15.0**2) & (r2 <= 37.0**2) & (y <= 5.0))

    target = bld.prism(c_shape, 40.0)
    bld.structures["target"] = target
    if isocenter is IsocenterMode.LESION:
        pts = bld.grid.index_to_world(np.argwhere(target)[:, ::-1].astype(float))
        c = pts.mean(axis=0)
        iso = (float(c[0]), float(c[1]), float(c[2]))
    else:
        iso = (0.0, 0.0, 0.0)
    return bld.finish(
        name=f"TG119_{_rotation_tag(rot)}_{isocenter.value}", family=PhantomFamily.PATIENT,
        isocenter_mm=iso, isocenter=isocenter,
        description="water body 300 x 150 mm with the TG-119 C-shape target around a 10 mm core",
        params={"length_mm": ln},
    )


_MAKERS: dict[PhantomFamily, Callable[..., Phantom]] = {
    PhantomFamily.HOMOGENEOUS: make_slab_phantom,
    PhantomFamily.CIRS: make_thorax_phantom,
    PhantomFamily.SLAB: make_insert_slab_phantom,
    PhantomFamily.MULTIPLUG: make_multiplug_phantom,
    PhantomFamily.PATIENT: make_patient_phantom,
}


def make_phantom(
    family: PhantomFamily,
    parameters: Mapping[str, Any] | None = None,
    *,
    spacing_mm: float | tuple[float, float, float] = 2.5,
    rotation_deg: int = 0,
    isocenter: IsocenterMode = IsocenterMode.CENTER,
) -> Phantom:
    """Build a phantom of ``family`` from keyword ``parameters`` of its ``make_*`` function.

    Parameters
    ----------
    family : PhantomFamily
        Which maker: HOMOGENEOUS → :func:`make_slab_phantom`, CIRS → :func:`make_thorax_phantom`, SLAB →
        :func:`make_insert_slab_phantom`, MULTIPLUG → :func:`make_multiplug_phantom`, PATIENT →
        :func:`make_patient_phantom`.
    parameters : mapping, optional
        Keyword arguments of that maker (enum-valued ones may be given by their value, ``"bone"``).
    spacing_mm, rotation_deg, isocenter
        As in the makers.
    """
    if not isinstance(family, PhantomFamily):
        raise ParameterError(f"family must be a PhantomFamily, got {family!r}")
    kwargs = dict(parameters or {})
    if "material" in kwargs and not isinstance(kwargs["material"], InsertMaterial):
        kwargs["material"] = _enum_value(InsertMaterial, "material", kwargs["material"])
    if "plug" in kwargs and not isinstance(kwargs["plug"], PlugMaterial):
        kwargs["plug"] = _enum_value(PlugMaterial, "plug", kwargs["plug"])
    if "filled_holes" in kwargs:
        kwargs["filled_holes"] = tuple(kwargs["filled_holes"])
    try:
        maker = _MAKERS[family]
        return maker(spacing_mm=spacing_mm, rotation_deg=rotation_deg, isocenter=isocenter, **kwargs)
    except TypeError as exc:
        raise ParameterError(f"bad parameters for a {family.value} phantom: {exc}") from exc


def _enum_value(cls: type[enum.Enum], name: str, value: Any) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise ParameterError(f"{name} must be one of {allowed}, got {value!r}") from None
