"""The runs of the model-selection protocol as independent, restartable units of work.

A *run* is one configuration of the grid trained on one fold of one repeat. Each run writes, in its
configuration's folder under ``runs/``:

- ``r<RR>_f<F>.ckpt.safetensors`` while it trains (per-epoch checkpoint, removed when the run ends);
- ``r<RR>_f<F>.safetensors``, the weights of its best epoch;
- ``r<RR>_f<F>.json``, its manifest (configuration, seeds, fold membership, history, validation metrics),
  written last: a run is *done* exactly when its manifest exists.

Runs share nothing but the read-only working arrays, so they can execute in any order, in one process
(:func:`execute_runs_locally`), on a Ray cluster (:mod:`intrepid.learn._distributed`) or across an interrupted
and resumed protocol, and give the same results for the same seeds.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from intrepid.learn._dataset import PairDataset
    from intrepid.learn._selection import Configuration, CVSplit, ProtocolConfig
    from intrepid.learn._training import TrainedModel, WorkingArrays

__all__ = [
    "RunContext",
    "RunSpec",
    "execute_chunk",
    "execute_run",
    "execute_runs_locally",
    "execute_stacked",
    "run_done",
    "stacks",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """One run: a configuration of the grid on one fold of one repeat, with its seed."""

    configuration: Configuration
    split: CVSplit
    seed: int

    @property
    def label(self) -> str:
        """``"f8_lr0.001_bs4 r00 f1"``, for messages."""
        return f"{self.configuration.name} r{self.split.repeat:02d} f{self.split.fold}"

    def stem(self, out_dir: Path) -> Path:
        """Path of the run's files without suffix: ``runs/<configuration>/r<RR>_f<F>``."""
        return out_dir / "runs" / self.configuration.name / f"r{self.split.repeat:02d}_f{self.split.fold}"


@dataclass(frozen=True)
class RunContext:
    """What every run of one protocol needs: settings, data and the run folder.

    The working arrays are read-only and shared; on Ray they travel once through the object store.
    """

    config: ProtocolConfig
    dataset: PairDataset
    arrays: WorkingArrays
    out_dir: Path
    device: str


def run_done(spec: RunSpec, out_dir: Path) -> bool:
    """Whether ``spec`` has finished (its manifest and weights exist and the manifest parses)."""
    stem = spec.stem(out_dir)
    manifest, weights = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    if not (manifest.is_file() and weights.is_file()):
        return False
    try:
        json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def _train_config(ctx: RunContext, spec: RunSpec) -> Any:
    from intrepid.learn._training import TrainConfig

    cfg = ctx.config
    return TrainConfig(
        loss=cfg.loss,
        learning_rate=spec.configuration.learning_rate,
        batch_size=spec.configuration.batch_size,
        epochs=cfg.epochs,
        seed=spec.seed,
        device=ctx.device,
        augmentation=cfg.augmentation,
    )


def execute_run(ctx: RunContext, spec: RunSpec, *, progress: bool = False) -> dict[str, Any]:
    """Train, validate and record one run; resumes from its checkpoint when one is there.

    Returns the run's manifest (also written to ``<stem>.json``).
    """
    from intrepid.learn._training import train_model

    cfg = ctx.config
    stem = spec.stem(ctx.out_dir)
    stem.parent.mkdir(parents=True, exist_ok=True)
    ckpt = stem.parent / f"{stem.name}.ckpt.safetensors"
    resumed_from = _checkpoint_epoch(ckpt)
    t_run = time.perf_counter()
    model = train_model(
        ctx.arrays.take(spec.split.train_indices),
        ctx.arrays.take(spec.split.val_indices),
        _train_config(ctx, spec),
        unet=replace(cfg.unet, initial_filters=spec.configuration.initial_filters),
        preprocess=cfg.preprocess,
        progress=progress,
        checkpoint=ckpt,
    )
    manifest = _record(ctx, spec, model, {"resumed_from_epoch": resumed_from}, time.perf_counter() - t_run)
    ckpt.unlink(missing_ok=True)
    return manifest


def execute_stacked(
    ctx: RunContext, specs: Sequence[RunSpec], *, progress: bool = False
) -> list[dict[str, Any]]:
    """Train ``specs`` (one architecture) at once as one grouped network (:mod:`intrepid.learn._stacked`),
    then validate and record each run as :func:`execute_run` does. No per-epoch checkpoint: a stack that is
    interrupted starts again."""
    from intrepid.learn._stacked import StackedJob, train_stacked

    if len({s.configuration.initial_filters for s in specs}) != 1:
        raise ParameterError("a stack of runs must share one architecture (initial filters)")
    cfg = ctx.config
    jobs = [
        StackedJob(
            ctx.arrays.take(s.split.train_indices),
            ctx.arrays.take(s.split.val_indices),
            _train_config(ctx, s),
        )
        for s in specs
    ]
    t_run = time.perf_counter()
    models = train_stacked(
        jobs,
        unet=replace(cfg.unet, initial_filters=specs[0].configuration.initial_filters),
        preprocess=cfg.preprocess,
        device=ctx.device,
        progress=progress,
    )
    share = (time.perf_counter() - t_run) / len(specs)
    return [
        _record(ctx, s, m, {"stacked_with": len(specs), "resumed_from_epoch": 0}, share)
        for s, m in zip(specs, models, strict=True)
    ]


def _record(
    ctx: RunContext, spec: RunSpec, model: TrainedModel, execution: dict[str, Any], seconds: float
) -> dict[str, Any]:
    """Validate a trained run and write its weights and manifest (the manifest last)."""
    from safetensors.numpy import save_file

    from intrepid.dicom._common import atomic_write
    from intrepid.learn._selection import _validate, _write_json

    cfg = ctx.config
    stem = spec.stem(ctx.out_dir)
    stem.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    per_image = _validate(model, ctx.dataset, ctx.arrays, spec.split.val_indices, cfg)
    g_mean = float(np.mean([r["gamma_pass_rate_percent"] for r in per_image]))
    mae = float(np.mean([r["mae_gy"] for r in per_image]))
    records = ctx.dataset.records
    manifest = {
        "configuration": spec.configuration.to_dict(),
        "repeat": spec.split.repeat,
        "fold": spec.split.fold,
        "seeds": {"protocol": cfg.seed, "run": spec.seed},
        "train_config": model.config.to_dict(),
        "unet": model.unet.to_dict(),
        "preprocess": model.preprocess.to_dict(),
        "fold_membership": {
            "train": [records[i].name for i in spec.split.train_indices],
            "val": [records[i].name for i in spec.split.val_indices],
            "train_indices": list(spec.split.train_indices),
            "val_indices": list(spec.split.val_indices),
        },
        "history": model.history(),
        "metrics": {
            "validation_grid": cfg.validation_grid.value,
            "val_loss": model.best_val_loss,
            "gamma_pass_rate_mean_percent": g_mean,
            "mae_mean_gy": mae,
            "per_image": per_image,
        },
        "execution": {"host": platform.node(), "device": model.config.device, **execution},
        "seconds": seconds + time.perf_counter() - t0,
    }
    state = {k: np.ascontiguousarray(v) for k, v in model.state.items()}
    atomic_write(stem.with_suffix(".safetensors"), lambda tmp: save_file(state, str(tmp)))
    _write_json(stem.with_suffix(".json"), manifest)  # last: marks the run as done
    return manifest


def stacks(specs: Sequence[RunSpec], size: int) -> list[list[RunSpec]]:
    """``specs`` cut into stacks of at most ``size`` runs sharing an architecture (order kept within)."""
    if size < 1:
        raise ParameterError(f"stack size must be >= 1, got {size}")
    by_arch: dict[int, list[RunSpec]] = {}
    for s in specs:
        by_arch.setdefault(s.configuration.initial_filters, []).append(s)
    out: list[list[RunSpec]] = []
    for group in by_arch.values():
        out.extend(group[i : i + size] for i in range(0, len(group), size))
    return out


def execute_chunk(ctx: RunContext, chunk: Sequence[RunSpec], *, progress: bool = False) -> None:
    """One run alone (checkpointed) or a stack of runs."""
    if len(chunk) == 1:
        execute_run(ctx, chunk[0], progress=progress)
    else:
        execute_stacked(ctx, chunk, progress=progress)


def _checkpoint_epoch(path: Path) -> int:
    """Completed epochs recorded in a checkpoint file (0 when there is none or it is unreadable)."""
    if not path.is_file():
        return 0
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            return int((f.metadata() or {}).get("epoch", 0))
    except Exception:  # unreadable: the run restarts, as train_model will decide
        return 0


def execute_runs_locally(
    ctx: RunContext,
    specs: Sequence[RunSpec],
    *,
    progress: bool = True,
    stack: int = 1,
    on_done: Callable[[RunSpec], None] | None = None,
) -> None:
    """Execute ``specs`` in this process, one after the other or ``stack`` at a time (grouped network)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(specs), desc="runs", unit="run", disable=not progress)
    for chunk in stacks(specs, stack):
        bar.set_postfix(run=chunk[0].label if len(chunk) == 1 else f"{len(chunk)} stacked")
        execute_chunk(ctx, chunk, progress=progress)
        for spec in chunk:
            if on_done is not None:
                on_done(spec)
        bar.update(len(chunk))
    bar.close()


def load_run(spec: RunSpec, out_dir: Path) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """The manifest and best-epoch weights of a finished run."""
    from safetensors.numpy import load_file

    stem = spec.stem(out_dir)
    if not run_done(spec, out_dir):
        raise ParameterError(f"run {spec.label} has not finished: {stem.with_suffix('.json')} is missing")
    manifest = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    return manifest, load_file(str(stem.with_suffix(".safetensors")))


def trained_model_from_run(
    manifest: dict[str, Any], state: dict[str, NDArray[Any]], default_device: str
) -> TrainedModel:
    """Rebuild the :class:`~intrepid.learn.TrainedModel` of a finished run from its files."""
    from intrepid.learn._preprocess import AugmentConfig, PreprocessConfig
    from intrepid.learn._training import Loss, TrainConfig, TrainedModel
    from intrepid.learn._unet import UNetConfig

    tc = manifest["train_config"]
    config = TrainConfig(
        loss=Loss(tc["loss"]),
        learning_rate=float(tc["learning_rate"]),
        batch_size=int(tc["batch_size"]),
        epochs=int(tc["epochs"]),
        seed=int(tc["seed"]),
        device=default_device,
        augmentation=AugmentConfig.from_dict(tc["augmentation"]),
    )
    h = manifest["history"]
    return TrainedModel(
        unet=UNetConfig.from_dict(manifest["unet"]),
        preprocess=PreprocessConfig.from_dict(manifest["preprocess"]),
        config=config,
        state=state,
        train_losses=tuple(h["train_losses"]),
        val_losses=tuple(h["val_losses"]),
        best_epoch=int(h["best_epoch"]),
        best_val_loss=float(h["best_val_loss"]),
        seconds=float(h["seconds"]),
        augmentation_counts=dict(h["augmentation_counts"]),
        n_train=int(h["n_train"]),
        n_val=int(h["n_val"]),
        residual=bool(h.get("residual", False)),
    )
