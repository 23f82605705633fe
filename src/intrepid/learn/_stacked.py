"""Many small U-Nets trained at once as one grouped network ("stacked" training).

The published protocol trains 1,200 small U-Nets (24 configurations × 10 repeats × 5 folds). One at a time
they leave a GPU mostly idle: each convolution is too small to fill it. Here *G* runs that share an
architecture are packed into one network whose every layer is grouped (``groups=G``): member *g* owns the
*g*-th block of channels of every convolution, transposed convolution and batch normalisation, and the
skip-connection concatenations interleave the members' blocks. No weight couples two members, so each member
computes exactly what its own U-Net would, in one kernel launch for all.

Training follows each member's own schedule exactly as :func:`~intrepid.learn.train_model` would:

- its own seed for the initial weights (the member's U-Net is built with that seed, then copied into its
  block), its own mini-batch order and augmentation generators, its own learning rate and batch size;
- a mini-batch step updates only the members that have a batch at that step: their losses are summed (so
  each member's gradient is that of its own loss), Adam is applied per member with a mask and a per-member
  step count, and the batch-normalisation running statistics of the members that sat the step out are put
  back; when members' batches differ in size (the last batch of an epoch, different batch sizes), the step is
  split into one sub-step per size;
- validation loss per member after each epoch, best epoch per member, per-member non-finite-loss stop.

The result is one :class:`~intrepid.learn.TrainedModel` per member, equal to sequential training within
float32 round-off (tested: losses within 1e-5 relative on the CPU).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import ParameterError
from intrepid.learn._preprocess import PreprocessConfig, augment_batch, fit_preprocess
from intrepid.learn._training import (
    Loss,
    TrainConfig,
    TrainedModel,
    WorkingArrays,
    _batches,
    _network_arrays,
)
from intrepid.learn._unet import UNetConfig, _unet_class, build_unet

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["StackedJob", "build_stacked_unet", "member_state", "train_stacked"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class StackedJob:
    """One member of a stacked training: its training and validation arrays and its settings."""

    train: WorkingArrays
    val: WorkingArrays
    config: TrainConfig


def build_stacked_unet(config: UNetConfig, member_states: Sequence[dict[str, Any]]) -> torch.nn.Module:
    """A grouped network holding the U-Nets whose state dicts are ``member_states`` (tensors or arrays)."""
    import torch

    if not member_states:
        raise ParameterError("member_states must hold at least one U-Net state")
    net = _unet_class()(config, len(member_states))
    stacked = {}
    for key, ref in net.state_dict().items():
        parts = [torch.as_tensor(np.asarray(s[key])) for s in member_states]
        stacked[key] = parts[0].clone() if ref.ndim == 0 else torch.cat(parts, dim=0)
    net.load_state_dict(stacked)
    module: torch.nn.Module = net
    return module


def member_state(
    net: torch.nn.Module, member: int, batches_tracked: int | None = None
) -> dict[str, NDArray[Any]]:
    """The state dict (NumPy arrays) of member ``member`` of a stacked network, as its own U-Net's.

    ``batches_tracked`` replaces the batch-normalisation counters (shared by the stacked layers, while each
    member's own network counts only the steps it took part in).
    """
    g = int(net.members)  # type: ignore[arg-type]
    out = {}
    for key, value in net.state_dict().items():
        v = value.detach().cpu()
        if key.endswith("num_batches_tracked") and batches_tracked is not None:
            out[key] = np.array(batches_tracked, dtype=v.numpy().dtype)
            continue
        out[key] = (v if v.ndim == 0 else v.chunk(g, dim=0)[member]).numpy().copy()
    return out


class _MaskedAdam:
    """Adam (Kingma and Ba 2015, PyTorch's update rule) applied per member of a stacked network.

    Every parameter is viewed as ``(members, -1)``; a step updates only the rows of the active members, each
    with its own learning rate and step count.
    """

    def __init__(
        self,
        params: Sequence[torch.nn.Parameter],
        members: int,
        lrs: Sequence[float],
        weight_decays: Sequence[float],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        import torch

        self.params = list(params)
        self.g = members
        dev = self.params[0].device
        self.lr = torch.tensor(lrs, dtype=torch.float64).view(-1, 1)
        self.wd = torch.tensor(weight_decays, dtype=torch.float32, device=dev).view(-1, 1)
        self.b1, self.b2 = betas
        self.eps = eps
        self.steps = torch.zeros(members, dtype=torch.float64)
        self.m = [torch.zeros_like(p).view(members, -1) for p in self.params]
        self.v = [torch.zeros_like(p).view(members, -1) for p in self.params]

    def set_learning_rates(self, lrs: Sequence[float]) -> None:
        """Each member's learning rate for the next steps (its schedule's rate of the epoch)."""
        import torch

        self.lr = torch.tensor(lrs, dtype=torch.float64).view(-1, 1)

    def step(self, active: NDArray[np.bool_]) -> None:
        import torch

        mask_cpu = torch.from_numpy(np.asarray(active, dtype=bool))
        self.steps[mask_cpu] += 1
        steps = torch.where(mask_cpu, self.steps, torch.ones_like(self.steps)).view(-1, 1)
        bc1 = 1.0 - self.b1**steps
        bc2_sqrt = (1.0 - self.b2**steps).sqrt()
        dev = self.params[0].device
        step_size = (self.lr / bc1).to(dtype=torch.float32, device=dev)
        bc2s = bc2_sqrt.to(dtype=torch.float32, device=dev)
        mask = mask_cpu.to(dev).view(-1, 1)
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v, strict=True):
                if p.grad is None:
                    continue
                pv = p.view(self.g, -1)
                grad = p.grad.view(self.g, -1)
                if bool((self.wd != 0).any()):
                    grad = grad + self.wd * pv
                m.copy_(torch.where(mask, m.lerp(grad, 1 - self.b1), m))
                v.copy_(torch.where(mask, v * self.b2 + (1 - self.b2) * grad * grad, v))
                denom = v.sqrt() / bc2s + self.eps
                pv.sub_(torch.where(mask, step_size * m / denom, torch.zeros_like(pv)))


def _prepare(job: StackedJob, net_cfg: UNetConfig, pre: PreprocessConfig) -> tuple[PreprocessConfig, Any]:
    """The member's fitted preprocessing and its normalised network arrays (as :func:`train_model`)."""
    train, val = job.train, job.val
    if not isinstance(train, WorkingArrays) or not isinstance(val, WorkingArrays):
        raise ParameterError("stacked training takes WorkingArrays (prepare_working_arrays)")
    if len(train) == 0:
        raise ParameterError("every member needs at least one training pair")
    if train.base_gy is not None:
        raise ParameterError("stacked training trains plain networks (no hybrid base_gy)")
    if not pre.fitted:
        pre = fit_preprocess(
            list(train.epid), list(train.dose_gy), pre, detector_spacing_mm=train.detector_spacing_mm
        )
        pre = replace(pre, detector_shape=train.detector_shape)
    x_tr, y_tr = _network_arrays(train, pre, net_cfg.in_channels)
    x_va, y_va = _network_arrays(val, pre, net_cfg.in_channels)
    return pre, (x_tr, y_tr, x_va, y_va)


def train_stacked(
    jobs: Sequence[StackedJob],
    *,
    unet: UNetConfig | None = None,
    preprocess: PreprocessConfig | None = None,
    device: str = "auto",
    progress: bool = True,
) -> list[TrainedModel]:
    """Train the runs ``jobs`` concurrently as one grouped network; one :class:`TrainedModel` each.

    Parameters
    ----------
    jobs : sequence of StackedJob
        The members: training / validation arrays on the working grid and each one's
        :class:`~intrepid.learn.TrainConfig` (seed, learning rate, batch size, epochs, augmentation may
        differ; the loss must be the same for all).
    unet : UNetConfig, optional
        The members' common architecture.
    preprocess : PreprocessConfig, optional
        Working grid and scaling; fitted on each member's own training images when not ``fitted``.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``.
    progress : bool
        Progress bar over the epochs.

    Returns
    -------
    list of TrainedModel
        In the order of ``jobs``; each equal (within float32 round-off) to ``train_model`` on that job.
    """
    import torch
    from tqdm.auto import tqdm

    from intrepid.learn._ensemble import select_device

    if not jobs:
        raise ParameterError("jobs must hold at least one member")
    net_cfg = UNetConfig() if unet is None else unet
    pre0 = PreprocessConfig() if preprocess is None else preprocess
    losses = {j.config.loss for j in jobs}
    if len(losses) != 1:
        raise ParameterError(f"stacked members must share one loss, got {sorted(v.value for v in losses)}")
    loss_kind = losses.pop()
    m = net_cfg.size_multiple
    if any(s % m for s in pre0.working_shape):
        raise ParameterError(
            f"working_shape {pre0.working_shape} must be multiples of {m} for a depth-{net_cfg.depth} U-Net"
        )
    dev = select_device(device)
    g = len(jobs)
    prepared = [_prepare(j, net_cfg, pre0) for j in jobs]
    pres = [p for p, _ in prepared]
    arrays = [a for _, a in prepared]
    configs = [replace(j.config, device=dev) for j in jobs]

    # member initial weights: each member's own U-Net built from its own seed, as train_model does
    states, order_rngs, aug_rngs = [], [], []
    for cfg in configs:
        seeds = np.random.SeedSequence(cfg.seed).spawn(3)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seeds[0].generate_state(1)[0]))
            states.append(build_unet(net_cfg).state_dict())
        order_rngs.append(np.random.default_rng(seeds[1]))
        aug_rngs.append(np.random.default_rng(seeds[2]))
    net = build_stacked_unet(net_cfg, states).to(dev)
    opt = _MaskedAdam(
        list(net.parameters()), g, [c.learning_rate for c in configs], [c.weight_decay for c in configs]
    )
    bn_layers = [mod for mod in net.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    pointwise = torch.abs if loss_kind is Loss.MAE else torch.square
    shape = pre0.working_shape
    c_in, c_out = net_cfg.in_channels, net_cfg.out_channels

    n_train = [a[0].shape[0] for a in arrays]
    train_losses: list[list[float]] = [[] for _ in range(g)]
    val_losses: list[list[float]] = [[] for _ in range(g)]
    best_loss = [math.inf] * g
    best_epoch = [0] * g
    best_state: list[dict[str, NDArray[Any]]] = [{} for _ in range(g)]
    counts = [{"flip_columns": 0, "flip_rows": 0, "rotate_90": 0, "noise": 0} for _ in range(g)]
    stopped = [False] * g
    bn_steps = [0] * g
    start = time.perf_counter()
    max_epochs = max(c.epochs for c in configs)
    bar = tqdm(
        range(max_epochs), desc=f"epochs ({g} stacked)", unit="epoch", disable=not progress, leave=False
    )
    for epoch in bar:
        live = [k for k in range(g) if not stopped[k] and epoch < configs[k].epochs]
        if not live:
            break
        opt.set_learning_rates([c.epoch_learning_rate(epoch) for c in configs])
        net.train()
        batches = {k: _batches(order_rngs[k].permutation(n_train[k]), configs[k].batch_size) for k in live}
        totals = dict.fromkeys(live, 0.0)
        for t in range(max(len(b) for b in batches.values())):
            todo = {k: batches[k][t] for k in live if t < len(batches[k])}
            for size in sorted({len(idx) for idx in todo.values()}):
                members = [k for k, idx in todo.items() if len(idx) == size]
                x = np.zeros((size, g * c_in, *shape), dtype=np.float32)
                y = np.zeros((size, g * c_out, *shape), dtype=np.float32)
                for k in members:
                    xb, yb = arrays[k][0][todo[k]], arrays[k][1][todo[k]]
                    if configs[k].augmentation.enabled:
                        xb, yb, c = augment_batch(xb, yb, configs[k].augmentation, aug_rngs[k])
                        for name, v in c.items():
                            counts[k][name] += v
                    x[:, k * c_in : (k + 1) * c_in] = xb
                    y[:, k * c_out : (k + 1) * c_out] = yb
                active = np.zeros(g, dtype=bool)
                active[members] = True
                saved = [
                    (bn.running_mean.clone(), bn.running_var.clone())  # type: ignore[union-attr]
                    for bn in bn_layers
                ]
                for p in net.parameters():
                    p.grad = None
                out = net(torch.from_numpy(x).to(dev))
                err = pointwise(out - torch.from_numpy(y).to(dev)).view(size, g, -1).mean(dim=(0, 2))
                loss = err[torch.from_numpy(active).to(dev)].sum()
                loss.backward()
                opt.step(active)
                with torch.no_grad():
                    keep = torch.from_numpy(~active).to(dev)
                    for bn, (mean, var) in zip(bn_layers, saved, strict=True):
                        rows = keep.repeat_interleave(bn.num_features // g)
                        bn.running_mean[rows] = mean[rows]  # type: ignore[index]
                        bn.running_var[rows] = var[rows]  # type: ignore[index]
                per = err.detach().cpu().numpy()
                for k in members:
                    totals[k] += float(per[k]) * size
                    bn_steps[k] += 1
        net.eval()
        vals = _validate_stacked(net, arrays, live, g, c_in, c_out, shape, pointwise, dev)
        for k in live:
            train_losses[k].append(totals[k] / n_train[k])
            score = train_losses[k][-1]
            if arrays[k][2].shape[0]:
                val_losses[k].append(vals[k])
                score = vals[k]
            if not math.isfinite(score):
                _log.warning("member %d, epoch %d: loss is %s; stopping this member", k, epoch + 1, score)
                stopped[k] = True
                continue
            if score < best_loss[k]:
                best_loss[k], best_epoch[k] = score, epoch + 1
                best_state[k] = member_state(net, k, bn_steps[k])
    seconds = time.perf_counter() - start
    out_models = []
    for k in range(g):
        if not best_state[k]:
            raise ParameterError(
                f"member {k} (seed {configs[k].seed}) diverged from the first epoch; lower its learning rate "
                f"({configs[k].learning_rate})"
            )
        out_models.append(
            TrainedModel(
                unet=net_cfg,
                preprocess=pres[k],
                config=configs[k],
                state=best_state[k],
                train_losses=tuple(train_losses[k]),
                val_losses=tuple(val_losses[k]),
                best_epoch=best_epoch[k],
                best_val_loss=best_loss[k] if arrays[k][2].shape[0] else float("nan"),
                seconds=seconds / g,
                augmentation_counts=counts[k],
                n_train=n_train[k],
                n_val=int(arrays[k][2].shape[0]),
                residual=False,
            )
        )
    _log.info("trained %d stacked runs in %.1f s on %s", g, seconds, dev)
    return out_models


def _validate_stacked(
    net: Any,
    arrays: Sequence[Any],
    live: Sequence[int],
    g: int,
    c_in: int,
    c_out: int,
    shape: tuple[int, int],
    pointwise: Any,
    dev: str,
) -> dict[int, float]:
    """Mean validation loss per image of each live member (eval mode; members padded with zeros)."""
    import torch

    n_val = {k: arrays[k][2].shape[0] for k in live}
    n_max = max(n_val.values(), default=0)
    out: dict[int, float] = {}
    if n_max == 0:
        return out
    totals = dict.fromkeys(live, 0.0)
    chunk = 8
    with torch.inference_mode():
        for b in range(0, n_max, chunk):
            size = min(chunk, n_max - b)
            x = np.zeros((size, g * c_in, *shape), dtype=np.float32)
            y = np.zeros((size, g * c_out, *shape), dtype=np.float32)
            for k in live:
                part = slice(b, min(b + size, n_val[k]))
                rows = max(part.stop - part.start, 0)
                if rows:
                    x[:rows, k * c_in : (k + 1) * c_in] = arrays[k][2][part]
                    y[:rows, k * c_out : (k + 1) * c_out] = arrays[k][3][part]
            err = pointwise(net(torch.from_numpy(x).to(dev)) - torch.from_numpy(y).to(dev))
            per_image = err.view(size, g, -1).mean(dim=2).cpu().numpy()
            for k in live:
                rows = max(min(b + size, n_val[k]) - b, 0)
                totals[k] += float(per_image[:rows, k].sum())
    for k in live:
        if n_val[k]:
            out[k] = totals[k] / n_val[k]
    return out
