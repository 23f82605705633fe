"""intrepid.analysis: gamma, DVH and dose statistics, isodoses, dose differences, sums and profiles."""

from intrepid.analysis._dose_ops import DifferenceMode, DoseProfile, dose_difference, dose_profile, sum_doses
from intrepid.analysis._dvh import AUTO_SUPERSAMPLE_BELOW_VOXELS, DVH, compute_dvh, compute_dvhs
from intrepid.analysis._gamma import (
    PASS_TOLERANCE,
    GammaBackend,
    GammaInterpolant,
    GammaResult,
    GammaSettings,
    Normalisation,
    gamma,
    gamma_1d,
)
from intrepid.analysis._gamma_batch import gamma_batch
from intrepid.analysis._isodose import (
    IsodoseLine,
    IsodoseSurface,
    PlaneAxis,
    dose_plane,
    isodose_levels_gy,
    isodose_lines,
    isodose_surfaces,
)

__all__ = [
    "AUTO_SUPERSAMPLE_BELOW_VOXELS",
    "DVH",
    "PASS_TOLERANCE",
    "DifferenceMode",
    "DoseProfile",
    "GammaBackend",
    "GammaInterpolant",
    "GammaResult",
    "GammaSettings",
    "IsodoseLine",
    "IsodoseSurface",
    "Normalisation",
    "PlaneAxis",
    "compute_dvh",
    "compute_dvhs",
    "dose_difference",
    "dose_plane",
    "dose_profile",
    "gamma",
    "gamma_1d",
    "gamma_batch",
    "isodose_levels_gy",
    "isodose_lines",
    "isodose_surfaces",
    "sum_doses",
]
