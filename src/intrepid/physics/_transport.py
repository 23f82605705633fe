"""Photon transport through the patient: primary transmission and patient scatter reaching the detector.

Both are computed from the water-equivalent (radiological) thickness along each source → detector-pixel ray,
i.e. the line integral of relative electron density × path length, which is what Compton-dominated
megavoltage attenuation depends on.

* Primary: Σᵢ ψᵢ (μ_en/ρ)ᵢ rᵢ exp(−μᵢ t) / Σᵢ ψᵢ (μ_en/ρ)ᵢ rᵢ over the spectral bins (NIST XCOM μ for water),
  so the beam hardens with thickness; r is the detector's relative energy response (1 for dose to water).
* Scatter: a first-order Compton (Klein–Nishina) pencil-beam kernel through a water slab of thickness t to a
  detector at air gap g, integrated over depth, with the scattered photon's energy, its attenuation on the way
  out and the detector response at that energy, times a multiple-scatter build-up factor; superposed over the
  field with thickness-binned FFT convolutions (the approach of Swindell & Evans 1996 and McCurdy & Pistorius
  2000).

References
----------
Swindell W, Evans PM. Scattered radiation in portal images: a Monte Carlo simulation and a simple physical
model. Med Phys 1996;23:63-73 [recall].
McCurdy BMC, Pistorius S. A two-step algorithm for predicting portal dose images in arbitrary detector
positions. Med Phys 2000;27:2109-2116 [recall].
Klein O, Nishina Y. Z Phys 1929;52:853-868, [recall].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import ParameterError
from intrepid.physics._beam import (
    BeamModel,
    water_mass_attenuation_cm2_g,
    water_mass_energy_absorption_cm2_g,
)
from intrepid.physics._kernels import FFT_WORKERS

__all__ = [
    "EnergyResponse",
    "ScatterModel",
    "SpectralScatter",
    "TabulatedEnergyResponse",
    "patient_scatter",
    "patient_scatter_spectral",
    "primary_transmission",
    "scatter_kernel_radial",
    "scatter_to_primary_ratio",
]

#: Electron rest energy (MeV).
ELECTRON_MASS_MEV = 0.51099895
#: Classical electron radius squared (mm²).
R_E2_MM2 = (2.8179403262e-12) ** 2
#: Electron density of water (electrons / mm³): 3.3428e23 per cm³.
WATER_ELECTRONS_PER_MM3 = 3.3428e20


@dataclass(frozen=True)
class EnergyResponse:
    """Relative detector response per unit collision kerma to water, as a function of photon energy.

    r(E) = 1 + amplitude · (reference_mev / E)^exponent. ``amplitude = 0`` is a water-equivalent detector.
    The power law stands for the photo-electric excess of a high-Z phosphor (Gd₂O₂S) over water, which grows
    steeply as the energy falls (see docs/physics.md; the parameters are fitted, not measured).
    """

    amplitude: float = 0.0
    reference_mev: float = 1.0
    exponent: float = 2.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.amplitude) or self.amplitude < 0:
            raise ParameterError(f"amplitude must be >= 0, got {self.amplitude}")
        if not math.isfinite(self.reference_mev) or self.reference_mev <= 0:
            raise ParameterError(f"reference_mev must be > 0, got {self.reference_mev}")
        if not math.isfinite(self.exponent) or self.exponent < 0:
            raise ParameterError(f"exponent must be >= 0, got {self.exponent}")

    def __call__(self, energy_mev: ArrayLike) -> NDArray[np.float64]:
        e = np.asarray(energy_mev, dtype=float)
        return np.asarray(1.0 + self.amplitude * (self.reference_mev / e) ** self.exponent, dtype=float)


WATER = EnergyResponse()

# Relative response of a Gd₂O₂S:Tb / a-Si EPID (1 mm Cu build-up, ~0.4 mm phosphor) per unit water collision
# kerma versus photon energy, normalised to 1 at 1.25 MeV. Shape read from the Monte Carlo response curves of
# Yeboah & Pistorius 2000 (Med Phys 27:330), Kirkby & Sloboda 2005 (Med Phys 32:1115) and McCurdy et al. 2001
# (Med Phys 28:911) [recall: values digitised from memory, not re-read]: a several-fold over-response below
# ~0.3 MeV (photo-electric absorption in Gd, K edge 50 keV), ~1.3 at 0.5 MeV, within 2 % of 1 above 1 MeV.
_GOS_E_MEV = (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 20.0)
_GOS_RESPONSE = (6.0, 4.2, 3.0, 1.9, 1.5, 1.3, 1.18, 1.07, 1.02, 1.0, 0.99, 0.98, 0.98, 0.99, 1.0, 1.0)


@dataclass(frozen=True)
class TabulatedEnergyResponse:
    """Detector response per unit water collision kerma from a table, log-log interpolated.

    r(E) = r_table(E)^s: the exponent ``strength`` s scales the over-response in log space (s = 0 is water,
    s = 1 the table); the Monte Carlo studies differ by roughly ±25 % in log-response at 0.1–0.3 MeV, which
    is the range the data sets draw s from (see :mod:`intrepid.physics._detector_effects`).

    Parameters
    ----------
    energies_mev : tuple of float
        Increasing energies (MeV) of the table.
    values : tuple of float
        Relative response at those energies (> 0).
    strength : float
        Exponent s >= 0 applied to the table.

    Examples
    --------
    >>> r = TabulatedEnergyResponse.gd2o2s()
    >>> round(float(r(0.1)), 1), round(float(r(1.25)), 3)
    (6.0, 1.0)
    """

    energies_mev: tuple[float, ...] = _GOS_E_MEV
    values: tuple[float, ...] = _GOS_RESPONSE
    strength: float = 1.0

    def __post_init__(self) -> None:
        e = np.asarray(self.energies_mev, dtype=float)
        v = np.asarray(self.values, dtype=float)
        if e.ndim != 1 or e.size < 2 or e.size != v.size or np.any(np.diff(e) <= 0) or np.any(e <= 0):
            raise ParameterError("energies_mev must be >= 2 increasing positive values, one per value")
        if np.any(~np.isfinite(v)) or np.any(v <= 0):
            raise ParameterError("values must be finite and > 0")
        if not math.isfinite(self.strength) or self.strength < 0:
            raise ParameterError(f"strength must be >= 0, got {self.strength}")

    @classmethod
    def gd2o2s(cls, strength: float = 1.0) -> TabulatedEnergyResponse:
        """The Gd₂O₂S / a-Si response table of this module, with exponent ``strength``."""
        return cls(_GOS_E_MEV, _GOS_RESPONSE, float(strength))

    def __call__(self, energy_mev: ArrayLike) -> NDArray[np.float64]:
        e = np.clip(np.asarray(energy_mev, dtype=float), self.energies_mev[0], self.energies_mev[-1])
        log_r = np.interp(np.log(e), np.log(np.asarray(self.energies_mev)), np.log(np.asarray(self.values)))
        return np.asarray(np.exp(self.strength * log_r), dtype=float)


#: Any response function of photon energy accepted by the transport functions.
Response = EnergyResponse | TabulatedEnergyResponse


@dataclass(frozen=True)
class ScatterModel:
    """Parameters of the patient-scatter model.

    Parameters
    ----------
    multiple_scatter_coefficient : float
        κ of the multiple-scatter build-up factor B = 1 + κ μ̄ t applied to the single-scatter kernel
        (μ̄ the spectrum-mean attenuation coefficient, t the thickness).
    depth_steps : int
        Number of depth samples of the single-scatter integral.
    max_radius_mm : float
        Radius (mm at the detector) beyond which the kernel is cut.
    """

    multiple_scatter_coefficient: float = 0.5
    depth_steps: int = 48
    max_radius_mm: float = 400.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.multiple_scatter_coefficient) or self.multiple_scatter_coefficient < 0:
            raise ParameterError(
                f"multiple_scatter_coefficient must be >= 0, got {self.multiple_scatter_coefficient}"
            )
        if int(self.depth_steps) < 4:
            raise ParameterError(f"depth_steps must be >= 4, got {self.depth_steps}")
        if not self.max_radius_mm > 0:
            raise ParameterError(f"max_radius_mm must be > 0, got {self.max_radius_mm}")


def _check_thickness(thickness_mm: ArrayLike) -> NDArray[np.float64]:
    t = np.asarray(thickness_mm, dtype=float)
    if not np.all(np.isfinite(t)):
        raise ParameterError("thickness_mm must be finite (water-equivalent thickness in mm)")
    if t.size and float(t.min()) < 0:
        raise ParameterError(f"thickness_mm must be >= 0, got a minimum of {float(t.min())}")
    return t


def _kerma_weights(beam: BeamModel, response: Response) -> NDArray[np.float64]:
    e = beam.energies
    return np.asarray(beam.weights * water_mass_energy_absorption_cm2_g(e) * response(e), dtype=float)


def primary_transmission(
    thickness_mm: ArrayLike, beam: BeamModel, *, response: Response = WATER
) -> NDArray[np.float64]:
    """Primary transmission of the beam through water-equivalent thickness, as the detector weighs it.

    T(t) = Σᵢ ψᵢ (μ_en/ρ)ᵢ r(Eᵢ) e^{−μᵢ t} / Σᵢ ψᵢ (μ_en/ρ)ᵢ r(Eᵢ) — the ratio of primary collision kerma (or
    detector signal) behind and without the absorber; beam hardening follows from the spectrum.

    Parameters
    ----------
    thickness_mm : array_like
        Water-equivalent (radiological) thickness in mm along each ray, any shape, >= 0.
    beam : BeamModel
    response : EnergyResponse
        Detector energy response (default: water, i.e. portal dose).

    Returns
    -------
    ndarray, same shape as ``thickness_mm``

    Examples
    --------
    >>> beam = BeamModel.monoenergetic(2.0)
    >>> round(float(primary_transmission(100.0, beam)), 5)  # exp(-0.04942 cm^2/g * 10 cm)
    0.61006
    """
    t = _check_thickness(thickness_mm)
    w = _kerma_weights(beam, response)
    w = w / w.sum()
    mu_mm = water_mass_attenuation_cm2_g(beam.energies) / 10.0
    if t.size <= 4096:
        return np.asarray(np.tensordot(np.exp(-np.multiply.outer(t, mu_mm)), w, axes=1), dtype=float)
    # Large maps: tabulate T(t) at 0.25 mm and interpolate (relative error < 1e-6 for μ < 0.02 /mm).
    t_max = float(t.max()) if t.size else 0.0
    grid = np.arange(0.0, t_max + 0.5, 0.25)
    table = np.exp(-np.multiply.outer(grid, mu_mm)) @ w
    return np.asarray(np.interp(t, grid, table), dtype=float)


def _klein_nishina(
    energy_mev: NDArray[np.float64], cos_theta: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Scattered energy (MeV) and dσ/dΩ per electron (mm²/sr) for broadcast energies and angles."""
    k = energy_mev / ELECTRON_MASS_MEV
    ratio = 1.0 / (1.0 + k * (1.0 - cos_theta))  # E'/E
    sin2 = 1.0 - cos_theta**2
    dsig = 0.5 * R_E2_MM2 * ratio**2 * (ratio + 1.0 / ratio - sin2)
    return energy_mev * ratio, dsig


def scatter_kernel_radial(
    beam: BeamModel,
    thickness_mm: float,
    air_gap_mm: float,
    radii_mm: ArrayLike,
    *,
    response: Response = WATER,
    model: ScatterModel | None = None,
) -> NDArray[np.float64]:
    """Scatter signal at the detector from one pencil beam through a water slab (per mm², relative).

    The value at radius r is the (response-weighted) collision kerma of scattered photons at the detector,
    at lateral distance r from where the pencil meets it, per unit of the *unattenuated* primary kerma carried
    by the pencil. Integrated over the plane and divided by :func:`primary_transmission`, it gives the
    scatter-to-primary ratio of an infinite field.

    Parameters
    ----------
    beam : BeamModel
    thickness_mm : float
        Water-equivalent slab thickness (mm), >= 0.
    air_gap_mm : float
        Distance from the slab's exit surface to the detector (mm), > 0.
    radii_mm : array_like
        Radii at the detector (mm).
    response : EnergyResponse
    model : ScatterModel, optional

    Returns
    -------
    ndarray, shape of ``radii_mm`` (1/mm²)
    """
    model = model or ScatterModel()
    t = float(thickness_mm)
    g = float(air_gap_mm)
    if not math.isfinite(t) or t < 0:
        raise ParameterError(f"thickness_mm must be >= 0, got {thickness_mm}")
    if not math.isfinite(g) or g <= 0:
        raise ParameterError(f"air_gap_mm must be > 0, got {air_gap_mm}")
    r = np.asarray(radii_mm, dtype=float)
    if t == 0:
        return np.zeros_like(r)
    e = beam.energies
    n_photons = beam.weights / e  # photon number per bin (relative)
    mu_in = water_mass_attenuation_cm2_g(e) / 10.0
    p_open = float(np.sum(_kerma_weights(beam, response)))
    nz = int(model.depth_steps)
    z = (np.arange(nz) + 0.5) * t / nz  # depth of the scattering point below the entrance (mm)
    h = (t - z) + g  # height of the scattering point above the detector (mm)
    rr = r.reshape(-1)
    out = np.zeros(rr.size, dtype=float)
    for i in range(e.size):
        ell = np.sqrt(h[:, None] ** 2 + rr[None, :] ** 2)  # (nz, nr)
        cos_t = h[:, None] / ell
        e_out, dsig = _klein_nishina(np.asarray(e[i]), cos_t)
        e_clip = np.clip(e_out, 0.1, 20.0)
        mu_out = water_mass_attenuation_cm2_g(e_clip) / 10.0
        path_out = (t - z)[:, None] / cos_t
        signal = e_out * water_mass_energy_absorption_cm2_g(e_clip) * response(e_clip)
        integrand = (
            np.exp(-mu_in[i] * z)[:, None] * WATER_ELECTRONS_PER_MM3 * dsig * cos_t / ell**2
            * np.exp(-mu_out * path_out) * signal
        )  # fmt: skip
        out += n_photons[i] * integrand.sum(axis=0) * (t / nz)
    mu_mean = float(np.sum(beam.weights * mu_in))
    buildup = 1.0 + model.multiple_scatter_coefficient * mu_mean * t
    out = out * buildup / p_open
    out[rr > model.max_radius_mm] = 0.0
    return out.reshape(r.shape)


def scatter_to_primary_ratio(
    beam: BeamModel,
    thickness_mm: float,
    air_gap_mm: float,
    field_radius_mm: float,
    *,
    response: Response = WATER,
    model: ScatterModel | None = None,
) -> float:
    """Scatter-to-primary ratio on the axis behind a uniform slab for a circular field at the detector.

    Parameters
    ----------
    field_radius_mm : float
        Radius of the (uniform) field at the detector plane, mm.
    """
    if not field_radius_mm > 0:
        raise ParameterError(f"field_radius_mm must be > 0, got {field_radius_mm}")
    r = np.linspace(0.0, float(field_radius_mm), 2001)
    k = scatter_kernel_radial(beam, thickness_mm, air_gap_mm, r, response=response, model=model)
    scatter = float(np.trapezoid(2 * np.pi * r * k, r))
    primary = float(primary_transmission(thickness_mm, beam, response=response))
    return scatter / primary


_THICKNESS_LEVELS_MM = (0.0, 25.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 700.0)


@lru_cache(maxsize=64)
def _scatter_kernel_spectrum(
    beam: BeamModel,
    thickness_mm: float,
    air_gap_mm: float,
    response: Response,
    model: ScatterModel,
    padded: tuple[int, int],
    spacing_mm: float,
) -> NDArray[np.complex128]:
    ny, nx = padded
    y = np.fft.fftfreq(ny, 1.0 / ny) * spacing_mm
    x = np.fft.fftfreq(nx, 1.0 / nx) * spacing_mm
    radii = np.linspace(0.0, model.max_radius_mm, 801)
    prof = scatter_kernel_radial(beam, thickness_mm, air_gap_mm, radii, response=response, model=model)
    rad = np.hypot(y[:, None], x[None, :])
    img = np.interp(rad, radii, prof, right=0.0) * spacing_mm * spacing_mm
    spec = scipy.fft.rfft2(img, workers=FFT_WORKERS)
    spec.setflags(write=False)
    return spec


def patient_scatter(
    open_fluence: ArrayLike,
    thickness_mm: ArrayLike,
    spacing_mm: float,
    beam: BeamModel,
    air_gap_mm: float,
    *,
    response: Response = WATER,
    model: ScatterModel | None = None,
) -> NDArray[np.float64]:
    """Patient scatter at the detector for a field and a water-equivalent thickness map.

    S(x) = Σ_levels [w_l(t(x')) Φ(x')] ⊛ K_l(r): the open-field fluence of each pencil, split between the two
    nearest tabulated thickness levels (linear in t), convolved with that level's scatter kernel.

    Parameters
    ----------
    open_fluence : array_like, shape (rows, columns)
        Unattenuated relative fluence at the detector (1 on the axis of an open field), square pixels.
    thickness_mm : array_like, same shape
        Water-equivalent thickness (mm) along each pixel's ray.
    spacing_mm : float
        Pixel spacing at the detector (mm).
    beam : BeamModel
    air_gap_mm : float
        Exit surface to detector distance (mm).
    response : EnergyResponse
    model : ScatterModel, optional

    Returns
    -------
    ndarray, shape (rows, columns)
        Scatter in the units of the primary (relative kerma or detector signal).
    """
    model = model or ScatterModel()
    phi = np.asarray(open_fluence, dtype=float)
    t = _check_thickness(thickness_mm)
    if phi.ndim != 2 or phi.shape != t.shape:
        raise ParameterError(
            f"open_fluence and thickness_mm must be 2D of the same shape, got {phi.shape} and {t.shape}"
        )
    if not spacing_mm > 0:
        raise ParameterError(f"spacing_mm must be > 0, got {spacing_mm}")
    if not air_gap_mm > 0:
        raise ParameterError(f"air_gap_mm must be > 0, got {air_gap_mm}")
    levels = np.asarray(_THICKNESS_LEVELS_MM)
    if t.size and float(t.max()) > levels[-1]:
        raise ParameterError(f"thickness_mm must be <= {levels[-1]} mm, got {float(t.max())}")
    padded = (
        scipy.fft.next_fast_len(phi.shape[0] + int(model.max_radius_mm / spacing_mm) + 1, real=True),
        scipy.fft.next_fast_len(phi.shape[1] + int(model.max_radius_mm / spacing_mm) + 1, real=True),
    )
    gap = round(float(air_gap_mm), 0)  # 1 mm steps keep the kernel cache useful
    total: NDArray[np.float64] | None = None
    idx = np.clip(np.searchsorted(levels, t, side="right") - 1, 0, levels.size - 2)
    frac = (t - levels[idx]) / (levels[idx + 1] - levels[idx])
    for lev in range(1, levels.size):  # level 0 (no thickness) scatters nothing
        weight = np.where(idx == lev, 1.0 - frac, 0.0) + np.where(idx == lev - 1, frac, 0.0)
        if not np.any(weight * phi > 0):
            continue
        spec = _scatter_kernel_spectrum(
            beam, float(levels[lev]), gap, response, model, padded, round(float(spacing_mm), 9)
        )
        f = scipy.fft.rfft2(weight * phi, s=padded, workers=FFT_WORKERS)
        f *= spec
        total = f if total is None else total + f
    if total is None:
        return np.zeros_like(phi)
    out = scipy.fft.irfft2(total, s=padded, workers=FFT_WORKERS)
    return np.asarray(np.maximum(out[: phi.shape[0], : phi.shape[1]], 0.0), dtype=float)


# ----------------------------------------------------------------------------------------------------
# Spectrally resolved scatter: single and multiple scatter binned by the energy of the photon at the detector.


@dataclass(frozen=True)
class SpectralScatter:
    """Parameters of the spectrally resolved patient-scatter model (:func:`patient_scatter_spectral`).

    Single scatter is the first-order Klein–Nishina integral of :func:`scatter_kernel_radial`, kept per
    energy bin of the scattered photon at the detector. Multiple scatter carries ``κ μ̄ t`` times the
    single scatter's water kerma (the build-up factor of :class:`ScatterModel`), but its photons have been
    scattered ``extra_scatters`` more times, each at the angle ``second_angle_deg``
    (E″ = E′ / (1 + (E′/m c²)(1 − cos θ₂)) per scatter), so it is softer, and it is spread laterally by
    ``spread`` (K_m(r) = K(r/s)/s²). The water scatter is thus the legacy
    model's; the detector sees the multiple scatter with its own, softer spectrum.

    Parameters
    ----------
    multiple_scatter_coefficient : float
        κ (multiple / single scatter water kerma per unit μ̄ t). Swindell & Evans 1996 (Med Phys 23:63)
        found multiple scatter comparable to single scatter behind ~20 cm of water [recall]: κ 0.3–0.8.
    second_angle_deg : float
        θ₂, the effective angle of each further scatter (degrees, 0–180) **[assumption]** 50–90°.
    extra_scatters : int
        Number of further Compton scatters at θ₂ that the multiple-scatter photons have undergone (0–4);
        2 reflects the dominance of second- and third-order scatter in Swindell & Evans 1996 [recall].
    spread : float
        s >= 1, the lateral spread of multiple relative to single scatter **[assumption]** 1.3–2.5.
    depth_steps : int
        Depth samples of the single-scatter integral.
    max_radius_mm : float
        Radius (mm at the detector) beyond which the kernel is cut.
    """

    multiple_scatter_coefficient: float = 0.5
    second_angle_deg: float = 70.0
    extra_scatters: int = 2
    spread: float = 1.5
    depth_steps: int = 24
    max_radius_mm: float = 400.0

    def __post_init__(self) -> None:
        k = self.multiple_scatter_coefficient
        if not math.isfinite(k) or k < 0:
            raise ParameterError(f"multiple_scatter_coefficient must be >= 0, got {k}")
        if not 0.0 <= self.second_angle_deg <= 180.0:
            raise ParameterError(f"second_angle_deg must be in [0, 180], got {self.second_angle_deg}")
        if int(self.extra_scatters) != self.extra_scatters or not 0 <= self.extra_scatters <= 4:
            raise ParameterError(f"extra_scatters must be an integer in [0, 4], got {self.extra_scatters}")
        if not math.isfinite(self.spread) or self.spread < 1.0:
            raise ParameterError(f"spread must be >= 1, got {self.spread}")
        if int(self.depth_steps) < 4:
            raise ParameterError(f"depth_steps must be >= 4, got {self.depth_steps}")
        if not self.max_radius_mm > 0:
            raise ParameterError(f"max_radius_mm must be > 0, got {self.max_radius_mm}")


#: Edges (MeV) of the energy bins of the scattered photons at the detector.
_SCATTER_BIN_EDGES_MEV = np.geomspace(0.1, 6.0, 25)
_SCATTER_BIN_CENTRES_MEV = np.sqrt(_SCATTER_BIN_EDGES_MEV[:-1] * _SCATTER_BIN_EDGES_MEV[1:])
_RADIAL_SAMPLES = 201


def _compton_energy(energy_mev: NDArray[np.float64], cos_theta: float) -> NDArray[np.float64]:
    return np.asarray(energy_mev / (1.0 + (energy_mev / ELECTRON_MASS_MEV) * (1.0 - cos_theta)), dtype=float)


@lru_cache(maxsize=128)
def _radial_binned(
    beam: BeamModel, thickness_mm: float, air_gap_mm: float, model: SpectralScatter
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Radii (mm) and the water-kerma scatter kernel per energy bin, shape (bins, radii), single + multiple.

    Un-normalised: divide by the open primary kerma weighted by the same response (see
    :func:`spectral_scatter_kernel`).
    """
    t, g = float(thickness_mm), float(air_gap_mm)
    radii = np.linspace(0.0, model.max_radius_mm, _RADIAL_SAMPLES)
    nb = _SCATTER_BIN_CENTRES_MEV.size
    out = np.zeros((nb, radii.size))
    if t <= 0:
        return radii, out
    e = beam.energies
    n_photons = beam.weights / e
    mu_in = water_mass_attenuation_cm2_g(e) / 10.0
    nz = int(model.depth_steps)
    z = (np.arange(nz) + 0.5) * t / nz
    h = (t - z) + g
    cos2 = math.cos(math.radians(model.second_angle_deg))
    s = float(model.spread)
    mu_mean = float(np.sum(beam.weights * mu_in))
    multiple = model.multiple_scatter_coefficient * mu_mean * t
    r_index = np.broadcast_to(np.arange(radii.size)[None, :], (nz, radii.size))
    for rr, weight in ((radii, 1.0), (radii / s, multiple / (s * s))):
        if weight == 0:
            continue
        ell = np.sqrt(h[:, None] ** 2 + rr[None, :] ** 2)
        cos_t = h[:, None] / ell
        path_out = (t - z)[:, None] / cos_t
        geometry = WATER_ELECTRONS_PER_MM3 * cos_t / ell**2
        for i in range(e.size):
            e_out, dsig = _klein_nishina(np.asarray(e[i]), cos_t)
            e_clip = np.clip(e_out, 0.1, 20.0)
            mu_out = water_mass_attenuation_cm2_g(e_clip) / 10.0
            kerma = e_out * water_mass_energy_absorption_cm2_g(e_clip)
            integrand = (
                np.exp(-mu_in[i] * z)[:, None] * geometry * dsig * np.exp(-mu_out * path_out) * kerma
            ) * (n_photons[i] * t / nz * weight)
            e_det = e_out
            if rr is not radii:
                for _ in range(int(model.extra_scatters)):
                    e_det = _compton_energy(e_det, cos2)
            b = np.clip(np.searchsorted(_SCATTER_BIN_EDGES_MEV, e_det, side="right") - 1, 0, nb - 1)
            flat = np.bincount((b * radii.size + r_index).ravel(), integrand.ravel(), nb * radii.size)
            out += flat.reshape(nb, radii.size)
    out[:, radii > model.max_radius_mm] = 0.0
    out.setflags(write=False)
    return radii, out


def spectral_scatter_kernel(
    beam: BeamModel,
    thickness_mm: float,
    air_gap_mm: float,
    radii_mm: ArrayLike,
    *,
    response: Response = WATER,
    model: SpectralScatter | None = None,
) -> NDArray[np.float64]:
    """Pencil-beam scatter kernel (1/mm², relative to the open primary) of the spectral model.

    Same meaning as :func:`scatter_kernel_radial`; the detector response weighs every energy bin of the
    single and the (softer) multiple scatter.
    """
    model = model or SpectralScatter()
    if not math.isfinite(float(thickness_mm)) or float(thickness_mm) < 0:
        raise ParameterError(f"thickness_mm must be >= 0, got {thickness_mm}")
    if not math.isfinite(float(air_gap_mm)) or float(air_gap_mm) <= 0:
        raise ParameterError(f"air_gap_mm must be > 0, got {air_gap_mm}")
    radii, binned = _radial_binned(beam, float(thickness_mm), float(air_gap_mm), model)
    prof = response(_SCATTER_BIN_CENTRES_MEV) @ binned / float(np.sum(_kerma_weights(beam, response)))
    r = np.asarray(radii_mm, dtype=float)
    return np.asarray(np.interp(r, radii, prof, right=0.0), dtype=float)


def spectral_scatter_to_primary_ratio(
    beam: BeamModel,
    thickness_mm: float,
    air_gap_mm: float,
    field_radius_mm: float,
    *,
    response: Response = WATER,
    model: SpectralScatter | None = None,
) -> float:
    """Scatter-to-primary ratio on the axis of a circular field (radius at the detector) behind a slab."""
    if not field_radius_mm > 0:
        raise ParameterError(f"field_radius_mm must be > 0, got {field_radius_mm}")
    r = np.linspace(0.0, float(field_radius_mm), 2001)
    k = spectral_scatter_kernel(beam, thickness_mm, air_gap_mm, r, response=response, model=model)
    scatter = float(np.trapezoid(2 * np.pi * r * k, r))
    return scatter / float(primary_transmission(thickness_mm, beam, response=response))


@lru_cache(maxsize=64)
def _spectral_kernel_spectrum(
    beam: BeamModel,
    thickness_mm: float,
    air_gap_mm: float,
    response: Response,
    model: SpectralScatter,
    padded: tuple[int, int],
    spacing_mm: float,
) -> NDArray[np.complex128]:
    ny, nx = padded
    y = np.fft.fftfreq(ny, 1.0 / ny) * spacing_mm
    x = np.fft.fftfreq(nx, 1.0 / nx) * spacing_mm
    radii = np.linspace(0.0, model.max_radius_mm, _RADIAL_SAMPLES)
    prof = spectral_scatter_kernel(beam, thickness_mm, air_gap_mm, radii, response=response, model=model)
    img = np.interp(np.hypot(y[:, None], x[None, :]), radii, prof, right=0.0) * spacing_mm * spacing_mm
    spec = scipy.fft.rfft2(img, workers=FFT_WORKERS)
    spec.setflags(write=False)
    return spec


def _gap_levels(air_gap_mm: float, step_mm: float = 150.0) -> tuple[float, float]:
    lo = max(20.0, step_mm * math.floor(air_gap_mm / step_mm))
    return lo, lo + step_mm


def patient_scatter_spectral(
    open_fluence: ArrayLike,
    thickness_mm: ArrayLike,
    spacing_mm: float,
    beam: BeamModel,
    air_gap_mm: float | ArrayLike,
    responses: tuple[Response, ...],
    *,
    model: SpectralScatter | None = None,
) -> list[NDArray[np.float64]]:
    """Patient scatter at the detector for several detector responses at once (spectral model).

    S_r(x) = Σ_{levels t, g} [w_t(t(x')) w_g(g(x')) Φ(x')] ⊛ K_{t,g,r}: the open fluence of each pencil is
    split between the two nearest tabulated thicknesses and, when ``air_gap_mm`` is a map, the two gap levels
    around it (so a heterogeneity near the exit, which scatters from closer to the panel, weighs a smaller
    effective gap than the same mass near the entrance).

    Parameters
    ----------
    open_fluence, thickness_mm : array_like, shape (rows, columns)
        As for :func:`patient_scatter`.
    spacing_mm : float
        Pixel spacing at the detector (mm).
    beam : BeamModel
    air_gap_mm : float or array_like (rows, columns)
        Exit-to-detector distance (mm), one value or an effective gap per pixel (> 0).
    responses : tuple of response functions
        One scatter image is returned per response (e.g. water for the portal dose, the EPID's for the image).
    model : SpectralScatter, optional

    Returns
    -------
    list of ndarray, one per response, shape (rows, columns)
    """
    model = model or SpectralScatter()
    phi = np.asarray(open_fluence, dtype=float)
    t = _check_thickness(thickness_mm)
    if phi.ndim != 2 or phi.shape != t.shape:
        raise ParameterError(
            f"open_fluence and thickness_mm must be 2D of the same shape, got {phi.shape} and {t.shape}"
        )
    if not spacing_mm > 0:
        raise ParameterError(f"spacing_mm must be > 0, got {spacing_mm}")
    gap = np.asarray(air_gap_mm, dtype=float)
    if not np.all(np.isfinite(gap)) or np.any(gap <= 0):
        raise ParameterError("air_gap_mm must be finite and > 0")
    levels = np.asarray(_THICKNESS_LEVELS_MM)
    if t.size and float(t.max()) > levels[-1]:
        raise ParameterError(f"thickness_mm must be <= {levels[-1]} mm, got {float(t.max())}")
    if gap.ndim == 0:
        g_levels: tuple[float, ...] = (round(float(gap), 0),)
        g_weights = [np.ones_like(phi)]
    else:
        if gap.shape != phi.shape:
            raise ParameterError(f"air_gap_mm map must have shape {phi.shape}, got {gap.shape}")
        g_axis = float(gap[gap.shape[0] // 2, gap.shape[1] // 2])
        g_levels = _gap_levels(g_axis)
        gf = np.clip((gap - g_levels[0]) / (g_levels[1] - g_levels[0]), 0.0, 1.0)
        g_weights = [1.0 - gf, gf]
    pad = int(model.max_radius_mm / spacing_mm) + 1
    padded = (
        scipy.fft.next_fast_len(phi.shape[0] + pad, real=True),
        scipy.fft.next_fast_len(phi.shape[1] + pad, real=True),
    )
    idx = np.clip(np.searchsorted(levels, t, side="right") - 1, 0, levels.size - 2)
    frac = (t - levels[idx]) / (levels[idx + 1] - levels[idx])
    totals: list[Any] = [None] * len(responses)
    sp = round(float(spacing_mm), 9)
    for lev in range(1, levels.size):
        w_t = np.where(idx == lev, 1.0 - frac, 0.0) + np.where(idx == lev - 1, frac, 0.0)
        if not np.any(w_t * phi > 0):
            continue
        for g_level, w_g in zip(g_levels, g_weights, strict=True):
            src = w_t * w_g * phi
            if not np.any(src > 0):
                continue
            f = scipy.fft.rfft2(src, s=padded, workers=FFT_WORKERS)
            for n, resp in enumerate(responses):
                spec = _spectral_kernel_spectrum(beam, float(levels[lev]), g_level, resp, model, padded, sp)
                totals[n] = f * spec if totals[n] is None else totals[n] + f * spec
    out = []
    for tot in totals:
        if tot is None:
            out.append(np.zeros_like(phi))
            continue
        img = scipy.fft.irfft2(tot, s=padded, workers=FFT_WORKERS)
        out.append(np.asarray(np.maximum(img[: phi.shape[0], : phi.shape[1]], 0.0), dtype=float))
    return out
