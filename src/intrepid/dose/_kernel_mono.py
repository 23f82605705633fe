"""Polyenergetic point kernel built for a beam's own spectrum from monoenergetic EDKnrc kernels.

The kernel superposed with TERMA must be the TERMA-weighted mean of monoenergetic kernels of the *same*
spectrum (Ahnesjö 1989, Med Phys 16:577, doi:10.1118/1.596360; Papanikolaou et al. 1993, Med Phys 20:1327,
doi:10.1118/1.597154):

    k(bin) = Σ_E T_E k_E(bin) / Σ_E T_E,        T_E = Ψ_E (μ/ρ)_E,

with Ψ_E the energy fluence of spectral bin E (``BeamModel.energy_fluence_weights``), (μ/ρ)_E the NIST
attenuation of water (:func:`intrepid.physics.water_mass_attenuation_cm2_g`) and k_E the energy fraction that
a photon of energy E interacting at the origin deposits in each polar bin × spherical shell (EDKnrc's
"total" kernel, already normalised per interacting photon and per unit energy). The monoenergetic kernels are
those of 1, 2, 3, 4 and 6 MeV from the same author as the shipped 6 MV table (``data/edk_mono_kernels.json``:
source, commit, file per energy and the derivation are stated inside; 48 cones of 3.75° × 24 shells to 60 cm,
the grid of ``edk_6mv_varian.json``). For a bin between two transcribed energies the kernel is interpolated
linearly in energy, bin by bin; below 1 MeV the 1 MeV kernel is used and above 6 MeV the 6 MeV kernel (for
``BeamModel.six_mv()`` 28.6 % of the TERMA lies below 1 MeV: their true kernels are shorter-ranged and more
scatter-dominated, μ_en/μ of water is 0.44 at 1 MeV and 0.34 at 0.5 MeV, so this part carries too much
primary energy too far; :func:`terma_share_below`). The summed table is normalised to 1 within 60 cm and
collapsed and fitted like the shipped table (:func:`intrepid.dose._kernel.collapse_table`).

The kernel is built for the on-axis spectrum; off-axis softening and hardening with depth change TERMA (exact
per bin) but not the kernel (docs/dose.md, "Spectrum-built kernel").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from numpy.typing import NDArray

from intrepid.dose._kernel import (
    DEFAULT_N_AZIMUTH,
    DEFAULT_ZENITH_EDGES_DEG,
    ConeKernel,
    EdkTable,
    collapse_table,
)
from intrepid.errors import ParameterError
from intrepid.physics import water_mass_attenuation_cm2_g

__all__ = [
    "MonoKernels",
    "edk_mono_kernels",
    "spectrum_cone_kernel",
    "spectrum_kernel_table",
    "spectrum_terma_weights",
    "terma_share_below",
]


@dataclass(frozen=True)
class MonoKernels:
    """Monoenergetic EDKnrc kernels: ``values[k, i, j]`` energy fraction of photons of ``energies_mev[k]``.

    ``f_tot[k]`` is the fraction deposited within 60 cm printed by EDKnrc for the run (the transcription
    check: ``values[k].sum()`` equals it within rounding, 0.026 % for the 1 MeV accumulator file).
    """

    energies_mev: NDArray[np.float64]
    f_tot: NDArray[np.float64]
    values: NDArray[np.float64]
    theta_edges_deg: NDArray[np.float64]
    radius_edges_cm: NDArray[np.float64]
    source: str


@lru_cache(maxsize=1)
def edk_mono_kernels() -> MonoKernels:
    """Load the monoenergetic EDKnrc kernels (1, 2, 3, 4, 6 MeV) shipped in ``intrepid/dose/data``."""
    text = resources.files("intrepid.dose").joinpath("data/edk_mono_kernels.json").read_text(encoding="utf-8")
    d = json.loads(text)
    return MonoKernels(
        np.asarray(d["energies_mev"], dtype=float),
        np.asarray(d["f_tot"], dtype=float),
        np.asarray(d["values"], dtype=float),
        np.asarray(d["theta_edges_deg"], dtype=float),
        np.asarray(d["radius_edges_cm"], dtype=float),
        str(d["source"]),
    )


def _check(energies_mev: NDArray[np.float64], weights: NDArray[np.float64]) -> None:
    bad = energies_mev.shape != weights.shape or energies_mev.size == 0
    if bad or np.any(weights < 0) or weights.sum() <= 0:
        raise ParameterError(
            "energies_mev and energy_fluence_weights must be non-empty, equal length, weights >= 0"
        )


def spectrum_terma_weights(
    energies_mev: NDArray[np.float64], energy_fluence_weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """TERMA share of each spectral bin, T_E = Ψ_E (μ/ρ)_E normalised to sum 1 (water, NIST XCOM)."""
    e = np.asarray(energies_mev, dtype=float)
    w = np.asarray(energy_fluence_weights, dtype=float)
    _check(e, w)
    t = w * water_mass_attenuation_cm2_g(e)
    return np.asarray(t / t.sum(), dtype=float)


def terma_share_below(
    energies_mev: NDArray[np.float64], energy_fluence_weights: NDArray[np.float64], energy_mev: float
) -> float:
    """Share of the TERMA carried by spectral bins below ``energy_mev`` (0.286 below 1 MeV for six_mv())."""
    t = spectrum_terma_weights(energies_mev, energy_fluence_weights)
    return float(t[np.asarray(energies_mev, dtype=float) < float(energy_mev)].sum())


def _kernel_at(mono: MonoKernels, energy_mev: float) -> NDArray[np.float64]:
    """Monoenergetic kernel at ``energy_mev``: linear in energy between transcribed ones, clamped outside."""
    es = mono.energies_mev
    e = float(np.clip(energy_mev, es[0], es[-1]))
    k = int(np.clip(np.searchsorted(es, e) - 1, 0, es.size - 2))
    f = (e - es[k]) / (es[k + 1] - es[k])
    return np.asarray((1.0 - f) * mono.values[k] + f * mono.values[k + 1], dtype=float)


def spectrum_kernel_table(
    energies_mev: NDArray[np.float64], energy_fluence_weights: NDArray[np.float64]
) -> EdkTable:
    """The TERMA-weighted polyenergetic kernel of a spectrum on the 48 × 24 EDKnrc grid (sum 1)."""
    mono = edk_mono_kernels()
    e = np.asarray(energies_mev, dtype=float)
    t = spectrum_terma_weights(e, np.asarray(energy_fluence_weights, dtype=float))
    table = sum((float(ti) * _kernel_at(mono, float(ei)) for ei, ti in zip(e, t, strict=True)), np.zeros(1))
    v = np.asarray(table, dtype=float)
    return EdkTable(
        mono.theta_edges_deg,
        mono.radius_edges_cm,
        v / v.sum(),
        "TERMA-weighted monoenergetic EDKnrc kernels (1-6 MeV); " + mono.source,
    )


@lru_cache(maxsize=8)
def spectrum_cone_kernel(
    energies_mev: tuple[float, ...],
    energy_fluence_weights: tuple[float, ...],
    zenith_edges_deg: tuple[float, ...] = DEFAULT_ZENITH_EDGES_DEG,
    n_azimuth: int = DEFAULT_N_AZIMUTH,
) -> ConeKernel:
    """Collapsed-cone kernel built for the spectrum (tuples, so that the fitted kernel is cached).

    Parameters
    ----------
    energies_mev, energy_fluence_weights : tuple of float
        Spectral bins (MeV) and their relative energy fluence (``BeamModel.energies_mev``,
        ``BeamModel.energy_fluence_weights``).
    zenith_edges_deg, n_azimuth
        As :func:`intrepid.dose.cone_kernel`.
    """
    table = spectrum_kernel_table(np.asarray(energies_mev, dtype=float), np.asarray(energy_fluence_weights))
    return collapse_table(table, tuple(zenith_edges_deg), int(n_azimuth))
