"""The 2D U-Net of the published InTrEPID system, every part configurable.

Architecture (Ronneberger et al. 2015, doi:10.1007/978-3-319-24574-4_28), as the seed's 2D system has it:
``depth`` levels, each of ``convs_per_level`` 3 × 3 convolutions (same padding) followed by an optional batch
normalisation (Ioffe and Szegedy 2015, arXiv:1502.03167) and the activation; max-pooling between encoder
levels; transposed 2 × 2 convolutions (or bilinear upsampling + 1 × 1 convolution) back up; skip connections
that concatenate the encoder features of the same level; a final 1 × 1 convolution and the output activation.
The number of filters starts at ``initial_filters`` and doubles at every level, capped at ``max_filters`` (the
bottleneck has 128 in the published model: 8, 16, 32, 64, 128 or 16, 32, 64, 128, 128).

:class:`UNetConfig` is plain data (no PyTorch); :func:`build_unet` imports PyTorch and builds the module.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from intrepid.errors import ModelError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Activation", "OutputActivation", "UNetConfig", "UpMode", "build_unet", "count_parameters"]


class Activation(enum.Enum):
    """Activation after every hidden convolution."""

    RELU = "relu"  #: the published choice
    LEAKY_RELU = "leaky_relu"  #: slope 0.01 below zero
    ELU = "elu"


class OutputActivation(enum.Enum):
    """Activation of the last (1 × 1) convolution; the predictor clips negative doses to 0 in any case."""

    IDENTITY = "identity"  #: no activation (default: keeps gradients alive everywhere)
    RELU = "relu"
    SOFTPLUS = "softplus"
    SIGMOID = "sigmoid"  #: only for targets scaled into (0, 1)


class UpMode(enum.Enum):
    """How the decoder doubles the resolution."""

    TRANSPOSED = "transposed"  #: 2 × 2 transposed convolution, stride 2 (the published choice)
    BILINEAR = "bilinear"  #: bilinear upsampling followed by a 1 × 1 convolution


#: The integer size fields of a U-Net configuration (2D or 3D), each >= 1.
SIZE_FIELDS = ("depth", "initial_filters", "max_filters", "convs_per_level", "in_channels", "out_channels")


def check_positive_ints(config: object, names: tuple[str, ...]) -> None:
    """Raise :class:`ParameterError` naming the first of ``names`` that is not an integer >= 1."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the 2D U-Net.

    Parameters
    ----------
    depth : int
        Number of resolution levels including the bottleneck (>= 1; published: 5). The working grid size
        must be divisible by ``2 ** (depth - 1)``.
    initial_filters : int
        Filters of the first level (> 0; published grid: 8 or 16); doubled at each level.
    max_filters : int
        Cap on the number of filters (published: 128 at the bottleneck).
    convs_per_level : int
        Convolutions per level in the encoder and in the decoder (published: 2).
    kernel_size : int
        Odd convolution kernel size in pixels (published: 3).
    batch_norm_from_level : int or None
        0-based level from which the convolutions are followed by batch normalisation, in the encoder and
        the mirrored decoder levels ("batch normalisation in the deeper levels"); 0 puts it everywhere, None
        nowhere. Default 2: levels 2, 3, 4 of a depth-5 network.
    activation : Activation
        Hidden activation (published: ReLU).
    output_activation : OutputActivation
        Activation of the output layer.
    up_mode : UpMode
        Transposed convolutions (published) or bilinear upsampling.
    in_channels, out_channels : int
        Image channels (1: EPID signal in, portal dose out).

    Examples
    --------
    >>> UNetConfig(initial_filters=16).filters_per_level
    (16, 32, 64, 128, 128)
    """

    depth: int = 5
    initial_filters: int = 8
    max_filters: int = 128
    convs_per_level: int = 2
    kernel_size: int = 3
    batch_norm_from_level: int | None = 2
    activation: Activation = Activation.RELU
    output_activation: OutputActivation = OutputActivation.IDENTITY
    up_mode: UpMode = UpMode.TRANSPOSED
    in_channels: int = 1
    out_channels: int = 1

    def __post_init__(self) -> None:
        check_positive_ints(self, SIZE_FIELDS)
        if self.depth > 8:
            raise ParameterError(f"depth must be <= 8, got {self.depth}")
        if self.max_filters < self.initial_filters:
            raise ParameterError(
                f"max_filters must be >= initial_filters ({self.initial_filters}), got {self.max_filters}"
            )
        k = self.kernel_size
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ParameterError(f"kernel_size must be an odd integer >= 1, got {k!r}")
        b = self.batch_norm_from_level
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 0):
            raise ParameterError(f"batch_norm_from_level must be an integer >= 0 or None, got {b!r}")
        for name, kind in (
            ("activation", Activation),
            ("output_activation", OutputActivation),
            ("up_mode", UpMode),
        ):
            if not isinstance(getattr(self, name), kind):
                raise ParameterError(f"{name} must be a {kind.__name__}, got {getattr(self, name)!r}")

    @property
    def filters_per_level(self) -> tuple[int, ...]:
        """Filters of each level, from the full-resolution level to the bottleneck."""
        return tuple(min(self.initial_filters * 2**level, self.max_filters) for level in range(self.depth))

    @property
    def size_multiple(self) -> int:
        """The working grid's rows and columns must be multiples of this (``2 ** (depth - 1)``)."""
        return int(2 ** (self.depth - 1))

    def uses_batch_norm(self, level: int) -> bool:
        """Whether the convolutions of ``level`` (0-based) are followed by batch normalisation."""
        return self.batch_norm_from_level is not None and level >= self.batch_norm_from_level

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (enums as their values)."""
        d = asdict(self)
        for name in ("activation", "output_activation", "up_mode"):
            d[name] = getattr(self, name).value
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys or values raise :class:`ModelError`."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"unknown U-Net architecture key(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        try:
            for name, kind in (
                ("activation", Activation),
                ("output_activation", OutputActivation),
                ("up_mode", UpMode),
            ):
                if name in values:
                    values[name] = kind(values[name])
            return cls(**values)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"invalid U-Net architecture {data}: {exc}") from exc


def _activation(kind: Activation) -> torch.nn.Module:
    """The activation layer of ``kind`` (in place)."""
    from torch import nn

    if kind is Activation.RELU:
        return nn.ReLU(inplace=True)
    if kind is Activation.LEAKY_RELU:
        return nn.LeakyReLU(0.01, inplace=True)
    return nn.ELU(inplace=True)


def _conv_block(cfg: UNetConfig, c_in: int, c_out: int, level: int, groups: int = 1) -> torch.nn.Sequential:
    """One level's convolutions (+ batch normalisation where the level uses it) and activations.

    ``groups`` > 1 builds ``groups`` independent copies side by side (channels ``groups * c``, grouped
    convolutions): the layers of a stacked network (:mod:`intrepid.learn._stacked`).
    """
    from torch import nn

    layers: list[nn.Module] = []
    bn = cfg.uses_batch_norm(level)
    for n in range(cfg.convs_per_level):
        layers.append(
            nn.Conv2d(
                groups * (c_in if n == 0 else c_out),
                groups * c_out,
                cfg.kernel_size,
                padding=cfg.kernel_size // 2,
                bias=not bn,
                groups=groups,
            )
        )
        if bn:
            layers.append(nn.BatchNorm2d(groups * c_out))
        layers.append(_activation(cfg.activation))
    return nn.Sequential(*layers)


@functools.cache
def _unet_class() -> type:
    """The ``torch.nn.Module`` subclass, defined on first use so that importing this module needs no torch."""
    import torch
    from torch import nn

    class UNet(nn.Module):
        """2D U-Net built from a :class:`UNetConfig`; input and output ``(N, C, H, W)`` float32.

        ``members`` > 1 builds that many independent U-Nets as one grouped network (every layer
        ``groups=members``, member-major channels, skip connections concatenated member by member): input
        ``(N, members * in_channels, H, W)``, output ``(N, members * out_channels, H, W)``, the state dict has
        one U-Net's keys with the members' tensors stacked along the first axis (stacked training,
        :mod:`intrepid.learn._stacked`).
        """

        def __init__(self, config: UNetConfig, members: int = 1) -> None:
            super().__init__()
            self.config = config
            self.members = g = members
            f = config.filters_per_level
            self.encoders = nn.ModuleList()
            c_in = config.in_channels
            for level in range(config.depth):
                self.encoders.append(_conv_block(config, c_in, f[level], level, groups=g))
                c_in = f[level]
            self.pool = nn.MaxPool2d(2)
            self.ups = nn.ModuleList()
            self.decoders = nn.ModuleList()
            for level in range(config.depth - 2, -1, -1):
                if config.up_mode is UpMode.TRANSPOSED:
                    up: nn.Module = nn.ConvTranspose2d(
                        g * f[level + 1], g * f[level], kernel_size=2, stride=2, groups=g
                    )
                else:
                    up = nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                        nn.Conv2d(g * f[level + 1], g * f[level], kernel_size=1, groups=g),
                    )
                self.ups.append(up)
                self.decoders.append(_conv_block(config, 2 * f[level], f[level], level, groups=g))
            self.head = nn.Conv2d(g * f[0], g * config.out_channels, kernel_size=1, groups=g)
            out = config.output_activation
            self.out_act: nn.Module = (
                nn.Identity()
                if out is OutputActivation.IDENTITY
                else nn.ReLU()
                if out is OutputActivation.RELU
                else nn.Softplus()
                if out is OutputActivation.SOFTPLUS
                else nn.Sigmoid()
            )

        def _skip(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
            """Skip connection and upsampled features side by side (member by member when stacked)."""
            if self.members == 1:
                return torch.cat([skip, up], dim=1)
            n, _, h, w = skip.shape
            g = self.members
            return torch.cat([skip.view(n, g, -1, h, w), up.view(n, g, -1, h, w)], dim=2).view(n, -1, h, w)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for level, enc in enumerate(self.encoders):
                if level > 0:
                    x = self.pool(x)
                x = enc(x)
                skips.append(x)
            skips.pop()
            for up, dec in zip(self.ups, self.decoders, strict=True):
                x = dec(self._skip(skips.pop(), up(x)))
            return self.out_act(self.head(x))

    return UNet


def build_unet(config: UNetConfig | None = None) -> torch.nn.Module:
    """Build the U-Net described by ``config`` (default: the published 8-filter network).

    Parameters
    ----------
    config : UNetConfig, optional
        Architecture.

    Returns
    -------
    torch.nn.Module
        Maps ``(N, in_channels, H, W)`` float32 to ``(N, out_channels, H, W)``; H and W must be multiples of
        ``config.size_multiple``. Its ``config`` attribute is the :class:`UNetConfig`. Weights are initialised
        from PyTorch's global generator: wrap the call in ``torch.random.fork_rng()`` and seed it for
        reproducible weights (:func:`intrepid.learn.train_model` does).

    Examples
    --------
    >>> net = build_unet(UNetConfig(initial_filters=8))  # doctest: +SKIP
    >>> count_parameters(net)  # doctest: +SKIP
    471177
    """
    cfg = UNetConfig() if config is None else config
    if not isinstance(cfg, UNetConfig):
        raise ParameterError(f"config must be a UNetConfig, got {type(cfg).__name__}")
    module: torch.nn.Module = _unet_class()(cfg)
    return module


def count_parameters(module: torch.nn.Module) -> int:
    """Number of trainable parameters of a module."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))
