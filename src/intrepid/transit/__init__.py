"""intrepid.transit: the InTrEPID-2D workflow, EPID image -> portal dose, and its evaluation.

- the physics baseline, a calibrated kernel model with no learning (it lives in :mod:`intrepid.physics` and is
  re-exported here);
- :mod:`evaluation <intrepid.transit._evaluation>`: gamma pass rates, MAE and maximum error per image,
  summaries per family and field size, leave-one-family-out;
- :mod:`predict <intrepid.transit._predict>`: EPID files -> portal-dose RT Image (and ``.npz``) files;
- :mod:`default model <intrepid.transit._default_model>`: the ensemble shipped with the package;
- :mod:`signal <intrepid.transit._signal>`: either vendor's file -> signal per MU, or a one-line refusal;
- :mod:`model <intrepid.transit._model>`: per-MU prediction, member spread, out-of-distribution flags;

Nothing here imports PyTorch at import time; the network is loaded by the functions that need it.

>>> from intrepid.transit import load_default_model, load_default_baseline, evaluate_pairs  # doctest: +SKIP
>>> ev = evaluate_pairs(pairs, {"network": load_default_model(), "baseline": load_default_baseline()})
"""

from intrepid.physics._kernel_baseline import (
    DEFAULT_SIGMAS_MM,
    FEATURE_SETS,
    BaselineDesign,
    KernelBaseline,
    baseline_design,
    fit_baseline,
    fit_baseline_design,
    image_features,
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
    Comparison,
    Criterion,
    Evaluation,
    FamilyHoldout,
    ImageEvaluation,
    ImageMaps,
    MethodMetrics,
    Predictor,
    Statistics,
    compare_methods,
    evaluate_image,
    evaluate_pairs,
    leave_one_family_out,
)
from intrepid.transit._model import (
    SID_TOLERANCE,
    Prediction,
    TrainingRanges,
    TransitModel,
    canonical_pairs,
    training_ranges,
)
from intrepid.transit._predict import (
    PredictionOutput,
    load_predictor,
    load_transit_model,
    predict_files,
    resolve_model_path,
)
from intrepid.transit._signal import (
    CALIBRATED_UNITS_PER_MU,
    CanonicalSignal,
    InputRefused,
    canonical_signal,
    canonical_volume,
)

__all__ = [
    "CALIBRATED_UNITS_PER_MU",
    "DEFAULT_CRITERIA",
    "DEFAULT_SIGMAS_MM",
    "FEATURE_SETS",
    "SID_TOLERANCE",
    "BaselineDesign",
    "CanonicalSignal",
    "Comparison",
    "Criterion",
    "Evaluation",
    "FamilyHoldout",
    "ImageEvaluation",
    "ImageMaps",
    "InputRefused",
    "KernelBaseline",
    "MethodMetrics",
    "Prediction",
    "PredictionOutput",
    "Predictor",
    "Statistics",
    "TrainingRanges",
    "TransitModel",
    "baseline_design",
    "canonical_pairs",
    "canonical_signal",
    "canonical_volume",
    "compare_methods",
    "default_model_path",
    "default_training_manifest",
    "evaluate_image",
    "evaluate_pairs",
    "fit_baseline",
    "fit_baseline_design",
    "image_features",
    "kernel_basis",
    "leave_one_family_out",
    "load_baseline",
    "load_default_baseline",
    "load_default_model",
    "load_predictor",
    "load_transit_model",
    "predict_files",
    "resolve_model_path",
    "training_ranges",
]
