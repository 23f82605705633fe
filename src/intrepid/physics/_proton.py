"""Proton physics in water: stopping power, CSDA range, the Bortfeld Bragg curve and spread-out Bragg peaks.

Range–energy
    The electronic stopping power of water is the Bethe formula with mean excitation energy I = 75 eV (the
    value of ICRU 49 / NIST PSTAR) and the exact maximum energy transfer; shell, Barkas and density-effect
    corrections are left out (they matter below ~10 MeV and above ~300 MeV). The CSDA range is PSTAR's
    range at 10 MeV (0.1230 g/cm²) plus the integral of 1/S from 10 MeV; below 10 MeV a power law
    ``R ∝ E^1.75`` joins it. Against NIST PSTAR this gives 77.12 mm at 100 MeV (PSTAR 77.18), 157.7 mm at
    150 MeV (157.7) and 259.5 mm at 200 MeV (259.6): within 0.2 % from 50 to 250 MeV.

Bragg curve
    Bortfeld (1997) analytical model: Bragg–Kleeman ``R0 = α E0^p`` (p = 1.77; α chosen so that R0 is the
    CSDA range above), range straggling ``σ_mono = 0.012 R0^0.935`` (cm) combined with the energy spread of
    the beam, nuclear interactions removing primaries at ``β = 0.012 /cm`` with a fraction ``γ = 0.6`` of
    their energy deposited locally, and a fraction ``ε`` of low-energy protons in the incident fluence.
    Near the peak (``z > R0 − 10 σ``) the dose uses the parabolic-cylinder form (Eq. 29 of the paper); above
    it, the closed form without straggling (Eq. 26/27); the two agree within 0.3 % where they meet.

References
----------
Bortfeld T (1997) An analytical approximation of the Bragg curve for therapeutic proton beams. Med Phys
24:2024, doi:10.1118/1.598116. Berger MJ et al., NIST PSTAR (ICRU Report 49, 1993). ICRU Report 49 (1993)
Stopping powers and ranges for protons and alpha particles.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import ParameterError

__all__ = [
    "BraggPeak",
    "SpreadOutBraggPeak",
    "csda_range_mm",
    "energy_from_range_mev",
    "highland_sigma_mm",
    "pristine_peak",
    "relative_stopping_power",
    "spread_out_bragg_peak",
    "water_stopping_power_mev_cm2_g",
]

_log = logging.getLogger(__name__)

#: Proton and electron rest energies (MeV), CODATA 2018.
PROTON_MASS_MEV = 938.27208816
ELECTRON_MASS_MEV = 0.51099895
#: Bethe constant K = 4π N_A r_e² m_e c² (MeV cm² / mol).
_K_MEV_CM2_MOL = 0.307075
#: Water: Z/A (mol/g) and mean excitation energy (eV), ICRU 49.
WATER_Z_OVER_A = 0.555087
WATER_I_EV = 75.0
#: Water radiation length, mm (PDG: 36.08 g/cm² at 1 g/cm³).
WATER_RADIATION_LENGTH_MM = 360.8
#: NIST PSTAR CSDA range of water at 10 MeV (g/cm² = cm of water): the anchor of the integral.
_PSTAR_R10_CM = 0.1230
_E_ANCHOR_MEV = 10.0
_LOW_ENERGY_POWER = 1.75
#: Bortfeld 1997 constants: Bragg–Kleeman exponent, nuclear attenuation (1/cm), local fraction.
BORTFELD_P = 1.77
BORTFELD_BETA_PER_CM = 0.012
BORTFELD_GAMMA = 0.6
#: 1 MeV/g in Gy.
_MEV_PER_G_TO_GY = 1.602176634e-10
_E_MIN_MEV, _E_MAX_MEV = 1.0, 400.0


def _energies(name: str, value: ArrayLike, lo: float = 0.0, hi: float = _E_MAX_MEV) -> NDArray[np.float64]:
    e = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(e)) or np.any(e <= lo) or np.any(e > hi):
        raise ParameterError(f"{name} must be in ({lo:g}, {hi:g}] MeV, got {np.min(e):g} to {np.max(e):g}")
    return e


def _bethe(energy_mev: NDArray[np.float64], z_over_a: float, i_ev: float) -> NDArray[np.float64]:
    gamma = 1.0 + energy_mev / PROTON_MASS_MEV
    beta2 = 1.0 - 1.0 / gamma**2
    ratio = ELECTRON_MASS_MEV / PROTON_MASS_MEV
    t_max = 2 * ELECTRON_MASS_MEV * beta2 * gamma**2 / (1 + 2 * gamma * ratio + ratio**2)
    i_mev = i_ev * 1e-6
    arg = 2 * ELECTRON_MASS_MEV * beta2 * gamma**2 * t_max / i_mev**2
    return np.asarray(_K_MEV_CM2_MOL * z_over_a / beta2 * (0.5 * np.log(arg) - beta2), dtype=float)


def water_stopping_power_mev_cm2_g(energy_mev: ArrayLike) -> NDArray[np.float64]:
    """Electronic mass stopping power of water (Bethe, I = 75 eV), MeV cm²/g.

    Parameters
    ----------
    energy_mev : array_like
        Proton kinetic energy, MeV, in [1, 400] (within 1 % of PSTAR from about 10 MeV up).

    Examples
    --------
    >>> round(float(water_stopping_power_mev_cm2_g(100.0)), 2)   # PSTAR: 7.289
    7.29
    """
    e = _energies("energy_mev", energy_mev, lo=_E_MIN_MEV - 1e-12)
    return _bethe(e, WATER_Z_OVER_A, WATER_I_EV)


def relative_stopping_power(
    energy_mev: float, *, density_g_cm3: float, z_over_a: float, mean_excitation_ev: float
) -> float:
    """Stopping power of a material relative to water (Bethe, same energy), dimensionless.

    Parameters
    ----------
    energy_mev : float
        Proton energy, MeV (the ratio varies by < 1 % between 70 and 250 MeV).
    density_g_cm3 : float
        Mass density, g/cm³.
    z_over_a : float
        Mean ratio of atomic number to mass, mol/g (water 0.5551, PMMA 0.5394, paraffin 0.5706).
    mean_excitation_ev : float
        Mean excitation energy I, eV (water 75, PMMA 74, paraffin 55.9; ICRU 37/49).

    Examples
    --------
    >>> round(relative_stopping_power(150, density_g_cm3=0.93, z_over_a=0.5706, mean_excitation_ev=55.9), 2)
    0.99
    """
    e = _energies("energy_mev", energy_mev, lo=_E_MIN_MEV - 1e-12)
    for name, value in (
        ("density_g_cm3", density_g_cm3),
        ("z_over_a", z_over_a),
        ("mean_excitation_ev", mean_excitation_ev),
    ):
        if not math.isfinite(value) or value <= 0:
            raise ParameterError(f"{name} must be > 0, got {value}")
    mat = _bethe(e, z_over_a, mean_excitation_ev) * density_g_cm3
    return float(mat / _bethe(e, WATER_Z_OVER_A, WATER_I_EV))


@functools.lru_cache(maxsize=1)
def _range_table() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(log E, log R[mm]) on a fine grid from 0.01 to 400 MeV."""
    e_high = np.geomspace(_E_ANCHOR_MEV, _E_MAX_MEV, 4001)
    inv = 1.0 / _bethe(e_high, WATER_Z_OVER_A, WATER_I_EV)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(e_high))])
    r_high = (_PSTAR_R10_CM + cum) * 10.0
    e_low = np.geomspace(0.01, _E_ANCHOR_MEV, 400, endpoint=False)
    r_low = _PSTAR_R10_CM * 10.0 * (e_low / _E_ANCHOR_MEV) ** _LOW_ENERGY_POWER
    e = np.concatenate([e_low, e_high])
    r = np.concatenate([r_low, r_high])
    return np.log(e), np.log(r)


def csda_range_mm(energy_mev: ArrayLike) -> NDArray[np.float64]:
    """CSDA range of protons in water, mm (see the module notes; PSTAR within 0.2 % over 50–250 MeV).

    Parameters
    ----------
    energy_mev : array_like
        Kinetic energy, MeV, in (0.01, 400].

    Examples
    --------
    >>> [round(float(csda_range_mm(e)), 1) for e in (100, 150, 200)]   # PSTAR: 77.18, 157.7, 259.6
    [77.1, 157.7, 259.5]
    """
    e = _energies("energy_mev", energy_mev, lo=0.01)
    le, lr = _range_table()
    return np.asarray(np.exp(np.interp(np.log(e), le, lr)), dtype=float)


def energy_from_range_mev(range_mm: ArrayLike) -> NDArray[np.float64]:
    """Inverse of :func:`csda_range_mm`: the energy (MeV) whose CSDA range in water is ``range_mm``."""
    r = np.asarray(range_mm, dtype=float)
    le, lr = _range_table()
    r_max = float(np.exp(lr[-1]))
    if not np.all(np.isfinite(r)) or np.any(r <= 0) or np.any(r > r_max):
        raise ParameterError(
            f"range_mm must be in (0, {r_max:.0f}] mm of water, got {np.min(r):g} to {np.max(r):g}"
        )
    return np.asarray(np.exp(np.interp(np.log(r), lr, le)), dtype=float)


def highland_sigma_mm(
    thickness_mm: ArrayLike,
    drift_mm: ArrayLike,
    energy_in_mev: ArrayLike,
    *,
    relative_stopping_power: float,
    radiation_length_mm: float,
    layers: int = 8,
) -> NDArray[np.float64]:
    """Lateral spread (mm) at a distance behind a slab, by the differential Highland formula.

    ``σ(d) = 14.1 MeV (1 + log10(L/X0)/9) sqrt(∫_0^L ((d − z')/pv(z'))² dz'/X0)`` with ``d`` the distance from
    the slab's upstream face to the point, ``pv`` following the energy loss in the slab (water-equivalent
    ``RSP × z'``). This is the generalised Highland formula that Hong et al. (1996) use for the compensator
    and patient terms (Gottschalk et al. 1993, NIM B 74:467, doi:10.1016/0168-583X(93)95944-Z).

    Parameters
    ----------
    thickness_mm : array_like, shape (N,)
        Slab thickness L (mm), >= 0 (0 gives 0).
    drift_mm : array_like, shape (N,) or (N, M)
        Distance from the slab's *downstream* face to the point(s), mm.
    energy_in_mev : array_like, shape (N,) or scalar
        Energy entering the slab, MeV.
    relative_stopping_power, radiation_length_mm : float
        Slab material.
    layers : int
        Sub-layers of the integral (midpoint rule).

    Returns
    -------
    ndarray, shape of ``drift_mm``
    """
    t = np.atleast_1d(np.asarray(thickness_mm, dtype=float))
    drift = np.asarray(drift_mm, dtype=float)
    d2 = drift if drift.ndim == 2 else drift.reshape(-1, 1)
    e_in = np.broadcast_to(np.asarray(energy_in_mev, dtype=float), t.shape)
    if np.any(t < 0) or radiation_length_mm <= 0 or relative_stopping_power <= 0:
        raise ParameterError("thickness_mm must be >= 0; radiation_length_mm and relative_stopping_power > 0")
    r_in = csda_range_mm(np.maximum(e_in, 0.02))
    frac = (np.arange(layers) + 0.5) / layers
    zp = t[:, None] * frac[None, :]  # (N, layers) depth in the slab
    r_res = np.maximum(r_in[:, None] - relative_stopping_power * zp, 0.05)
    e = energy_from_range_mev(r_res)
    pv = (e + 2 * PROTON_MASS_MEV) * e / (e + PROTON_MASS_MEV)
    w = (t[:, None] / layers) / radiation_length_mm / pv**2  # dz'/X0 / pv²
    a0 = w.sum(axis=1)[:, None]
    a1 = (w * zp).sum(axis=1)[:, None]
    a2 = (w * zp**2).sum(axis=1)[:, None]
    dist = d2 + t[:, None]  # from the upstream face
    var = np.maximum(dist**2 * a0 - 2 * dist * a1 + a2, 0.0)
    with np.errstate(divide="ignore"):
        log_term = np.where(t > 0, np.log10(np.maximum(t, 1e-12) / radiation_length_mm), 0.0)
    factor = 14.1 * np.maximum(1.0 + log_term / 9.0, 0.0)
    out = np.where(t[:, None] > 0, factor[:, None] * np.sqrt(var), 0.0)
    return np.asarray(out.reshape(drift.shape) if drift.ndim != 2 else out, dtype=float)


# ---------------------------------------------------------------------------------------------- Bragg peak
@dataclass(frozen=True)
class BraggPeak:
    """A pristine Bragg peak in water (Bortfeld 1997).

    Use :func:`pristine_peak` to build one from an energy.

    Attributes
    ----------
    energy_mev : float
        Mean initial energy E0.
    energy_spread_mev : float
        1-σ energy spread of the beam.
    range_mm : float
        CSDA range R0 in water of the mean energy.
    sigma_mm : float
        Total range straggling (range straggling and energy spread in quadrature).
    epsilon : float
        Fraction of low-energy primary fluence (Bortfeld's ε, 0 to ~0.2).
    p, alpha_mm : float
        Bragg–Kleeman exponent and coefficient ``R0 = alpha E0^p`` (mm / MeV^p).
    beta_per_mm, gamma : float
        Nuclear attenuation per mm and the locally deposited fraction.
    """

    energy_mev: float
    energy_spread_mev: float
    range_mm: float
    sigma_mm: float
    epsilon: float = 0.1
    p: float = BORTFELD_P
    alpha_mm: float = 0.0
    beta_per_mm: float = BORTFELD_BETA_PER_CM / 10.0
    gamma: float = BORTFELD_GAMMA

    def dose_per_fluence_gy_mm2(self, depth_mm: ArrayLike) -> NDArray[np.float64]:
        """Dose to water per unit fluence (Gy per proton/mm²) at ``depth_mm`` (any shape, mm of water)."""
        z = np.asarray(depth_mm, dtype=float) / 10.0  # cm
        r0 = self.range_mm / 10.0
        sigma = self.sigma_mm / 10.0
        alpha = self.alpha_mm / 10.0  # cm / MeV^p
        beta = self.beta_per_mm * 10.0  # 1/cm
        p, gamma, eps = self.p, self.gamma, self.epsilon
        pref = 1.0 / (p * alpha ** (1.0 / p) * (1.0 + beta * r0))  # rho = 1 g/cm3
        out = np.zeros_like(z)
        zeta = (r0 - z) / sigma
        far = zeta >= 10.0
        if np.any(far):
            rz = r0 - z[far]
            out[far] = pref * (
                rz ** (1.0 / p - 1.0) + (beta + gamma * beta * p + eps * p / r0) * rz ** (1.0 / p)
            )
        near = (~far) & (zeta > -12.0)
        if np.any(near):
            from scipy.special import gamma as gamma_fn
            from scipy.special import pbdv

            zn = zeta[near]
            d1, _ = pbdv(-1.0 / p, -zn)
            d2, _ = pbdv(-1.0 / p - 1.0, -zn)
            front = np.exp(-(zn**2) / 4.0) * sigma ** (1.0 / p) * gamma_fn(1.0 / p) / math.sqrt(2 * math.pi)
            out[near] = pref * front * (d1 / sigma + (beta / p + gamma * beta + eps / r0) * d2)
        # MeV/g per (proton/cm2) -> Gy per (proton/mm2)
        return np.asarray(np.maximum(out, 0.0) * _MEV_PER_G_TO_GY * 100.0, dtype=float)

    @functools.cached_property
    def _table(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Depth dose tabulated every ``min(0.1, σ / 10)`` mm up to R0 + 6 σ (for fast interpolation)."""
        step = min(0.1, self.sigma_mm / 10.0) if self.sigma_mm > 0 else 0.1
        z = np.arange(0.0, self.range_mm + 6.0 * self.sigma_mm + step, step)
        return z, self.dose_per_fluence_gy_mm2(z)

    @functools.cached_property
    def _peak(self) -> tuple[float, float]:
        z, d = self._table
        i = int(np.argmax(d))
        return float(z[i]), float(d[i])

    def tabulated_dose_per_fluence_gy_mm2(self, depth_mm: ArrayLike) -> NDArray[np.float64]:
        """:meth:`dose_per_fluence_gy_mm2` interpolated linearly in a fine table (0 beyond it)."""
        z, d = self._table
        return np.asarray(
            np.interp(np.asarray(depth_mm, dtype=float), z, d, left=d[0], right=0.0), dtype=float
        )

    @property
    def peak_depth_mm(self) -> float:
        """Depth of the dose maximum, mm."""
        return self._peak[0]

    def relative_dose(self, depth_mm: ArrayLike) -> NDArray[np.float64]:
        """Depth dose normalised to 1 at the peak (interpolated in a table at <= 0.1 mm steps)."""
        return self.tabulated_dose_per_fluence_gy_mm2(depth_mm) / self._peak[1]

    def distal_depth_mm(self, level_percent: float = 80.0) -> float:
        """Depth (mm) beyond the peak where the dose falls to ``level_percent`` of the maximum."""
        return _distal_crossing(
            self.relative_dose, self.peak_depth_mm, self.range_mm + 8 * self.sigma_mm, level_percent / 100.0
        )

    @property
    def max_depth_mm(self) -> float:
        """Depth beyond which the dose is negligible (R0 + 5 σ), mm."""
        return self.range_mm + 5.0 * self.sigma_mm

    @property
    def csda_range_mm(self) -> float:
        """CSDA range R0 of the mean energy, mm (same as :attr:`range_mm`)."""
        return self.range_mm


def _distal_crossing(fn: object, start: float, stop: float, level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ParameterError(f"level_percent must be in (0, 100), got {100 * level:g}")
    z = np.linspace(start, stop, 8001)
    d = fn(z)  # type: ignore[operator]
    below = np.nonzero(d < level)[0]
    if below.size == 0:
        return float(stop)
    i = int(below[0])
    if i == 0:
        return float(start)
    z0, z1, d0, d1 = z[i - 1], z[i], d[i - 1], d[i]
    return float(z0 + (d0 - level) / (d0 - d1) * (z1 - z0))


def pristine_peak(
    energy_mev: float,
    *,
    energy_spread_mev: float | None = None,
    epsilon: float = 0.1,
) -> BraggPeak:
    """A pristine Bragg peak in water for a mean energy (Bortfeld 1997).

    Parameters
    ----------
    energy_mev : float
        Mean energy, MeV, in [3, 300].
    energy_spread_mev : float, optional
        1-σ energy spread, MeV (default 1 % of the energy).
    epsilon : float
        Fraction of low-energy primaries, in [0, 1) (Bortfeld: 0 to ~0.2; default 0.1).

    Returns
    -------
    BraggPeak
        ``sigma_mm² = (0.012 R0^0.935)² + (α p E0^(p−1) σ_E)²`` (R0 and the first term in cm, Eq. 18–19).

    Examples
    --------
    >>> peak = pristine_peak(150.0)
    >>> round(peak.range_mm, 1), abs(peak.distal_depth_mm(80) - peak.range_mm) < 1.0
    (157.7, True)
    """
    e0 = float(_energies("energy_mev", energy_mev, lo=3.0 - 1e-9, hi=300.0))
    spread = 0.01 * e0 if energy_spread_mev is None else float(energy_spread_mev)
    if not math.isfinite(spread) or spread < 0:
        raise ParameterError(f"energy_spread_mev must be >= 0, got {energy_spread_mev}")
    if not 0.0 <= epsilon < 1.0:
        raise ParameterError(f"epsilon must be in [0, 1), got {epsilon}")
    r0 = float(csda_range_mm(e0))
    p = BORTFELD_P
    alpha = r0 / e0**p
    sigma_mono_cm = 0.012 * (r0 / 10.0) ** 0.935
    sigma_e_mm = alpha * p * e0 ** (p - 1.0) * spread
    sigma = math.sqrt((10.0 * sigma_mono_cm) ** 2 + sigma_e_mm**2)
    return BraggPeak(e0, spread, r0, sigma, float(epsilon), p, alpha)


# ---------------------------------------------------------------------------------------------- SOBP
@dataclass(frozen=True, eq=False)
class SpreadOutBraggPeak:
    """A spread-out Bragg peak: weighted pristine peaks, normalised to 1 on the plateau.

    Attributes
    ----------
    peaks : tuple of BraggPeak
        From the deepest to the shallowest.
    weights : ndarray, shape (n,)
        Fluence weights (>= 0) that make the plateau flat, scaled so that the plateau mean is 1.
    range_mm : float
        Requested distal depth of the 90 % dose, mm of water.
    modulation_mm : float
        Requested width of the plateau (distal 90 % minus proximal edge of the fit region), mm.
    plateau_mm : tuple of 2 float
        Depths (mm) between which the weights were fitted and the flatness is guaranteed.
    """

    peaks: tuple[BraggPeak, ...]
    weights: NDArray[np.float64]
    range_mm: float
    modulation_mm: float
    plateau_mm: tuple[float, float] = field(default=(0.0, 0.0))

    def relative_dose(self, depth_mm: ArrayLike) -> NDArray[np.float64]:
        """Depth dose, 1 on the plateau."""
        z = np.asarray(depth_mm, dtype=float)
        out = np.zeros_like(z)
        for w, pk in zip(self.weights, self.peaks, strict=True):
            out = out + w * pk.tabulated_dose_per_fluence_gy_mm2(z)
        return out

    @property
    def max_depth_mm(self) -> float:
        """Depth beyond which the dose is negligible, mm."""
        return self.peaks[0].max_depth_mm

    @property
    def csda_range_mm(self) -> float:
        """CSDA range of the deepest peak, mm (the most energetic protons)."""
        return self.peaks[0].range_mm

    def distal_depth_mm(self, level_percent: float = 90.0) -> float:
        """Depth beyond the plateau where the dose falls to ``level_percent`` of the plateau, mm."""
        return _distal_crossing(
            self.relative_dose, self.plateau_mm[1] - 1.0, self.max_depth_mm + 5.0, level_percent / 100.0
        )

    def proximal_depth_mm(self, level_percent: float = 90.0) -> float:
        """Depth before the plateau where the dose rises to ``level_percent``, mm."""
        z = np.linspace(0.0, self.plateau_mm[0] + 1.0, 4001)
        d = self.relative_dose(z)
        idx = np.nonzero(d >= level_percent / 100.0)[0]
        return float(z[idx[0]]) if idx.size else float(self.plateau_mm[0])

    def flatness_percent(self) -> float:
        """Largest deviation from 1 on the plateau, percent."""
        z = np.linspace(*self.plateau_mm, 400)
        return float(100.0 * np.max(np.abs(self.relative_dose(z) - 1.0)))


def _fit_weights(peaks: list[BraggPeak], lo: float, hi: float) -> NDArray[np.float64]:
    from scipy.optimize import nnls

    z = np.linspace(lo, hi, max(int((hi - lo) / 0.5), 20))
    a = np.column_stack([pk.tabulated_dose_per_fluence_gy_mm2(z) for pk in peaks])
    scale = float(a.max())
    w, _ = nnls(a / scale, np.ones(z.size))
    return np.asarray(w / scale, dtype=float)


def spread_out_bragg_peak(
    range_mm: float,
    modulation_mm: float,
    *,
    energy_spread_percent: float = 1.0,
    peak_spacing_mm: float | None = None,
    epsilon: float = 0.1,
) -> SpreadOutBraggPeak:
    """A spread-out Bragg peak with its distal 90 % at ``range_mm`` and a plateau ``modulation_mm`` wide.

    The deepest pristine peak's energy is found (3 passes) so that the SOBP's distal 90 % dose lies at
    ``range_mm``; shallower peaks follow every ``peak_spacing_mm`` (default: the deepest peak's σ) down
    to ``range_mm − modulation_mm``; their weights are the non-negative least-squares solution for a dose of
    1 between the proximal plateau edge ``range_mm − modulation_mm`` and the deepest peak's maximum.

    Parameters
    ----------
    range_mm : float
        Distal 90 % depth in water, mm, in [5, 350].
    modulation_mm : float
        Plateau width, mm, in (0, range_mm).
    energy_spread_percent : float
        1-σ energy spread of every peak, percent of its energy.
    peak_spacing_mm : float, optional
        Range step between peaks, mm.
    epsilon : float
        Bortfeld's low-energy fraction of every peak.

    Examples
    --------
    >>> sobp = spread_out_bragg_peak(150.0, 50.0)
    >>> abs(sobp.distal_depth_mm(90) - 150.0) < 0.3, sobp.flatness_percent() < 2.0
    (True, True)
    """
    r = float(range_mm)
    m = float(modulation_mm)
    if not math.isfinite(r) or not 5.0 <= r <= 350.0:
        raise ParameterError(f"range_mm must be in [5, 350] mm of water, got {range_mm}")
    if not math.isfinite(m) or not 0.0 < m < r:
        raise ParameterError(f"modulation_mm must be in (0, range_mm = {r:g}), got {modulation_mm}")
    if not math.isfinite(energy_spread_percent) or energy_spread_percent < 0:
        raise ParameterError(f"energy_spread_percent must be >= 0, got {energy_spread_percent}")
    if peak_spacing_mm is not None and (not math.isfinite(peak_spacing_mm) or peak_spacing_mm <= 0):
        raise ParameterError(f"peak_spacing_mm must be > 0, got {peak_spacing_mm}")

    def make(r0: float) -> BraggPeak:
        e = float(energy_from_range_mev(r0))
        return pristine_peak(e, energy_spread_mev=e * energy_spread_percent / 100.0, epsilon=epsilon)

    deepest = make(r)
    deepest = make(r + (r - deepest.distal_depth_mm(90.0)))
    sobp: SpreadOutBraggPeak | None = None
    for _ in range(3):
        step = float(peak_spacing_mm) if peak_spacing_mm is not None else max(deepest.sigma_mm, 0.5)
        lo = r - m
        n = max(math.ceil((deepest.range_mm - lo) / step) + 1, 2)
        peaks = [deepest] + [
            make(deepest.range_mm - i * step) for i in range(1, n) if deepest.range_mm - i * step > 2.0
        ]
        hi = deepest.peak_depth_mm
        w = _fit_weights(peaks, lo, hi)
        sobp = SpreadOutBraggPeak(tuple(peaks), w, r, m, (lo, hi))
        err = r - sobp.distal_depth_mm(90.0)
        if abs(err) < 0.05:
            break
        deepest = make(deepest.range_mm + err)
    assert sobp is not None
    _log.debug(
        "SOBP range %.1f mm, modulation %.1f mm: %d peaks, flatness %.2f %%",
        r,
        m,
        len(sobp.peaks),
        sobp.flatness_percent(),
    )
    return sobp
