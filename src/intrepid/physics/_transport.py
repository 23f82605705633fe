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
    "patient_scatter",
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


def _kerma_weights(beam: BeamModel, response: EnergyResponse) -> NDArray[np.float64]:
    e = beam.energies
    return np.asarray(beam.weights * water_mass_energy_absorption_cm2_g(e) * response(e), dtype=float)


def primary_transmission(
    thickness_mm: ArrayLike, beam: BeamModel, *, response: EnergyResponse = WATER
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
    response: EnergyResponse = WATER,
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
    response: EnergyResponse = WATER,
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
    response: EnergyResponse,
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
    response: EnergyResponse = WATER,
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
