"""intrepid.invivo: InTrEPID-3D, the delivered 3D dose from transit EPID images, compared with the plan.

- :mod:`fod <intrepid.invivo._fod>`: first-order dose, divergent back-projection of a portal dose through the
  CT (Martins et al., Phys Med 2023);
- :mod:`baseline <intrepid.invivo._baseline>`: the physics-only reconstruction (FOD + scatter / build-up);
- :mod:`reconstruct <intrepid.invivo._reconstruct>`: per-beam and plan-sum reconstruction (baseline or the 3D
  network of :mod:`intrepid.learn`);
- :mod:`compare <intrepid.invivo._compare>`: 3D gamma, DVH differences, isocentre ratio, verdict and action
  levels;
- :mod:`study <intrepid.invivo._study>` and :mod:`check <intrepid.invivo._check>`: a STUDY_DIR in, the check
  out (what ``intrepid invivo`` runs).

Nothing here imports PyTorch at import time.

>>> from intrepid.invivo import check_study  # doctest: +SKIP
>>> result = check_study("study/")  # doctest: +SKIP
>>> result.verdict, result.alert_reasons  # doctest: +SKIP
"""

from intrepid.invivo._baseline import (
    InvivoBaseline,
    apply_baseline,
    baseline_path,
    fit_baseline,
    load_baseline,
)
from intrepid.invivo._check import InvivoResult, check_study, write_outputs
from intrepid.invivo._compare import (
    ActionLevels,
    Comparison,
    GammaSummary,
    RoiDifference,
    compare_doses,
    verdict,
)
from intrepid.invivo._fod import (
    FODSettings,
    PortalImage,
    back_project,
    first_order_dose,
    relative_electron_density,
)
from intrepid.invivo._network import (
    InvivoNetwork,
    beam_features,
    default_invivo_model_path,
    load_invivo_model,
)
from intrepid.invivo._reconstruct import (
    BeamInputs,
    BeamRefiner,
    Method,
    Reconstruction,
    beam_inputs,
    reconstruct,
)
from intrepid.invivo._study import Study, load_study, portal_images

__all__ = [
    "ActionLevels",
    "BeamInputs",
    "BeamRefiner",
    "Comparison",
    "FODSettings",
    "GammaSummary",
    "InvivoBaseline",
    "InvivoNetwork",
    "InvivoResult",
    "Method",
    "PortalImage",
    "Reconstruction",
    "RoiDifference",
    "Study",
    "apply_baseline",
    "back_project",
    "baseline_path",
    "beam_features",
    "beam_inputs",
    "check_study",
    "compare_doses",
    "default_invivo_model_path",
    "first_order_dose",
    "fit_baseline",
    "load_baseline",
    "load_invivo_model",
    "load_study",
    "portal_images",
    "reconstruct",
    "relative_electron_density",
    "verdict",
    "write_outputs",
]
