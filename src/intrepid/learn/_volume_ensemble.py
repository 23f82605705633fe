"""Repeated cross-validation and ensembles for 3D volume regression (the 2D protocol of
:mod:`intrepid.learn._selection` generalised to volumes, added beside it).

The protocol: ``repeats`` × ``folds``-fold cross-validation over *groups* (all samples of one group — e.g. the
beams of one patient — stay in one fold); in each run a fresh 3D U-Net is trained with Adam on random patches,
validated on the held-out fold after every epoch, and the weights of its best validation epoch are kept
("the best model of each run"); the ensemble averages those members. Every run records its seed, its fold
membership and its validation losses. The networks are residual: ``prediction = base + net(inputs)``, so an
untrained member returns the physics base and training only has to learn the correction.

Weights are written with safetensors and a JSON description (:func:`intrepid.learn.write_model_files`); no
pickle.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import ModelError, ParameterError
from intrepid.learn._model_io import read_model_files, write_model_files
from intrepid.learn._schedule import check_lr_schedule, scheduled_learning_rate
from intrepid.learn._unet3d import UNet3DConfig, build_unet3d, pad_to_multiple

__all__ = ["VolumeEnsemble", "VolumeSample", "VolumeTrainConfig", "train_volume_ensemble"]

_log = logging.getLogger(__name__)

KIND = "unet3d-residual-ensemble"


@dataclass(frozen=True, eq=False)
class VolumeSample:
    """One training sample.

    Attributes
    ----------
    inputs : ndarray (C, Z, Y, X) float32
    base : ndarray (Z, Y, X) float32
        The physics prediction the network corrects (same normalisation as ``target``).
    target : ndarray (Z, Y, X) float32
    weight : ndarray (Z, Y, X) float32
        Loss weight per voxel (0 outside the region of interest).
    group : str
        Cross-validation group.
    """

    inputs: NDArray[np.float32]
    base: NDArray[np.float32]
    target: NDArray[np.float32]
    weight: NDArray[np.float32]
    group: str


@dataclass(frozen=True)
class VolumeTrainConfig:
    """Training protocol.

    Parameters
    ----------
    repeats, folds : int
        Repeated K-fold cross-validation (folds >= 2; published 2D protocol: 10 × 5).
    epochs : int
        Epochs per run (published 2D: 150).
    learning_rate : float
        Adam learning rate.
    patch : int
        Cubic patch size in voxels for training (a multiple of the network's input multiple).
    patches_per_sample : int
        Random patches drawn per sample and epoch (centred on voxels with weight > 0).
    batch_size : int
    seed : int
    threads : int
        PyTorch CPU threads.
    max_val_samples : int or None
        Validate on at most this many held-out samples (a seeded subset; None: all) to save time.
    lr_schedule : {"constant", "cosine"}
        ``"cosine"``: half a cosine per run from ``learning_rate`` down to 5 % of it at the last epoch
        (:mod:`intrepid.learn._schedule`); ``"constant"`` (default) keeps ``learning_rate``.
    """

    repeats: int = 1
    folds: int = 3
    epochs: int = 20
    learning_rate: float = 1e-3
    patch: int = 32
    patches_per_sample: int = 1
    batch_size: int = 4
    seed: int = 0
    threads: int = 2
    max_val_samples: int | None = None
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.folds < 2 or self.repeats < 1 or self.epochs < 1:
            raise ParameterError("folds must be >= 2, repeats and epochs >= 1")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ParameterError(f"learning_rate must be > 0, got {self.learning_rate}")
        check_lr_schedule(self.lr_schedule)

    def epoch_learning_rate(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (0-based) under :attr:`lr_schedule`."""
        return scheduled_learning_rate(self.lr_schedule, self.learning_rate, epoch, self.epochs)


@dataclass(eq=False)
class VolumeEnsemble:
    """Trained members (PyTorch modules) and what is known of their training."""

    architecture: UNet3DConfig
    members: list[Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def predict(
        self, inputs: NDArray[np.float32], base: NDArray[np.float32], *, device: str | None = None
    ) -> NDArray[np.float32]:
        """Member-averaged ``base + net(inputs)`` for one volume ``inputs`` (C, Z, Y, X)."""
        return self.predict_batch([(inputs, base)], device=device)[0]

    def predict_batch(
        self,
        items: Sequence[tuple[NDArray[np.float32], NDArray[np.float32]]],
        *,
        device: str | None = None,
        batch_size: int = 4,
    ) -> list[NDArray[np.float32]]:
        """:meth:`predict` for many volumes: those of one shape go through each member in batches.

        Parameters
        ----------
        items : sequence of (inputs, base)
            ``inputs`` (C, Z, Y, X) and ``base`` (Z, Y, X) per volume (e.g. the beams of one plan, which share
            the CT grid).
        device : str, optional
            ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (:func:`select_device`); the members
            move there.
        batch_size : int
            Volumes per forward pass.
        """
        import torch

        if int(batch_size) < 1:
            raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
        from intrepid.learn._ensemble import select_device

        dev = torch.device(select_device(device or "cpu"))
        m = self.architecture.multiple
        out: list[NDArray[np.float32] | None] = [None] * len(items)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, (x, _) in enumerate(items):
            by_shape.setdefault(tuple(np.shape(x)), []).append(i)
        for net in self.members:
            net.to(dev).eval()
        with torch.no_grad():
            for idx in by_shape.values():
                for k in range(0, len(idx), int(batch_size)):
                    chunk = idx[k : k + int(batch_size)]
                    x, back = pad_to_multiple(
                        np.stack([np.asarray(items[i][0], dtype=np.float32) for i in chunk]), m
                    )
                    t = torch.from_numpy(np.ascontiguousarray(x)).to(dev)
                    acc = torch.zeros((len(chunk), *x.shape[2:]), dtype=torch.float32, device=dev)
                    for net in self.members:
                        acc += net(t)[:, 0]
                    corr = (acc / max(1, len(self.members))).cpu().numpy()
                    for j, i in enumerate(chunk):
                        base = np.asarray(items[i][1], dtype=np.float32)
                        out[i] = np.asarray(base + corr[j][back[-3:]], dtype=np.float32)
        return [o for o in out if o is not None]

    def save(self, folder: str | Path) -> Path:
        """Write ``model.safetensors`` + ``model.json``."""
        tensors: dict[str, NDArray[Any]] = {}
        members = []
        for i, net in enumerate(self.members):
            prefix = f"m{i}."
            for k, v in net.state_dict().items():
                tensors[prefix + k] = v.detach().cpu().numpy()
            members.append({"prefix": prefix, **(self.runs[i] if i < len(self.runs) else {})})
        desc = {
            "kind": KIND,
            "architecture": self.architecture.to_dict(),
            "preprocessing": self.preprocessing,
            "members": members,
            "training": self.training,
        }
        return write_model_files(folder, tensors, desc)

    @classmethod
    def load(cls, folder: str | Path) -> VolumeEnsemble:
        """Read a saved ensemble (safetensors; pickle files are refused by the reader)."""
        import torch

        doc, tensors = read_model_files(folder)
        if doc.get("kind") != KIND:
            raise ModelError(
                f"{folder}: not a 3D in-vivo model (kind {doc.get('kind')!r}, expected {KIND!r})"
            )
        arch = UNet3DConfig.from_dict(doc["architecture"])
        members = []
        for m in doc["members"]:
            net = build_unet3d(arch)
            prefix = m["prefix"]
            state = {
                k[len(prefix) :]: torch.from_numpy(np.array(v))
                for k, v in tensors.items()
                if k.startswith(prefix)
            }
            try:
                net.load_state_dict(state)
            except RuntimeError as exc:
                raise ModelError(f"{folder}: weights do not fit the architecture ({exc})") from exc
            net.eval()
            members.append(net)
        runs = [{k: v for k, v in m.items() if k != "prefix"} for m in doc["members"]]
        return cls(arch, members, runs, doc.get("training", {}), doc.get("preprocessing", {}))


def _patch(sample: VolumeSample, size: int, rng: np.random.Generator) -> tuple[NDArray[np.float32], ...]:
    z, y, x = sample.target.shape
    idx = np.argwhere(sample.weight > 0)
    c = idx[rng.integers(len(idx))] if len(idx) else np.array([z // 2, y // 2, x // 2])
    starts = [int(min(max(ci - size // 2, 0), max(n - size, 0))) for ci, n in zip(c, (z, y, x), strict=True)]
    sl = tuple(slice(s, s + size) for s in starts)
    arrs = (sample.inputs[(slice(None), *sl)], sample.base[sl], sample.target[sl], sample.weight[sl])
    out = []
    for a in arrs:
        pads = [(0, 0)] * (a.ndim - 3) + [(0, size - n) for n in a.shape[-3:]]
        out.append(np.pad(a, pads))
    return tuple(out)


def _loss(net: Any, batch: list[tuple[NDArray[np.float32], ...]]) -> Any:
    import torch

    x = torch.from_numpy(np.stack([b[0] for b in batch]))
    base = torch.from_numpy(np.stack([b[1] for b in batch]))[:, None]
    t = torch.from_numpy(np.stack([b[2] for b in batch]))[:, None]
    w = torch.from_numpy(np.stack([b[3] for b in batch]))[:, None]
    pred = base + net(x)
    return ((pred - t) ** 2 * w).sum() / w.sum().clamp_min(1.0)


def _val_loss(net: Any, samples: Sequence[VolumeSample], multiple: int) -> float:
    import torch

    net.eval()
    tot = wsum = 0.0
    with torch.no_grad():
        for s in samples:
            x, back = pad_to_multiple(s.inputs[None], multiple)
            corr = net(torch.from_numpy(np.ascontiguousarray(x)))[0, 0].numpy()[back[-3:]]
            tot += float((((s.base + corr) - s.target) ** 2 * s.weight).sum())
            wsum += float(s.weight.sum())
    net.train()
    return tot / max(wsum, 1.0)


def train_volume_ensemble(
    samples: Sequence[VolumeSample],
    architecture: UNet3DConfig,
    config: VolumeTrainConfig,
    *,
    preprocessing: dict[str, Any] | None = None,
    log_every: int = 5,
) -> VolumeEnsemble:
    """Train an ensemble by repeated group K-fold cross-validation (module docstring).

    Returns
    -------
    VolumeEnsemble
        One member per run (its best validation epoch); ``runs`` records seeds, folds and losses.
    """
    import torch

    if config.patch % architecture.multiple:
        raise ParameterError(f"patch {config.patch} must be a multiple of {architecture.multiple}")
    groups = sorted({s.group for s in samples})
    if len(groups) < config.folds:
        raise ParameterError(f"{len(groups)} groups cannot fill {config.folds} folds")
    torch.set_num_threads(max(1, config.threads))
    members, runs = [], []
    t0 = time.perf_counter()
    for r in range(config.repeats):
        order = np.random.default_rng([config.seed, r]).permutation(len(groups))
        folds = [set(np.asarray(groups)[order[k :: config.folds]].tolist()) for k in range(config.folds)]
        for k, held in enumerate(folds):
            seed = config.seed * 1000 + r * 100 + k
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            train = [s for s in samples if s.group not in held]
            val = [s for s in samples if s.group in held]
            if config.max_val_samples is not None and len(val) > config.max_val_samples:
                pick = rng.choice(len(val), config.max_val_samples, replace=False)
                val = [val[i] for i in sorted(pick)]
            net = build_unet3d(architecture)
            # residual start: the last layer at zero, so the untrained member returns the base
            head = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)][-1]
            torch.nn.init.zeros_(head.weight)
            if head.bias is not None:
                torch.nn.init.zeros_(head.bias)
            opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
            best = (_val_loss(net, val, architecture.multiple), -1)
            best_state = {n: v.detach().clone() for n, v in net.state_dict().items()}
            history = [best[0]]
            net.train()
            for epoch in range(config.epochs):
                for group in opt.param_groups:
                    group["lr"] = config.epoch_learning_rate(epoch)
                patches = [
                    _patch(s, config.patch, rng) for s in train for _ in range(config.patches_per_sample)
                ]
                perm = rng.permutation(len(patches))
                for b in range(0, len(perm), config.batch_size):
                    batch = [patches[i] for i in perm[b : b + config.batch_size]]
                    opt.zero_grad()
                    loss = _loss(net, batch)
                    loss.backward()
                    opt.step()
                v = _val_loss(net, val, architecture.multiple)
                history.append(v)
                if v < best[0]:
                    best = (v, epoch)
                    best_state = {n: t.detach().clone() for n, t in net.state_dict().items()}
                if log_every and (epoch + 1) % log_every == 0:
                    _log.info(
                        "repeat %d fold %d epoch %d: val %.5f (best %.5f @ %d), %.0f s",
                        r,
                        k,
                        epoch + 1,
                        v,
                        best[0],
                        best[1] + 1,
                        time.perf_counter() - t0,
                    )
            net.load_state_dict(best_state)
            net.eval()
            members.append(net)
            runs.append(
                {
                    "repeat": r,
                    "fold": k,
                    "seed": seed,
                    "held_out_groups": sorted(held),
                    "best_epoch": best[1] + 1,
                    "val_loss": best[0],
                    "val_history": history,
                    "val_loss_untrained": history[0],
                }
            )
    training = {
        "protocol": asdict(config),
        "groups": groups,
        "samples": len(samples),
        "seconds": time.perf_counter() - t0,
    }
    return VolumeEnsemble(architecture, members, runs, training, dict(preprocessing or {}))
