"""Patient-like 3D phantoms with structures, for in-vivo (3D) dosimetry cases.

Four sites, each a CT in HU on an axis-aligned grid centred on the world origin (DICOM patient frame LPS,
head-first supine: +x patient left, +y posterior, +z superior) with named structures (boolean masks on the CT
grid) and their DICOM RT ROI Interpreted Types:

- ``thorax``: the CIRS 002LFC-like thorax of :func:`intrepid.simulate.make_thorax_phantom` (lungs −800 HU,
  spine +700 HU, soft tissue +40 HU) with a 30 mm lesion in the left lung (GTV), a PTV of GTV + 5 mm, a
  heart and a trachea (air cavity);
- ``pelvis``: an elliptic pelvis 360 × 220 mm with femoral heads (+900 HU), a prostate-like PTV, a bladder
  and a rectum holding a gas pocket (the air cavity);
- ``headneck``: an elliptic head-and-neck 160 × 200 mm with a mandible and a vertebral body (+700 HU), a
  spinal cord, both parotids, a PTV around the oropharynx and an oral air cavity;
- ``tg119``: the AAPM TG-119 C-shape around a core (Ezzell et al. 2009, doi:10.1118/1.3238104) of
  :func:`intrepid.simulate.make_patient_phantom`, with the C as PTV and the core as OAR (no cavity).

CT numbers are the ones of :mod:`intrepid.simulate._phantoms` (soft tissue +40 HU, lung −800 HU, bone
+700/+900 HU, air −1000 HU). The geometry is schematic (sizes from typical adult anatomy, not from a patient):
these phantoms exist to make dose, EPID and error-detection tests realistic in their heterogeneities and
structure sizes, not to stand for a population.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Volume
from intrepid.simulate._phantoms import (
    AIR_HU,
    BONE_HU,
    SOFT_TISSUE_HU,
    SPINE_HU,
    IsocenterMode,
    PhantomFamily,
    _Builder,
    _ellipse,
    make_patient_phantom,
    make_thorax_phantom,
)

__all__ = [
    "ANATOMY_SCALE_RANGE",
    "PatientPhantom",
    "PatientSite",
    "make_patient_case_phantom",
    "set_cavity",
    "shrink_body",
    "vary_anatomy",
]

_log = logging.getLogger(__name__)

#: Margin GTV → PTV of the thorax lesion, mm (a typical lung SBRT margin, 5 mm).
PTV_MARGIN_MM = 5.0
#: Ranges of the per-patient scale factors of :func:`vary_anatomy` (left-right, anterior-posterior,
#: superior-inferior). Adult trunk sizes vary far more: the effective diameter of adult abdomens spans about
#: 20–40 cm around a typical 28–30 cm (AAPM Report 204, 2011, size-specific dose estimates [recall]), i.e.
#: −30 % to +35 %. ±12 % laterally and antero-posteriorly keeps the schematic organs plausible while giving
#: patients of clearly different size and heterogeneity depth; ±5 % along the axis (organ lengths).
ANATOMY_SCALE_RANGE = ((0.88, 1.12), (0.88, 1.12), (0.95, 1.05))
#: Range of the shift of the internal anatomy (everything inside the body except the body outline itself is
#: moved together) relative to the outline, mm per axis: organ and tumour positions vary between patients by
#: centimetres; ±8 mm keeps every structure inside the body of these phantoms.
ANATOMY_SHIFT_RANGE_MM = 8.0


class PatientSite(enum.Enum):
    """The anatomical sites of :func:`make_patient_case_phantom`."""

    THORAX = "thorax"
    PELVIS = "pelvis"
    HEADNECK = "headneck"
    TG119 = "tg119"


@dataclass(frozen=True, eq=False)
class PatientPhantom:
    """A patient-like CT with structures.

    Parameters
    ----------
    ct : Volume
        CT numbers (HU, float32), axis-aligned grid, with a Frame of Reference UID.
    site : PatientSite
    isocenter_mm : tuple of 3 float
        Plan isocentre (LPS, mm): the centroid of the PTV, rounded to 0.1 mm.
    structures : dict of str to ndarray of bool
        Masks on ``ct.grid``; ``"BODY"`` always, ``"PTV"`` always.
    roi_types : dict of str to str
        RT ROI Interpreted Type per structure (EXTERNAL, PTV, GTV, ORGAN, CAVITY).
    cavity : str or None
        Name of the air-cavity structure (``anatomy:cavity`` errors), None when the site has none.
    """

    ct: Volume
    site: PatientSite
    isocenter_mm: tuple[float, float, float]
    structures: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    roi_types: dict[str, str] = field(default_factory=dict)
    cavity: str | None = None

    @property
    def organs_at_risk(self) -> tuple[str, ...]:
        """Names of the ORGAN structures."""
        return tuple(n for n, t in self.roi_types.items() if t == "ORGAN")

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: site, isocentre, grid and structure voxel counts."""
        return {
            "site": self.site.value,
            "isocenter_mm": list(self.isocenter_mm),
            "grid": self.ct.grid.to_dict(),
            "structures": {k: int(np.count_nonzero(v)) for k, v in self.structures.items()},
            "cavity": self.cavity,
        }


def _centroid_mm(ct: Volume, mask: NDArray[np.bool_]) -> tuple[float, float, float]:
    idx = np.argwhere(mask)[:, ::-1].astype(float)
    c = ct.grid.index_to_world(idx).mean(axis=0)
    return (round(float(c[0]), 1) + 0.0, round(float(c[1]), 1) + 0.0, round(float(c[2]), 1) + 0.0)


def _dilate_mm(
    mask: NDArray[np.bool_], spacing_mm: tuple[float, float, float], r_mm: float
) -> NDArray[np.bool_]:
    """Euclidean dilation by ``r_mm`` (distance transform on the anisotropic grid)."""
    sx, sy, sz = spacing_mm
    dist = ndimage.distance_transform_edt(~mask, sampling=(sz, sy, sx))
    return np.asarray(dist <= r_mm + 1e-6)


def _thorax(spacing: tuple[float, float, float]) -> PatientPhantom:
    p = make_thorax_phantom(lesion=True, lesion_diameter_mm=30.0, length_mm=160.0, spacing_mm=spacing,
                            isocenter=IsocenterMode.LESION)
    hu = np.array(p.ct.array, dtype=np.float32)
    s = dict(p.structures)
    g = p.ct.grid
    x, y, z = g.world_axes_mm()
    xx, yy = x[None, None, :], y[None, :, None]
    zz = z[:, None, None]
    heart = (((xx + 15.0) / 45.0) ** 2 + ((yy + 40.0) / 35.0) ** 2 + (zz / 55.0) ** 2 <= 1.0) & s["body"]
    heart &= ~(s["lung_left"] | s["lung_right"])
    trachea = (((xx - 0.0) / 9.0) ** 2 + ((yy - 20.0) / 9.0) ** 2 <= 1.0) & np.broadcast_to(True, hu.shape)
    hu[trachea] = AIR_HU
    gtv = s.pop("lesion")
    ptv = _dilate_mm(gtv, g.spacing_mm, PTV_MARGIN_MM) & s["body"]
    structures = {"BODY": s["body"], "PTV": ptv, "GTV": gtv, "LUNG_L": s["lung_left"] & ~ptv,
                  "LUNG_R": s["lung_right"], "SPINE": s["spine"], "HEART": heart, "TRACHEA": trachea}
    types = {"BODY": "EXTERNAL", "PTV": "PTV", "GTV": "GTV", "LUNG_L": "ORGAN", "LUNG_R": "ORGAN",
             "SPINE": "ORGAN", "HEART": "ORGAN", "TRACHEA": "CAVITY"}
    ct = p.ct.with_array(hu, metadata={**p.ct.metadata, "site": "thorax"})
    return PatientPhantom(ct, PatientSite.THORAX, _centroid_mm(ct, ptv), structures, types, "TRACHEA")


def _pelvis(spacing: tuple[float, float, float]) -> PatientPhantom:
    bld = _Builder((180.0, 110.0, 80.0), spacing, 0)
    body = bld.prism(_ellipse(0, 0, 180.0, 110.0), 80.0)
    bld.paint("BODY", body, SOFT_TISSUE_HU)
    for side, name in ((-1, "FEMUR_R"), (1, "FEMUR_L")):
        bld.paint(name, bld.sphere((side * 95.0, 5.0, -10.0), 25.0), BONE_HU)
    bld.paint("SACRUM", bld.prism(_ellipse(0.0, 85.0, 40.0, 14.0), 80.0), SPINE_HU)
    bladder = bld.sphere((0.0, -40.0, 25.0), 30.0)
    bld.paint("BLADDER", bladder, SOFT_TISSUE_HU - 30.0)  # urine ≈ +10 HU
    rectum = bld.prism(_ellipse(0.0, 40.0, 17.0, 17.0), 45.0)
    bld.paint("RECTUM", rectum, SOFT_TISSUE_HU)
    gas = bld.prism(_ellipse(0.0, 40.0, 9.0, 9.0), 25.0)
    bld.paint("RECTAL_GAS", gas, AIR_HU)
    prostate = bld.sphere((0.0, 0.0, 0.0), 22.0)
    ptv = _dilate_mm(prostate, bld.grid.spacing_mm, 7.0) & ~gas
    bld.structures["CTV"] = prostate
    bld.structures["PTV"] = ptv
    bld.structures["BLADDER"] = bladder & ~ptv
    bld.structures["RECTUM"] = rectum & ~ptv
    ph = bld.finish(name="pelvis", family=PhantomFamily.PATIENT, isocenter_mm=(0.0, 0.0, 0.0),
                    isocenter=IsocenterMode.LESION, description="pelvis 360 x 220 mm, prostate PTV",
                    params={"site": "pelvis"})
    st = dict(ph.structures)
    types = {"BODY": "EXTERNAL", "PTV": "PTV", "CTV": "CTV", "BLADDER": "ORGAN", "RECTUM": "ORGAN",
             "FEMUR_L": "ORGAN", "FEMUR_R": "ORGAN", "SACRUM": "ORGAN", "RECTAL_GAS": "CAVITY"}
    order = ["BODY", "PTV", "CTV", "BLADDER", "RECTUM", "FEMUR_L", "FEMUR_R", "SACRUM", "RECTAL_GAS"]
    return PatientPhantom(ph.ct, PatientSite.PELVIS, _centroid_mm(ph.ct, st["PTV"]),
                          {k: st[k] for k in order}, types, "RECTAL_GAS")


def _headneck(spacing: tuple[float, float, float]) -> PatientPhantom:
    bld = _Builder((80.0, 100.0, 70.0), spacing, 0)
    bld.paint("BODY", bld.prism(_ellipse(0, 0, 80.0, 100.0), 70.0), SOFT_TISSUE_HU)

    def mandible(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.bool_]:
        r2 = (x / 62.0) ** 2 + ((y + 20.0) / 68.0) ** 2
        return np.asarray((r2 <= 1.0) & (r2 >= 0.78) & (y <= -10.0))

    bld.paint("MANDIBLE", bld.prism(mandible, 20.0, -25.0), BONE_HU)
    bld.paint("VERTEBRA", bld.prism(_ellipse(0.0, 45.0, 16.0, 14.0), 70.0), SPINE_HU)
    bld.paint("CORD", bld.prism(_ellipse(0.0, 66.0, 6.0, 6.0), 70.0), SOFT_TISSUE_HU)
    for side, name in ((1, "PAROTID_L"), (-1, "PAROTID_R")):
        bld.paint(name, bld.sphere((side * 55.0, 15.0, 10.0), 16.0), SOFT_TISSUE_HU - 60.0)  # fatty gland
    oral = bld.sphere((0.0, -45.0, -5.0), 14.0)
    bld.paint("ORAL_CAVITY", oral, AIR_HU)
    gtv = bld.sphere((0.0, -5.0, 0.0), 20.0)
    ptv = _dilate_mm(gtv, bld.grid.spacing_mm, 5.0) & ~oral
    bld.structures["PTV"] = ptv
    for name in ("PAROTID_L", "PAROTID_R", "CORD"):
        bld.structures[name] = bld.structures[name] & ~ptv
    ph = bld.finish(name="headneck", family=PhantomFamily.PATIENT, isocenter_mm=(0.0, 0.0, 0.0),
                    isocenter=IsocenterMode.LESION, description="head and neck 160 x 200 mm, oropharynx PTV",
                    params={"site": "headneck"})
    st = dict(ph.structures)
    types = {"BODY": "EXTERNAL", "PTV": "PTV", "CORD": "ORGAN", "PAROTID_L": "ORGAN", "PAROTID_R": "ORGAN",
             "MANDIBLE": "ORGAN", "VERTEBRA": "ORGAN", "ORAL_CAVITY": "CAVITY"}
    order = ["BODY", "PTV", "CORD", "PAROTID_L", "PAROTID_R", "MANDIBLE", "VERTEBRA", "ORAL_CAVITY"]
    return PatientPhantom(ph.ct, PatientSite.HEADNECK, _centroid_mm(ph.ct, st["PTV"]),
                          {k: st[k] for k in order}, types, "ORAL_CAVITY")


def _tg119(spacing: tuple[float, float, float]) -> PatientPhantom:
    p = make_patient_phantom(length_mm=160.0, spacing_mm=spacing, isocenter=IsocenterMode.CENTER)
    s = p.structures
    structures = {"BODY": s["body"], "PTV": s["target"], "CORE": s["core"]}
    types = {"BODY": "EXTERNAL", "PTV": "PTV", "CORE": "ORGAN"}
    ct = p.ct.with_array(np.array(p.ct.array, dtype=np.float32), metadata={**p.ct.metadata, "site": "tg119"})
    return PatientPhantom(ct, PatientSite.TG119, (0.0, 0.0, 0.0), structures, types, None)


_MAKERS = {PatientSite.THORAX: _thorax, PatientSite.PELVIS: _pelvis, PatientSite.HEADNECK: _headneck,
           PatientSite.TG119: _tg119}


def make_patient_case_phantom(
    site: PatientSite | str, *, spacing_mm: float = 4.0, anatomy_seed: int | None = None
) -> PatientPhantom:
    """A patient-like phantom with structures for a 3D in-vivo case.

    Parameters
    ----------
    site : PatientSite or str
        ``thorax``, ``pelvis``, ``headneck`` or ``tg119``.
    spacing_mm : float
        Isotropic voxel size in mm (1–10). 4–5 mm keeps dose and training affordable on a CPU; the issue's
        accuracy numbers are measured on such grids (see docs/invivo.md).
    anatomy_seed : int or None
        None (default): the site's reference anatomy. An integer: a different patient of that site, drawn by
        :func:`vary_anatomy` from this seed (same seed, same patient).

    Returns
    -------
    PatientPhantom

    Examples
    --------
    >>> p = make_patient_case_phantom("pelvis", spacing_mm=5.0)
    >>> sorted(p.structures)[:3], p.cavity
    (['BLADDER', 'BODY', 'CTV'], 'RECTAL_GAS')
    """
    try:
        s = site if isinstance(site, PatientSite) else PatientSite(str(site).lower())
    except ValueError:
        raise ParameterError(
            f"site must be one of {', '.join(m.value for m in PatientSite)}, got {site!r}"
        ) from None
    sp = float(spacing_mm)
    if not (1.0 <= sp <= 10.0):
        raise ParameterError(f"spacing_mm must be between 1 and 10 mm, got {spacing_mm}")
    phantom = _MAKERS[s]((sp, sp, sp))
    if anatomy_seed is not None:
        phantom = vary_anatomy(phantom, np.random.default_rng([int(anatomy_seed), 271828]))
    _log.debug("patient phantom %s: grid %s", s.value, phantom.ct.grid.shape)
    return phantom


def vary_anatomy(phantom: PatientPhantom, rng: np.random.Generator) -> PatientPhantom:
    """Another patient of the same site: the anatomy scaled and its interior shifted, at random.

    The CT and every structure are resampled (HU trilinear, masks nearest) by independent scale factors
    along x, y, z drawn uniformly from :data:`ANATOMY_SCALE_RANGE` about the grid centre (the world origin),
    onto a grid of the same spacing whose extent follows the scale; then everything inside the body outline
    (organs, bones, cavities, the target) is shifted together by up to :data:`ANATOMY_SHIFT_RANGE_MM` per
    axis relative to the outline, with the vacated body filled with soft tissue. The isocentre is the new
    PTV centroid.

    Parameters
    ----------
    phantom : PatientPhantom
    rng : numpy.random.Generator

    Returns
    -------
    PatientPhantom
    """
    g = phantom.ct.grid
    if not g.is_axis_aligned:
        raise ParameterError("vary_anatomy needs an axis-aligned CT grid")
    scale = np.array([rng.uniform(lo, hi) for lo, hi in ANATOMY_SCALE_RANGE])  # x, y, z
    shift_mm = rng.uniform(-ANATOMY_SHIFT_RANGE_MM, ANATOMY_SHIFT_RANGE_MM, size=3)
    spacing = np.asarray(g.spacing_mm, dtype=float)
    n_old = np.asarray(g.shape_ijk, dtype=float)  # i, j, k = x, y, z
    centre = np.asarray(g.origin_mm) + spacing * (n_old - 1) / 2.0
    n_new = np.maximum(np.round(n_old * scale).astype(int), 1)
    origin = centre - spacing * (n_new - 1) / 2.0
    grid = Grid((int(n_new[2]), int(n_new[1]), int(n_new[0])), tuple(origin), tuple(spacing))
    x, y, z = grid.world_axes_mm()
    # world position of each new voxel in the reference anatomy, as (k, j, i) index arrays
    src_i = ((x - centre[0]) / scale[0] + centre[0] - g.origin_mm[0]) / spacing[0]
    src_j = ((y - centre[1]) / scale[1] + centre[1] - g.origin_mm[1]) / spacing[1]
    src_k = ((z - centre[2]) / scale[2] + centre[2] - g.origin_mm[2]) / spacing[2]
    kk, jj, ii = np.meshgrid(src_k, src_j, src_i, indexing="ij")
    coords = np.stack([kk, jj, ii])

    def warp(a: NDArray[Any], order: int) -> NDArray[Any]:
        # "nearest" continues a body that reaches the grid's edge (the trunk goes on beyond the CT)
        return ndimage.map_coordinates(a, coords, order=order, mode="nearest")

    hu = warp(np.asarray(phantom.ct.array, dtype=np.float32), 1).astype(np.float32)
    masks = {n: warp(m.astype(np.uint8), 0).astype(bool) for n, m in phantom.structures.items()}
    body = masks["BODY"]
    # shift the interior relative to the outline: sample the scaled anatomy at (position − shift)
    shift_vox = shift_mm / spacing  # x, y, z
    inner_hu = ndimage.shift(hu, shift_vox[::-1], order=1, mode="nearest")
    tissue = np.where(np.abs(inner_hu - AIR_HU) < 1.0, SOFT_TISSUE_HU, inner_hu)  # outside air -> tissue
    hu = np.where(body, tissue, AIR_HU).astype(np.float32)
    for name, m in list(masks.items()):
        if name == "BODY":
            continue
        moved = ndimage.shift(m.astype(np.uint8), shift_vox[::-1], order=0, mode="constant", cval=0) > 0
        masks[name] = moved & body
    cavity = phantom.cavity
    if cavity is not None and cavity in masks:  # an air cavity stays air where it was moved
        hu[masks[cavity]] = AIR_HU
    if not masks["PTV"].any():
        raise ParameterError("vary_anatomy moved the PTV out of the body")
    ct = Volume(
        hu,
        grid,
        quantity=phantom.ct.quantity,
        units=phantom.ct.units,
        frame_of_reference_uid=phantom.ct.frame_of_reference_uid,
        metadata={
            **phantom.ct.metadata,
            "anatomy_scale": [round(float(v), 4) for v in scale],
            "anatomy_shift_mm": [round(float(v), 2) for v in shift_mm],
        },
    )
    return PatientPhantom(
        ct, phantom.site, _centroid_mm(ct, masks["PTV"]), masks, dict(phantom.roi_types), phantom.cavity
    )


# ------------------------------------------------------------------------------------ anatomy changes
def shrink_body(phantom: PatientPhantom, margin_mm: float) -> PatientPhantom:
    """Weight loss: the body contour shrunk by ``margin_mm`` (tissue within it of the skin becomes air).

    Internal structures are cut to the new body; the CT's Frame of Reference and grid are kept.
    """
    m = float(margin_mm)
    if not (0.0 < m <= 30.0):
        raise ParameterError(f"anatomy:shrink margin must be in (0, 30] mm, got {margin_mm}")
    body = phantom.structures["BODY"]
    sx, sy, _sz = phantom.ct.grid.spacing_mm
    # shrink in the axial plane only (weight loss changes the outline, not the scan length)
    inside = np.zeros_like(body)
    for k in range(body.shape[0]):
        if body[k].any():
            d = ndimage.distance_transform_edt(body[k], sampling=(sy, sx))
            inside[k] = d > m
    hu = np.array(phantom.ct.array, dtype=np.float32)
    hu[body & ~inside] = AIR_HU
    structures = {k: (v & inside) for k, v in phantom.structures.items()}
    return PatientPhantom(phantom.ct.with_array(hu), phantom.site, phantom.isocenter_mm, structures,
                          dict(phantom.roi_types), phantom.cavity)


def set_cavity(phantom: PatientPhantom, *, filled: bool) -> PatientPhantom:
    """Fill the air cavity with soft tissue (``filled=True``) or empty it to air (``filled=False``).

    ``empty`` also enlarges the cavity by 5 mm (more gas than planned), so that both changes alter the dose.
    """
    if phantom.cavity is None:
        raise ParameterError(f"the {phantom.site.value} phantom has no air cavity for anatomy:cavity")
    cav = phantom.structures[phantom.cavity]
    hu = np.array(phantom.ct.array, dtype=np.float32)
    if filled:
        hu[cav] = SOFT_TISSUE_HU
    else:
        grown = _dilate_mm(cav, phantom.ct.grid.spacing_mm, 5.0) & phantom.structures["BODY"]
        grown &= ~phantom.structures["PTV"]
        hu[grown] = AIR_HU
    return PatientPhantom(phantom.ct.with_array(hu), phantom.site, phantom.isocenter_mm,
                          dict(phantom.structures), dict(phantom.roi_types), phantom.cavity)
