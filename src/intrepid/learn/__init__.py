"""intrepid.learn: the 2D U-Net, EPID / portal-dose data sets, training, model selection and ensembles.

The only home of PyTorch in InTrEPID. Every name is imported on first access, and PyTorch itself only inside
the functions that need it, so ``import intrepid.learn`` (and reading configurations, data sets or model
descriptions) does not import torch.

>>> from intrepid.learn import load_dataset, ProtocolConfig, run_protocol, load_model  # doctest: +SKIP
>>> ds = load_dataset("pairs/", split="train")  # doctest: +SKIP
>>> result = run_protocol(ds, ProtocolConfig(repeats=2, folds=3, epochs=20), "run")  # doctest: +SKIP
>>> model = load_model(result.ensemble_path)  # doctest: +SKIP
>>> dose = model.predict(epid_volume)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from intrepid.learn._checkpoint import TrainingCheckpoint, read_checkpoint, write_checkpoint
    from intrepid.learn._dataset import MANIFEST_NAME, Pair, PairDataset, PairRecord, load_dataset, read_image
    from intrepid.learn._distributed import RayOptions, execute_runs_on_ray, ray_map
    from intrepid.learn._ensemble import Ensemble, register_base_model, select_device
    from intrepid.learn._model_io import describe_model, load_model, read_model_files, write_model_files
    from intrepid.learn._preprocess import (
        AugmentConfig,
        PreprocessConfig,
        Scaling,
        augment_batch,
        epid_signal,
        fit_preprocess,
        from_working_grid,
        resampling_matrix,
        to_working_grid,
        working_grid,
    )
    from intrepid.learn._runs import RunContext, RunSpec, execute_run, execute_runs_locally, run_done
    from intrepid.learn._selection import (
        Configuration,
        ConfigurationSummary,
        CVSplit,
        ProtocolConfig,
        ProtocolResult,
        ValidationGrid,
        cv_splits,
        resume_protocol,
        run_protocol,
    )
    from intrepid.learn._stacked import StackedJob, build_stacked_unet, train_stacked
    from intrepid.learn._training import (
        Loss,
        TrainConfig,
        TrainedModel,
        WorkingArrays,
        prepare_working_arrays,
        train_model,
    )
    from intrepid.learn._unet import (
        Activation,
        OutputActivation,
        UNetConfig,
        UpMode,
        build_unet,
        count_parameters,
    )

_WHERE = {
    "_checkpoint": ("TrainingCheckpoint", "read_checkpoint", "write_checkpoint"),
    "_distributed": ("RayOptions", "execute_runs_on_ray", "ray_map"),
    "_runs": ("RunContext", "RunSpec", "execute_run", "execute_runs_locally", "run_done"),
    "_stacked": ("StackedJob", "build_stacked_unet", "train_stacked"),
    "_dataset": ("MANIFEST_NAME", "Pair", "PairDataset", "PairRecord", "load_dataset", "read_image"),
    "_ensemble": ("Ensemble", "register_base_model", "select_device"),
    "_model_io": ("describe_model", "load_model", "read_model_files", "write_model_files"),
    "_preprocess": (
        "AugmentConfig",
        "PreprocessConfig",
        "Scaling",
        "augment_batch",
        "epid_signal",
        "fit_preprocess",
        "from_working_grid",
        "resampling_matrix",
        "to_working_grid",
        "working_grid",
    ),
    "_selection": (
        "CVSplit",
        "Configuration",
        "ConfigurationSummary",
        "ProtocolConfig",
        "ProtocolResult",
        "ValidationGrid",
        "cv_splits",
        "resume_protocol",
        "run_protocol",
    ),
    "_training": (
        "Loss",
        "TrainConfig",
        "TrainedModel",
        "WorkingArrays",
        "prepare_working_arrays",
        "train_model",
    ),
    "_unet": ("Activation", "OutputActivation", "UNetConfig", "UpMode", "build_unet", "count_parameters"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "MANIFEST_NAME",
    "Activation",
    "AugmentConfig",
    "CVSplit",
    "Configuration",
    "ConfigurationSummary",
    "Ensemble",
    "Loss",
    "OutputActivation",
    "Pair",
    "PairDataset",
    "PairRecord",
    "PreprocessConfig",
    "ProtocolConfig",
    "ProtocolResult",
    "RayOptions",
    "RunContext",
    "RunSpec",
    "Scaling",
    "StackedJob",
    "TrainConfig",
    "TrainedModel",
    "TrainingCheckpoint",
    "UNetConfig",
    "UpMode",
    "ValidationGrid",
    "WorkingArrays",
    "augment_batch",
    "build_stacked_unet",
    "build_unet",
    "count_parameters",
    "cv_splits",
    "describe_model",
    "epid_signal",
    "execute_run",
    "execute_runs_locally",
    "execute_runs_on_ray",
    "fit_preprocess",
    "from_working_grid",
    "load_dataset",
    "load_model",
    "prepare_working_arrays",
    "ray_map",
    "read_checkpoint",
    "read_image",
    "read_model_files",
    "register_base_model",
    "resampling_matrix",
    "resume_protocol",
    "run_done",
    "run_protocol",
    "select_device",
    "to_working_grid",
    "train_model",
    "train_stacked",
    "working_grid",
    "write_checkpoint",
    "write_model_files",
]


def __getattr__(name: str) -> Any:
    """Import the defining private module on first access to one of its public names."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'intrepid.learn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"intrepid.learn.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
