"""The 6 MV photon beam: spectrum, NIST XCOM attenuation, focal spot, horns and head scatter.

Everything here is in the "in-air" sense: energy fluence leaving the treatment head, before any phantom.
Water interaction coefficients are the NIST XCOM / Hubbell & Seltzer tables (NISTIR 5632, 1995,
doi:10.18434/T4D01F); the 6 MV spectrum is the functional form of Ali & Rogers 2012 (Phys Med Biol 57:31,
doi:10.1088/0031-9155/57/1/31) with their Varian Clinac 6 MV parameters. See docs/physics.md.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import ParameterError
from intrepid.physics._fields import PENUMBRA_80_20_PER_SIGMA, Field

__all__ = [
    "BeamModel",
    "water_mass_attenuation_cm2_g",
    "water_mass_energy_absorption_cm2_g",
]

# NIST XCOM (Hubbell & Seltzer) for liquid water: energy (MeV), μ/ρ and μ_en/ρ (cm²/g).
_XCOM_E_MEV = np.array(
    [0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0]
)
_WATER_MU = np.array(
    [0.1707, 0.1505, 0.1370, 0.1186, 0.1061, 0.09687, 0.08956, 0.07865, 0.07072, 0.06323, 0.05754,
     0.04942, 0.03969, 0.03403, 0.03031, 0.02770, 0.02429, 0.02219, 0.01941, 0.01813]
)  # fmt: skip
_WATER_MU_EN = np.array(
    [0.02546, 0.02764, 0.02967, 0.03192, 0.03279, 0.03299, 0.03284, 0.03206, 0.03103, 0.02965, 0.02833,
     0.02608, 0.02281, 0.02066, 0.01915, 0.01806, 0.01658, 0.01566, 0.01441, 0.01382]
)  # fmt: skip
# NIST XCOM μ/ρ (cm²/g) of tungsten and aluminium on the same energies (for the Ali & Rogers filtration).
_W_MU = np.array(
    [4.438, 1.581, 0.7844, 0.3238, 0.1925, 0.1378, 0.1093, 0.08066, 0.06618, 0.05577, 0.05000, 0.04433,
     0.04075, 0.04038, 0.04103, 0.04210, 0.04472, 0.04747, 0.05384, 0.05893]
)  # fmt: skip
_AL_MU = np.array(
    [0.1704, 0.1378, 0.1223, 0.1042, 0.09276, 0.08445, 0.07802, 0.06841, 0.06146, 0.05496, 0.05006,
     0.04324, 0.03541, 0.03106, 0.02836, 0.02655, 0.02437, 0.02318, 0.02195, 0.02168]
)  # fmt: skip

#: Filtration parameter c2 of the default 6 MV spectrum (Ali & Rogers 2012; c2² g/cm² Al-equivalent):
#: conehead's Varian Clinac 6 MV value. A value commissioned to the water depth doses with the dose engine
#: (8.87, ``tools/commission_spectrum.py``) was measured and not adopted: it transmits ~15 % too much through
#: 20 cm of water for the EPID simulator (docs/dose.md, "Spectrum commissioning").
SIX_MV_FILTRATION_C2 = 5.147

#: Density of liquid water (g/cm³) used to turn μ/ρ into linear μ.
WATER_DENSITY_G_CM3 = 1.0


def _loglog(table: NDArray[np.float64], energy_mev: ArrayLike) -> NDArray[np.float64]:
    e = np.asarray(energy_mev, dtype=float)
    if np.any(~np.isfinite(e)) or np.any(e < _XCOM_E_MEV[0]) or np.any(e > _XCOM_E_MEV[-1]):
        raise ParameterError(
            f"energy_mev must lie in [{_XCOM_E_MEV[0]}, {_XCOM_E_MEV[-1]}] MeV (XCOM table), got "
            f"{np.min(e)} .. {np.max(e)}"
        )
    return np.exp(np.interp(np.log(e), np.log(_XCOM_E_MEV), np.log(table)))


def water_mass_attenuation_cm2_g(energy_mev: ArrayLike) -> NDArray[np.float64]:
    """Total mass attenuation coefficient μ/ρ of water (cm²/g), NIST XCOM, log-log interpolated.

    Parameters
    ----------
    energy_mev : array_like
        Photon energies in MeV, 0.1–20 MeV.

    Examples
    --------
    >>> round(float(water_mass_attenuation_cm2_g(1.0)), 5)
    0.07072

    References
    ----------
    Hubbell JH, Seltzer SM. Tables of X-ray mass attenuation coefficients and mass energy-absorption
    coefficients. NISTIR 5632 (1995), doi:10.18434/T4D01F.
    """
    return _loglog(_WATER_MU, energy_mev)


def water_mass_energy_absorption_cm2_g(energy_mev: ArrayLike) -> NDArray[np.float64]:
    """Mass energy-absorption coefficient μ_en/ρ of water (cm²/g), NIST, log-log interpolated (0.1–20 MeV)."""
    return _loglog(_WATER_MU_EN, energy_mev)


def ali_rogers_energy_fluence(
    energy_mev: ArrayLike,
    *,
    c1: float = 1.222,
    c2: float = 5.147,
    c3: float = -1.186,
    endpoint_mev: float = 5.76,
) -> NDArray[np.float64]:
    """Unnormalised energy-fluence spectrum ψ(E) of a linac, Ali & Rogers 2012 (their eq. 12).

    ψ(E) = [1 + c3 E/Eₑ + (E/Eₑ)²] [ln(Eₑ(Eₑ − E)/E + 1.65) − 0.5] · exp(−(μ/ρ)_W c1² − (μ/ρ)_Al c2²),
    zero where negative. Defaults: the Varian Clinac 6 MV parameters of the paper (c1² and c2² in g/cm²).

    References
    ----------
    Ali ESM, Rogers DWO. Functional forms for photon spectra of clinical linacs. Phys Med Biol
    2012;57:31-50, doi:10.1088/0031-9155/57/1/31.
    """
    e = np.asarray(energy_mev, dtype=float)
    ee = float(endpoint_mev)
    inside = (e > 0) & (e < ee)
    safe = np.where(inside, e, 0.5 * ee)
    thin = (1.0 + c3 * safe / ee + (safe / ee) ** 2) * (np.log(ee * (ee - safe) / safe + 1.65) - 0.5)
    filt = np.exp(
        -_loglog(_W_MU, np.clip(safe, 0.1, 20.0)) * c1**2 - _loglog(_AL_MU, np.clip(safe, 0.1, 20.0)) * c2**2
    )
    psi = np.where(inside, thin * filt, 0.0)
    return np.asarray(np.maximum(psi, 0.0), dtype=float)


@dataclass(frozen=True)
class BeamModel:
    """A megavoltage photon beam in air: spectrum, source, collimation and output.

    Parameters
    ----------
    name : str
        Label ("6MV").
    energies_mev : tuple of float
        Centres of the spectral bins (MeV).
    energy_fluence_weights : tuple of float
        Relative energy fluence of each bin (normalised to sum 1).
    sad_mm : float
        Source-axis distance (mm).
    focal_spot_sigma_mm : float
        Gaussian σ of the focal (primary) source at the target (mm).
    collimator_distance_mm : float
        Source-to-collimator distance of the field-defining edges (mm); with the focal spot it sets the
        geometric penumbra σ_s (SAD − z_c)/z_c at the isocentre plane.
    extra_focal_weight : float
        Extra-focal (head-scatter) energy fluence relative to the focal fluence, for an aperture that sees the
        whole extra-focal source (dual-source model, Jaffray et al. 1993; Liu et al. 1997).
    extra_focal_sigma_mm : float
        σ (mm) of the extra-focal source projected through the collimator to the isocentre plane.
    collimator_transmission : float
        Fraction of the open fluence transmitted through the closed jaws / leaves.
    horn_amplitude : float
        In-air off-axis ratio at ``horn_radius_mm`` (the "horns" of a flattened beam): OAR(ρ) = 1 +
        horn_amplitude (ρ / horn_radius_mm)², ρ the radius at the isocentre plane.
    horn_radius_mm : float
        Radius at which the off-axis ratio reaches 1 + horn_amplitude (mm at the isocentre plane).
    dose_per_mu_gy : float
        Reference calibration: dose to water at ``reference_depth_mm`` on the axis at the isocentre,
        10 × 10 cm², per monitor unit (Gy/MU).
    reference_depth_mm : float
        Depth (mm) of the calibration point (dmax of 6 MV).

    Examples
    --------
    >>> beam = BeamModel.six_mv()
    >>> round(beam.mean_energy_mev, 2) > 1.0
    True
    """

    name: str
    energies_mev: tuple[float, ...]
    energy_fluence_weights: tuple[float, ...]
    sad_mm: float = 1000.0
    focal_spot_sigma_mm: float = 0.5
    collimator_distance_mm: float = 350.0
    extra_focal_weight: float = 0.08
    extra_focal_sigma_mm: float = 60.0
    collimator_transmission: float = 0.005
    horn_amplitude: float = 0.04
    horn_radius_mm: float = 200.0
    dose_per_mu_gy: float = 0.01
    reference_depth_mm: float = 15.0

    def __post_init__(self) -> None:
        e = np.asarray(self.energies_mev, dtype=float).reshape(-1)
        w = np.asarray(self.energy_fluence_weights, dtype=float).reshape(-1)
        if e.size < 1 or e.size != w.size:
            raise ParameterError(
                f"energies_mev and energy_fluence_weights must be non-empty and of equal length, got "
                f"{e.size} and {w.size}"
            )
        if np.any(e < _XCOM_E_MEV[0]) or np.any(e > _XCOM_E_MEV[-1]):
            raise ParameterError(f"energies_mev must lie in [0.1, 20] MeV, got {e.min()} .. {e.max()}")
        if np.any(w < 0) or w.sum() <= 0 or not np.all(np.isfinite(w)):
            raise ParameterError("energy_fluence_weights must be finite, >= 0 and not all zero")
        positive = {
            "sad_mm": self.sad_mm,
            "collimator_distance_mm": self.collimator_distance_mm,
            "extra_focal_sigma_mm": self.extra_focal_sigma_mm,
            "horn_radius_mm": self.horn_radius_mm,
            "dose_per_mu_gy": self.dose_per_mu_gy,
        }
        for key, value in positive.items():
            if not math.isfinite(float(value)) or float(value) <= 0:
                raise ParameterError(f"{key} must be > 0, got {value}")
        non_negative = {
            "focal_spot_sigma_mm": self.focal_spot_sigma_mm,
            "extra_focal_weight": self.extra_focal_weight,
            "reference_depth_mm": self.reference_depth_mm,
        }
        for key, value in non_negative.items():
            if not math.isfinite(float(value)) or float(value) < 0:
                raise ParameterError(f"{key} must be >= 0, got {value}")
        if not 0 <= self.collimator_transmission < 1:
            raise ParameterError(
                f"collimator_transmission must be in [0, 1), got {self.collimator_transmission}"
            )
        if not -0.5 < self.horn_amplitude < 0.5:
            raise ParameterError(f"horn_amplitude must be in (-0.5, 0.5), got {self.horn_amplitude}")
        if not 0 < self.collimator_distance_mm < self.sad_mm:
            raise ParameterError(
                f"collimator_distance_mm must be in (0, sad_mm = {self.sad_mm}), got "
                f"{self.collimator_distance_mm}"
            )
        object.__setattr__(self, "energies_mev", tuple(float(x) for x in e))
        object.__setattr__(self, "energy_fluence_weights", tuple(float(x) for x in w / w.sum()))

    # ------------------------------------------------------------------ presets
    @classmethod
    def six_mv(cls, n_bins: int = 23, *, filtration_c2: float = SIX_MV_FILTRATION_C2) -> BeamModel:
        """The default 6 MV beam (Varian Clinac-like spectrum of Ali & Rogers 2012; see docs/physics.md).

        Parameters
        ----------
        n_bins : int
            Number of equal-width energy bins between 0.1 and 5.76 MeV (the bremsstrahlung end point).
        filtration_c2 : float
            Ali & Rogers filtration parameter c2 (c2² g/cm² aluminium-equivalent); default
            ``SIX_MV_FILTRATION_C2`` (docs/dose.md, "Spectrum commissioning").
        """
        if int(n_bins) < 2:
            raise ParameterError(f"n_bins must be >= 2, got {n_bins}")
        c2 = float(filtration_c2)
        if not math.isfinite(c2) or not 0.0 <= c2 <= 20.0:
            raise ParameterError(f"filtration_c2 must be in [0, 20], got {filtration_c2}")
        edges = np.linspace(0.1, 5.76, int(n_bins) + 1)
        fine = np.linspace(0.1, 5.76, 40 * int(n_bins) + 1)
        psi = ali_rogers_energy_fluence(fine, c2=c2)
        centres = 0.5 * (edges[:-1] + edges[1:])
        weights = np.array(
            [np.trapezoid(psi[(fine >= a) & (fine <= b)], fine[(fine >= a) & (fine <= b)]) for a, b in
             itertools.pairwise(edges)]
        )  # fmt: skip
        return cls("6MV", tuple(centres), tuple(weights))

    @classmethod
    def monoenergetic(cls, energy_mev: float, **overrides: float) -> BeamModel:
        """A single-energy beam (for closed-form tests: narrow-beam transmission is exp(−μ t) exactly)."""
        e = float(energy_mev)
        return cls(f"{e:g}MeV", (e,), (1.0,), **overrides)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ derived quantities
    @property
    def energies(self) -> NDArray[np.float64]:
        """Bin energies (MeV) as an array."""
        return np.asarray(self.energies_mev, dtype=float)

    @property
    def weights(self) -> NDArray[np.float64]:
        """Relative energy fluence per bin (sum 1)."""
        return np.asarray(self.energy_fluence_weights, dtype=float)

    @property
    def photon_fluence_weights(self) -> NDArray[np.float64]:
        """Relative photon number per bin (ψ/E, sum 1)."""
        n = self.weights / self.energies
        return np.asarray(n / n.sum(), dtype=float)

    @property
    def mean_energy_mev(self) -> float:
        """Photon-fluence-weighted mean energy (MeV)."""
        return float(np.sum(self.photon_fluence_weights * self.energies))

    @property
    def penumbra_mm(self) -> float:
        """80 %–20 % width (mm) of the geometric penumbra at the isocentre plane from the focal spot."""
        sigma = (
            self.focal_spot_sigma_mm
            * (self.sad_mm - self.collimator_distance_mm)
            / self.collimator_distance_mm
        )
        return float(PENUMBRA_80_20_PER_SIGMA * sigma)

    def off_axis_ratio(self, radius_mm: ArrayLike) -> NDArray[np.float64]:
        """In-air off-axis ratio (horns) at radius ``radius_mm`` from the axis at the isocentre plane."""
        r = np.asarray(radius_mm, dtype=float)
        return np.asarray(1.0 + self.horn_amplitude * (r / self.horn_radius_mm) ** 2, dtype=float)

    def in_air_fluence(self, field: Field, u_mm: ArrayLike, v_mm: ArrayLike) -> NDArray[np.float64]:
        """Relative energy fluence in air at isocentre-plane points (1 on the axis of a fully open field).

        Focal fluence through the aperture (with the geometric penumbra) times the horns, plus the extra-focal
        (head-scatter) fluence — the aperture seen through a wide Gaussian — plus collimator transmission.

        Parameters
        ----------
        field : Field
        u_mm, v_mm : array_like
            Broadcastable isocentre-plane coordinates (mm), u crossplane, v inplane.
        """
        u, v = np.broadcast_arrays(np.asarray(u_mm, dtype=float), np.asarray(v_mm, dtype=float))
        focal = field.relative_fluence(u, v, penumbra_mm=self.penumbra_mm)
        t = self.collimator_transmission
        focal = t + (1.0 - t) * focal
        oar = self.off_axis_ratio(np.hypot(u, v))
        out = focal * oar
        if self.extra_focal_weight > 0:
            extra = field.relative_fluence(
                u, v, penumbra_mm=PENUMBRA_80_20_PER_SIGMA * self.extra_focal_sigma_mm
            )
            out = out + self.extra_focal_weight * (t + (1.0 - t) * extra)
        return np.asarray(out, dtype=float)

    def head_scatter_factor(self, field: Field) -> float:
        """In-air output factor S_c on the axis, relative to a 10 × 10 cm² field (= 1)."""
        ref = Field.square(10.0)
        return float(self.in_air_fluence(field, 0.0, 0.0) / self.in_air_fluence(ref, 0.0, 0.0))

    def narrow_beam_transmission(
        self, thickness_mm: ArrayLike, *, density: float = 1.0
    ) -> NDArray[np.float64]:
        """Energy-fluence transmission exp(−μ t), spectrum-weighted, of a narrow beam through water.

        Parameters
        ----------
        thickness_mm : array_like
            Water thickness (mm), any shape.
        density : float
            Relative (electron) density of the water-like medium.
        """
        t = np.asarray(thickness_mm, dtype=float)
        mu_mm = water_mass_attenuation_cm2_g(self.energies) * WATER_DENSITY_G_CM3 * float(density) / 10.0
        return np.asarray(
            np.tensordot(np.exp(-np.multiply.outer(t, mu_mm)), self.weights, axes=1), dtype=float
        )
