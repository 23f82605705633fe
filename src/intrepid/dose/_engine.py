"""The photon dose engine: CT + RTPLAN → dose per beam and plan, by collapsed-cone convolution/superposition.

Pipeline for one beam (or one gantry sector of an arc):

1. **Fluence** at the isocentre plane from the control points (:func:`intrepid.physics.beam_fluence`, the
   shared head model) on the lateral axes of a divergent *fan grid* aligned with the beam (lateral spacing h
   at the    isocentre plane, depth spacing h along the axis, the field plus ``margin_mm`` on each side).
2. **Density**: HU → relative electron density η (:data:`intrepid.physics.hu_to_relative_electron_density`
   or the caller's calibration), sampled trilinearly at the fan voxels.
3. **TERMA** by divergent ray tracing along the fan lines (radiological depth accumulated voxel by voxel from
   the source), with the off-axis spectrum of :meth:`LinacHead.spectrum_weights` and NIST μ/ρ of water.
4. **Collapsed-cone superposition** (:mod:`intrepid.dose._ccc`) with the EDKnrc 6 MV kernel collapsed onto
   8 polar × 8 azimuthal = 64 cones (:mod:`intrepid.dose._kernel`).
5. **Dose on the output grid** by trilinear interpolation from the fan grid; × MU × calibration.

MU calibration: the same engine computes a 10 × 10 cm² field on a water cube at SSD 100 cm on the same fan
spacing; its maximum on the central axis is set to ``spectrum.dose_per_mu_gy`` (1 cGy/MU).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.dicom import Beam, RTPlan
from intrepid.dose._kernel import DEFAULT_N_AZIMUTH, DEFAULT_ZENITH_EDGES_DEG, ConeKernel, cone_kernel
from intrepid.dose._result import BeamDose, DoseQuantity, PlanDose
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, PatientPosition, Quantity, Volume
from intrepid.geometry._frames import Frame, MachineAngles, frame_transform
from intrepid.physics import BeamModel, LinacHead, beam_fluence, hu_to_relative_electron_density
from intrepid.physics._beam import water_mass_attenuation_cm2_g

__all__ = ["DoseSettings", "central_axis_depth_dose", "compute_beam_dose", "compute_dose"]

logger = logging.getLogger(__name__)

#: Nominal energies (MV) the 6 MV beam model accepts.
SUPPORTED_ENERGIES_MV = (6.0,)
#: Point-kernel sources (``DoseSettings.kernel_source``): the shipped EDKnrc 6 MV table (default), or the
#: kernel built for the head's own spectrum from monoenergetic EDKnrc kernels (docs/dose.md,
#: "Spectrum-built kernel").
KERNEL_SOURCES = ("edk_6mv_table", "spectrum")
#: The "kernel" text of the result metadata for each source.
_KERNEL_TEXT = {
    "edk_6mv_table": "EDKnrc 6 MV (Varian Clinac), collapsed cones",
    "spectrum": "EDKnrc monoenergetic 1-6 MeV kernels, TERMA-weighted for the beam spectrum, collapsed cones",
}


@dataclass(frozen=True)
class DoseSettings:
    """Numerical settings of the engine.

    Parameters
    ----------
    fan_spacing_mm : float or None
        Spacing of the fan grid (lateral at the isocentre plane and along the axis); None: the output grid's
        in-plane spacing, clipped to [2.5, 5] mm (a 1 mm CT is computed on a 2.5 mm fan grid, then
        interpolated).
    margin_mm : float
        Lateral margin around the jaw opening (isocentre plane) inside which dose is computed (50 mm; dose
        further out of the field is set to 0 — it is < ~2 % of the maximum there).
    zenith_edges_deg : tuple of float
        Polar-angle edges of the collapsed cones (8 cones by default).
    n_azimuth : int
        Azimuthal directions per polar cone (8).
    arc_step_deg : float
        Arcs (VMAT / dynamic arcs): control-point segments are grouped into sectors of at most this gantry
        span, each computed as a static beam at its meterset-weighted mean angle (4°).
    kernel_primary_share : float or None
        None (default): the EDKnrc 6 MV table as fitted. A value in (0, 1): the kernel's short-range terms
        are rescaled to carry this share of the deposited energy (a diagnostic; e.g. the spectrum-consistent
        share ``intrepid.dose._kernel.spectrum_primary_share``, 0.516 — docs/dose.md, "Spectrum consistency").
    kernel_source : str
        "edk_6mv_table" (default): the shipped EDKnrc 6 MV table. "spectrum": the kernel built for the head's
        on-axis spectrum from monoenergetic EDKnrc kernels (TERMA-weighted; :mod:`intrepid.dose._kernel_mono`,
        docs/dose.md, "Spectrum-built kernel"). ``kernel_primary_share`` applies to the table only.
    """

    fan_spacing_mm: float | None = None
    margin_mm: float = 50.0
    zenith_edges_deg: tuple[float, ...] = DEFAULT_ZENITH_EDGES_DEG
    n_azimuth: int = DEFAULT_N_AZIMUTH
    arc_step_deg: float = 4.0
    kernel_primary_share: float | None = None
    kernel_source: str = "edk_6mv_table"

    def __post_init__(self) -> None:
        if self.fan_spacing_mm is not None and not 0.5 <= float(self.fan_spacing_mm) <= 10.0:
            raise ParameterError(f"fan_spacing_mm must be in [0.5, 10] mm, got {self.fan_spacing_mm}")
        if not 0 <= float(self.margin_mm) <= 300:
            raise ParameterError(f"margin_mm must be in [0, 300] mm, got {self.margin_mm}")
        if not 0.5 <= float(self.arc_step_deg) <= 30:
            raise ParameterError(f"arc_step_deg must be in [0.5, 30] degrees, got {self.arc_step_deg}")
        share = self.kernel_primary_share
        if share is not None and not 0.0 < float(share) < 1.0:
            raise ParameterError(f"kernel_primary_share must be in (0, 1), got {share}")
        if self.kernel_source not in KERNEL_SOURCES:
            raise ParameterError(
                f"kernel_source must be one of {', '.join(KERNEL_SOURCES)}, got {self.kernel_source!r}"
            )
        if self.kernel_source == "spectrum" and share is not None:
            raise ParameterError("kernel_primary_share applies to kernel_source 'edk_6mv_table' only")

    @property
    def kernel(self) -> ConeKernel:
        """The collapsed-cone kernel of these settings for the default head (``LinacHead().spectrum``)."""
        return self.kernel_for(LinacHead().spectrum)

    def kernel_for(self, spectrum: BeamModel) -> ConeKernel:
        """The collapsed-cone kernel of these settings for a beam of on-axis ``spectrum``."""
        if self.kernel_source == "spectrum":
            from intrepid.dose._kernel_mono import spectrum_cone_kernel

            return spectrum_cone_kernel(
                tuple(spectrum.energies_mev),
                tuple(spectrum.energy_fluence_weights),
                tuple(self.zenith_edges_deg),
                int(self.n_azimuth),
            )
        share = None if self.kernel_primary_share is None else float(self.kernel_primary_share)
        return cone_kernel(tuple(self.zenith_edges_deg), int(self.n_azimuth), share)


# ------------------------------------------------------------------------------------------ beam checks
def _where(plan: RTPlan | None, beam: Beam) -> str:
    src = plan.source if plan is not None and plan.source else "plan"
    return f"{src}: beam {beam.number} {beam.name!r}"


def check_beam(beam: Beam, plan: RTPlan | None = None) -> None:
    """Raise :class:`ParameterError` with one clear line when the engine cannot compute ``beam``."""
    where = _where(plan, beam)
    if beam.is_ion or beam.radiation_type.upper() != "PHOTON":
        raise ParameterError(f"{where}: radiation type {beam.radiation_type} is not supported (photons only)")
    if len(beam.control_points) < 2:
        raise ParameterError(
            f"{where}: needs at least 2 control points (Control Point Sequence), has "
            f"{len(beam.control_points)}"
        )
    energies = {cp.nominal_energy for cp in beam.control_points}
    for e in energies:
        if e is None or not any(abs(float(e) - s) < 0.5 for s in SUPPORTED_ENERGIES_MV):
            raise ParameterError(
                f"{where}: unknown energy {e} {beam.energy_unit} (Nominal Beam Energy): the beam model is "
                "6 MV"
            )
    if beam.meterset is None or not beam.meterset > 0:
        raise ParameterError(f"{where}: no Beam Meterset (300A,0086) in the fraction group")
    if beam.wedges:
        raise ParameterError(f"{where}: wedges are not modelled by the dose engine")
    if beam.blocks:
        raise ParameterError(f"{where}: blocks are not modelled by the dose engine")
    for dev in beam.devices:
        if dev.device_type.is_mlc and dev.leaf_boundaries_mm is not None:
            lo, hi = float(dev.leaf_boundaries_mm[0]), float(dev.leaf_boundaries_mm[-1])
            for cp in beam.control_points:
                jaw = cp.jaw_y_mm if dev.device_type.value == "MLCX" else cp.jaw_x_mm
                if jaw is not None and (jaw[0] < lo - 0.5 or jaw[1] > hi + 0.5):
                    raise ParameterError(
                        f"{where}: control point {cp.index}: the jaws ({jaw[0]:g}, {jaw[1]:g}) mm open "
                        "beyond "
                        f"the MLC leaves ({lo:g} .. {hi:g} mm)"
                    )
                m = cp.mlc_mm
                if m is not None and np.any(m[0] > m[1] + 1e-6):
                    raise ParameterError(
                        f"{where}: control point {cp.index}: MLC leaves of bank A pass bank B"
                    )


def check_plan(plan: RTPlan) -> None:
    """Raise :class:`ParameterError` for a plan the engine refuses (photons and ions mixed, no beams)."""
    if not plan.beams:
        raise ParameterError(f"{plan.source or 'plan'}: the plan has no beams")
    ions = ("PROTON", "ION")
    kinds = {"ION" if (b.is_ion or b.radiation_type.upper() in ions) else b.radiation_type.upper()
             for b in plan.beams}  # fmt: skip
    if "ION" in kinds and len(kinds) > 1:
        raise ParameterError(f"{plan.source or 'plan'}: photons and ions mixed in one plan")


# ------------------------------------------------------------------------------------------ geometry
def _mid_angle(a0: float, a1: float) -> float:
    d = (a1 - a0 + 540.0) % 360.0 - 180.0
    return (a0 + 0.5 * d) % 360.0


def _sectors(beam: Beam, arc_step_deg: float) -> list[tuple[list[int], float, float, float]]:
    """Segments grouped by gantry sector: (segment end indices, gantry, collimator, couch) per sector."""
    cps = beam.control_points
    out: list[tuple[list[int], float, float, float]] = []
    cur: list[int] = []
    start = 0.0
    angles: list[float] = []
    for k in range(1, len(cps)):
        g = _mid_angle(cps[k - 1].gantry_deg, cps[k].gantry_deg)
        if cur and (abs((g - start + 540.0) % 360.0 - 180.0) > arc_step_deg
                    or cps[k].collimator_deg != cps[cur[0]].collimator_deg
                    or cps[k].couch_deg != cps[cur[0]].couch_deg):  # fmt: skip
            out.append((cur, _circular_mean(angles), cps[cur[0]].collimator_deg, cps[cur[0]].couch_deg))
            cur, angles = [], []
        if not cur:
            start = g
        cur.append(k)
        angles.append(g)
    if cur:
        out.append((cur, _circular_mean(angles), cps[cur[0]].collimator_deg, cps[cur[0]].couch_deg))
    return out


def _circular_mean(angles: Sequence[float]) -> float:
    r = np.deg2rad(np.asarray(angles, dtype=float))
    return float(np.rad2deg(np.arctan2(np.sin(r).mean(), np.cos(r).mean())) % 360.0)


def _index_affine(grid: Grid) -> NDArray[np.float64]:
    """4 × 4 map from index (i, j, k) to LPS (mm)."""
    m = np.eye(4)
    m[:3, :3] = grid.direction_matrix * np.asarray(grid.spacing_mm)[None, :]
    m[:3, 3] = np.asarray(grid.origin_mm)
    return m


def _field_bounds(beam: Beam, seg_ids: Sequence[int]) -> tuple[float, float, float, float]:
    """Jaw (or MLC) opening of the sector's control points at the isocentre plane: (a0, a1, b0, b1) mm."""
    xs: list[float] = []
    ys: list[float] = []
    for k in seg_ids:
        for cp in (beam.control_points[k - 1], beam.control_points[k]):
            jx, jy = cp.jaw_x_mm, cp.jaw_y_mm
            m = cp.mlc_mm
            if jx is None and m is not None:
                jx = (float(m[0].min()), float(m[1].max()))
            if jy is None and m is not None:
                dev = next((d for d in beam.devices if d.device_type.is_mlc), None)
                if dev is not None and dev.leaf_boundaries_mm is not None:
                    jy = (float(dev.leaf_boundaries_mm[0]), float(dev.leaf_boundaries_mm[-1]))
            xs.extend(jx or (-200.0, 200.0))
            ys.extend(jy or (-200.0, 200.0))
    return (max(min(xs), -200.0), min(max(xs), 200.0), max(min(ys), -200.0), min(max(ys), 200.0))


@dataclass(frozen=True)
class _FanDose:
    dose: NDArray[np.float32]  # per unit meterset, relative (uncalibrated)
    z0_mm: float
    a0_mm: float
    b0_mm: float
    h_mm: float
    lps_to_bld: NDArray[np.float64]


def _axis(lo: float, hi: float, h: float) -> NDArray[np.float64]:
    n0 = math.floor(lo / h)
    n1 = math.ceil(hi / h)
    return np.arange(n0, n1 + 1, dtype=float) * h


def _fan_dose(
    red: Volume,
    beam: Beam,
    seg_ids: Sequence[int],
    angles: MachineAngles,
    isocenter_mm: ArrayLike,
    position: PatientPosition,
    head: LinacHead,
    settings: DoseSettings,
    h: float,
    superpose: Callable[..., NDArray[np.float32]] | None = None,
) -> _FanDose:
    from intrepid.dose._ccc import ccc_dose, fan_terma, sample_density  # numba: loaded on first use

    sad = float(beam.sad_mm[0]) if beam.sad_mm and beam.sad_mm[0] else head.sad_mm
    bld_to_lps = frame_transform(
        Frame.BEAM_LIMITING_DEVICE,
        Frame.PATIENT_LPS,
        angles,
        patient_position=position,
        isocenter_mm=isocenter_mm,
    )
    lps_to_bld = np.linalg.inv(bld_to_lps)
    a0, a1, b0, b1 = _field_bounds(beam, seg_ids)
    mg = float(settings.margin_mm)
    a_axis = _axis(a0 - mg, a1 + mg, h)
    b_axis = _axis(b0 - mg, b1 + mg, h)
    # Depth range: the CT's corners projected on the beam axis.
    lo, hi = red.grid.bounds_mm(edges=True)
    corners = np.array(
        [[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    zc = sad - (lps_to_bld @ corners.T)[2]
    z_lo, z_hi = max(float(zc.min()), 0.2 * sad), min(float(zc.max()), 3.0 * sad)
    if z_hi <= z_lo:
        raise GeometryError("the CT lies behind the source of the beam")
    z_axis = np.arange(z_lo, z_hi + h, h)
    index_of_lps = np.linalg.inv(_index_affine(red.grid))
    bld_to_index = (index_of_lps @ bld_to_lps)[:3]
    eta = sample_density(
        np.ascontiguousarray(red.array, dtype=np.float32), bld_to_index, a_axis, b_axis, z_axis, sad
    )
    present = np.nonzero(eta.reshape(eta.shape[0], -1).max(axis=1) > 0.0)[0]
    if present.size == 0:
        raise GeometryError("the beam does not cross the CT")
    k0, k1 = max(int(present[0]) - 1, 0), min(int(present[-1]) + 2, eta.shape[0])
    eta = np.ascontiguousarray(eta[k0:k1])
    z_axis = z_axis[k0:k1]
    fluence = beam_fluence(beam, a_axis, b_axis, head=head, control_points=list(seg_ids))
    radius = np.hypot(a_axis[None, :], b_axis[:, None])
    spectrum = np.ascontiguousarray(head.spectrum_weights(radius))
    mu = water_mass_attenuation_cm2_g(head.spectrum.energies)
    ray_step = h * np.sqrt(1.0 + radius**2 / sad**2) / 10.0
    terma = fan_terma(eta, fluence, spectrum, mu, z_axis, ray_step, sad)
    k = settings.kernel_for(head.spectrum)
    dose = (superpose or ccc_dose)(
        eta, terma, k.directions, k.amp_a, k.att_a, k.amp_b, k.att_b, z_axis, h, h, sad
    )
    return _FanDose(
        dose,
        float(z_axis[0]),
        float(a_axis[0]),
        float(b_axis[0]),
        h,
        np.asarray(lps_to_bld, dtype=np.float64),
    )


# ------------------------------------------------------------------------------------------ calibration
def water_phantom(
    size_mm: tuple[float, float, float] = (300.0, 300.0, 300.0), spacing_mm: float = 2.5, hu: float = 0.0
) -> Volume:
    """A water cube (HU ``hu``) whose anterior surface (y = 0, LPS) is at the isocentre (0, 0, 0).

    For HFS and gantry 0 the beam enters at y = 0 and travels towards +y: SSD = SAD (100 cm).
    """
    sx, sy, sz = (float(v) for v in size_mm)
    h = float(spacing_mm)
    nx, ny, nz = (max(1, round(v / h)) for v in (sx, sy, sz))
    grid = Grid((nz, ny, nx), origin_mm=(-(nx - 1) * h / 2, h / 2, -(nz - 1) * h / 2), spacing_mm=(h, h, h))
    return Volume(np.full(grid.shape, float(hu), dtype=np.float32), grid, Quantity.CT_NUMBER, "HU")


def central_axis_depth_dose(volume: Volume) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Depth-dose along the central axis of a dose on a :func:`water_phantom` grid (HFS, gantry 0).

    The beam enters at y = 0 (LPS) and travels towards +y, so the depth is the y coordinate; the axis is the
    voxel column nearest to x = 0, z = 0 (no interpolation).

    Parameters
    ----------
    volume : Volume
        A 3D dose (e.g. ``compute_dose(water_phantom(...), plan).total``) on an axis-aligned grid.

    Returns
    -------
    depth_mm, dose : ndarray
        Depths (mm) of the voxel centres and the dose there (the volume's unit, e.g. Gy).
    """
    g = volume.grid
    if g.ndim != 3 or not g.is_axis_aligned:
        raise GeometryError("central_axis_depth_dose needs a 3D axis-aligned grid (a water_phantom dose)")
    d = volume.array
    x = g.origin_mm[0] + np.arange(d.shape[2]) * g.spacing_mm[0]
    y = g.origin_mm[1] + np.arange(d.shape[1]) * g.spacing_mm[1]
    z = g.origin_mm[2] + np.arange(d.shape[0]) * g.spacing_mm[2]
    axis = d[int(np.argmin(np.abs(z))), :, int(np.argmin(np.abs(x)))]
    return np.asarray(y, dtype=float), np.asarray(axis, dtype=float)


@lru_cache(maxsize=8)
def _calibration(head: LinacHead, settings: DoseSettings, h: float) -> float:
    """Relative fan dose per unit meterset at d_max of a 10 × 10 cm² field at SSD 100 cm (1 cGy/MU)."""
    from intrepid.dose._plans import open_field_plan

    ct = water_phantom((240.0 + 2 * settings.margin_mm, 300.0, 240.0 + 2 * settings.margin_mm), h)
    plan = open_field_plan(100.0, 100.0, mu=1.0)
    red = ct.with_array(hu_to_relative_electron_density(ct.array).astype(np.float32))
    beam = plan.beams[0]
    fan = _fan_dose(
        red, beam, [1], MachineAngles(0.0), (0.0, 0.0, 0.0), PatientPosition.HFS, head, settings, h
    )
    ja = round(-fan.a0_mm / h)
    jb = round(-fan.b0_mm / h)
    axis = fan.dose[:, jb, ja].astype(float)
    k = int(np.argmax(axis))
    if 0 < k < axis.size - 1:  # parabolic peak between samples
        y0, y1, y2 = axis[k - 1], axis[k], axis[k + 1]
        den = y0 - 2 * y1 + y2
        peak = y1 - 0.125 * (y2 - y0) ** 2 / den if den < 0 else y1
    else:
        peak = axis[k]
    return float(peak)


# ------------------------------------------------------------------------------------------ public
def _output_grid(ct: Volume, grid: Grid | float | None) -> Grid:
    if grid is None:
        return ct.grid
    if isinstance(grid, Grid):
        if grid.ndim != 3:
            raise ParameterError("grid must be a 3D Grid")
        return grid
    h = float(grid)
    if not 0.5 <= h <= 10:
        raise ParameterError(f"grid spacing must be in [0.5, 10] mm, got {grid}")
    lo, hi = ct.grid.bounds_mm(edges=True)
    if not ct.grid.is_axis_aligned:
        raise GeometryError("a dose grid spacing needs an axis-aligned CT; pass a Grid instead")
    n = [max(1, math.floor((hi[a] - lo[a]) / h)) for a in range(3)]
    origin = tuple(float(lo[a] + 0.5 * (hi[a] - lo[a] - (n[a] - 1) * h)) for a in range(3))
    return Grid((n[2], n[1], n[0]), origin_mm=origin, spacing_mm=(h, h, h))  # type: ignore[arg-type]


def compute_beam_dose(
    red: Volume,
    beam: Beam,
    out_grid: Grid,
    *,
    head: LinacHead,
    settings: DoseSettings,
    patient_position: PatientPosition,
    plan: RTPlan | None = None,
    mu: float | None = None,
    superpose: Callable[..., NDArray[np.float32]] | None = None,
) -> BeamDose:
    """Dose (Gy per fraction) of one beam on ``out_grid`` from a relative-electron-density volume ``red``.

    ``superpose`` is the collapsed-cone sweep (:func:`intrepid.dose._ccc.ccc_dose`, numba, or
    :func:`intrepid.dose._torch.ccc_dose_torch`); the MU calibration always uses the numba sweep.
    """
    from intrepid.dose._ccc import sample_fan  # numba: loaded on first use

    t0 = time.perf_counter()
    check_beam(beam, plan)
    meterset = float(mu if mu is not None else beam.meterset or 0.0)
    h = float(settings.fan_spacing_mm or min(max(min(out_grid.spacing_mm[:2]), 2.5), 5.0))
    iso = np.asarray(beam.isocenter_mm, dtype=float)
    if not bool(red.grid.contains(iso[None, :])[0]):
        raise GeometryError(
            f"{_where(plan, beam)}: the isocentre ({iso[0]:.1f}, {iso[1]:.1f}, {iso[2]:.1f}) mm lies outside "
            "the CT"
        )
    calib = _calibration(head, settings, h)
    total = np.zeros(out_grid.shape, dtype=np.float32)
    m_out = _index_affine(out_grid)
    si, sj, sk = out_grid.shape_ijk
    weight_sum = 0.0
    for seg_ids, gantry, coll, couch in _sectors(beam, settings.arc_step_deg):
        angles = MachineAngles(gantry, coll, couch)
        fan = _fan_dose(red, beam, seg_ids, angles, iso, patient_position, head, settings, h, superpose)
        index_to_bld = (fan.lps_to_bld @ m_out)[:3]
        sad = float(beam.sad_mm[0]) if beam.sad_mm and beam.sad_mm[0] else head.sad_mm
        total += sample_fan(fan.dose, index_to_bld, (sk, sj, si), sad, fan.z0_mm, h, fan.a0_mm, fan.b0_mm, h)
        weight_sum += 1.0
    scale = meterset * head.spectrum.dose_per_mu_gy / calib
    dose = Volume(
        total * np.float32(scale), out_grid, Quantity.DOSE, "Gy", red.frame_of_reference_uid,
        {"beam_number": beam.number, "beam_name": beam.name, "dose_quantity": DoseQuantity.MEDIUM.value},
    )  # fmt: skip
    return BeamDose(beam.number, beam.name, meterset, dose, time.perf_counter() - t0)


def compute_dose(
    ct: Volume,
    plan: RTPlan,
    *,
    beams: Sequence[int | str] | None = None,
    grid: Grid | float | None = None,
    head: LinacHead | None = None,
    hu_to_red: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None,
    settings: DoseSettings | None = None,
    engine: str = "auto",
) -> PlanDose:
    """Dose of a photon plan on a CT by collapsed-cone convolution/superposition (per fraction, Gy).

    Parameters
    ----------
    ct : Volume
        CT in Hounsfield units (``Quantity.CT_NUMBER``), in the plan's Frame of Reference.
    plan : RTPlan
        From :func:`intrepid.dicom.read_rtplan`; photon beams of 6 MV with control points and a Beam Meterset.
    beams : sequence of int or str, optional
        Beam Numbers or Names to compute (default: all beams of the plan).
    grid : Grid or float, optional
        Output grid (a :class:`Grid`), or a spacing in mm for an isotropic grid spanning the CT; default the
        CT grid.
    head : LinacHead, optional
        Beam model (default :class:`LinacHead`: Varian-like 6 MV).
    hu_to_red : callable, optional
        HU → relative electron density (default :data:`intrepid.physics.hu_to_relative_electron_density`).
    settings : DoseSettings, optional
        Fan-grid spacing, margin, number of cones, arc sampling.
    engine : {"auto", "numba", "torch"}
        ``auto`` uses the PyTorch path on a CUDA device when one is present, else numba on the CPU.

    Returns
    -------
    PlanDose
        Per-beam doses, the plan sum, the dose quantity (dose to medium), engine name and timings.

    Raises
    ------
    ParameterError
        A beam the engine cannot compute (one line naming the plan file, the beam and the reason).
    GeometryError
        The isocentre is outside the CT, or the CT is not in HU.
    """
    t0 = time.perf_counter()
    if not isinstance(ct, Volume) or ct.ndim != 3:
        raise ParameterError("ct must be a 3D Volume in HU")
    if ct.quantity not in (Quantity.CT_NUMBER, Quantity.GENERIC):
        raise ParameterError(f"ct must hold CT numbers (HU), got {ct.quantity.name}")
    if engine not in ("auto", "numba", "torch"):
        raise ParameterError(f"engine must be 'auto', 'numba' or 'torch', got {engine!r}")
    check_plan(plan)
    head = head or LinacHead()
    settings = settings or DoseSettings()
    selected = [plan.beam(b) for b in beams] if beams else [b for b in plan.beams if b.treatment_delivery_type
                                                              in ("TREATMENT", "")]  # fmt: skip
    if not selected:
        raise ParameterError(f"{plan.source or 'plan'}: no treatment beams to compute")
    for b in selected:
        check_beam(b, plan)
    out_grid = _output_grid(ct, grid)
    conv = hu_to_red or hu_to_relative_electron_density
    red = ct.with_array(np.asarray(conv(np.asarray(ct.array, dtype=np.float64)), dtype=np.float32))
    use = engine
    if engine == "auto":
        use = "torch" if _cuda_available() else "numba"
    superpose: Callable[..., NDArray[np.float32]] | None = None
    device = "cpu"
    if use == "torch":
        import torch

        from intrepid.dose._torch import ccc_dose_torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        superpose = functools.partial(ccc_dose_torch, device=device)
    results = []
    for b in selected:
        position = b.patient_position or plan.patient_position or PatientPosition.HFS
        results.append(
            compute_beam_dose(
                red, b, out_grid, head=head, settings=settings, patient_position=position, plan=plan,
                superpose=superpose,
            )
        )  # fmt: skip
    total = np.zeros(out_grid.shape, dtype=np.float32)
    for r in results:
        total += r.dose.array
    name = "ccc-numba" if use == "numba" else f"ccc-torch-{device}"
    k = settings.kernel_for(head.spectrum)
    meta: dict[str, Any] = {
        "kernel": _KERNEL_TEXT[settings.kernel_source],
        "kernel_source": settings.kernel_source,
        "cones": k.n_directions,
        "zenith_edges_deg": list(k.zenith_edges_deg),
        "n_azimuth": k.n_azimuth,
        "kernel_primary_share": settings.kernel_primary_share,
        "dose_quantity": DoseQuantity.MEDIUM.value,
    }
    total_vol = Volume(total, out_grid, Quantity.DOSE, "Gy", ct.frame_of_reference_uid, dict(meta))
    return PlanDose(tuple(results), total_vol, DoseQuantity.MEDIUM, name, time.perf_counter() - t0, meta)


def _cuda_available() -> bool:
    import importlib.util
    import os

    # No NVIDIA device node: no CUDA, and no need to import torch (about 1 s) to find out.
    if not os.path.exists("/dev/nvidiactl") or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())
