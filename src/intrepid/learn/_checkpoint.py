"""Per-epoch training checkpoints: one safetensors file, no pickle, written atomically.

A checkpoint holds what :func:`~intrepid.learn.train_model` needs to continue a run exactly where it stopped:
the network's weights and buffers, Adam's moment estimates, the weights of the best epoch so far, the loss
history, the augmentation counts and the states of the two NumPy generators (batch order and augmentation).
Tensors are stored as arrays; everything else as JSON in the file's metadata. A worker killed in the middle
of a run (a Ray node lost, a job pre-empted) therefore loses at most the epoch it was in.

The file is replaced with a rename after each epoch, so it is always either the previous or the new
checkpoint, never a mixture.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.dicom._common import atomic_write

__all__ = ["TrainingCheckpoint", "read_checkpoint", "write_checkpoint"]

_log = logging.getLogger(__name__)

#: Format tag in the metadata; a file without it is not one of ours and is ignored.
_FORMAT = "intrepid-training-checkpoint/1"


@dataclass
class TrainingCheckpoint:
    """The state of a training run after ``epoch`` completed epochs.

    Attributes
    ----------
    key : dict
        What the run is (seed, learning rate, batch size, architecture, number of images...): a checkpoint
        whose key differs from the run asking for it is ignored.
    epoch : int
        Completed epochs.
    net, best : dict of str to ndarray
        Current weights and buffers; weights of the best epoch so far.
    optimiser : dict of str to ndarray
        Adam's per-parameter state, flattened as ``"<param index>.<name>"``.
    scalars : dict
        Losses, best epoch and loss, augmentation counts, generator states, elapsed seconds.
    """

    key: dict[str, Any]
    epoch: int
    net: dict[str, NDArray[Any]] = field(repr=False)
    best: dict[str, NDArray[Any]] = field(repr=False)
    optimiser: dict[str, NDArray[Any]] = field(repr=False)
    scalars: dict[str, Any] = field(default_factory=dict)


def write_checkpoint(path: str | os.PathLike[str], ckpt: TrainingCheckpoint) -> Path:
    """Write ``ckpt`` to ``path`` (a ``.safetensors`` file) atomically."""
    from safetensors.numpy import save_file

    tensors: dict[str, NDArray[Any]] = {}
    for prefix, part in (("net", ckpt.net), ("best", ckpt.best), ("opt", ckpt.optimiser)):
        for name, arr in part.items():
            tensors[f"{prefix}/{name}"] = np.ascontiguousarray(arr)
    meta = {
        "format": _FORMAT,
        "key": json.dumps(ckpt.key, sort_keys=True),
        "epoch": str(int(ckpt.epoch)),
        "scalars": json.dumps(ckpt.scalars),
    }
    out = Path(path)
    atomic_write(out, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return out


def read_checkpoint(path: str | os.PathLike[str], key: dict[str, Any]) -> TrainingCheckpoint | None:
    """The checkpoint at ``path`` when it exists, is readable and belongs to the run described by ``key``.

    Anything else (no file, a truncated or foreign file, another run's checkpoint) gives ``None`` with a
    logged reason: the run then starts from its first epoch.
    """
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        return None
    try:
        with safe_open(str(p), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != _FORMAT:
                _log.warning("%s is not a training checkpoint; starting the run afresh", p)
                return None
            if json.loads(meta["key"]) != json.loads(json.dumps(key, sort_keys=True)):
                _log.warning("%s belongs to another run; starting afresh", p)
                return None
            parts: dict[str, dict[str, NDArray[Any]]] = {"net": {}, "best": {}, "opt": {}}
            for name in f.keys():
                prefix, _, rest = name.partition("/")
                if prefix in parts:
                    parts[prefix][rest] = f.get_tensor(name)
            return TrainingCheckpoint(
                key=key,
                epoch=int(meta["epoch"]),
                net=parts["net"],
                best=parts["best"],
                optimiser=parts["opt"],
                scalars=json.loads(meta["scalars"]),
            )
    except Exception as exc:  # a torn or corrupt file: never fatal, the run restarts
        _log.warning("cannot read checkpoint %s (%s); starting the run afresh", p, exc)
        return None


def optimiser_arrays(optimiser: Any) -> dict[str, NDArray[Any]]:
    """Flatten a PyTorch optimiser's per-parameter state into named arrays."""
    out: dict[str, NDArray[Any]] = {}
    for index, state in optimiser.state_dict()["state"].items():
        for name, value in state.items():
            arr = value.detach().cpu().numpy() if hasattr(value, "detach") else value
            out[f"{index}.{name}"] = np.asarray(arr)
    return out


def load_optimiser_arrays(optimiser: Any, arrays: dict[str, NDArray[Any]], device: str) -> None:
    """Inverse of :func:`optimiser_arrays` (the parameter groups keep their current settings)."""
    import torch

    sd = optimiser.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for flat, value in arrays.items():
        index, _, name = flat.partition(".")
        t = torch.from_numpy(np.array(value))
        # Adam keeps ``step`` as a CPU scalar tensor; the moments live beside the parameters
        state.setdefault(int(index), {})[name] = t if name == "step" else t.to(device)
    sd["state"] = state
    optimiser.load_state_dict(sd)
