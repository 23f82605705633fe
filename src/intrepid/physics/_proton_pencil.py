"""Pencil-beam proton dose for passively scattered (or uniformly scanned) fields, after Hong et al. (1996).

The broad field is cut into pencils on a regular lattice of the isocentre plane. Each pencil follows a
divergent ray (point or dual source: ``x`` diverges from ``SAD_x``, ``y`` from ``SAD_y``); it carries the
aperture transmission of its cell, its water-equivalent depth along the ray (exact Siddon line integral of
the relative stopping power, plus the compensator's thickness × RSP) and a Gaussian lateral spread. The
dose at a point of the plane at beam height ``z`` is

    D = F(z) Σ_i T_i · IDD(d_i(z) + w_i) · G(r_i; σ_x,i(z), σ_y,i(z))

with ``T_i`` the aperture transmission, ``w_i`` the compensator's water-equivalent thickness, ``d_i(z)`` the
patient WEPL of pencil ``i`` down to that plane, ``IDD`` the broad-beam depth dose (a pristine or
spread-out Bragg peak, 1 on the peak / plateau), ``F(z) = SAD_x SAD_y / ((SAD_x − z)(SAD_y − z))`` the
inverse-square factor relative to the isocentre plane, and ``G`` the Gaussian integrated over the lattice
cell around each point (so a field of pencils sums to exactly 1 whatever σ). The spread adds three terms in
quadrature (Hong et al. 1996, Eqs. 9–13):

* **patient**: ``σ_p = σ0 x (0.26232 + 0.64298 x + 0.0952393 x²)``, ``x = d / R`` (clamped to 1),
  ``σ0 = 0.02275 R + 1.2085e-6 R²`` (mm) with ``R`` the CSDA range of the protons entering the patient
  (beam range minus the compensator's water-equivalent thickness). This is the fit to Hong's Fig. 3 as coded
  in plastimatch (``compute_sigma_pt_homo``); at ``x = 1`` the polynomial is 1.0005, i.e. σ0 at the end of
  range, about 2.3 % of the range, as Hong's Highland-based figure shows. The fit is homogeneous: the
  heterogeneous generalised-Highland integral of plastimatch is not used.
* **source**: ``σ_s = S (z_a − z) / (SAD − z_a)`` per axis, the effective source size ``S`` projected
  through the aperture plane ``z_a`` (Hong Eq. 12).
* **compensator**: multiple scattering in the compensator by the differential Highland formula with the
  energy loss in the slab (:func:`~intrepid.physics.highland_sigma_mm`), projected from the compensator to
  the point (Hong Eq. 13 uses Highland's θ0 and an effective scattering origin; this integral is the same
  physics without the look-up tables of Hong's appendix).

Simplifications (documented, not hidden): one σ per pencil from the deepest peak of an SOBP; depths along
each pencil's central ray (the pencil-beam approximation); dose to water reported where the relative
stopping power is at least ``air_threshold_rsp`` (0 in air).

References
----------
Hong L, Goitein M, Bucciolini M et al. (1996) A pencil beam algorithm for proton dose calculations. Phys Med
Biol 41:1305, doi:10.1088/0031-9155/41/8/005. Sharp GC et al., plastimatch ``rt_sigma.cxx`` (BSD).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Quantity, Volume
from intrepid.physics._proton import energy_from_range_mev, highland_sigma_mm

__all__ = [
    "BeamDoseBEV",
    "CompensatorMap",
    "DepthDose",
    "PencilLattice",
    "ProtonDose",
    "patient_sigma_mm",
    "pencil_beam_dose",
]

_log = logging.getLogger(__name__)


class DepthDose(Protocol):
    """What the engine needs of a depth-dose curve (:class:`BraggPeak` or :class:`SpreadOutBraggPeak`)."""

    def relative_dose(self, depth_mm: ArrayLike) -> NDArray[np.float64]: ...

    @property
    def csda_range_mm(self) -> float: ...

    @property
    def max_depth_mm(self) -> float: ...


def patient_sigma_mm(depth_mm: ArrayLike, range_mm: ArrayLike) -> NDArray[np.float64]:
    """Hong's lateral spread in the patient (mm) at water depth ``depth_mm`` for CSDA range ``range_mm``.

    Examples
    --------
    >>> round(float(patient_sigma_mm(150.0, 150.0)), 3)   # sigma0 at the end of range
    3.442
    """
    d = np.asarray(depth_mm, dtype=float)
    r = np.maximum(np.asarray(range_mm, dtype=float), 1e-6)
    x = np.clip(d / r, 0.0, 1.0)
    sigma0 = 0.02275 * r + 1.2085e-6 * r * r
    return np.asarray(sigma0 * x * (0.26232 + 0.64298 * x + 0.0952393 * x * x), dtype=float)


@dataclass(frozen=True, eq=False)
class CompensatorMap:
    """A range-compensator thickness map at its plane, as the dose engine sees it.

    Attributes
    ----------
    thickness_mm : ndarray, shape (rows, columns)
        Thickness along the beam, mm (>= 0).
    first_pixel_mm : tuple of 2 float
        Beam-frame ``(x, y)`` (mm, at the compensator plane) of the centre of pixel ``[0, 0]``.
        Columns run along +x, rows along −y (the upper-left-corner convention of DICOM).
    pixel_spacing_mm : tuple of 2 float
        ``(row spacing, column spacing)`` at the compensator plane, mm.
    plane_distance_mm : float
        Beam ``z`` (mm from the isocentre towards the source) of the compensator's downstream face.
    relative_stopping_power : float
    radiation_length_mm : float
        Of the compensator material (PMMA 340.7 mm).
    """

    thickness_mm: NDArray[np.float64]
    first_pixel_mm: tuple[float, float]
    pixel_spacing_mm: tuple[float, float]
    plane_distance_mm: float
    relative_stopping_power: float
    radiation_length_mm: float

    def __post_init__(self) -> None:
        t = np.asarray(self.thickness_mm, dtype=float)
        if t.ndim != 2 or not np.all(np.isfinite(t)) or np.any(t < 0):
            raise ParameterError("thickness_mm must be a finite 2D array >= 0")
        if min(self.pixel_spacing_mm) <= 0:
            raise ParameterError(f"pixel_spacing_mm must be > 0, got {self.pixel_spacing_mm}")
        if self.relative_stopping_power <= 0 or self.radiation_length_mm <= 0:
            raise ParameterError("relative_stopping_power and radiation_length_mm must be > 0")
        object.__setattr__(self, "thickness_mm", t)

    def thickness_at(self, x_mm: ArrayLike, y_mm: ArrayLike) -> NDArray[np.float64]:
        """Thickness (mm) at beam-frame points of the compensator plane (bilinear, edges held outside)."""
        from scipy.ndimage import map_coordinates

        x = np.asarray(x_mm, dtype=float)
        y = np.asarray(y_mm, dtype=float)
        col = (x - self.first_pixel_mm[0]) / self.pixel_spacing_mm[1]
        row = (self.first_pixel_mm[1] - y) / self.pixel_spacing_mm[0]
        out = map_coordinates(self.thickness_mm, [row.ravel(), col.ravel()], order=1, mode="nearest")
        return np.asarray(out.reshape(x.shape), dtype=float)


@dataclass(frozen=True, eq=False)
class PencilLattice:
    """Pencil positions on the isocentre plane: ``u_mm`` (beam x, columns) by ``v_mm`` (beam y, rows).

    Both axes are evenly spaced (``v_mm`` may decrease, as compensator rows do).
    """

    u_mm: NDArray[np.float64]
    v_mm: NDArray[np.float64]

    def __post_init__(self) -> None:
        for name in ("u_mm", "v_mm"):
            a = np.asarray(getattr(self, name), dtype=float).reshape(-1)
            if a.size < 2 or not np.all(np.isfinite(a)):
                raise ParameterError(f"{name} must hold at least 2 finite positions")
            d = np.diff(a)
            if not (np.allclose(d, d[0], rtol=1e-6, atol=1e-9) and abs(d[0]) > 0):
                raise ParameterError(f"{name} must be evenly spaced")
            object.__setattr__(self, name, a)

    @classmethod
    def regular(cls, bounds_mm: tuple[float, float, float, float], spacing_mm: float) -> PencilLattice:
        """Lattice covering ``(u_min, v_min, u_max, v_max)`` at ``spacing_mm`` (rows from +v down)."""
        if not spacing_mm > 0:
            raise ParameterError(f"pencil_spacing_mm must be > 0, got {spacing_mm}")
        u0, v0, u1, v1 = bounds_mm
        nu = max(math.ceil((u1 - u0) / spacing_mm) + 1, 2)
        nv = max(math.ceil((v1 - v0) / spacing_mm) + 1, 2)
        cu, cv = (u0 + u1) / 2, (v0 + v1) / 2
        u = cu + (np.arange(nu) - (nu - 1) / 2) * spacing_mm
        v = cv - (np.arange(nv) - (nv - 1) / 2) * spacing_mm
        return cls(np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64))

    @property
    def spacing_mm(self) -> tuple[float, float]:
        """``(|du|, |dv|)`` in mm at the isocentre plane."""
        return (abs(float(self.u_mm[1] - self.u_mm[0])), abs(float(self.v_mm[1] - self.v_mm[0])))


@dataclass(frozen=True, eq=False)
class BeamDoseBEV:
    """Dose on the divergent beam's-eye-view lattice: planes of constant beam height × pencil rows × columns.

    Attributes
    ----------
    lattice : PencilLattice
    z_mm : ndarray, shape (nz,)
        Beam height of each plane (towards the source; decreasing, i.e. increasing depth).
    dose : ndarray, shape (nz, nv, nu)
        Dose at the pencil axes (relative: 1 = plateau of a broad field at the isocentre distance).
    wepl_mm : ndarray, shape (nz, nv, nu)
        Patient water-equivalent depth along each pencil's ray at each plane (without the compensator).
    distance_mm : ndarray, shape (nz, nv, nu)
        Geometric distance along each pencil's ray from its start point (above the patient) to each plane.
    compensator_wet_mm : ndarray, shape (nv, nu)
        Water-equivalent thickness of the compensator crossed by each pencil.
    transmission : ndarray, shape (nv, nu)
        Aperture transmission (0–1) of each pencil cell.
    starts_mm, directions : ndarray, shape (nv, nu, 3)
        LPS start point and unit direction of each pencil's ray.
    """

    lattice: PencilLattice
    z_mm: NDArray[np.float64]
    dose: NDArray[np.float64]
    wepl_mm: NDArray[np.float64]
    distance_mm: NDArray[np.float64]
    compensator_wet_mm: NDArray[np.float64]
    transmission: NDArray[np.float64]
    starts_mm: NDArray[np.float64]
    directions: NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ProtonDose:
    """Result of :func:`pencil_beam_dose`: the dose on the CT grid and on the beam's-eye-view lattice."""

    dose: Volume | None
    bev: BeamDoseBEV
    settings: dict[str, Any] = field(default_factory=dict)


def _accumulate_py(
    source: Any, sig_x: Any, sig_y: Any, hx: Any, hy: Any, cutoff: float, out: Any
) -> None:  # pragma: no cover - compiled by numba
    """Sum the pencils' cell-integrated Gaussians plane by plane (compiled lazily by numba)."""
    nz, nv, nu = source.shape
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    for k in range(nz):
        for j in range(nv):
            for i in range(nu):
                s = source[k, j, i]
                if s <= 0.0:
                    continue
                sx = sig_x[k, j, i]
                sy = sig_y[k, j, i]
                rx = math.ceil(cutoff * sx / hx[k]) if sx > 0 else 0
                ry = math.ceil(cutoff * sy / hy[k]) if sy > 0 else 0
                wx = np.empty(2 * rx + 1)
                wy = np.empty(2 * ry + 1)
                for a in range(-rx, rx + 1):
                    if sx > 0:
                        lo = (a - 0.5) * hx[k] / sx * inv_sqrt2
                        hi = (a + 0.5) * hx[k] / sx * inv_sqrt2
                        wx[a + rx] = 0.5 * (math.erf(hi) - math.erf(lo))
                    else:
                        wx[a + rx] = 1.0
                for b in range(-ry, ry + 1):
                    if sy > 0:
                        lo = (b - 0.5) * hy[k] / sy * inv_sqrt2
                        hi = (b + 0.5) * hy[k] / sy * inv_sqrt2
                        wy[b + ry] = 0.5 * (math.erf(hi) - math.erf(lo))
                    else:
                        wy[b + ry] = 1.0
                for b in range(-ry, ry + 1):
                    jj = j + b
                    if jj < 0 or jj >= nv:
                        continue
                    sb = s * wy[b + ry]
                    for a in range(-rx, rx + 1):
                        ii = i + a
                        if ii < 0 or ii >= nu:
                            continue
                        out[k, jj, ii] += sb * wx[a + rx]


_ACCUMULATE: Any = None


def _accumulate(*args: Any) -> None:
    """Run the numba-compiled :func:`_accumulate_py` (compiled and cached on first use)."""
    global _ACCUMULATE
    if _ACCUMULATE is None:
        import numba

        _ACCUMULATE = numba.njit(cache=True, fastmath=True)(_accumulate_py)
    _ACCUMULATE(*args)


def _transmission(aperture: Any, lattice: PencilLattice, sub: int = 4) -> NDArray[np.float64]:
    """Fraction of each pencil cell inside the aperture (``sub × sub`` samples per cell)."""
    import shapely

    du, dv = lattice.spacing_mm
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    uu = lattice.u_mm[None, :, None, None] + offs[None, None, None, :] * du
    vv = lattice.v_mm[:, None, None, None] + offs[None, None, :, None] * dv
    uu, vv = np.broadcast_arrays(uu, vv)
    inside = shapely.contains_xy(aperture, uu.ravel(), vv.ravel()).reshape(uu.shape)
    return np.asarray(inside.mean(axis=(2, 3)), dtype=float)


def _check_matrix(image_to_beam: ArrayLike) -> NDArray[np.float64]:
    m = np.asarray(image_to_beam, dtype=float)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise ParameterError(f"image_to_beam must be a finite 4 x 4 matrix, got shape {m.shape}")
    r = m[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-6):
        raise ParameterError("image_to_beam must be rigid (orthonormal rotation)")
    return m


def pencil_beam_dose(
    rsp: Volume,
    image_to_beam: ArrayLike,
    sad_mm: float | tuple[float, float],
    depth_dose: DepthDose,
    *,
    aperture: Any = None,
    compensator: CompensatorMap | None = None,
    lattice: PencilLattice | None = None,
    pencil_spacing_mm: float = 2.0,
    depth_step_mm: float | None = None,
    source_size_mm: float = 0.0,
    aperture_distance_mm: float | None = None,
    cutoff_sigma: float = 3.0,
    air_threshold_rsp: float = 0.1,
    to_grid: bool = True,
) -> ProtonDose:
    """Proton dose of a passively scattered field through an aperture and a range compensator (Hong 1996).

    Parameters
    ----------
    rsp : Volume
        Relative stopping power on an axis-aligned 3D grid (convert CT with
        :data:`~intrepid.physics.hu_to_relative_stopping_power`).
    image_to_beam : array_like, shape (4, 4)
        Rigid transform patient LPS (mm) → beam frame (isocentre at the origin, z towards the source), e.g.
        ``BeamGeometry.image_to_beam``.
    sad_mm : float or (float, float)
        Virtual source-axis distances (x, y), mm.
    depth_dose : BraggPeak or SpreadOutBraggPeak
        Broad-beam depth dose in water without the compensator, 1 on the peak / plateau.
    aperture : shapely geometry, optional
        Opening at the *isocentre plane* in beam (x, y) mm. None: open field (the lattice limits it).
    compensator : CompensatorMap, optional
    lattice : PencilLattice, optional
        Pencil positions at the isocentre plane. Default: ``pencil_spacing_mm`` over the aperture (or the
        compensator) plus 15 mm.
    pencil_spacing_mm : float
        Lattice spacing when ``lattice`` is not given, mm.
    depth_step_mm : float, optional
        Spacing of the depth planes, mm (default: the smallest voxel spacing, at most 1 mm).
    source_size_mm : float
        Effective (virtual) source size σ, mm (0: point source).
    aperture_distance_mm : float, optional
        Isocentre to aperture downstream face, mm (needed when ``source_size_mm > 0``).
    cutoff_sigma : float
        Gaussian tails are cut at this many σ.
    air_threshold_rsp : float
        Voxels with a lower stopping power get dose 0 on the CT grid.
    to_grid : bool
        Interpolate the dose onto the CT grid (False: only the beam's-eye-view result).

    Returns
    -------
    ProtonDose
        ``dose``: float32 Volume on the CT grid, ``Quantity.DOSE``, units ``"relative"`` (1 = plateau of a
        broad field at the isocentre distance); ``bev``: the lattice result.

    Raises
    ------
    ParameterError
        Bad parameters, no field (no aperture, compensator or lattice), CT numbers instead of stopping power.
    GeometryError
        Oblique grid, or the volume reaches the virtual source.
    """
    from intrepid.physics._raytrace import DivergentRays, cumulative_path

    if not isinstance(rsp, Volume) or rsp.ndim != 3:
        raise ParameterError("rsp must be a 3D Volume of relative stopping power")
    if rsp.quantity is Quantity.CT_NUMBER:
        raise ParameterError("rsp holds CT numbers (HU): convert with hu_to_relative_stopping_power first")
    m = _check_matrix(image_to_beam)
    sad = np.broadcast_to(np.asarray(sad_mm, dtype=float), (2,)).astype(float)
    if not np.all(np.isfinite(sad)) or np.any(sad <= 0):
        raise ParameterError(f"sad_mm must be > 0, got {sad.tolist()}")
    for name, value in (("pencil_spacing_mm", pencil_spacing_mm), ("cutoff_sigma", cutoff_sigma)):
        if not math.isfinite(value) or value <= 0:
            raise ParameterError(f"{name} must be > 0, got {value}")
    if not math.isfinite(source_size_mm) or source_size_mm < 0:
        raise ParameterError(f"source_size_mm must be >= 0, got {source_size_mm}")
    if source_size_mm > 0 and aperture_distance_mm is None:
        raise ParameterError("aperture_distance_mm is required when source_size_mm > 0")
    step = float(min(min(rsp.grid.spacing_mm), 1.0)) if depth_step_mm is None else float(depth_step_mm)
    if not math.isfinite(step) or step <= 0:
        raise ParameterError(f"depth_step_mm must be > 0, got {depth_step_mm}")

    # ---- lattice
    if lattice is None:
        if aperture is not None:
            u0, v0, u1, v1 = (float(b) for b in aperture.bounds)
        elif compensator is not None:
            rows, cols = compensator.thickness_mm.shape
            zc = compensator.plane_distance_mm
            fx, fy = sad[0] / (sad[0] - zc), sad[1] / (sad[1] - zc)
            x0, y0 = compensator.first_pixel_mm
            sy, sx = compensator.pixel_spacing_mm
            u0, u1 = x0 * fx, (x0 + (cols - 1) * sx) * fx
            v1, v0 = y0 * fy, (y0 - (rows - 1) * sy) * fy
        else:
            raise ParameterError(
                "give an aperture, a compensator or a pencil lattice: the field is undefined"
            )
        lattice = PencilLattice.regular((u0 - 15, v0 - 15, u1 + 15, v1 + 15), pencil_spacing_mm)
    nu, nv = lattice.u_mm.size, lattice.v_mm.size
    uu, vv = np.meshgrid(lattice.u_mm, lattice.v_mm)

    # ---- planes: from above the volume to below it, along the beam z axis
    lo, hi = rsp.grid.bounds_mm()
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    zc_all = corners @ m[2, :3] + m[2, 3]
    z_top, z_bottom = float(zc_all.max()), float(zc_all.min())
    if z_top >= 0.95 * float(sad.min()):
        raise GeometryError(
            f"the volume reaches beam z = {z_top:.0f} mm, too close to the virtual source "
            f"({float(sad.min()):.0f} mm)"
        )
    z_planes = z_top - np.arange(math.ceil((z_top - z_bottom) / step) + 1) * step
    nz = z_planes.size

    # ---- rays, WEPL along them
    r = m[:3, :3]
    beam_to_image_r = r.T
    iso = -beam_to_image_r @ m[:3, 3]
    x_axis, z_axis = beam_to_image_r[:, 0], beam_to_image_r[:, 2]
    z_start = z_top + 1.0
    rays = DivergentRays.from_isocenter_plane(
        np.column_stack([uu.ravel(), vv.ravel()]),
        isocenter_mm=iso,
        beam_direction=-z_axis,
        x_axis=x_axis,
        sad_mm=(sad[0], sad[1]),
        start_distance_mm=z_start,
    )
    norm = np.sqrt((uu.ravel() / sad[0]) ** 2 + (vv.ravel() / sad[1]) ** 2 + 1.0)  # 1 / cos(angle to axis)
    dist = (z_start - z_planes)[None, :] * norm[:, None]  # (N, nz)
    wepl = cumulative_path(rsp, rays.starts_mm, rays.directions, dist).reshape(nv, nu, nz)
    wepl = np.moveaxis(wepl, 2, 0)  # (nz, nv, nu)

    # ---- compensator and aperture
    trans = np.ones((nv, nu)) if aperture is None else _transmission(aperture, lattice)
    r_beam = float(depth_dose.csda_range_mm)
    e_beam = float(energy_from_range_mev(r_beam))
    if compensator is not None:
        zc = compensator.plane_distance_mm
        if zc >= float(sad.min()):
            raise GeometryError(f"compensator plane at {zc} mm lies beyond the virtual source")
        tx = compensator.thickness_at(uu * (1 - zc / sad[0]), vv * (1 - zc / sad[1]))
        wet = tx * compensator.relative_stopping_power
        drift = np.maximum(zc - z_planes[None, :], 0.0) * norm[:, None]
        sig_c = highland_sigma_mm(
            tx.ravel(),
            drift,
            e_beam,
            relative_stopping_power=compensator.relative_stopping_power,
            radiation_length_mm=compensator.radiation_length_mm,
        )
        sig_c = np.moveaxis(sig_c.reshape(nv, nu, nz), 2, 0)
    else:
        tx = np.zeros((nv, nu))
        wet = np.zeros((nv, nu))
        sig_c = np.zeros((nz, nv, nu))

    # ---- sigmas
    r_entry = np.maximum(r_beam - wet, 0.0)
    sig_p = patient_sigma_mm(wepl, r_entry[None, :, :])
    sig2x = sig_p**2 + sig_c**2
    sig2y = sig_p**2 + sig_c**2
    if source_size_mm > 0:
        za = float(aperture_distance_mm)  # type: ignore[arg-type]
        lever = np.maximum(za - z_planes, 0.0)
        sig2x = sig2x + (source_size_mm * lever / (sad[0] - za))[:, None, None] ** 2
        sig2y = sig2y + (source_size_mm * lever / (sad[1] - za))[:, None, None] ** 2

    # ---- source term and lateral accumulation
    depth = wepl + wet[None, :, :]
    idd = depth_dose.relative_dose(depth)
    inv_sq = (sad[0] / (sad[0] - z_planes)) * (sad[1] / (sad[1] - z_planes))
    source = np.ascontiguousarray(idd * trans[None, :, :] * inv_sq[:, None, None])
    du, dv = lattice.spacing_mm
    hx = du * (1 - z_planes / sad[0])
    hy = dv * (1 - z_planes / sad[1])
    bev_dose = np.zeros((nz, nv, nu))
    _accumulate(
        source,
        np.ascontiguousarray(np.sqrt(sig2x)),
        np.ascontiguousarray(np.sqrt(sig2y)),
        np.ascontiguousarray(hx),
        np.ascontiguousarray(hy),
        float(cutoff_sigma),
        bev_dose,
    )
    bev = BeamDoseBEV(
        lattice,
        np.asarray(z_planes, dtype=np.float64),
        bev_dose,
        wepl,
        np.moveaxis(dist.reshape(nv, nu, nz), 2, 0),
        wet,
        trans,
        rays.starts_mm.reshape(nv, nu, 3),
        rays.directions.reshape(nv, nu, 3),
    )
    settings = {
        "sad_mm": sad.tolist(),
        "pencil_spacing_mm": list(lattice.spacing_mm),
        "depth_step_mm": step,
        "source_size_mm": source_size_mm,
        "cutoff_sigma": cutoff_sigma,
        "beam_csda_range_mm": r_beam,
        "beam_energy_mev": e_beam,
        "pencils": int(nu * nv),
        "planes": int(nz),
    }
    _log.debug("pencil_beam_dose: %d x %d pencils, %d planes", nv, nu, nz)
    dose_vol = _to_grid(rsp, m, sad, bev, air_threshold_rsp) if to_grid else None
    return ProtonDose(dose_vol, bev, settings)


def _to_grid(
    rsp: Volume, m: NDArray[np.float64], sad: NDArray[np.float64], bev: BeamDoseBEV, air_threshold: float
) -> Volume:
    from scipy.ndimage import map_coordinates

    g = rsp.grid
    nk, nj, ni = g.shape
    out = np.zeros(g.shape, dtype=np.float32)
    u = bev.lattice.u_mm
    v = bev.lattice.v_mm
    z = bev.z_mm
    ii, jj = np.meshgrid(np.arange(ni, dtype=float), np.arange(nj, dtype=float))
    for k in range(nk):
        pts = g.index_to_world(np.stack([ii, jj, np.full_like(ii, k)], axis=-1).reshape(-1, 3))
        b = pts @ m[:3, :3].T + m[:3, 3]
        zb = b[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            ub = b[:, 0] * sad[0] / (sad[0] - zb)
            vb = b[:, 1] * sad[1] / (sad[1] - zb)
        col = (ub - u[0]) / (u[1] - u[0])
        row = (vb - v[0]) / (v[1] - v[0])
        plane = (z[0] - zb) / (z[0] - z[1]) if z.size > 1 else np.zeros_like(zb)
        vals = map_coordinates(bev.dose, [plane, row, col], order=1, mode="constant", cval=0.0)
        out[k] = vals.reshape(nj, ni).astype(np.float32)
    out[np.asarray(rsp.array) < air_threshold] = 0.0
    return Volume(
        out,
        g,
        Quantity.DOSE,
        "relative",
        rsp.frame_of_reference_uid,
        {"model": "Hong 1996 pencil beam", "normalisation": "1 = broad-field plateau at isocentre"},
    )
