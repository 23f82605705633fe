"""Polyenergetic point kernel of 6 MV photons in water, collapsed onto a set of cone directions.

The kernel is the EDKnrc (EGSnrc Monte Carlo) energy deposition kernel of a Varian Clinac 6 MV spectrum in
water, 48 polar bins of 3.75° × 24 spherical shells to 60 cm (``data/edk_6mv_varian.json``, with its
source and
licence). For the collapsed-cone transport (Ahnesjö 1989, Med Phys 16:577, doi:10.1118/1.596360) the polar
bins are grouped into ``n_zenith`` cones; in each cone the cumulative radial energy fraction is fitted with
Ahnesjö's two-exponential form

    C_m(r) = A_m/a_m (1 − e^{−a_m r}) + B_m/b_m (1 − e^{−b_m r}),        r in g/cm² (radiological),

the A/a term the short primary (electron) part and the B/b term the long scatter part (a_m > b_m).

Normalisation. The tabulated values sum to 0.303. They are verified identical, value by value, to the upstream
file (1152 values), and they are a *uniformly* scaled total kernel, not a partial one: bin by bin they are
0.20–0.36 × the same author's monoenergetic 2 MeV EDKnrc kernel (whose listing gives the absolute
F_tot = 0.958, primary 0.528), near the origin (primary electrons) as well as at 20–60 cm (scatter), and the
upstream code itself divides by a run total (``f_total = 0.2896``) before use. An EDKnrc run with a spectrum
source scores energy per history relative to a reference energy other than the mean incident energy (most
likely the spectrum's top energy: 0.96 × Ē/E_max ≈ 0.30 for Ē ≈ 1.9 MeV [inference, the run listing is not
readable]). Only the shape matters here: the kernel is normalised to 1 within its 60 cm sphere and the
absolute dose comes from the MU calibration.

Fit. Each cone's two exponentials are fitted to the tabulated cumulative energy with equal absolute weight at
every radius (the misplaced energy fraction is what the transport conserves), and scaled so that the fit
deposits exactly the tabulated energy within 60 cm. The first version forced the infinite-range sums
A/a + B/b to the 60 cm total with a relative-error fit: its cumulative fell 5–50 % short of the table
(up to 45 % of a backward cone's energy went beyond 60 cm, and 6–9 % of the forward cones' energy moved out
of the first 2 cm) — see docs/dose.md, "Kernel".

Spectrum consistency. The table's primary/scatter split is checked against the engine's own spectrum with the
monoenergetic EDKnrc energy fractions of the same author (``data/edk_mono_fractions.json``, 1–6 MeV): their
primary fraction equals μ_en/μ of water (NIST) within 0.13 % at every energy, so the share of the deposited
energy carried by primary electrons for a TERMA-weighted spectrum is Σ T_E μ_en/μ / Σ T_E f_tot
(:func:`spectrum_primary_share`; 0.516 for ``BeamModel.six_mv()``). The fitted table puts only 0.378 in its
short-range term. ``cone_kernel(primary_share=...)`` rescales the A and B terms to a given share (a
diagnostic option, ``DoseSettings.kernel_primary_share``); docs/dose.md, "Spectrum consistency", gives the
measured consequences.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import curve_fit

from intrepid.errors import ParameterError
from intrepid.physics import water_mass_attenuation_cm2_g, water_mass_energy_absorption_cm2_g

__all__ = [
    "KERNEL_RADIUS_CM",
    "ConeKernel",
    "EdkTable",
    "MonoFractions",
    "collapse_table",
    "cone_kernel",
    "edk_mono_fractions",
    "edk_table",
    "spectrum_primary_share",
]

#: Polar-bin edges (degrees, multiples of the table's 3.75°) of the default 8 cones: narrow forward cones
#: where the primary energy is concentrated, wide backward ones.
DEFAULT_ZENITH_EDGES_DEG = (0.0, 7.5, 15.0, 26.25, 41.25, 60.0, 90.0, 127.5, 180.0)
#: Outer radius (cm of water) of the tabulated kernel: the fit is normalised to the energy inside it.
KERNEL_RADIUS_CM = 60.0
#: Default number of azimuthal directions per cone (every 45°): 8 × 8 = 64 collapsed-cone directions.
DEFAULT_N_AZIMUTH = 8


@dataclass(frozen=True)
class EdkTable:
    """The tabulated kernel: ``values[i, j]`` energy fraction in polar bin i and shell j."""

    theta_edges_deg: NDArray[np.float64]
    radius_edges_cm: NDArray[np.float64]
    values: NDArray[np.float64]
    source: str


@lru_cache(maxsize=1)
def edk_table() -> EdkTable:
    """Load the EDKnrc 6 MV kernel shipped in ``intrepid/dose/data`` (normalised to sum 1)."""
    text = resources.files("intrepid.dose").joinpath("data/edk_6mv_varian.json").read_text(encoding="utf-8")
    d = json.loads(text)
    v = np.asarray(d["values"], dtype=float)
    return EdkTable(
        np.asarray(d["theta_edges_deg"], dtype=float),
        np.asarray(d["radius_edges_cm"], dtype=float),
        v / v.sum(),
        str(d["source"]),
    )


@dataclass(frozen=True)
class MonoFractions:
    """EDKnrc energy fractions of monoenergetic photons in water (relative to the photon energy).

    ``f_tot`` is deposited within the 60 cm kernel sphere, ``f_primary`` by the charged particles of the
    first interaction (the rest: scattered, bremsstrahlung and annihilation photons).
    """

    energies_mev: NDArray[np.float64]
    f_tot: NDArray[np.float64]
    f_primary: NDArray[np.float64]
    source: str


@lru_cache(maxsize=1)
def edk_mono_fractions() -> MonoFractions:
    """Load the monoenergetic EDKnrc energy fractions shipped in ``intrepid/dose/data`` (1–6 MeV)."""
    text = (
        resources.files("intrepid.dose").joinpath("data/edk_mono_fractions.json").read_text(encoding="utf-8")
    )
    d = json.loads(text)
    return MonoFractions(
        np.asarray(d["energies_mev"], dtype=float),
        np.asarray(d["f_tot"], dtype=float),
        np.asarray(d["f_primary"], dtype=float),
        str(d["source"]),
    )


def spectrum_primary_share(
    energies_mev: NDArray[np.float64], energy_fluence_weights: NDArray[np.float64]
) -> float:
    """Share of a polyenergetic kernel's deposited energy carried by primary electrons, for a given spectrum.

    The kernel to superpose with TERMA is the TERMA-weighted mean of monoenergetic kernels (Ahnesjö 1989;
    Papanikolaou et al. 1993, Med Phys 20:1327 [recall]). With T_E = ψ_E μ_E (energy fluence × μ/ρ), the
    share is Σ T_E f_pri(E) / Σ T_E f_tot(E), where f_pri = μ_en/μ of water (NIST; EDKnrc's primary fraction
    equals it within 0.13 % from 1 to 6 MeV, ``edk_mono_fractions``) and f_tot is the EDKnrc fraction
    deposited within 60 cm, interpolated in ln E and held constant outside 1–6 MeV.

    Parameters
    ----------
    energies_mev, energy_fluence_weights : ndarray
        Bin energies (MeV, 0.1–20) and relative energy fluence per bin.

    Returns
    -------
    float
        Primary share of the deposited energy (0.516 for ``BeamModel.six_mv()``).
    """
    e = np.asarray(energies_mev, dtype=float)
    w = np.asarray(energy_fluence_weights, dtype=float)
    if e.shape != w.shape or e.size == 0 or np.any(w < 0) or w.sum() <= 0:
        raise ParameterError(
            "energies_mev and energy_fluence_weights must be non-empty, equal length, weights >= 0"
        )
    mono = edk_mono_fractions()
    mu = water_mass_attenuation_cm2_g(e)
    terma = w * mu
    f_pri = water_mass_energy_absorption_cm2_g(e) / mu
    f_tot = np.interp(np.log(e), np.log(mono.energies_mev), mono.f_tot)
    return float(np.sum(terma * f_pri) / np.sum(terma * f_tot))


def _cumulative(r: NDArray[np.float64], aa: float, a: float, bb: float, b: float) -> NDArray[np.float64]:
    return np.asarray(aa * (1 - np.exp(-a * r)) + bb * (1 - np.exp(-b * r)), dtype=float)


@dataclass(frozen=True)
class ConeKernel:
    """Collapsed-cone kernel: directions and per-direction two-exponential parameters.

    Parameters
    ----------
    directions : ndarray, shape (n, 3)
        Unit vectors (x, y, z) in the local beam frame, z along the ray away from the source.
    amp_a, att_a, amp_b, att_b : ndarray, shape (n,)
        A (g⁻¹cm²... per direction, already divided among the azimuths), a (cm²/g), B and b of each direction:
        energy fraction deposited per g/cm² along the direction at radiological distance t is
        ``amp_a e^{−att_a t} + amp_b e^{−att_b t}``.
    zenith_edges_deg : tuple of float
    n_azimuth : int
    """

    directions: NDArray[np.float64]
    amp_a: NDArray[np.float64]
    att_a: NDArray[np.float64]
    amp_b: NDArray[np.float64]
    att_b: NDArray[np.float64]
    zenith_edges_deg: tuple[float, ...]
    n_azimuth: int

    @property
    def n_directions(self) -> int:
        """Number of collapsed-cone directions."""
        return int(self.directions.shape[0])

    def total_fraction(self) -> float:
        """Σ over directions of A/a + B/b: the energy fraction deposited out to infinite range (≥ 1).

        Slightly above 1 because the fit is normalised within the tabulated 60 cm sphere
        (:meth:`fraction_within`); the part beyond it never reaches a voxel of a patient-sized grid.
        """
        return float(np.sum(self.amp_a / self.att_a + self.amp_b / self.att_b))

    def fraction_within(self, radius_cm: float = KERNEL_RADIUS_CM) -> float:
        """Energy fraction deposited within ``radius_cm`` (g/cm² in water) of the interaction; 1 at 60 cm."""
        r = float(radius_cm)
        a, b = self.att_a, self.att_b
        return float(np.sum(self.amp_a / a * (1 - np.exp(-a * r)) + self.amp_b / b * (1 - np.exp(-b * r))))

    def primary_fraction(self, radius_cm: float = KERNEL_RADIUS_CM) -> float:
        """Share of the short-range (A, a) term in :meth:`fraction_within`."""
        r = float(radius_cm)
        a = self.att_a
        return float(np.sum(self.amp_a / a * (1 - np.exp(-a * r)))) / self.fraction_within(r)


def _fit_cone(r: NDArray[np.float64], cum: NDArray[np.float64]) -> tuple[float, float, float, float]:
    """Fit ``_cumulative`` to one cone's cumulative energy ``cum`` at the shell radii ``r`` (cm).

    Equal absolute weights (every radius counts by the energy it misplaces); the result is scaled so that the
    fit deposits exactly ``cum[-1]`` within the last radius (energy conservation inside the tabulated sphere).
    """
    total = float(cum[-1])
    p0 = (0.5 * total, 3.0, 0.5 * total, 0.08)
    popt, _ = curve_fit(
        _cumulative, r, cum, p0=p0, sigma=np.full_like(cum, 0.02 * total),
        bounds=([0, 0.3, 0, 0.005], [2 * total, 200.0, 2 * total, 0.3]), maxfev=20000,
    )  # fmt: skip
    aa, a, bb, b = (float(v) for v in popt)
    s = total / float(_cumulative(np.asarray([r[-1]]), aa, a, bb, b)[0])
    return aa * s, a, bb * s, b


@lru_cache(maxsize=8)
def cone_kernel(
    zenith_edges_deg: tuple[float, ...] = DEFAULT_ZENITH_EDGES_DEG,
    n_azimuth: int = DEFAULT_N_AZIMUTH,
    primary_share: float | None = None,
) -> ConeKernel:
    """Collapse the EDKnrc kernel onto ``len(zenith_edges_deg) − 1`` cones × ``n_azimuth`` azimuths.

    Parameters
    ----------
    zenith_edges_deg : tuple of float
        Increasing polar-angle edges from 0 to 180 (multiples of 3.75°).
    n_azimuth : int
        Azimuthal directions per cone (≥ 4).
    primary_share : float or None
        None: the table as fitted (short-range share 0.378). A value in (0, 1): every cone's A term is scaled
        by one factor and every B term by another so that the short-range terms carry this share of the
        energy deposited within 60 cm and the total stays 1 (a diagnostic: the angular and radial shapes stay
        those of the table; see :func:`spectrum_primary_share`).

    Returns
    -------
    ConeKernel
        Fitted per-direction parameters; the direction of a cone is its energy-weighted mean polar angle.
    """
    return collapse_table(edk_table(), zenith_edges_deg, n_azimuth, primary_share)


def collapse_table(
    table: EdkTable,
    zenith_edges_deg: tuple[float, ...] = DEFAULT_ZENITH_EDGES_DEG,
    n_azimuth: int = DEFAULT_N_AZIMUTH,
    primary_share: float | None = None,
) -> ConeKernel:
    """Collapse any 48 × 24 EDKnrc-format ``table`` (normalised to sum 1) onto cones; see :func:`cone_kernel`.

    Used for the shipped 6 MV table and for the spectrum-built table of :mod:`intrepid.dose._kernel_mono`.
    """
    edges = np.asarray(zenith_edges_deg, dtype=float)
    if edges[0] != 0 or edges[-1] != 180 or np.any(np.diff(edges) <= 0):
        raise ParameterError(f"zenith_edges_deg must increase from 0 to 180, got {zenith_edges_deg}")
    if int(n_azimuth) < 4:
        raise ParameterError(f"n_azimuth must be >= 4, got {n_azimuth}")
    if primary_share is not None and not 0.0 < float(primary_share) < 1.0:
        raise ParameterError(f"primary_share must be in (0, 1), got {primary_share}")
    tb = table.theta_edges_deg
    idx = np.searchsorted(tb, edges)
    if not np.allclose(tb[np.clip(idx, 0, tb.size - 1)], edges):
        raise ParameterError("zenith_edges_deg must be multiples of 3.75 degrees (the kernel's polar bins)")
    r = table.radius_edges_cm[1:]
    centres = np.deg2rad(0.5 * (tb[:-1] + tb[1:]))
    dirs, pa, aa_, pb, bb_ = [], [], [], [], []
    nz = edges.size - 1
    for m in range(nz):
        rows = table.values[idx[m] : idx[m + 1]]
        cum = np.cumsum(rows.sum(axis=0))
        amp_a, a, amp_b, b = _fit_cone(r, cum)
        weights = rows.sum(axis=1)
        theta = float(np.sum(weights * centres[idx[m] : idx[m + 1]]) / weights.sum())
        for n in range(int(n_azimuth)):
            phi = 2 * math.pi * (n + 0.5 * (m % 2)) / n_azimuth
            dirs.append((math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)))
            pa.append(amp_a * a / n_azimuth)
            aa_.append(a)
            pb.append(amp_b * b / n_azimuth)
            bb_.append(b)
    amp_a_all, amp_b_all = np.asarray(pa), np.asarray(pb)
    if primary_share is not None:
        r_max = float(table.radius_edges_cm[-1])
        att_a_all, att_b_all = np.asarray(aa_), np.asarray(bb_)
        e_a = float(np.sum(amp_a_all / att_a_all * (1 - np.exp(-att_a_all * r_max))))
        e_b = float(np.sum(amp_b_all / att_b_all * (1 - np.exp(-att_b_all * r_max))))
        amp_a_all = amp_a_all * float(primary_share) / e_a
        amp_b_all = amp_b_all * (1.0 - float(primary_share)) / e_b
    return ConeKernel(
        np.asarray(dirs), amp_a_all, np.asarray(aa_), amp_b_all, np.asarray(bb_),
        tuple(float(e) for e in edges), int(n_azimuth),
    )  # fmt: skip
