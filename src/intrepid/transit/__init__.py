"""intrepid.transit: the InTrEPID-2D workflow, EPID image -> portal dose, and its evaluation.

- the physics baseline, a calibrated kernel model with no learning (it lives in :mod:`intrepid.physics` and is
  re-exported here);
- :mod:`evaluation <intrepid.transit._evaluation>`: gamma pass rates, MAE and maximum error per image,
  summaries per family and field size, leave-one-family-out;
- :mod:`predict <intrepid.transit._predict>`: EPID files -> portal-dose RT Image (and ``.npz``) files;
- :mod:`default model <intrepid.transit._default_model>`: the ensemble shipped with the package;

Nothing here imports PyTorch at import time; the network is loaded by the functions that need it.

>>> from intrepid.transit import load_default_model, load_default_baseline, evaluate_pairs  # doctest: +SKIP
>>> ev = evaluate_pairs(pairs, {"network": load_default_model(), "baseline": load_default_baseline()})
"""

from intrepid.physics._kernel_baseline import (
    DEFAULT_SIGMAS_MM,
    BaselineDesign,
    KernelBaseline,
    baseline_design,
    fit_baseline,
    fit_baseline_design,
    kernel_basis,
    load_baseline,
)
from intrepid.transit._default_model import (
    default_model_path,
    default_training_manifest,
    load_default_baseline,
    load_default_model,
)
from intrepid.transit._evaluation import (
    DEFAULT_CRITERIA,
    Criterion,
    Evaluation,
    FamilyHoldout,
    ImageEvaluation,
    ImageMaps,
    MethodMetrics,
    Predictor,
    Statistics,
    evaluate_image,
    evaluate_pairs,
    leave_one_family_out,
)
from intrepid.transit._predict import PredictionOutput, load_predictor, predict_files, resolve_model_path

__all__ = [
    "DEFAULT_CRITERIA",
    "DEFAULT_SIGMAS_MM",
    "BaselineDesign",
    "Criterion",
    "Evaluation",
    "FamilyHoldout",
    "ImageEvaluation",
    "ImageMaps",
    "KernelBaseline",
    "MethodMetrics",
    "PredictionOutput",
    "Predictor",
    "Statistics",
    "baseline_design",
    "default_model_path",
    "default_training_manifest",
    "evaluate_image",
    "evaluate_pairs",
    "fit_baseline",
    "fit_baseline_design",
    "kernel_basis",
    "leave_one_family_out",
    "load_baseline",
    "load_default_baseline",
    "load_default_model",
    "load_predictor",
    "predict_files",
    "resolve_model_path",
]
