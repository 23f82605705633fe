"""The gamma index (Low et al. 1998): exact, in 1D, 2D and 3D, on reference and evaluated grids that differ.

Definitions used throughout (and stated in every :class:`GammaResult` so that a report can quote them, as
Hussein et al. 2017 recommend):

- **Interpolant** (``interpolant="simplex"``, the default; ``"trilinear"`` minimises instead over the
  multi-linear interpolant by branch and bound, within 1e-4 in γ: :mod:`intrepid.analysis._gamma_trilinear`).
  The evaluated distribution is interpolated *linearly on the Kuhn (Freudenthal) simplices*
  of its grid: every cell is cut along its main diagonal into ``n!`` simplices (2 triangles in 2D, 6
  tetrahedra in 3D) and the dose is linear on each (Ju et al. 2008). It equals the evaluated dose at every
  grid node, is linear along every grid line (so in 1D it *is* linear interpolation) and differs from
  multi-linear (bi-/tri-linear) interpolation only inside cells, by at most the cell's second differences.
- **Exact minimum.** γ(r) = min over x of sqrt(|x − r|²/DTA² + (D_e(x) − D_r)²/ΔD²) is found exactly for that
  interpolant: the minimum distance from the reference point to the simplices in the scaled space, computed in
  closed form per simplex face, with the cells searched in order of distance and the search stopped when the
  distance bound reaches the best γ — no sampling step. Where reference nodes are evaluated nodes, the faces
  around the node are minimised first and the search ends there when the best γ is provably within them
  (see :mod:`intrepid.analysis._gamma_kernels`).
- **Normalisation.** Global: ΔD = dd % of the normalisation dose (the reference maximum unless given). Local:
  ΔD = dd % of the reference dose at the point.
- **Cut-off.** Reference points below ``cutoff_percent`` of the normalisation dose (reference maximum unless
  given) are not evaluated (NaN in the γ map); TG-218 recommends 10 %.
- **Search limit.** The search stops at ``max_gamma`` (> 1): points whose γ is at least ``max_gamma`` get the
  value ``max_gamma``. Every γ below it is exact, so pass / fail decisions never depend on the limit.
- **γ = 1 rule.** A point passes when γ ≤ 1 + :data:`PASS_TOLERANCE` (1e-9): a point whose γ is exactly 1 in
  exact arithmetic passes despite floating-point rounding (e.g. 1.03 − 1.00 = 0.030000000000000027).

References
----------
Low DA, Harms WB, Mutic S, Purdy JA. A technique for the quantitative evaluation of dose distributions.
Med Phys 25(5):656-661, 1998. doi:10.1118/1.598248
Ju T, Simpson T, Deasy JO, Low DA. Geometric interpretation of the γ dose distribution comparison technique:
interpolation-free calculation. Med Phys 35(3):879-887, 2008. doi:10.1118/1.2836952
Miften M et al. Tolerance limits and methodologies for IMRT measurement-based verification QA (AAPM TG-218).
Med Phys 45(4):e53-e83, 2018. doi:10.1002/mp.12810
Hussein M, Clark CH, Nisbet A. Challenges in calculation of the gamma index in radiotherapy - towards good
practice. Phys Med 36:1-11, 2017. doi:10.1016/j.ejmp.2017.03.001
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import FrameOfReferenceError, GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume

__all__ = [
    "PASS_TOLERANCE",
    "GammaBackend",
    "GammaInterpolant",
    "GammaResult",
    "GammaSettings",
    "Normalisation",
    "gamma",
    "gamma_1d",
]

_log = logging.getLogger(__name__)

#: A point passes when γ ≤ 1 + PASS_TOLERANCE (dimensionless): γ exactly 1 in exact arithmetic passes.
PASS_TOLERANCE = 1e-9
#: Name of the interpolant minimised exactly (see the module docstring).
INTERPOLATION = "linear"
#: Longer description of the interpolant, recorded in every result.
INTERPOLANT = "piecewise linear on the Kuhn (Freudenthal) simplices of the evaluated grid (Ju et al. 2008)"
#: Tolerance (mm) on the plane offset between two 2D images and on 1D position regularity.
_PLANE_TOLERANCE_MM = 1e-3


class Normalisation(enum.Enum):
    """How the dose-difference criterion ΔD is obtained from ``dd_percent``."""

    GLOBAL = "global"  #: dd % of the normalisation dose (reference maximum unless given)
    LOCAL = "local"  #: dd % of the reference dose at each point


class GammaInterpolant(enum.Enum):
    """Interpolant of the evaluated distribution over which γ is minimised (see the module docstring)."""

    SIMPLEX = "simplex"  #: linear on the Kuhn simplices of each cell: exact minimum in closed form (default)
    TRILINEAR = "trilinear"  #: multi-linear in each cell (pymedphys's): branch and bound to GAMMA_TOLERANCE


#: Multi-linear interpolant, recorded in every result computed with it.
INTERPOLANT_TRILINEAR = (
    "multi-linear (linear 1D, bilinear 2D, trilinear 3D) in each cell of the evaluated grid; minimum by "
    "branch and bound within 1e-4 in gamma"
)


class GammaBackend(enum.Enum):
    """Where the exact search runs."""

    NUMBA = "numba"  #: compiled, multi-threaded CPU kernel (default)
    TORCH = "torch"  #: vectorised PyTorch (GPU when one is present); same interpolant and decisions
    CUDA = "cuda"  #: numba-cuda kernel, one GPU thread per point (:mod:`._gamma_cuda`); same decisions


@dataclass(frozen=True)
class GammaSettings:
    """Every setting of a gamma analysis, recorded in its result.

    Attributes
    ----------
    dd_percent : float
        Dose-difference criterion in percent (of the normalisation dose, or of the local dose).
    dta_mm : float
        Distance-to-agreement criterion in mm.
    cutoff_percent : float
        Low-dose cut-off on the reference, percent of the normalisation dose (reference maximum unless given).
    normalisation : Normalisation
        Global or local dose difference.
    normalisation_dose_gy : float
        Dose (Gy, or the units of the inputs) that ``dd_percent`` (global) and ``cutoff_percent`` refer to.
    max_gamma : float
        Search limit; γ values at or above it are reported as ``max_gamma``.
    cutoff_dose_gy : float
        The cut-off as a dose: reference points below it are not evaluated.
    backend : GammaBackend
        Implementation used.
    interpolant : GammaInterpolant
        Interpolant of the evaluated distribution (simplex: exact; trilinear: within ``gamma_tolerance``).
    gamma_tolerance : float
        Largest excess of a reported γ over the exact minimum for that interpolant (0: exact to rounding).
    """

    dd_percent: float
    dta_mm: float
    cutoff_percent: float
    normalisation: Normalisation
    normalisation_dose_gy: float
    max_gamma: float
    cutoff_dose_gy: float
    backend: GammaBackend = GammaBackend.NUMBA
    interpolant: GammaInterpolant = GammaInterpolant.SIMPLEX
    gamma_tolerance: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (enums as their values)."""
        d = asdict(self)
        d["normalisation"] = self.normalisation.value
        d["backend"] = self.backend.value
        d["interpolant"] = self.interpolant.value
        return d


def _software_version() -> str:
    from intrepid import __version__

    return f"intrepid {__version__}"


@dataclass(frozen=True, eq=False)
class GammaResult:
    """The outcome of a gamma analysis.

    Attributes
    ----------
    gamma_map : Volume
        γ on the reference grid (:attr:`Quantity.GAMMA`, dimensionless); NaN where not evaluated (below the
        cut-off); ``max_gamma`` where γ is at least the search limit.
    pass_rate_percent : float
        Percentage of evaluated points with γ ≤ 1 (+ :data:`PASS_TOLERANCE`); NaN when none was evaluated.
    mean_gamma : float
        Mean γ over the evaluated points.
    gamma_1percent : float
        Near-maximum γ1%: the 99th percentile of γ over the evaluated points.
    max_gamma : float
        Largest γ found (equal to the search limit when some point reached it).
    evaluated_points : int
        Reference points at or above the cut-off.
    passed_points : int
        Evaluated points that pass.
    settings : GammaSettings
        Criteria and every setting used.
    interpolation : str
        ``"linear"``: the Kuhn-simplex linear interpolant (see :data:`INTERPOLANT`); ``"trilinear"``: the
        multi-linear interpolant (see :data:`INTERPOLANT_TRILINEAR`).
    compute_seconds : float
        Wall time of the search (s), compilation excluded when the kernel was already compiled.
    software : str
        ``"intrepid <version>"``.
    """

    gamma_map: Volume
    pass_rate_percent: float
    mean_gamma: float
    gamma_1percent: float
    max_gamma: float
    evaluated_points: int
    passed_points: int
    settings: GammaSettings
    interpolation: str = INTERPOLATION
    compute_seconds: float = 0.0
    software: str = field(default_factory=_software_version)

    @property
    def passed(self) -> NDArray[np.bool_]:
        """Boolean map (reference shape): True where the point was evaluated and passes."""
        g = self.gamma_map.array
        with np.errstate(invalid="ignore"):
            return np.asarray(np.isfinite(g) & (g <= 1.0 + PASS_TOLERANCE))

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready summary: the statistics, every setting and the timing (no γ map).

        Keys: ``pass_rate_percent``, ``mean_gamma``, ``gamma_1percent``, ``max_gamma``, ``evaluated_points``,
        ``passed_points``, ``dd_percent``, ``dta_mm``, ``cutoff_percent``, ``normalisation``,
        ``normalisation_dose_gy``, ``cutoff_dose_gy``, ``gamma_search_limit``, ``backend``, ``ndim``,
        ``interpolation``, ``interpolant``, ``gamma_tolerance``, ``pass_tolerance``, ``compute_seconds``,
        ``software``.
        """
        s = self.settings
        return {
            "pass_rate_percent": self.pass_rate_percent,
            "mean_gamma": self.mean_gamma,
            "gamma_1percent": self.gamma_1percent,
            "max_gamma": self.max_gamma,
            "evaluated_points": self.evaluated_points,
            "passed_points": self.passed_points,
            "dd_percent": s.dd_percent,
            "dta_mm": s.dta_mm,
            "cutoff_percent": s.cutoff_percent,
            "normalisation": s.normalisation.value,
            "normalisation_dose_gy": s.normalisation_dose_gy,
            "cutoff_dose_gy": s.cutoff_dose_gy,
            "gamma_search_limit": s.max_gamma,
            "backend": s.backend.value,
            "ndim": self.gamma_map.ndim if self.gamma_map.shape[0] > 1 or self.gamma_map.ndim == 3 else 1,
            "interpolation": self.interpolation,
            "interpolant": (
                INTERPOLANT if s.interpolant is GammaInterpolant.SIMPLEX else INTERPOLANT_TRILINEAR
            ),
            "gamma_tolerance": s.gamma_tolerance,
            "pass_tolerance": PASS_TOLERANCE,
            "compute_seconds": self.compute_seconds,
            "software": self.software,
        }


# ---------------------------------------------------------------------------------------------- validation
def _check_positive(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ParameterError(f"{name} must be a finite number > 0, got {value}")
    return v


def _settings(
    reference: NDArray[np.float64],
    dd_percent: float,
    dta_mm: float,
    cutoff_percent: float,
    normalisation: Normalisation,
    normalisation_dose: float | None,
    max_gamma: float,
    backend: GammaBackend,
    interpolant: GammaInterpolant = GammaInterpolant.SIMPLEX,
) -> GammaSettings:
    dd = _check_positive("dd_percent", dd_percent)
    dta = _check_positive("dta_mm", dta_mm)
    cutoff = float(cutoff_percent)
    if not math.isfinite(cutoff) or not 0.0 <= cutoff < 100.0:
        raise ParameterError(f"cutoff_percent must be in [0, 100), got {cutoff_percent}")
    if not isinstance(normalisation, Normalisation):
        raise ParameterError(
            f"normalisation must be a Normalisation (GLOBAL or LOCAL), got {normalisation!r}"
        )
    cap = float(max_gamma)
    if not math.isfinite(cap) or cap <= 1.0:
        raise ParameterError(
            f"max_gamma must be finite and > 1 (so that pass/fail is exact), got {max_gamma}"
        )
    if normalisation_dose is None:
        norm = float(np.max(reference)) if reference.size else 0.0
        if not norm > 0:
            raise ParameterError(
                f"the reference maximum must be > 0 to normalise dd_percent and cutoff_percent, got {norm}; "
                "give normalisation_dose"
            )
    else:
        norm = _check_positive("normalisation_dose", normalisation_dose)
    return GammaSettings(
        dd_percent=dd,
        dta_mm=dta,
        cutoff_percent=cutoff,
        normalisation=normalisation,
        normalisation_dose_gy=norm,
        max_gamma=cap,
        cutoff_dose_gy=cutoff / 100.0 * norm,
        backend=backend,
        interpolant=interpolant,
        gamma_tolerance=0.0 if interpolant is GammaInterpolant.SIMPLEX else _trilinear_tolerance(),
    )


def _trilinear_tolerance() -> float:
    from intrepid.analysis._gamma_trilinear import GAMMA_TOLERANCE

    return GAMMA_TOLERANCE


def _index_maps(reference: Volume, evaluated: Volume) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``alpha``, ``beta`` such that evaluated index = alpha + beta × reference index, per axis i, j, k."""
    rg, eg = reference.grid, evaluated.grid
    if rg.ndim != eg.ndim:
        raise GeometryError(
            f"reference and evaluated must both be 2D or both 3D, got {rg.ndim}D and {eg.ndim}D"
        )
    if not np.max(np.abs(np.asarray(rg.direction_matrix) - np.asarray(eg.direction_matrix))) <= 1e-4:
        raise GeometryError(
            "reference and evaluated grids must have the same direction matrix (resample one onto the other "
            f"first), got {np.round(rg.direction_matrix, 6).tolist()} and "
            f"{np.round(eg.direction_matrix, 6).tolist()}"
        )
    d = eg.direction_matrix
    h_r = np.asarray(rg.spacing_mm)
    h_e = np.asarray(eg.spacing_mm)
    shift = d.T @ (np.asarray(rg.origin_mm) - np.asarray(eg.origin_mm))
    alpha = shift / h_e
    beta = h_r / h_e
    if rg.ndim == 2:
        if abs(shift[2]) > _PLANE_TOLERANCE_MM:
            raise GeometryError(
                f"the 2D reference and evaluated images lie in different planes ({shift[2]:.4f} mm apart "
                "along their normal)"
            )
        alpha[2] = 0.0
        beta[2] = 0.0
    return alpha, beta


def _check_finite(volume: Volume, name: str) -> None:
    """:meth:`Volume.check_finite`, after a cheap test: a sum is finite when no value is NaN or infinite."""
    a = volume.array
    if a.dtype.kind in "fc" and not np.isfinite(np.sum(a)):  # NaN, ±inf, or an overflow of finite values
        volume.check_finite(name)


def _as_3d(array: NDArray[np.float64]) -> NDArray[np.float64]:
    a = np.ascontiguousarray(array, dtype=np.float64)
    return a.reshape((1,) * (3 - a.ndim) + a.shape)


# ---------------------------------------------------------------------------------------------- public API
def gamma(
    reference: Volume,
    evaluated: Volume,
    *,
    dd_percent: float,
    dta_mm: float,
    cutoff_percent: float = 10.0,
    normalisation: Normalisation = Normalisation.GLOBAL,
    normalisation_dose: float | None = None,
    max_gamma: float = 2.0,
    backend: GammaBackend | str = GammaBackend.NUMBA,
    ignore_frame_of_reference: bool = False,
    device: str | None = None,
    interpolant: GammaInterpolant | str = GammaInterpolant.SIMPLEX,
) -> GammaResult:
    """Exact gamma index of ``evaluated`` against ``reference`` (2D images or 3D volumes).

    Parameters
    ----------
    reference : Volume
        Reference distribution (e.g. the plan dose); γ is computed at each of its grid points at or above the
        cut-off. Units: Gy (or any dose unit shared with ``evaluated``).
    evaluated : Volume
        Evaluated distribution (e.g. the measurement), interpolated linearly (Kuhn simplices) between its grid
        points. It may have another spacing and origin than ``reference`` but the same direction matrix, the
        same dimension, and (2D) lie in the same plane.
    dd_percent : float
        Dose-difference criterion in percent (> 0): of the normalisation dose (global) or of the local
        reference dose (local).
    dta_mm : float
        Distance-to-agreement criterion in mm (> 0).
    cutoff_percent : float
        Reference points below this percentage of the normalisation dose are not evaluated (default 10 %,
        AAPM TG-218).
    normalisation : Normalisation
        ``Normalisation.GLOBAL`` (default) or ``Normalisation.LOCAL``.
    normalisation_dose : float, optional
        Dose (same units as the inputs) for global normalisation and for the cut-off; default: the reference
        maximum.
    max_gamma : float
        Search limit (> 1, default 2): γ at or above it is reported as ``max_gamma``; smaller γ are exact.
    backend : GammaBackend or str
        ``"numba"`` (default, multi-threaded CPU), ``"torch"`` (PyTorch; CUDA when available) or ``"cuda"``
        (numba-cuda kernel on an NVIDIA GPU: :mod:`intrepid.analysis._gamma_cuda`).
    ignore_frame_of_reference : bool
        Compare volumes whose Frame of Reference UIDs differ (you assert they are registered).
    device : str, optional
        Torch device for ``backend="torch"`` (default ``"cuda"`` when available, else ``"cpu"``).
    interpolant : GammaInterpolant or str
        ``"simplex"`` (default): linear on the Kuhn simplices of each cell, exact minimum (Ju et al. 2008).
        ``"trilinear"``: multi-linear in each cell (bilinear in 2D), the interpolant of pymedphys and most
        converged references; minimum by branch and bound, reported γ at most 1e-4 above the exact minimum,
        pass / fail exact (numba backend only).

    Returns
    -------
    GammaResult
        γ map on the reference grid, pass rate, mean γ, γ1%, maximum γ, counts, settings and timing.

    Raises
    ------
    ParameterError
        A criterion out of range, non-finite doses, or a reference without positive dose.
    GeometryError
        Different dimensions, different grid directions, or 2D images in different planes.
    FrameOfReferenceError
        Different Frame of Reference UIDs (unless ``ignore_frame_of_reference``).

    Examples
    --------
    >>> import numpy as np
    >>> from intrepid.geometry import Grid, Volume
    >>> g = Grid((50, 50), origin_mm=(0, 0, 0), spacing_mm=(1, 1, 1))
    >>> ref = Volume(np.ones((50, 50)), g)
    >>> res = gamma(ref, ref.with_array(np.full((50, 50), 1.015)), dd_percent=3, dta_mm=2)
    >>> round(res.mean_gamma, 6), res.pass_rate_percent
    (0.5, 100.0)

    References
    ----------
    Low et al. 1998, doi:10.1118/1.598248; Ju et al. 2008, doi:10.1118/1.2836952.
    """
    backend = _as_backend(backend)
    interp = _as_interpolant(interpolant, backend)
    if not isinstance(reference, Volume) or not isinstance(evaluated, Volume):
        raise ParameterError("reference and evaluated must be Volume objects (use gamma_1d for profiles)")
    ref_uid, ev_uid = reference.frame_of_reference_uid, evaluated.frame_of_reference_uid
    if ref_uid and ev_uid and ref_uid != ev_uid and not ignore_frame_of_reference:
        raise FrameOfReferenceError(
            f"reference Frame of Reference UID {ref_uid} differs from evaluated {ev_uid}; register them or "
            "pass ignore_frame_of_reference=True"
        )
    _check_finite(reference, "reference")
    _check_finite(evaluated, "evaluated")
    alpha, beta = _index_maps(reference, evaluated)
    ref = _as_3d(reference.array)
    ev = _as_3d(evaluated.array)
    settings = _settings(
        ref, dd_percent, dta_mm, cutoff_percent, normalisation, normalisation_dose, max_gamma, backend, interp
    )
    ndim = reference.ndim
    scale = np.asarray(evaluated.grid.spacing_mm, dtype=float) / settings.dta_mm
    if ndim == 2:
        scale[2] = 1.0
    gamma_map, stats, seconds = _run(ref, ev, alpha, beta, scale, settings, ndim, device)
    return _result(reference, gamma_map, stats, settings, seconds)


def gamma_1d(
    reference_dose: ArrayLike,
    evaluated_dose: ArrayLike,
    *,
    reference_positions_mm: ArrayLike,
    evaluated_positions_mm: ArrayLike,
    dd_percent: float,
    dta_mm: float,
    cutoff_percent: float = 10.0,
    normalisation: Normalisation = Normalisation.GLOBAL,
    normalisation_dose: float | None = None,
    max_gamma: float = 2.0,
    backend: GammaBackend | str = GammaBackend.NUMBA,
    interpolant: GammaInterpolant | str = GammaInterpolant.SIMPLEX,
) -> GammaResult:
    """Exact gamma index of two dose profiles (1D); the evaluated profile is interpolated linearly.

    Parameters
    ----------
    reference_dose, evaluated_dose : array_like, shape (n,) and (m,)
        Doses (Gy or any shared unit).
    reference_positions_mm, evaluated_positions_mm : array_like, shape (n,) and (m,)
        Positions in mm, strictly increasing and equally spaced (within 1e-3 mm).
    dd_percent, dta_mm, cutoff_percent, normalisation, normalisation_dose, max_gamma, backend, interpolant
        As in :func:`gamma` (in 1D both interpolants are the linear one; ``"trilinear"`` runs the bounded
        search, within 1e-4).

    Returns
    -------
    GammaResult
        Its ``gamma_map`` is a one-row 2D image (shape ``(1, n)``) with the positions along x.

    Examples
    --------
    >>> x = np.arange(0.0, 50.0, 1.0)
    >>> r = gamma_1d(np.ones(50), np.full(50, 1.03), reference_positions_mm=x, evaluated_positions_mm=x,
    ...              dd_percent=3, dta_mm=3)
    >>> r.pass_rate_percent
    100.0
    """
    ref_vol = _profile_volume("reference", reference_dose, reference_positions_mm)
    ev_vol = _profile_volume("evaluated", evaluated_dose, evaluated_positions_mm)
    backend = _as_backend(backend)
    interp = _as_interpolant(interpolant, backend)
    _check_finite(ref_vol, "reference_dose")
    _check_finite(ev_vol, "evaluated_dose")
    alpha, beta = _index_maps(ref_vol, ev_vol)
    alpha[1], beta[1] = 0.0, 0.0
    ref = _as_3d(ref_vol.array)
    ev = _as_3d(ev_vol.array)
    settings = _settings(
        ref, dd_percent, dta_mm, cutoff_percent, normalisation, normalisation_dose, max_gamma, backend, interp
    )
    scale = np.array([ev_vol.grid.spacing_mm[0] / settings.dta_mm, 1.0, 1.0])
    gamma_map, stats, seconds = _run(ref, ev, alpha, beta, scale, settings, 1, None)
    return _result(ref_vol, gamma_map, stats, settings, seconds)


# ---------------------------------------------------------------------------------------------- internals
def _as_backend(backend: GammaBackend | str) -> GammaBackend:
    try:
        return GammaBackend(backend)
    except ValueError:
        raise ParameterError(f"backend must be 'numba', 'torch' or 'cuda', got {backend!r}") from None


def _as_interpolant(interpolant: GammaInterpolant | str, backend: GammaBackend) -> GammaInterpolant:
    try:
        interp = GammaInterpolant(interpolant)
    except ValueError:
        raise ParameterError(f"interpolant must be 'simplex' or 'trilinear', got {interpolant!r}") from None
    if interp is GammaInterpolant.TRILINEAR and backend is not GammaBackend.NUMBA:
        raise ParameterError("interpolant 'trilinear' runs on the numba backend only; use backend='numba'")
    return interp


def _profile_volume(name: str, dose: ArrayLike, positions_mm: ArrayLike) -> Volume:
    d = np.asarray(dose, dtype=float)
    x = np.asarray(positions_mm, dtype=float)
    if d.ndim != 1 or x.shape != d.shape or d.size < 2:
        raise ParameterError(
            f"{name} dose and positions must be 1D arrays of the same length >= 2, got shapes {d.shape} "
            f"and {x.shape}"
        )
    step = np.diff(x)
    if not np.all(np.isfinite(x)) or step[0] <= 0 or np.max(np.abs(step - step[0])) * d.size > 1e-3:
        raise ParameterError(f"{name} positions_mm must be finite, increasing and equally spaced")
    grid = Grid((1, d.size), origin_mm=(float(x[0]), 0.0, 0.0), spacing_mm=(float(step[0]), 1.0, 1.0))
    return Volume(d.reshape(1, -1), grid, Quantity.DOSE)


#: Bins of the γ histogram that the kernel accumulates to locate γ1% without sorting all values.
_HIST_BINS = 1024


@dataclass(frozen=True)
class _Stats:
    """Counts and moments of the evaluated γ, reduced from the kernel's per-task accumulators."""

    evaluated: int
    passed: int
    total: float
    maximum: float
    histogram: NDArray[np.int64]


def _run(
    ref: NDArray[np.float64],
    ev: NDArray[np.float64],
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    scale: NDArray[np.float64],
    settings: GammaSettings,
    ndim: int,
    device: str | None,
) -> tuple[NDArray[np.float64], _Stats | None, float]:
    """γ (capped, NaN where not evaluated) on the reference array shape (3D view), its statistics when the
    kernel gathered them (numba), and the seconds taken."""
    from intrepid.analysis._gamma_kernels import face_table, search_offsets

    global_dd = (
        settings.dd_percent / 100.0 * settings.normalisation_dose_gy
        if settings.normalisation is Normalisation.GLOBAL
        else 0.0
    )
    local_fraction = settings.dd_percent / 100.0
    blocks, counts = face_table(ndim)
    alpha, beta, on_nodes = _snap_to_nodes(alpha, beta, ndim)
    trilinear = settings.interpolant is GammaInterpolant.TRILINEAR
    on_nodes = on_nodes and settings.backend in (GammaBackend.NUMBA, GammaBackend.CUDA) and not trilinear
    _check_budget(ref, ev, scale, settings, ndim)
    offsets, bounds = search_offsets(scale, settings.max_gamma, ndim, on_nodes, ev.shape[::-1])
    if trilinear:
        out, stats, seconds = _run_trilinear(
            ref, ev, alpha, beta, scale, global_dd, local_fraction, settings, offsets, bounds
        )
    elif settings.backend is GammaBackend.CUDA:
        from intrepid.analysis._gamma_cuda import gamma_cuda

        n_slices = ref.shape[0]
        out, seconds = gamma_cuda(
            ref, ev, alpha, beta, scale, np.full(n_slices, global_dd), local_fraction,
            np.full(n_slices, settings.cutoff_dose_gy), settings.max_gamma**2, offsets, bounds, ndim,
            on_nodes,
        )  # fmt: skip
        stats = None
    elif settings.backend is GammaBackend.TORCH:
        from intrepid.analysis._gamma_torch import gamma_torch

        start = time.perf_counter()
        out = gamma_torch(
            ref,
            ev,
            alpha,
            beta,
            scale,
            global_dd,
            local_fraction,
            settings.cutoff_dose_gy,
            settings.max_gamma**2,
            offsets,
            bounds,
            blocks,
            counts,
            device,
        )
        np.sqrt(out, out=out)
        seconds = time.perf_counter() - start
        stats = None
    else:
        import numba

        from intrepid.analysis._gamma_kernels import gamma_kernel, ring_table, star_table

        _prepare_kernel()
        star = star_table(scale, ndim)
        ring = ring_table(scale, settings.max_gamma, ndim) if on_nodes else _empty_ring()
        n_threads = numba.get_num_threads()
        n_tasks = max(1, min(ref.shape[0] * ref.shape[1], 16 * n_threads))
        task_stats = np.empty((n_tasks, 4))
        task_hist = np.zeros((n_tasks, _HIST_BINS), dtype=np.int64)
        out = np.empty_like(ref)
        start = time.perf_counter()
        kernel: Any = gamma_kernel  # numba's Dispatcher stub does not accept *args
        kernel(
            ref,
            ev,
            alpha,
            beta,
            scale,
            global_dd,
            local_fraction,
            settings.cutoff_dose_gy,
            settings.max_gamma**2,
            offsets,
            bounds,
            blocks,
            counts,
            out,
            n_threads,
            ndim,
            on_nodes,
            *_table_args(star, ring),
            task_stats,
            task_hist,
            1.0 + PASS_TOLERANCE,
        )
        seconds = time.perf_counter() - start
        stats = _Stats(
            evaluated=int(task_stats[:, 0].sum()),
            passed=int(task_stats[:, 1].sum()),
            total=float(task_stats[:, 2].sum()),
            maximum=float(task_stats[:, 3].max()),
            histogram=task_hist.sum(axis=0),
        )
    _log.info("gamma: %d reference points searched in %.3f s", ref.size, seconds)
    return out, stats, seconds


#: Memory (bytes) that one gamma computation may allocate beyond its inputs: the γ map, float64 copies of the
#: inputs and the search tables. Larger grids or criteria get a one-line ParameterError, never an allocation
#: failure.
MEMORY_BUDGET_BYTES = 4 << 30
#: Largest number of cells searched around one reference point (the search table has one row per cell and
#: the search may visit each): bounds memory (32 bytes a cell) and time for any DTA and search limit.
MAX_SEARCH_CELLS = 1 << 20


def _check_budget(
    ref: NDArray[np.float64],
    ev: NDArray[np.float64],
    scale: NDArray[np.float64],
    settings: GammaSettings,
    ndim: int,
) -> None:
    """Refuse, in one line, criteria or grids whose search or memory would exceed the stated budgets."""
    from intrepid.analysis._gamma_kernels import search_cell_count

    cells = search_cell_count(scale, settings.max_gamma, ndim, ev.shape[::-1])
    if cells > MAX_SEARCH_CELLS:
        spacing = ", ".join(f"{x * settings.dta_mm:.3g}" for x in scale[:ndim])
        raise ParameterError(
            f"dta_mm {settings.dta_mm:g} with max_gamma {settings.max_gamma:g} over an evaluated spacing of "
            f"({spacing}) mm means searching {cells:.3g} cells around every point (limit "
            f"{MAX_SEARCH_CELLS}); lower dta_mm or max_gamma, or resample the evaluated dose coarser"
        )
    needed = ref.size * 8 + cells * 32 + (ref.size + ev.size) * 8
    if needed > MEMORY_BUDGET_BYTES:
        raise ParameterError(
            f"gamma on a {ref.size:.3g}-point reference and {ev.size:.3g}-point evaluated grid needs about "
            f"{needed / 2**30:.1f} GiB (budget {MEMORY_BUDGET_BYTES / 2**30:.0f} GiB); crop or resample the "
            "doses"
        )


def _run_trilinear(
    ref: NDArray[np.float64],
    ev: NDArray[np.float64],
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    scale: NDArray[np.float64],
    global_dd: float,
    local_fraction: float,
    settings: GammaSettings,
    offsets: NDArray[np.int64],
    bounds: NDArray[np.float64],
) -> tuple[NDArray[np.float64], _Stats, float]:
    """γ on the multi-linear interpolant (:mod:`intrepid.analysis._gamma_trilinear`), with its statistics."""
    import numba

    from intrepid.analysis._gamma_trilinear import trilinear_kernel

    _prepare_trilinear()
    axes = np.array([a for a in range(3) if ev.shape[2 - a] > 1], dtype=np.int64)
    n_threads = numba.get_num_threads()
    n_tasks = max(1, min(ref.shape[0] * ref.shape[1], 16 * n_threads))
    task_stats = np.empty((n_tasks, 4))
    task_hist = np.zeros((n_tasks, _HIST_BINS), dtype=np.int64)
    out = np.empty_like(ref)
    start = time.perf_counter()
    kernel: Any = trilinear_kernel
    kernel(
        ref, ev, alpha, beta, scale, global_dd, local_fraction, settings.cutoff_dose_gy,
        settings.max_gamma**2, offsets, bounds, axes, settings.gamma_tolerance, out, task_stats, task_hist,
        1.0 + PASS_TOLERANCE,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    stats = _Stats(
        evaluated=int(task_stats[:, 0].sum()),
        passed=int(task_stats[:, 1].sum()),
        total=float(task_stats[:, 2].sum()),
        maximum=float(task_stats[:, 3].max()),
        histogram=task_hist.sum(axis=0),
    )
    return out, stats, seconds


def _prepare_trilinear() -> float:
    """Load (or compile, the first time) the trilinear kernel so that timings exclude it; seconds taken."""
    from intrepid.analysis._gamma_trilinear import trilinear_kernel

    if trilinear_kernel.signatures:
        return 0.0
    start = time.perf_counter()
    one = np.ones((1, 1, 2))
    kernel: Any = trilinear_kernel
    kernel(
        one, one, np.zeros(3), np.ones(3), np.ones(3), 1.0, 0.0, 0.0, 4.0, np.zeros((1, 3), dtype=np.int64),
        np.zeros(1), np.zeros(1, dtype=np.int64), 1e-4, np.empty_like(one), np.empty((1, 4)),
        np.zeros((1, 8), dtype=np.int64), 1.0 + PASS_TOLERANCE,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    _log.info("gamma: numba trilinear kernel loaded or compiled in %.2f s", seconds)
    return seconds


def _snap_to_nodes(
    alpha: NDArray[np.float64], beta: NDArray[np.float64], ndim: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], bool]:
    """Whether every reference node is an evaluated node (same spacing, origins whole steps apart).

    Within 1e-9 of a step (far below any dosimetric length) the maps are snapped to exact integers, so that
    the kernel can use the node values directly (its star search).
    """
    a = np.array(alpha, dtype=float)
    b = np.array(beta, dtype=float)
    on_nodes = bool(
        np.all(np.abs(b[:ndim] - 1.0) <= 1e-9) and np.all(np.abs(a[:ndim] - np.round(a[:ndim])) <= 1e-9)
    )
    if on_nodes:
        a[:ndim] = np.round(a[:ndim])
        b[:ndim] = 1.0
    return a, b, on_nodes


@functools.lru_cache(maxsize=1)
def _empty_ring() -> Any:
    """A ring table without faces (grids whose nodes differ: no star or ring search)."""
    from intrepid.analysis._gamma_kernels import RingTable

    return RingTable(
        vertices=np.zeros((0, 4, 3), dtype=np.int64),
        m=np.zeros(0, dtype=np.int64),
        inv_p=np.zeros((0, 3)),
        y=np.zeros((0, 3)),
        perp2=np.zeros(0),
        bound=np.zeros(0),
        cell_start=np.zeros(1, dtype=np.int64),
        cell_base=np.zeros((0, 3), dtype=np.int64),
        cell_bound=np.zeros(0),
        cell_reach=np.zeros(0, dtype=np.int64),
        limit2=0.0,
        cell_index=np.full((1, 1, 1), -1, dtype=np.int64),
        index_low=0,
    )


def _table_args(star: Any, ring: Any) -> tuple[Any, ...]:
    """The star- and ring-table arrays in the order :func:`gamma_kernel` takes them."""
    return (
        star.nodes, star.edge_nodes, star.edge_inv_p, star.face_edges, star.face_m, star.face_k, star.rho2,
        ring.vertices, ring.m, ring.inv_p, ring.y, ring.perp2, ring.bound, ring.cell_start, ring.cell_base,
        ring.cell_bound, ring.cell_reach, ring.limit2, ring.cell_index, ring.index_low,
    )  # fmt: skip


def _prepare_kernel() -> float:
    """Load (or compile, the first time) the numba kernel so that timings exclude it; seconds taken."""
    from intrepid.analysis._gamma_kernels import face_table, gamma_kernel, ring_table, star_table

    if gamma_kernel.signatures:
        return 0.0
    start = time.perf_counter()
    blocks, counts = face_table(1)
    star = star_table(np.ones(3), 1)
    ring = ring_table(np.ones(3), 2.0, 1)
    one = np.ones((1, 1, 2))
    kernel: Any = gamma_kernel  # numba's Dispatcher stub does not accept *args
    kernel(
        one,
        one,
        np.zeros(3),
        np.ones(3),
        np.ones(3),
        1.0,
        0.0,
        0.0,
        1.0,
        np.zeros((1, 3), dtype=np.int64),
        np.zeros(1),
        blocks,
        counts,
        np.empty_like(one),
        1,
        1,
        True,
        *_table_args(star, ring),
        np.empty((1, 4)),
        np.zeros((1, 8), dtype=np.int64),
        1.0 + PASS_TOLERANCE,
    )
    seconds = time.perf_counter() - start
    _log.info("gamma: numba kernel loaded or compiled in %.2f s", seconds)
    return seconds


def _result(
    reference: Volume,
    gamma_values: NDArray[np.float64],
    stats: _Stats | None,
    settings: GammaSettings,
    seconds: float,
) -> GammaResult:
    g = gamma_values.reshape(reference.shape)
    if stats is None:
        values = g[np.isfinite(g)]
        n = int(values.size)
        passed = int(np.count_nonzero(values <= 1.0 + PASS_TOLERANCE))
        total = float(values.sum()) if n else math.nan
        largest = float(values.max()) if n else math.nan
        near_max = float(np.percentile(values, 99)) if n else math.nan
    else:
        n, passed, total, largest = stats.evaluated, stats.passed, stats.total, stats.maximum
        near_max = _percentile_99(g, n, stats.histogram, settings.max_gamma) if n else math.nan
    if n:
        summary = (100.0 * passed / n, total / n, near_max, largest)
    else:
        _log.warning("gamma: no reference point at or above the cut-off (%g)", settings.cutoff_dose_gy)
        summary = (math.nan, math.nan, math.nan, math.nan)
    gamma_map = Volume(
        g,
        reference.grid,
        Quantity.GAMMA,
        units="1",
        frame_of_reference_uid=reference.frame_of_reference_uid,
        metadata={
            "criteria": f"{settings.dd_percent:g}%/{settings.dta_mm:g}mm {settings.normalisation.value}"
        },
    )
    return GammaResult(
        gamma_map=gamma_map,
        pass_rate_percent=summary[0],
        mean_gamma=summary[1],
        gamma_1percent=summary[2],
        max_gamma=summary[3],
        evaluated_points=n,
        passed_points=passed,
        settings=settings,
        interpolation=INTERPOLATION if settings.interpolant is GammaInterpolant.SIMPLEX else "trilinear",
        compute_seconds=seconds,
    )


def _percentile_99(g: NDArray[np.float64], n: int, histogram: NDArray[np.int64], cap: float) -> float:
    """``np.percentile(finite values of g, 99)`` (linear method), reading only the top of the distribution.

    The histogram of the ``n`` finite values over ``[0, cap]`` locates the bin of the lower order statistic;
    the values from one bin below it up are gathered and partitioned, and numpy's interpolation is repeated.
    """
    position = (n - 1) * 0.99
    r0 = math.floor(position)
    r1 = min(r0 + 1, n - 1)
    b0 = int(np.searchsorted(np.cumsum(histogram), r0, side="right"))
    edge = (b0 - 1) * cap / histogram.size
    top = g[g >= edge] if b0 > 1 else g[np.isfinite(g)]
    below = n - top.size
    if below > r0:  # rounding at a bin edge: fall back to all values
        top, below = g[np.isfinite(g)], 0
    part = np.partition(top, [r0 - below, r1 - below])
    a, b = float(part[r0 - below]), float(part[r1 - below])
    t = position - r0
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t
