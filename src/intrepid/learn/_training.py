"""Training one U-Net: MAE or MSE loss, Adam, epochs, best checkpoint by validation loss.

Determinism: the weights are initialised inside ``torch.random.fork_rng`` seeded with the run's seed (the
global PyTorch generator is restored afterwards), mini-batches are drawn by a NumPy generator seeded from the
same seed, and so are the augmentations; on the CPU the same seed gives the same losses and weights. On a GPU,
cuDNN may pick non-deterministic kernels unless ``TrainConfig.deterministic`` is set (the default), which
asks PyTorch for deterministic algorithms where they exist.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import ParameterError
from intrepid.geometry import Grid
from intrepid.learn._checkpoint import (
    TrainingCheckpoint,
    load_optimiser_arrays,
    optimiser_arrays,
    read_checkpoint,
    write_checkpoint,
)
from intrepid.learn._dataset import Pair
from intrepid.learn._preprocess import (
    AugmentConfig,
    PreprocessConfig,
    Scaling,
    augment_batch,
    fit_preprocess,
    to_working_grid,
    working_grid,
)
from intrepid.learn._schedule import check_lr_schedule, scheduled_learning_rate
from intrepid.learn._unet import UNetConfig, build_unet

if TYPE_CHECKING:  # pragma: no cover
    from intrepid.learn._ensemble import Ensemble

__all__ = ["Loss", "TrainConfig", "TrainedModel", "WorkingArrays", "prepare_working_arrays", "train_model"]

_log = logging.getLogger(__name__)


class Loss(enum.Enum):
    """Training loss on the normalised portal dose."""

    MAE = "mae"  #: mean absolute error (L1)
    MSE = "mse"  #: mean squared error (L2)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Parameters
    ----------
    loss : Loss
        MAE (default) or MSE.
    learning_rate : float
        Adam learning rate (> 0; published grid 1e-2, 1e-3, 1e-4).
    batch_size : int
        Mini-batch size (>= 1; published grid 4, 8, 16, 32).
    epochs : int
        Passes over the training images (>= 1; published 150).
    seed : int
        Seed of the weight initialisation, the mini-batch order and the augmentation (>= 0).
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    weight_decay : float
        Adam L2 penalty (>= 0; default 0).
    augmentation : AugmentConfig
        Random, physics-preserving augmentation of the training pairs.
    deterministic : bool
        Ask PyTorch for deterministic algorithms (GPU; the CPU kernels used are deterministic anyway).
    lr_schedule : {"constant", "cosine"}
        ``"constant"`` (default) keeps ``learning_rate``; ``"cosine"`` decays it over ``epochs`` to 5 % of it
        (:mod:`intrepid.learn._schedule`).
    """

    loss: Loss = Loss.MAE
    learning_rate: float = 1e-3
    batch_size: int = 8
    epochs: int = 150
    seed: int = 0
    device: str = "auto"
    weight_decay: float = 0.0
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    deterministic: bool = True
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        check_lr_schedule(self.lr_schedule)
        if not isinstance(self.loss, Loss):
            raise ParameterError(f"loss must be a Loss (MAE or MSE), got {self.loss!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ParameterError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("batch_size", "epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParameterError(f"{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ParameterError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ParameterError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not isinstance(self.augmentation, AugmentConfig):
            raise ParameterError(f"augmentation must be an AugmentConfig, got {self.augmentation!r}")

    def epoch_learning_rate(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (0-based) under :attr:`lr_schedule`."""
        return scheduled_learning_rate(self.lr_schedule, self.learning_rate, epoch, self.epochs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        d = asdict(self)
        d["loss"] = self.loss.value
        return d


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """Result of :func:`train_model`: the best checkpoint and the training history.

    Attributes
    ----------
    unet : UNetConfig
        Architecture.
    preprocess : PreprocessConfig
        Working grid and the normalisation fitted on the training images.
    config : TrainConfig
        Training settings (with the device actually used).
    state : dict of str to ndarray
        Weights of the best epoch (lowest validation loss; lowest training loss without validation images).
    train_losses, val_losses : tuple of float
        Mean loss per epoch on the training images (during the epoch, augmented) and on the validation images
        (after the epoch; empty without validation images), in normalised dose units.
    best_epoch : int
        1-based epoch of :attr:`state`.
    best_val_loss : float
        Validation loss of the best epoch (NaN without validation images).
    seconds : float
        Wall time of the training.
    augmentation_counts : dict
        How many samples each augmentation touched over the whole run.
    n_train, n_val : int
        Number of training and validation images.
    """

    unet: UNetConfig
    preprocess: PreprocessConfig
    config: TrainConfig
    state: dict[str, NDArray[Any]] = field(repr=False)
    train_losses: tuple[float, ...]
    val_losses: tuple[float, ...]
    best_epoch: int
    best_val_loss: float
    seconds: float
    augmentation_counts: dict[str, int]
    n_train: int
    n_val: int
    residual: bool = False

    def history(self) -> dict[str, Any]:
        """JSON-ready history: per-epoch losses, best epoch and loss, time, counts."""
        return {
            "train_losses": list(self.train_losses),
            "val_losses": list(self.val_losses),
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "seconds": self.seconds,
            "augmentation_counts": dict(self.augmentation_counts),
            "n_train": self.n_train,
            "n_val": self.n_val,
            "residual": self.residual,
        }

    def ensemble(
        self, *, device: str = "cpu", member_info: dict[str, Any] | None = None, base: Any = None
    ) -> Ensemble:
        """This network as a one-member :class:`~intrepid.learn.Ensemble` predictor.

        A hybrid residual network (:attr:`residual`) needs the physics ``base`` model it was trained on
        (an object with ``predict_array(signal, spacing_mm)`` and ``to_dict()``, e.g.
        :class:`intrepid.transit.KernelBaseline`).
        """
        from intrepid.learn._ensemble import Ensemble

        if self.residual and base is None:
            raise ParameterError("this network predicts a correction to a base model: pass base=")
        if not self.residual and base is not None:
            raise ParameterError("base= is only for hybrid residual networks (trained with base_gy)")
        info = {"train_config": self.config.to_dict(), **self.history(), **(member_info or {})}
        return Ensemble(
            self.unet, self.preprocess, [self.state], member_info=[info], device=device, base=base
        )

    def save(
        self, path: str | os.PathLike[str], training: dict[str, Any] | None = None, *, base: Any = None
    ) -> Path:
        """Write the model files (``model.json`` + ``model.safetensors``) into the folder ``path``."""
        ens = self.ensemble(base=base)
        ens.training.update(training or {})
        return ens.save(path)


@dataclass(frozen=True, eq=False)
class WorkingArrays:
    """Pairs resampled to the working grid, not yet normalised.

    Attributes
    ----------
    epid : ndarray (N, rows, columns) float32
        EPID signal on the working grid.
    dose_gy : ndarray (N, rows, columns) float32
        Portal dose (Gy) on the working grid.
    detector_shape : (rows, columns) or None
        Detector matrix shared by the pairs.
    detector_spacing_mm : (row, column) or None
        Detector spacing shared by the pairs (mm).
    grids : tuple of Grid
        Working grid of each pair in the detector plane (:func:`intrepid.learn.working_grid`; empty when the
        arrays were made without geometry).
    base_gy : ndarray (N, rows, columns) float32 or None
        Prediction of a physics base model (Gy) computed on the detector grid and resampled to the working
        grid. When present, :func:`train_model` trains a *hybrid residual* network: its target is
        ``dose_gy - base_gy`` (see :class:`~intrepid.learn.Ensemble`, ``base``).
    """

    epid: NDArray[np.float32]
    dose_gy: NDArray[np.float32]
    detector_shape: tuple[int, int] | None
    detector_spacing_mm: tuple[float, float] | None
    grids: tuple[Grid, ...] = ()
    base_gy: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        if self.base_gy is not None and np.shape(self.base_gy) != np.shape(self.epid):
            raise ParameterError(
                f"base_gy must have the shape of epid {np.shape(self.epid)}, got {np.shape(self.base_gy)}"
            )

    def __len__(self) -> int:
        return int(self.epid.shape[0])

    def take(self, indices: Sequence[int]) -> WorkingArrays:
        """The arrays of some pairs."""
        idx = np.asarray(indices, dtype=int)
        grids = tuple(self.grids[i] for i in idx) if self.grids else ()
        base = None if self.base_gy is None else self.base_gy[idx]
        return replace(self, epid=self.epid[idx], dose_gy=self.dose_gy[idx], grids=grids, base_gy=base)

    def with_base(self, base_gy: NDArray[Any] | None) -> WorkingArrays:
        """The same arrays with (or, for None, without) a base-model prediction on the working grid (Gy)."""
        base = None if base_gy is None else np.asarray(base_gy, dtype=np.float32)
        return replace(self, base_gy=base)


def prepare_working_arrays(pairs: Iterable[Pair], working_shape: tuple[int, int]) -> WorkingArrays:
    """Resample pairs to the working grid (area averaging down, linear up) as float32 stacks.

    The pairs are read one at a time (an uncached :class:`~intrepid.learn.PairDataset` never holds more than
    one detector image in memory).
    """
    epids, doses, grids = [], [], []
    shapes, spacings = set(), set()
    for p in pairs:
        epids.append(to_working_grid(p.epid.array, working_shape))
        doses.append(to_working_grid(p.portal_dose.array, working_shape))
        grids.append(working_grid(p.epid.grid, working_shape))
        shapes.add(p.epid.shape)
        spacings.add((round(p.epid.grid.spacing_mm[1], 6), round(p.epid.grid.spacing_mm[0], 6)))
    if not epids:
        empty = np.zeros((0, *working_shape), np.float32)
        return WorkingArrays(empty, empty.copy(), None, None)
    shape = next(iter(shapes)) if len(shapes) == 1 else None
    spacing = next(iter(spacings)) if len(spacings) == 1 else None
    return WorkingArrays(
        np.stack(epids),
        np.stack(doses),
        None if shape is None else (int(shape[0]), int(shape[1])),
        spacing,
        tuple(grids),
    )


def _loss_fn(loss: Loss) -> Any:
    from torch import nn

    return nn.L1Loss() if loss is Loss.MAE else nn.MSELoss()


def train_model(
    train_pairs: Sequence[Pair] | WorkingArrays,
    val_pairs: Sequence[Pair] | WorkingArrays = (),
    config: TrainConfig | None = None,
    *,
    unet: UNetConfig | None = None,
    preprocess: PreprocessConfig | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
) -> TrainedModel:
    """Train a U-Net mapping EPID signal to portal dose, keeping the epoch with the lowest validation loss.

    Parameters
    ----------
    train_pairs : sequence of Pair, or WorkingArrays
        Training pairs (a :class:`~intrepid.learn.PairDataset` works), or pairs already on the working grid
        (:func:`prepare_working_arrays`, which the model selection caches).
    val_pairs : sequence of Pair, or WorkingArrays
        Validation pairs (may be empty: the best epoch is then the one with the lowest training loss).
    config : TrainConfig, optional
        Loss, learning rate, batch size, epochs, seed, device, augmentation.
    unet : UNetConfig, optional
        Architecture (default: the published 8-filter network).
    preprocess : PreprocessConfig, optional
        Working grid and scaling; when not ``fitted`` its constants are fitted on ``train_pairs`` (their
        working-grid images, :func:`~intrepid.learn.fit_preprocess`).
    progress : bool
        Show a progress bar over the epochs (tqdm, on stderr).
    checkpoint : path-like, optional
        A ``.safetensors`` file rewritten after every epoch (:mod:`intrepid.learn._checkpoint`). When it
        already holds a checkpoint of the same run (same seed, settings, architecture and image counts), the
        training continues after its last completed epoch, with the same batch order and augmentations as an
        uninterrupted run: a killed worker loses at most one epoch.

    Returns
    -------
    TrainedModel
        Best checkpoint, per-epoch losses, the fitted preprocessing.

    Raises
    ------
    ParameterError
        No training pairs, a working grid that is not a multiple of ``2 ** (depth - 1)``, CUDA asked for
        but absent.

    Examples
    --------
    >>> ds = load_dataset("pairs/")  # doctest: +SKIP
    >>> model = train_model(ds.subset(range(0, 150)), ds.subset(range(150, 189)),
    ...                     TrainConfig(epochs=150, learning_rate=1e-3, batch_size=8))  # doctest: +SKIP
    >>> model.save("my_model")  # doctest: +SKIP

    References
    ----------
    Kingma and Ba 2015, Adam, arXiv:1412.6980.
    """
    import torch
    from tqdm.auto import tqdm

    from intrepid.learn._ensemble import select_device

    cfg = TrainConfig() if config is None else config
    net_cfg = UNetConfig() if unet is None else unet
    pre = PreprocessConfig() if preprocess is None else preprocess
    if not isinstance(cfg, TrainConfig):
        raise ParameterError(f"config must be a TrainConfig, got {type(cfg).__name__}")
    m = net_cfg.size_multiple
    if any(s % m for s in pre.working_shape):
        raise ParameterError(
            f"working_shape {pre.working_shape} must be multiples of {m} for a depth-{net_cfg.depth} U-Net"
        )
    train = (
        train_pairs
        if isinstance(train_pairs, WorkingArrays)
        else prepare_working_arrays(list(train_pairs), pre.working_shape)
    )
    val = (
        val_pairs
        if isinstance(val_pairs, WorkingArrays)
        else prepare_working_arrays(list(val_pairs), pre.working_shape)
    )
    if len(train) == 0:
        raise ParameterError("train_pairs must hold at least one pair, got 0")
    residual = train.base_gy is not None
    if residual and len(val) and val.base_gy is None:
        raise ParameterError("train_pairs carry base_gy (hybrid residual training) but val_pairs do not")
    if residual and pre.scaling is not Scaling.LINEAR:
        raise ParameterError(
            f"hybrid residual training needs linear scaling (a correction can be negative), got "
            f"{pre.scaling.value}"
        )
    if net_cfg.in_channels not in ((1, 2) if residual else (1,)):
        extra = " or 2 (EPID signal + base prediction)" if residual else ""
        raise ParameterError(f"in_channels must be 1 (EPID signal){extra}, got {net_cfg.in_channels}")
    for name, arrays in (("train_pairs", train), ("val_pairs", val)):
        if len(arrays) and arrays.epid.shape[-2:] != pre.working_shape:
            raise ParameterError(
                f"{name} are on a {arrays.epid.shape[-2:]} grid, not the working grid {pre.working_shape}"
            )
    if not pre.fitted:
        pre = fit_preprocess(
            list(train.epid), list(train.dose_gy), pre, detector_spacing_mm=train.detector_spacing_mm
        )
        pre = replace(pre, detector_shape=train.detector_shape)
    bottleneck = (pre.working_shape[0] // m) * (pre.working_shape[1] // m)
    if len(train) == 1 and bottleneck == 1 and net_cfg.uses_batch_norm(net_cfg.depth - 1):
        raise ParameterError(
            f"one training image with a 1 x 1 bottleneck (working_shape {pre.working_shape}, depth "
            f"{net_cfg.depth}) leaves batch normalisation a single value; use more images or a larger grid"
        )
    device = select_device(cfg.device)
    cfg = replace(cfg, device=device)

    x_train, y_train = _network_arrays(train, pre, net_cfg.in_channels)
    x_val, y_val = _network_arrays(val, pre, net_cfg.in_channels)

    seeds = np.random.SeedSequence(cfg.seed).spawn(3)
    torch_seed = int(seeds[0].generate_state(1)[0])
    order_rng = np.random.default_rng(seeds[1])
    aug_rng = np.random.default_rng(seeds[2])
    if cfg.deterministic and device != "cpu":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed)
        net = build_unet(net_cfg)
    net.to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    loss_fn = _loss_fn(cfg.loss)
    n = len(train)
    train_losses: list[float] = []
    val_losses: list[float] = []
    best_loss = math.inf
    best_epoch = 0
    best_state: dict[str, NDArray[Any]] = {}
    counts = {"flip_columns": 0, "flip_rows": 0, "rotate_90": 0, "noise": 0}
    first_epoch = 0
    elapsed_before = 0.0
    ckpt_key = {
        "seed": cfg.seed,
        "learning_rate": cfg.learning_rate,
        "batch_size": cfg.batch_size,
        "weight_decay": cfg.weight_decay,
        "loss": cfg.loss.value,
        "augmentation": cfg.augmentation.to_dict(),
        "unet": net_cfg.to_dict(),
        "working_shape": list(pre.working_shape),
        "n_train": n,
        "n_val": len(val),
        "residual": residual,
    }
    if cfg.lr_schedule != "constant":  # the rate of each epoch depends on the run's length
        ckpt_key.update(lr_schedule=cfg.lr_schedule, schedule_epochs=cfg.epochs)
    if checkpoint is not None:
        resumed = read_checkpoint(checkpoint, ckpt_key)
        if resumed is not None and resumed.epoch <= cfg.epochs:
            sc = resumed.scalars
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in resumed.net.items()})
            load_optimiser_arrays(optimiser, resumed.optimiser, device)
            best_state = {k: np.array(v) for k, v in resumed.best.items()}
            train_losses, val_losses = list(sc["train_losses"]), list(sc["val_losses"])
            best_loss = float(sc["best_loss"]) if sc["best_loss"] is not None else math.inf
            best_epoch = int(sc["best_epoch"])
            counts = {k: int(v) for k, v in sc["counts"].items()}
            order_rng.bit_generator.state = sc["order_rng"]
            aug_rng.bit_generator.state = sc["aug_rng"]
            first_epoch = resumed.epoch
            elapsed_before = float(sc.get("seconds", 0.0))
            _log.info("resuming %s after epoch %d", checkpoint, first_epoch)
    bar = tqdm(
        range(first_epoch, cfg.epochs),
        desc="epochs",
        unit="epoch",
        disable=not progress,
        leave=False,
        initial=first_epoch,
        total=cfg.epochs,
    )
    for epoch in bar:
        for group in optimiser.param_groups:
            group["lr"] = cfg.epoch_learning_rate(epoch)
        net.train()
        order = order_rng.permutation(n)
        total = 0.0
        for idx in _batches(order, cfg.batch_size):
            xb, yb = x_train[idx], y_train[idx]
            if cfg.augmentation.enabled:
                xb, yb, c = augment_batch(xb, yb, cfg.augmentation, aug_rng)
                for k, v in c.items():
                    counts[k] += v
            xt = torch.from_numpy(np.ascontiguousarray(xb)).to(device)
            yt = torch.from_numpy(np.ascontiguousarray(yb)).to(device)
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(net(xt), yt)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        train_losses.append(total / n)
        score = train_losses[-1]
        if len(val):
            val_losses.append(_evaluate(net, x_val, y_val, loss_fn, device, cfg.batch_size))
            score = val_losses[-1]
        if not math.isfinite(score):
            _log.warning("epoch %d: loss is %s; stopping this run", epoch + 1, score)
            break
        if score < best_loss:
            best_loss, best_epoch = score, epoch + 1
            best_state = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        if checkpoint is not None:
            write_checkpoint(
                checkpoint,
                TrainingCheckpoint(
                    key=ckpt_key,
                    epoch=epoch + 1,
                    net={k: v.detach().cpu().numpy() for k, v in net.state_dict().items()},
                    best=best_state,
                    optimiser=optimiser_arrays(optimiser),
                    scalars={
                        "train_losses": train_losses,
                        "val_losses": val_losses,
                        "best_loss": best_loss if math.isfinite(best_loss) else None,
                        "best_epoch": best_epoch,
                        "counts": counts,
                        "order_rng": order_rng.bit_generator.state,
                        "aug_rng": aug_rng.bit_generator.state,
                        "seconds": elapsed_before + time.perf_counter() - start,
                    },
                ),
            )
        if progress:
            bar.set_postfix(
                train=f"{train_losses[-1]:.4g}", val=f"{val_losses[-1]:.4g}" if val_losses else "-"
            )
    seconds = elapsed_before + time.perf_counter() - start
    if not best_state:
        raise ParameterError(
            f"training diverged from the first epoch (loss {train_losses[-1] if train_losses else 'n/a'}); "
            f"lower the learning_rate ({cfg.learning_rate})"
        )
    _log.info(
        "trained %d epochs in %.1f s on %s; best epoch %d, loss %.4g",
        len(train_losses),
        seconds,
        device,
        best_epoch,
        best_loss,
    )
    return TrainedModel(
        unet=net_cfg,
        preprocess=pre,
        config=cfg,
        state=best_state,
        train_losses=tuple(train_losses),
        val_losses=tuple(val_losses),
        best_epoch=best_epoch,
        best_val_loss=best_loss if len(val) else float("nan"),
        seconds=seconds,
        augmentation_counts=counts,
        n_train=n,
        n_val=len(val),
        residual=residual,
    )


def _network_arrays(
    arrays: WorkingArrays, pre: PreprocessConfig, in_channels: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Network input ``(N, C, rows, columns)`` and target ``(N, 1, rows, columns)``, normalised.

    Plain model: input the EPID signal, target the portal dose. Hybrid residual model (``base_gy`` present):
    target the correction ``dose - max(base, 0)`` in the same normalised dose units (so that the losses of
    both kinds are comparable), input the signal and, for ``in_channels == 2``, the base prediction.
    """
    x = pre.normalise_input(arrays.epid)[:, None]
    if arrays.base_gy is None:
        return x, pre.normalise_target(arrays.dose_gy)[:, None]
    base = np.maximum(arrays.base_gy, 0.0).astype(np.float32)
    y = (pre.normalise_target(arrays.dose_gy) - pre.normalise_target(base))[:, None]
    if in_channels == 2:
        x = np.concatenate([x, pre.normalise_target(base)[:, None]], axis=1)
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float32)


def _batches(order: NDArray[np.int64], batch_size: int) -> list[NDArray[np.int64]]:
    """Mini-batches of ``order`` (each sorted); a last batch of a single image joins the one before it, since
    batch normalisation in training mode needs more than one value per channel."""
    out = [np.sort(order[b : b + batch_size]) for b in range(0, len(order), batch_size)]
    if len(out) > 1 and len(out[-1]) == 1:
        last = out.pop()
        out[-1] = np.sort(np.concatenate([out[-1], last]))
    return out


def _evaluate(
    net: Any, x: NDArray[np.float32], y: NDArray[np.float32], loss_fn: Any, device: str, batch_size: int
) -> float:
    """Mean loss per image (eval mode, no gradients)."""
    import torch

    net.eval()
    total = 0.0
    with torch.inference_mode():
        for b in range(0, x.shape[0], batch_size):
            xt = torch.from_numpy(np.ascontiguousarray(x[b : b + batch_size])).to(device)
            yt = torch.from_numpy(np.ascontiguousarray(y[b : b + batch_size])).to(device)
            total += float(loss_fn(net(xt), yt)) * xt.shape[0]
    return total / x.shape[0]
