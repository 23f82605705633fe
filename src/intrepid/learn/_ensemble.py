"""The predictor: an ensemble of U-Nets that averages its members' portal doses (NumPy in, NumPy out).

A single trained network is an ensemble of one. For speed the predictor works on the network's working grid
(resampling by two small matrix products, :func:`intrepid.learn.to_working_grid`), folds every batch
normalisation into the preceding convolution (exact in eval mode), uses the channels-last memory layout that
oneDNN prefers on CPUs, and runs under ``torch.inference_mode``; batches of images share one pass through each
member. Members are averaged in dose (Gy) on the working grid, the mean is resampled back to the detector
grid and negative doses are clipped to 0 (:attr:`PreprocessConfig.clip_negative`).

Hybrid (physics-informed residual) ensembles carry a ``base`` model, a fixed physics conversion such as the
kernel baseline :class:`intrepid.transit.KernelBaseline`, whose parameters are stored inside ``model.json``.
The networks then predict a smooth *correction* on the working grid and the output is::

    dose = max(0, base.predict_array(signal, spacing) + upsample(mean correction))

the base at full detector resolution (it carries the field edges), the correction resampled from the working
grid. The base is non-trainable while the network learns, the idea of the dose-modulation layer of the
JACMP 2023 U-Net (REFERENCES.md) applied to the classical kernel model of Wendling et al. 2006 /
van Elmpt et al. 2008. Base models are created from ``model.json`` by loaders registered with
:func:`register_base_model`; the kernel baseline of :mod:`intrepid.physics` is built in, and
``intrepid.learn`` imports nothing above it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import ModelError, ParameterError
from intrepid.geometry import Quantity, Volume
from intrepid.learn._preprocess import PreprocessConfig, Scaling, resampling_matrix
from intrepid.learn._unet import UNetConfig, build_unet

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Ensemble", "register_base_model", "select_device"]

_log = logging.getLogger(__name__)

#: ``format`` of a base-model description -> loader (dict -> base model).
_BASE_LOADERS: dict[str, Callable[[dict[str, Any]], Any]] = {}


def register_base_model(format_name: str, loader: Callable[[dict[str, Any]], Any]) -> None:
    """Register how a hybrid model's ``base`` is rebuilt from its JSON description.

    Parameters
    ----------
    format_name : str
        The ``"format"`` value of the base's ``to_dict()`` (e.g. ``"intrepid-kernel-baseline"``).
    loader : callable
        ``dict -> base model``; the model must have ``predict_array(signal, spacing_mm)`` (Gy) and
        ``to_dict()``. Only JSON is read: no code is ever loaded from a model file.
    """
    if not isinstance(format_name, str) or not format_name:
        raise ParameterError(f"format_name must be a non-empty string, got {format_name!r}")
    if not callable(loader):
        raise ParameterError(f"loader must be callable, got {type(loader).__name__}")
    _BASE_LOADERS[format_name] = loader


def _load_base(doc: Any) -> Any:
    if not isinstance(doc, dict) or not isinstance(doc.get("format"), str):
        raise ModelError("model.json key 'residual.base' must be an object with a 'format'")
    fmt = doc["format"]
    if fmt not in _BASE_LOADERS and fmt == "intrepid-kernel-baseline":
        # The built-in base: the physics layer's kernel model (read from JSON only).
        from intrepid.physics._kernel_baseline import KernelBaseline

        _BASE_LOADERS[fmt] = KernelBaseline.from_dict
    loader = _BASE_LOADERS.get(fmt)
    if loader is None:
        raise ModelError(
            f"model.json key 'residual.base' has format {fmt!r}, which no registered base model reads "
            f"(known: {sorted(_BASE_LOADERS)})"
        )
    return loader(doc)


def select_device(device: str = "auto") -> str:
    """Resolve ``"auto"`` / ``"cpu"`` / ``"cuda"`` / ``"cuda:N"`` to a PyTorch device name.

    ``"auto"`` is ``"cuda"`` when a CUDA GPU is available, else ``"cpu"``.

    Raises
    ------
    ParameterError
        An unknown name, or CUDA asked for where none is available.
    """
    import torch

    name = str(device).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ParameterError(f"device {device!r} asked for but no CUDA GPU is available; use auto or cpu")
        return name
    raise ParameterError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")


def _fold_batch_norm(module: torch.nn.Module) -> None:
    """Fold every ``BatchNorm2d`` that follows a ``Conv2d`` inside a ``Sequential`` into that convolution."""
    import torch
    from torch import nn

    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        items = list(seq)
        for n in range(len(items) - 1):
            conv, bn = items[n], items[n + 1]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            assert bn.running_var is not None and bn.running_mean is not None
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,  # type: ignore[arg-type]
                stride=conv.stride,  # type: ignore[arg-type]
                padding=conv.padding,  # type: ignore[arg-type]
                bias=True,
            )
            with torch.no_grad():
                fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)  # type: ignore[union-attr]
            seq[n] = fused
            seq[n + 1] = nn.Identity()


class Ensemble:
    """Predict portal dose (Gy) from EPID signal with the mean of one or more U-Nets.

    Parameters
    ----------
    unet : UNetConfig
        Architecture shared by the members.
    preprocess : PreprocessConfig
        Working grid, scaling and normalisation (fitted) of the members.
    member_states : sequence of mapping of str to ndarray
        Each member's ``state_dict`` as NumPy arrays.
    member_info : sequence of dict, optional
        JSON-ready facts about each member (configuration, repeat, fold, validation metrics).
    member_preprocess : sequence of PreprocessConfig, optional
        Per-member normalisation constants (members of a cross-validation are fitted on different training
        folds); they must share ``preprocess``'s working shape and scaling. Default: ``preprocess`` for all.
    training : dict, optional
        JSON-ready training summary recorded in the model file.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    batch_size : int
        Images per forward pass in :meth:`predict_array`.
    base : object, optional
        Physics base model of a hybrid residual ensemble (``predict_array(signal, spacing_mm)`` in Gy and
        ``to_dict()``); the networks then predict a correction added to it (see the module docstring). An
        architecture with ``in_channels == 2`` also receives the base prediction as its second input.

    Examples
    --------
    >>> model = load_model("run/ensemble")  # doctest: +SKIP
    >>> dose_gy = model.predict_array(epid_signal)        # (rows, columns) -> (rows, columns) Gy
    >>> dose = model.predict(read_rtimage("epid.dcm").image)  # Volume on the same grid, PORTAL_DOSE, Gy
    """

    def __init__(
        self,
        unet: UNetConfig,
        preprocess: PreprocessConfig,
        member_states: Sequence[Mapping[str, NDArray[Any]]],
        *,
        member_info: Sequence[dict[str, Any]] | None = None,
        member_preprocess: Sequence[PreprocessConfig] | None = None,
        training: dict[str, Any] | None = None,
        device: str = "cpu",
        batch_size: int = 4,
        base: Any = None,
    ) -> None:
        import torch

        if not isinstance(unet, UNetConfig):
            raise ParameterError(f"unet must be a UNetConfig, got {type(unet).__name__}")
        if not isinstance(preprocess, PreprocessConfig):
            raise ParameterError(f"preprocess must be a PreprocessConfig, got {type(preprocess).__name__}")
        if len(member_states) == 0:
            raise ParameterError("an ensemble needs at least one member, got 0")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ParameterError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        m = unet.size_multiple
        if any(s % m for s in preprocess.working_shape):
            raise ParameterError(
                f"working_shape {preprocess.working_shape} must be multiples of {m} for a "
                f"depth-{unet.depth} U-Net"
            )
        info = list(member_info) if member_info is not None else [{} for _ in member_states]
        if len(info) != len(member_states):
            raise ParameterError(f"member_info has {len(info)} entries for {len(member_states)} members")
        pres = list(member_preprocess) if member_preprocess is not None else [preprocess] * len(member_states)
        if len(pres) != len(member_states):
            raise ParameterError(
                f"member_preprocess has {len(pres)} entries for {len(member_states)} members"
            )
        for n, p in enumerate(pres):
            if not isinstance(p, PreprocessConfig):
                raise ParameterError(
                    f"member_preprocess[{n}] must be a PreprocessConfig, got {type(p).__name__}"
                )
            if (p.working_shape, p.scaling) != (preprocess.working_shape, preprocess.scaling):
                raise ParameterError(
                    f"member {n}: working shape {p.working_shape} / scaling {p.scaling.value} differ from "
                    f"the "
                    f"ensemble's {preprocess.working_shape} / {preprocess.scaling.value}"
                )
        if base is not None and not (hasattr(base, "predict_array") and hasattr(base, "to_dict")):
            raise ParameterError(
                f"base must have predict_array(signal, spacing_mm) and to_dict(), got {type(base).__name__}"
            )
        if unet.in_channels not in ((1, 2) if base is not None else (1,)):
            raise ParameterError(
                f"in_channels must be 1{' or 2 (signal + base prediction)' if base is not None else ''}, got "
                f"{unet.in_channels}"
            )
        if base is not None and preprocess.scaling is not Scaling.LINEAR:
            raise ParameterError(f"a hybrid ensemble needs linear scaling, got {preprocess.scaling.value}")
        self.base = base
        self.unet = unet
        self.preprocess = preprocess
        self.member_preprocess: tuple[PreprocessConfig, ...] = tuple(pres)
        self.member_info: tuple[dict[str, Any], ...] = tuple(dict(i) for i in info)
        self.training: dict[str, Any] = dict(training or {})
        self.device = select_device(device)
        self.batch_size = batch_size
        self._states = [{k: np.asarray(v) for k, v in s.items()} for s in member_states]
        self._nets: list[torch.nn.Module] = []
        for n, state in enumerate(self._states):
            net = build_unet(unet)
            try:
                net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
            except RuntimeError as exc:
                raise ModelError(
                    f"member {n}: weights do not fit the architecture {unet.to_dict()}: {exc}"
                ) from exc
            net.eval()
            _fold_batch_norm(net)
            net.to(self.device)
            if self.device == "cpu":
                net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            for param in net.parameters():
                param.requires_grad_(False)
            self._nets.append(net)

    # ------------------------------------------------------------------------------------ properties
    @property
    def members(self) -> int:
        """Number of member networks."""
        return len(self._nets)

    @property
    def member_states(self) -> tuple[dict[str, NDArray[Any]], ...]:
        """Each member's weights (``state_dict`` as NumPy arrays, before batch-norm folding)."""
        return tuple(self._states)

    @property
    def residual(self) -> bool:
        """True for a hybrid ensemble (networks predict a correction to :attr:`base`)."""
        return self.base is not None

    def __repr__(self) -> str:
        return (
            f"Ensemble(members={self.members}, filters={self.unet.filters_per_level}, "
            f"working_shape={self.preprocess.working_shape}, device={self.device!r}"
            f"{', hybrid' if self.residual else ''})"
        )

    # ------------------------------------------------------------------------------------ prediction
    def predict_working(
        self, signal: NDArray[Any], base_gy: NDArray[Any] | None = None
    ) -> NDArray[np.float32]:
        """Member-averaged portal dose (Gy) on the working grid from EPID signal on the working grid.

        Parameters
        ----------
        signal : ndarray (N, rows, columns)
            EPID signal already resampled to the working grid (:func:`intrepid.learn.to_working_grid`).
        base_gy : ndarray (N, rows, columns), optional
            Hybrid ensembles: the base model's prediction (Gy, computed on the detector grid) resampled to the
            working grid (:attr:`WorkingArrays.base_gy`); required for them, refused otherwise.

        Returns
        -------
        ndarray (N, rows, columns)
            Dose in Gy on the working grid (not clipped; hybrid: ``max(base, 0) + correction``).
        """
        import torch

        arr = np.asarray(signal, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[-2:] != self.preprocess.working_shape:
            raise ParameterError(
                f"signal must be (N, {self.preprocess.working_shape[0]}, "
                f"{self.preprocess.working_shape[1]}), "
                f"got shape {arr.shape}"
            )
        if self.residual and base_gy is None:
            raise ParameterError("a hybrid ensemble needs base_gy (the base prediction on the working grid)")
        if not self.residual and base_gy is not None:
            raise ParameterError("base_gy is only for hybrid ensembles")
        with torch.inference_mode():
            xt = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
            if base_gy is None:
                return np.asarray(self._forward_mean(xt).cpu().numpy(), dtype=np.float32)
            b = np.maximum(np.asarray(base_gy, dtype=np.float32), 0.0)
            if b.shape != arr.shape:
                raise ParameterError(f"base_gy must have the shape of signal {arr.shape}, got {b.shape}")
            bt = torch.from_numpy(np.ascontiguousarray(b)).to(self.device)
            total = self._forward_mean(xt, bt) + bt
        return np.asarray(total.cpu().numpy(), dtype=np.float32)

    def _forward_mean(self, signal: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """Mean dose (Gy) of the members for working-grid signal ``(N, rows, columns)``; hybrid ensembles:
        the mean correction (Gy) given the clipped base prediction ``base`` on the working grid."""
        import torch

        log = self.preprocess.scaling is Scaling.LOG
        total: torch.Tensor | None = None
        for net, pre in zip(self._nets, self.member_preprocess, strict=True):
            x = ((signal - float(pre.input_offset)) / float(pre.input_scale))[:, None]
            if base is not None and self.unet.in_channels == 2:
                x = torch.cat([x, (base / float(pre.target_scale))[:, None]], dim=1)
            if log:
                x = torch.log1p(torch.clamp(x, min=0.0))
            if self.device == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            y = net(x)[:, 0]
            if log:
                y = torch.expm1(y)
            y = y * float(pre.target_scale)
            total = y if total is None else total + y
        assert total is not None
        return total / float(self.members)

    def predict_array(
        self, signal: ArrayLike, spacing_mm: float | Sequence[float] | None = None
    ) -> NDArray[np.float32]:
        """Portal dose (Gy) on the detector grid from EPID signal on the detector grid.

        Parameters
        ----------
        signal : array_like (rows, columns) or (N, rows, columns)
            EPID signal (vendor encoding undone, as :func:`intrepid.dicom.read_rtimage` gives it).
        spacing_mm : float or (row, column), optional
            Detector pixel spacing (mm); used by hybrid ensembles' base model (default: the training
            detector's spacing recorded in the preprocessing). Plain ensembles ignore it.

        Returns
        -------
        ndarray, float32, same shape
            Portal dose in Gy (negative values clipped to 0 when the preprocessing says so).
        """
        import torch

        s = np.asarray(signal, dtype=np.float32)
        single = s.ndim == 2
        if single:
            s = s[None]
        if s.ndim != 3:
            raise ParameterError(f"signal must be (rows, columns) or (N, rows, columns), got shape {s.shape}")
        if not np.all(np.isfinite(s)):
            raise ParameterError("signal contains NaN or infinite values")
        pre = self.preprocess
        spacing = spacing_mm if spacing_mm is not None else pre.detector_spacing_mm
        if self.residual and spacing is None:
            raise ParameterError("spacing_mm is required: the hybrid model's base needs the detector spacing")
        rows, cols = s.shape[-2:]
        wr, wc = pre.working_shape
        dev = self.device
        down_y = torch.from_numpy(np.array(resampling_matrix(rows, wr))).to(dev)
        down_x = torch.from_numpy(np.array(resampling_matrix(cols, wc)).T.copy()).to(dev)
        up_y = torch.from_numpy(np.array(resampling_matrix(wr, rows))).to(dev)
        up_x = torch.from_numpy(np.array(resampling_matrix(wc, cols)).T.copy()).to(dev)
        out = np.empty(s.shape, dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, s.shape[0], self.batch_size):
                part = s[start : start + self.batch_size]
                chunk = torch.from_numpy(np.ascontiguousarray(part)).to(dev)
                if self.base is None:
                    dose = self._forward_mean(down_y @ chunk @ down_x)
                    dose = up_y @ dose @ up_x
                else:
                    full = torch.from_numpy(
                        np.stack([self.base.predict_array(p, spacing) for p in part]).astype(np.float32)
                    ).to(dev)
                    full = torch.clamp(full, min=0.0)
                    corr = self._forward_mean(down_y @ chunk @ down_x, down_y @ full @ down_x)
                    dose = full + up_y @ corr @ up_x
                if pre.clip_negative:
                    dose = torch.clamp(dose, min=0.0)
                out[start : start + self.batch_size] = dose.cpu().numpy()
        return out[0] if single else out

    def predict(self, epid: Volume) -> Volume:
        """Portal dose of one EPID image, as a :class:`Volume` on the same grid.

        Parameters
        ----------
        epid : Volume
            2D EPID signal on the detector grid (``read_rtimage(path).image``).

        Returns
        -------
        Volume
            Quantity :attr:`Quantity.PORTAL_DOSE`, units ``"Gy"``, same grid and Frame of Reference; metadata
            ``source`` and ``model_members``.
        """
        return self.predict_volumes([epid])[0]

    def predict_volumes(self, epids: Sequence[Volume]) -> list[Volume]:
        """Portal doses of several EPID images (batched when they share a shape)."""
        vols = list(epids)
        for n, v in enumerate(vols):
            if not isinstance(v, Volume) or v.ndim != 2:
                raise ParameterError(f"epids[{n}] must be a 2D Volume, got {type(v).__name__}")
            for note in self.preprocess.check_detector(v.shape, (v.grid.spacing_mm[1], v.grid.spacing_mm[0])):
                _log.warning("%s: %s", v.metadata.get("source", f"image {n}"), note)
        out: list[Volume | None] = [None] * len(vols)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for n, v in enumerate(vols):
            sp = (round(float(v.grid.spacing_mm[1]), 9), round(float(v.grid.spacing_mm[0]), 9))
            groups.setdefault((v.shape, sp), []).append(n)
        for (_, sp), idx in groups.items():
            doses = self.predict_array(np.stack([np.asarray(vols[i].array) for i in idx]), sp)
            for i, d in zip(idx, doses, strict=True):
                v = vols[i]
                meta = {"source": v.metadata.get("source", ""), "model_members": self.members}
                if self.residual:
                    meta["method"] = "hybrid: kernel base + network correction"
                out[i] = Volume(
                    d.astype(np.float64), v.grid, Quantity.PORTAL_DOSE, "Gy", v.frame_of_reference_uid, meta
                )
        return [v for v in out if v is not None]

    # ------------------------------------------------------------------------------------ files
    def tensors(self) -> dict[str, NDArray[Any]]:
        """Every member's weights keyed ``"member<N>.<parameter>"`` (the saved layout)."""
        return {f"member{n}.{k}": v for n, s in enumerate(self._states) for k, v in s.items()}

    def description(self) -> dict[str, Any]:
        """The JSON description written with the weights (without the format and software keys)."""
        members = [
            {"prefix": f"member{n}.", **info, "preprocessing": pre.to_dict()}
            for n, (info, pre) in enumerate(zip(self.member_info, self.member_preprocess, strict=True))
        ]
        doc: dict[str, Any] = {
            "kind": "unet-ensemble",
            "architecture": self.unet.to_dict(),
            "preprocessing": self.preprocess.to_dict(),
            "members": members,
            "training": self.training,
        }
        if self.base is not None:
            doc["residual"] = {
                "output": "max(0, base(signal) on the detector grid + upsampled member-mean correction)",
                "base_input_channel": self.unet.in_channels == 2,
                "base": self.base.to_dict(),
            }
        return doc

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the ensemble as ``path/model.json`` + ``path/model.safetensors``; returns the folder."""
        import torch  # noqa: F401  (records the torch version in the description)

        from intrepid.learn._model_io import write_model_files

        return write_model_files(path, self.tensors(), self.description())

    @classmethod
    def from_description(
        cls, doc: dict[str, Any], tensors: Mapping[str, NDArray[Any]], *, device: str = "cpu"
    ) -> Ensemble:
        """Build from a parsed ``model.json`` and its tensors (see :func:`intrepid.learn.load_model`)."""
        unet = UNetConfig.from_dict(doc["architecture"])
        pre = PreprocessConfig.from_dict(doc["preprocessing"])
        if not pre.fitted:
            _log.warning("model preprocessing was not fitted on training data")
        states: list[dict[str, NDArray[Any]]] = []
        info: list[dict[str, Any]] = []
        pres: list[PreprocessConfig] = []
        used: set[str] = set()
        for n, member in enumerate(doc["members"]):
            prefix = member["prefix"]
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            if not state:
                raise ModelError(f"member {n}: no tensors with prefix {prefix!r} in the weights file")
            used.update(prefix + k for k in state)
            states.append(state)
            info.append({k: v for k, v in member.items() if k not in ("prefix", "preprocessing")})
            own = member.get("preprocessing")
            pres.append(pre if own is None else PreprocessConfig.from_dict(own))
        extra = sorted(set(tensors) - used)
        if extra:
            raise ModelError(f"weights file holds {len(extra)} tensors of no member, e.g. {extra[0]!r}")
        residual = doc.get("residual")
        if residual is not None and not isinstance(residual, dict):
            raise ModelError(f"model.json key 'residual' must be an object, got {type(residual).__name__}")
        base = None if residual is None else _load_base(residual.get("base"))
        return cls(
            unet,
            pre,
            states,
            member_info=info,
            member_preprocess=pres,
            training=doc.get("training") or {},
            device=device,
            base=base,
        )
