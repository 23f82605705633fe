"""Model selection as published: grid search × repeated, grouped and stratified k-fold CV, and an ensemble.

The protocol (:func:`run_protocol`) trains, for every configuration of the grid (initial filters × learning
rate × batch size; published: {8, 16} × {1e-2, 1e-3, 1e-4} × {4, 8, 16, 32} = 24), ``repeats`` times a
``folds``-fold cross-validation (published: 10 × 5, 150 epochs each).

Splits (:func:`cv_splits`) are **grouped**: a group is one phantom with one field group (``PairRecord.group``,
e.g. all rotations and MU of ``6s10b3`` with a 10 × 10 field), and a group is never split between the training
and the validation images of a fold, so that near-duplicates cannot leak into validation. They are
**stratified** by phantom family × field group (``PairRecord.stratum``): within each stratum the groups are
shuffled (seeded per repeat), taken largest first and given to the fold that holds the fewest images of that
stratum so far (ties: fewest images overall, then a random order), which spreads every family and field size
over the folds. Repeats differ only by the shuffle. A run's training seed depends on the protocol seed, the
repeat and the fold only, so every configuration sees the same splits and the same seeds (common random
numbers make the comparison of configurations fairer).

Each run records a manifest ``runs/<configuration>/r<repeat>_f<fold>.json`` (configuration, seeds, fold
membership, per-epoch losses, validation loss, per-image gamma pass rates at ``dd_percent`` / ``dta_mm``
(global, ``cutoff_percent`` cut-off) and MAE, time). ``summary.csv`` and ``summary.md`` rank the
configurations by mean validation gamma pass rate (higher first), then mean validation loss (lower first).

The ensemble (``ensemble/model.json`` + ``model.safetensors``) averages, for the best configuration, *the best
model of each run*, where a run is one repetition of the k-fold cross-validation (one of the 10 "CV schemes"
of the published system): from each repeat the fold model with the highest validation pass rate (ties: lower
validation loss). The published protocol thus gives a 10-member ensemble.
"""

from __future__ import annotations

import csv
import enum
import io
import itertools
import json
import logging
import math
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from intrepid.dicom._common import atomic_write
from intrepid.errors import ParameterError
from intrepid.learn._dataset import PairDataset, PairRecord
from intrepid.learn._preprocess import AugmentConfig, PreprocessConfig
from intrepid.learn._training import (
    Loss,
    TrainedModel,
    WorkingArrays,
    prepare_working_arrays,
)
from intrepid.learn._unet import UNetConfig

if TYPE_CHECKING:  # pragma: no cover
    from intrepid.learn._distributed import RayOptions

__all__ = [
    "CVSplit",
    "Configuration",
    "ConfigurationSummary",
    "ProtocolConfig",
    "ProtocolResult",
    "ValidationGrid",
    "cv_splits",
    "run_protocol",
]

_log = logging.getLogger(__name__)


class ValidationGrid(enum.Enum):
    """Where the validation gamma pass rate and MAE of each run are computed."""

    #: on the network's working grid (prediction and the area-averaged reference): fast, the default; the
    #: published protocol needs about 45 000 validation gamma analyses
    WORKING = "working"
    #: on the detector grid (prediction resampled back, full-resolution reference), as in the final evaluation
    DETECTOR = "detector"


@dataclass(frozen=True)
class Configuration:
    """One point of the hyper-parameter grid."""

    initial_filters: int
    learning_rate: float
    batch_size: int

    @property
    def name(self) -> str:
        """Folder-friendly name, ``"f8_lr0.001_bs4"``."""
        return f"f{self.initial_filters}_lr{self.learning_rate:g}_bs{self.batch_size}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "initial_filters": self.initial_filters,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "name": self.name,
        }


@dataclass(frozen=True)
class CVSplit:
    """One fold of one repeat: indices into the data set."""

    repeat: int
    fold: int
    train_indices: tuple[int, ...]
    val_indices: tuple[int, ...]


def _positive_ints(name: str, values: Sequence[int]) -> tuple[int, ...]:
    out = tuple(values)
    if not out or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in out):
        raise ParameterError(f"{name} must be a non-empty list of integers >= 1, got {list(out)}")
    return tuple(int(v) for v in out)


@dataclass(frozen=True)
class ProtocolConfig:
    """Settings of the model-selection protocol (defaults: the published one).

    Parameters
    ----------
    filters : tuple of int
        Initial filters of the U-Net to try (published: 8, 16).
    learning_rates : tuple of float
        Adam learning rates to try (published: 1e-2, 1e-3, 1e-4).
    batch_sizes : tuple of int
        Batch sizes to try (published: 4, 8, 16, 32).
    repeats : int
        Repetitions of the k-fold cross-validation (published: 10).
    folds : int
        k of the k-fold cross-validation (>= 2; published: 5).
    epochs : int
        Epochs per run (published: 150).
    loss : Loss
        MAE (default) or MSE.
    seed : int
        Seed of the splits and the runs (>= 0).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``.
    unet : UNetConfig
        Architecture (its ``initial_filters`` is replaced by each grid value).
    preprocess : PreprocessConfig
        Working grid and scaling (the constants are fitted on each run's training images).
    augmentation : AugmentConfig
        Training augmentation.
    dd_percent, dta_mm, cutoff_percent : float
        Gamma criteria of the validation pass rate (global, published 3 % / 3 mm, 10 % cut-off).
    keep_all_models : bool
        Also save the ensemble of every configuration under ``runs/<configuration>/ensemble`` (default: only
        the best configuration's ensemble is saved).
    validation_grid : ValidationGrid
        Grid of the validation gamma and MAE (default: the working grid).
    gamma_backend : str
        Backend of :func:`intrepid.analysis.gamma` for the validation: ``"torch"`` (default; on the training
        device) or ``"numba"``. Once the worker threads of numba's OpenMP threading layer exist, PyTorch in
        the same process runs 10-100 × slower on a 2-core machine (measured), so the protocol keeps every
        computation in PyTorch unless told otherwise.
    """

    filters: tuple[int, ...] = (8, 16)
    learning_rates: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    batch_sizes: tuple[int, ...] = (4, 8, 16, 32)
    repeats: int = 10
    folds: int = 5
    epochs: int = 150
    loss: Loss = Loss.MAE
    seed: int = 0
    device: str = "auto"
    unet: UNetConfig = field(default_factory=UNetConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    dd_percent: float = 3.0
    dta_mm: float = 3.0
    cutoff_percent: float = 10.0
    keep_all_models: bool = False
    validation_grid: ValidationGrid = ValidationGrid.WORKING
    gamma_backend: str = "torch"

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", _positive_ints("filters", self.filters))
        object.__setattr__(self, "batch_sizes", _positive_ints("batch_sizes", self.batch_sizes))
        lrs = tuple(float(v) for v in self.learning_rates)
        if not lrs or any(not (math.isfinite(v) and v > 0) for v in lrs):
            raise ParameterError(f"learning_rates must be a non-empty list of values > 0, got {list(lrs)}")
        object.__setattr__(self, "learning_rates", lrs)
        for name, low in (("repeats", 1), ("folds", 2), ("epochs", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ParameterError(f"{name} must be an integer >= {low}, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ParameterError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not isinstance(self.loss, Loss):
            raise ParameterError(f"loss must be a Loss, got {self.loss!r}")
        if self.gamma_backend not in ("torch", "numba"):
            raise ParameterError(f"gamma_backend must be 'torch' or 'numba', got {self.gamma_backend!r}")
        if not isinstance(self.validation_grid, ValidationGrid):
            raise ParameterError(f"validation_grid must be a ValidationGrid, got {self.validation_grid!r}")
        for name in ("dd_percent", "dta_mm"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ParameterError(f"{name} must be > 0, got {v}")
        if not (0 <= self.cutoff_percent < 100):
            raise ParameterError(f"cutoff_percent must be in [0, 100), got {self.cutoff_percent}")
        for f in self.filters:
            if f > self.unet.max_filters:
                raise ParameterError(
                    f"filters value {f} exceeds the U-Net's max_filters {self.unet.max_filters}"
                )
        m = self.unet.size_multiple
        if any(s % m for s in self.preprocess.working_shape):
            raise ParameterError(
                f"working shape {self.preprocess.working_shape} must be multiples of {m} for a "
                f"depth-{self.unet.depth} U-Net"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProtocolConfig:
        """Inverse of :meth:`to_dict` (the ``protocol`` of a run folder's ``protocol.json``)."""
        try:
            g = data["gamma"]
            return cls(
                filters=tuple(data["filters"]),
                learning_rates=tuple(data["learning_rates"]),
                batch_sizes=tuple(data["batch_sizes"]),
                repeats=int(data["repeats"]),
                folds=int(data["folds"]),
                epochs=int(data["epochs"]),
                loss=Loss(data["loss"]),
                seed=int(data["seed"]),
                device=str(data["device"]),
                unet=UNetConfig.from_dict(data["unet"]),
                preprocess=PreprocessConfig.from_dict(data["preprocess"]),
                augmentation=AugmentConfig.from_dict(data["augmentation"]),
                dd_percent=float(g["dd_percent"]),
                dta_mm=float(g["dta_mm"]),
                cutoff_percent=float(g["cutoff_percent"]),
                keep_all_models=bool(data["keep_all_models"]),
                validation_grid=ValidationGrid(data["validation_grid"]),
                gamma_backend=str(data["gamma_backend"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"not a protocol description ({type(exc).__name__}: {exc})") from exc

    @property
    def configurations(self) -> tuple[Configuration, ...]:
        """The grid, in the order filters × learning rates × batch sizes."""
        return tuple(
            Configuration(f, lr, bs)
            for f, lr, bs in itertools.product(self.filters, self.learning_rates, self.batch_sizes)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "filters": list(self.filters),
            "learning_rates": list(self.learning_rates),
            "batch_sizes": list(self.batch_sizes),
            "repeats": self.repeats,
            "folds": self.folds,
            "epochs": self.epochs,
            "loss": self.loss.value,
            "seed": self.seed,
            "device": self.device,
            "unet": self.unet.to_dict(),
            "preprocess": self.preprocess.to_dict(),
            "augmentation": self.augmentation.to_dict(),
            "gamma": {
                "dd_percent": self.dd_percent,
                "dta_mm": self.dta_mm,
                "cutoff_percent": self.cutoff_percent,
                "normalisation": "global",
            },
            "keep_all_models": self.keep_all_models,
            "validation_grid": self.validation_grid.value,
            "gamma_backend": self.gamma_backend,
        }


def cv_splits(records: Sequence[PairRecord], folds: int, repeats: int = 1, seed: int = 0) -> list[CVSplit]:
    """Grouped, stratified, repeated k-fold splits (see the module docstring).

    Parameters
    ----------
    records : sequence of PairRecord
        The data set's rows (:attr:`PairDataset.records`).
    folds : int
        k (>= 2).
    repeats : int
        Repetitions with different shuffles (>= 1).
    seed : int
        Seed of the shuffles.

    Returns
    -------
    list of CVSplit
        ``repeats × folds`` splits, repeat-major; within a repeat the validation sets partition the data.

    Raises
    ------
    ParameterError
        Fewer groups than folds.

    Examples
    --------
    >>> splits = cv_splits(load_dataset("pairs/").records, folds=5, repeats=10)  # doctest: +SKIP
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ParameterError(f"folds must be an integer >= 2, got {folds!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ParameterError(f"repeats must be an integer >= 1, got {repeats!r}")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[r.group].append(i)
    if len(groups) < folds:
        raise ParameterError(
            f"{folds}-fold cross-validation needs at least {folds} groups (phantom × field group), the data "
            f"set has {len(groups)}; lower folds"
        )
    strata: dict[str, list[str]] = defaultdict(list)
    for g, idx in groups.items():
        votes: dict[str, int] = defaultdict(int)
        for i in idx:
            votes[records[i].stratum] += 1
        strata[max(sorted(votes), key=lambda s: votes[s])].append(g)
    out = []
    for repeat in range(repeats):
        rng = np.random.default_rng(np.random.SeedSequence([seed, repeat, 0x5EED]))
        fold_of: dict[str, int] = {}
        totals = [0] * folds
        for stratum in sorted(strata):
            names = sorted(strata[stratum])
            names = [names[i] for i in rng.permutation(len(names))]
            names.sort(key=lambda g: -len(groups[g]))  # stable: random order among equal sizes
            tie = rng.permutation(folds)
            counts = [0] * folds
            for g in names:
                best = min(range(folds), key=lambda f: (counts[f], totals[f], int(tie[f])))
                fold_of[g] = best
                counts[best] += len(groups[g])
                totals[best] += len(groups[g])
        for fold in range(folds):
            val = sorted(i for g, idx in groups.items() if fold_of[g] == fold for i in idx)
            train = sorted(i for g, idx in groups.items() if fold_of[g] != fold for i in idx)
            out.append(CVSplit(repeat, fold, tuple(train), tuple(val)))
    return out


@dataclass(frozen=True)
class ConfigurationSummary:
    """Cross-validated scores of one configuration (one row of the summary table)."""

    configuration: Configuration
    runs: int
    gamma_pass_rate_mean_percent: float
    gamma_pass_rate_std_percent: float
    val_loss_mean: float
    val_loss_std: float
    mae_mean_gy: float
    best_epoch_mean: float
    seconds: float
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready row."""
        return {
            "rank": self.rank,
            "configuration": self.configuration.name,
            "initial_filters": self.configuration.initial_filters,
            "learning_rate": self.configuration.learning_rate,
            "batch_size": self.configuration.batch_size,
            "runs": self.runs,
            "gamma_pass_rate_mean_percent": self.gamma_pass_rate_mean_percent,
            "gamma_pass_rate_std_percent": self.gamma_pass_rate_std_percent,
            "val_loss_mean": self.val_loss_mean,
            "val_loss_std": self.val_loss_std,
            "mae_mean_gy": self.mae_mean_gy,
            "best_epoch_mean": self.best_epoch_mean,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class ProtocolResult:
    """Outcome of :func:`run_protocol`.

    Attributes
    ----------
    out_dir : Path
        Run folder.
    summaries : tuple of ConfigurationSummary
        One per configuration, ranked (best first).
    ensemble_path : Path
        Folder of the ensemble model (``model.json`` + ``model.safetensors``).
    members : int
        Ensemble members (= repeats).
    runs : int
        Trainings done.
    device : str
        Device used.
    seconds : float
        Wall time.
    """

    out_dir: Path
    summaries: tuple[ConfigurationSummary, ...]
    ensemble_path: Path
    members: int
    runs: int
    device: str
    seconds: float

    @property
    def best(self) -> ConfigurationSummary:
        """The winning configuration's summary."""
        return self.summaries[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready result (the ``intrepid train --json`` output)."""
        return {
            "out": str(self.out_dir),
            "configurations": len(self.summaries),
            "runs": self.runs,
            "device": self.device,
            "best": self.best.to_dict(),
            "ensemble": str(self.ensemble_path),
            "members": self.members,
            "summary_csv": str(self.out_dir / "summary.csv"),
            "summary_md": str(self.out_dir / "summary.md"),
            "seconds": self.seconds,
            "ranking": [s.to_dict() for s in self.summaries],
        }


def _jsonable(value: Any) -> Any:
    """Plain JSON values: NumPy scalars and arrays converted, tuples as lists, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, Path):
        return str(value)
    return value


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(_jsonable(data), indent=2, allow_nan=False)
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def _run_seed(seed: int, repeat: int, fold: int) -> int:
    return int(np.random.SeedSequence([seed, repeat, fold]).generate_state(1)[0] % (2**31))


def _validate(
    model: TrainedModel,
    dataset: PairDataset,
    arrays: WorkingArrays,
    indices: Sequence[int],
    cfg: ProtocolConfig,
) -> list[dict[str, Any]]:
    """Per validation image: gamma pass rate and MAE (Gy) on the grid of ``cfg.validation_grid``."""
    from intrepid.analysis import gamma
    from intrepid.geometry import Quantity, Volume

    ens = model.ensemble(device=model.config.device)
    rows = []
    if cfg.validation_grid is ValidationGrid.WORKING:
        pred = ens.predict_working(arrays.epid[list(indices)])
        if model.preprocess.clip_negative:
            pred = np.maximum(pred, 0.0)
        pairs = [
            (
                Volume(arrays.dose_gy[i].astype(np.float64), arrays.grids[i], Quantity.PORTAL_DOSE, "Gy"),
                Volume(p.astype(np.float64), arrays.grids[i], Quantity.PORTAL_DOSE, "Gy"),
            )
            for i, p in zip(indices, pred, strict=True)
        ]
    else:
        pairs = []
        for i in indices:
            ref = dataset[i].portal_dose
            p = ens.predict(dataset[i].epid)
            pairs.append((ref, p.with_array(p.array, frame_of_reference_uid=ref.frame_of_reference_uid)))
    for i, (ref, ev) in zip(indices, pairs, strict=True):
        res = gamma(
            ref,
            ev,
            dd_percent=cfg.dd_percent,
            dta_mm=cfg.dta_mm,
            cutoff_percent=cfg.cutoff_percent,
            backend=cfg.gamma_backend,
            device=model.config.device if cfg.gamma_backend == "torch" else None,
        )
        rows.append(
            {
                "index": int(i),
                "name": dataset.records[i].name,
                "gamma_pass_rate_percent": float(res.pass_rate_percent),
                "mae_gy": float(np.mean(np.abs(np.asarray(ev.array) - np.asarray(ref.array)))),
            }
        )
    return rows


def _markdown(summaries: Sequence[ConfigurationSummary], cfg: ProtocolConfig) -> str:
    head = (
        f"| rank | configuration | filters | lr | batch | runs | γ {cfg.dd_percent:g}%/{cfg.dta_mm:g}mm pass "
        "rate % (mean ± σ) | val loss (mean ± σ) | MAE Gy | best epoch |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {s.rank} | {s.configuration.name} | {s.configuration.initial_filters} | "
        f"{s.configuration.learning_rate:g} | {s.configuration.batch_size} | {s.runs} | "
        f"{s.gamma_pass_rate_mean_percent:.2f} ± {s.gamma_pass_rate_std_percent:.2f} | "
        f"{s.val_loss_mean:.4g} ± {s.val_loss_std:.2g} | {s.mae_mean_gy:.4g} | {s.best_epoch_mean:.1f} |"
        for s in summaries
    ]
    return head + "\n".join(lines) + "\n"


def _csv(summaries: Sequence[ConfigurationSummary]) -> str:
    buf = io.StringIO()
    rows = [s.to_dict() for s in summaries]
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def _rank_key(s: ConfigurationSummary) -> tuple[float, float]:
    g = s.gamma_pass_rate_mean_percent
    v = s.val_loss_mean
    return (-g if math.isfinite(g) else math.inf, v if math.isfinite(v) else math.inf)


def run_protocol(
    dataset: PairDataset,
    config: ProtocolConfig | None = None,
    out_dir: str | os.PathLike[str] = "run",
    *,
    progress: bool = True,
    resume: bool = False,
    ray: RayOptions | None = None,
    stack: int = 1,
    _plan_cfg: ProtocolConfig | None = None,
) -> ProtocolResult:
    """Grid search × repeated grouped-stratified k-fold CV, run manifests, summary table and ensemble.

    Every run (one configuration on one fold of one repeat) is an independent unit of work
    (:mod:`intrepid.learn._runs`) with a per-epoch checkpoint: the runs execute in this process, or spread
    over a Ray cluster with ``ray=``, and an interrupted protocol continues with ``resume=True``. The
    summary is assembled from the runs' files, so it is the same whichever way the runs were executed.

    Parameters
    ----------
    dataset : PairDataset
        Training pairs (hold the test pairs out: ``load_dataset(path, split="train")``).
    config : ProtocolConfig, optional
        The protocol (default: the published one, 24 configurations × 10 × 5 runs of 150 epochs).
    out_dir : path-like
        Run folder (created): ``protocol.json``, ``runs/<configuration>/r<R>_f<F>.json`` (+ the weights of
        the run's best epoch), ``summary.csv``, ``summary.md``, ``ensemble/`` and ``result.json``.
    progress : bool
        Progress bars (tqdm) over the runs and the epochs.
    resume : bool
        Continue the protocol already in ``out_dir``: finished runs are kept, a run that was interrupted
        continues from its last checkpointed epoch. The protocol and the pairs must be those of
        ``out_dir/protocol.json``.
    ray : RayOptions, optional
        Execute the runs as Ray tasks (:func:`intrepid.learn.execute_runs_on_ray`); ``None``: in this process.
    stack : int
        Train up to ``stack`` runs of one architecture at once as one grouped network
        (:func:`intrepid.learn.train_stacked`; results equal to one-at-a-time training within float32
        round-off). Pays off on a GPU, which one small U-Net leaves mostly idle; 1 (default): one at a time,
        with per-epoch checkpoints.

    Returns
    -------
    ProtocolResult
        Ranked configurations and where the ensemble is.

    Raises
    ------
    ParameterError
        Fewer phantom × field groups than folds, bad settings, ``resume`` on a folder of another protocol.

    Examples
    --------
    >>> cfg = ProtocolConfig(filters=(8,), learning_rates=(1e-3,), batch_sizes=(4,), repeats=2, folds=3,
    ...                      epochs=5)
    >>> result = run_protocol(load_dataset("pairs/", split="train"), cfg, "run")  # doctest: +SKIP
    >>> result.best.configuration.name, result.ensemble_path  # doctest: +SKIP
    ('f8_lr0.001_bs4', PosixPath('run/ensemble'))
    """
    from intrepid.learn._ensemble import select_device
    from intrepid.learn._runs import RunContext, RunSpec, execute_runs_locally, run_done

    cfg = ProtocolConfig() if config is None else config
    if not isinstance(dataset, PairDataset):
        raise ParameterError(f"dataset must be a PairDataset (load_dataset), got {type(dataset).__name__}")
    device = select_device(cfg.device)
    splits = cv_splits(dataset.records, cfg.folds, cfg.repeats, cfg.seed)
    out = Path(out_dir)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    plan = {
        "protocol": (cfg if _plan_cfg is None else _plan_cfg).to_dict(),
        "device": device,
        "dataset": dataset.summary(),
        "pairs": [r.describe() for r in dataset.records],
        "splits": [{"repeat": s.repeat, "fold": s.fold, "val_indices": list(s.val_indices)} for s in splits],
    }
    if resume:
        _check_resumable(out, plan)
    else:
        _write_json(out / "protocol.json", plan)
    specs = [
        RunSpec(conf, split, _run_seed(cfg.seed, split.repeat, split.fold))
        for conf in cfg.configurations
        for split in splits
    ]
    pending = [s for s in specs if not run_done(s, out)]
    if resume:
        _log.info("resuming %s: %d of %d runs left", out, len(pending), len(specs))
    if pending:
        _log.info("resampling %d pairs to the %s working grid", len(dataset), cfg.preprocess.working_shape)
        if cfg.validation_grid is ValidationGrid.WORKING:
            # read each pair once, without keeping the detector images in memory
            source = PairDataset(dataset.records, dataset.root, cache=False)
            arrays = prepare_working_arrays(source, cfg.preprocess.working_shape)
        else:
            arrays = prepare_working_arrays(dataset, cfg.preprocess.working_shape)
        ctx = RunContext(config=cfg, dataset=dataset, arrays=arrays, out_dir=out, device=device)
        if ray is None:
            execute_runs_locally(ctx, pending, progress=progress, stack=stack)
        else:
            from intrepid.learn._distributed import execute_runs_on_ray

            execute_runs_on_ray(ctx, pending, ray, progress=progress, stack=stack)
    return _assemble(out, cfg, specs, dataset, device, time.perf_counter() - start)


def resume_protocol(
    out_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    ray: RayOptions | None = None,
    device: str | None = None,
    stack: int = 1,
) -> ProtocolResult:
    """Continue the protocol of the run folder ``out_dir`` (``intrepid train --resume RUN``).

    The protocol, the data-set folder and the pairs are read from ``out_dir/protocol.json``; finished runs
    are kept and interrupted ones continue from their last checkpointed epoch. ``device`` overrides the
    recorded device (e.g. resume on the CPU a protocol started on a GPU).

    Raises
    ------
    ParameterError
        No ``protocol.json``, or the pairs it names are no longer in the data-set folder.
    """
    from intrepid.learn._dataset import load_dataset

    out = Path(out_dir)
    path = out / "protocol.json"
    if not path.is_file():
        raise ParameterError(f"cannot resume {out}: it holds no protocol.json")
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        root = Path(plan["dataset"]["root"])
        names = [str(p["name"]) for p in plan["pairs"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ParameterError(f"cannot resume {out}: {path} is not a protocol file ({exc})") from exc
    cfg = ProtocolConfig.from_dict(plan["protocol"])
    full = load_dataset(root)
    index = {r.name: i for i, r in enumerate(full.records)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ParameterError(f"cannot resume {out}: pairs {missing[:3]} are no longer in {root}")
    dataset = full.subset([index[n] for n in names])
    if device is not None and device != cfg.device:
        # the device is not part of what identifies a run; record the protocol as started
        cfg_run = replace(cfg, device=device)
        return run_protocol(
            dataset, cfg_run, out, progress=progress, resume=True, ray=ray, stack=stack, _plan_cfg=cfg
        )
    return run_protocol(dataset, cfg, out, progress=progress, resume=True, ray=ray, stack=stack)


def _check_resumable(out: Path, plan: dict[str, Any]) -> None:
    """``resume`` only continues the same protocol on the same pairs."""
    path = out / "protocol.json"
    if not path.is_file():
        raise ParameterError(f"cannot resume {out}: it holds no protocol.json")
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ParameterError(f"cannot resume {out}: {path} is unreadable ({exc})") from exc
    new = json.loads(json.dumps(_jsonable(plan)))
    for key in ("protocol", "splits"):
        if old.get(key) != new.get(key):
            raise ParameterError(f"cannot resume {out}: its {key} differs from the one asked for now")
    if [p.get("name") for p in old.get("pairs", [])] != [p["name"] for p in new["pairs"]]:
        raise ParameterError(f"cannot resume {out}: it was run on other pairs")


def _assemble(
    out: Path,
    cfg: ProtocolConfig,
    specs: Sequence[Any],
    dataset: PairDataset,
    device: str,
    seconds: float,
) -> ProtocolResult:
    """Summary tables, ensembles and ``result.json`` from the files of the finished runs."""
    from intrepid.learn._runs import load_run, trained_model_from_run

    by_conf: dict[str, list[Any]] = defaultdict(list)
    for spec in specs:
        by_conf[spec.configuration.name].append(spec)
    summaries: list[ConfigurationSummary] = []
    best_summary: ConfigurationSummary | None = None
    best_members: list[tuple[TrainedModel, dict[str, Any]]] = []
    for conf in cfg.configurations:
        gammas, losses, maes, epochs_best, secs = [], [], [], [], []
        per_repeat: dict[int, tuple[tuple[float, float], Any, dict[str, Any]]] = {}
        for spec in by_conf[conf.name]:
            manifest, _ = load_run(spec, out)
            m = manifest["metrics"]
            g_mean, val_loss = float(m["gamma_pass_rate_mean_percent"]), float(m["val_loss"])
            gammas.append(g_mean)
            losses.append(val_loss)
            maes.append(float(m["mae_mean_gy"]))
            epochs_best.append(int(manifest["history"]["best_epoch"]))
            secs.append(float(manifest.get("seconds", 0.0)))
            key = (-g_mean, val_loss)
            info = {
                "configuration": conf.name,
                "repeat": spec.split.repeat,
                "fold": spec.split.fold,
                "seed": spec.seed,
                "best_epoch": int(manifest["history"]["best_epoch"]),
                "val_loss": val_loss,
                "val_gamma_pass_rate_mean_percent": g_mean,
                "val_mae_mean_gy": float(m["mae_mean_gy"]),
            }
            if spec.split.repeat not in per_repeat or key < per_repeat[spec.split.repeat][0]:
                per_repeat[spec.split.repeat] = (key, spec, info)
        g_mean, g_std = _mean_std(gammas)
        l_mean, l_std = _mean_std(losses)
        summary = ConfigurationSummary(
            configuration=conf,
            runs=len(by_conf[conf.name]),
            gamma_pass_rate_mean_percent=g_mean,
            gamma_pass_rate_std_percent=g_std,
            val_loss_mean=l_mean,
            val_loss_std=l_std,
            mae_mean_gy=_mean_std(maes)[0],
            best_epoch_mean=float(np.mean(epochs_best)),
            seconds=float(np.sum(secs)),
        )
        summaries.append(summary)
        is_best = best_summary is None or _rank_key(summary) < _rank_key(best_summary)
        if cfg.keep_all_models or is_best:
            members = []
            for r in sorted(per_repeat):
                manifest, state = load_run(per_repeat[r][1], out)
                members.append((trained_model_from_run(manifest, state, device), per_repeat[r][2]))
            if cfg.keep_all_models:
                _save_ensemble(members, out / "runs" / conf.name / "ensemble", dataset, cfg, conf, device)
            if is_best:
                best_summary, best_members = summary, members
        _log.info("%s: pass rate %.2f ± %.2f %%, val loss %.4g", conf.name, g_mean, g_std, l_mean)
    assert best_summary is not None
    ranked = sorted(summaries, key=_rank_key)
    ranked = [replace(s, rank=n + 1) for n, s in enumerate(ranked)]
    md = _markdown(ranked, cfg)
    atomic_write(out / "summary.md", lambda tmp: tmp.write_text(md, encoding="utf-8"))
    text = _csv(ranked)
    atomic_write(out / "summary.csv", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    ens_dir = out / "ensemble"
    if ens_dir.exists():
        shutil.rmtree(ens_dir)
    _save_ensemble(best_members, ens_dir, dataset, cfg, best_summary.configuration, device)
    result = ProtocolResult(
        out_dir=out,
        summaries=tuple(ranked),
        ensemble_path=ens_dir,
        members=len(best_members),
        runs=len(specs),
        device=device,
        seconds=seconds,
    )
    _write_json(out / "result.json", result.to_dict())
    return result


def _save_ensemble(
    members: Sequence[tuple[TrainedModel, dict[str, Any]]],
    folder: Path,
    dataset: PairDataset,
    cfg: ProtocolConfig,
    conf: Configuration,
    device: str,
) -> Path:
    """Save the per-repeat best models as one ensemble; each member keeps the normalisation fitted on its
    own training images."""
    from intrepid.learn._ensemble import Ensemble

    training = {
        "dataset": dataset.summary(),
        "protocol": cfg.to_dict(),
        "configuration": conf.to_dict(),
        "device": device,
        "member_selection": "per repeat, the fold model with the highest validation gamma pass rate "
        "(ties: lower validation loss)",
    }
    ens = Ensemble(
        members[0][0].unet,
        members[0][0].preprocess,
        [m.state for m, _ in members],
        member_info=[i for _, i in members],
        member_preprocess=[m.preprocess for m, _ in members],
        training=training,
        device="cpu",
    )
    return ens.save(folder)
