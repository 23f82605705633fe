"""A configurable 3D U-Net (PyTorch, imported lazily) for volume-to-volume regression.

The 3D counterpart of :mod:`intrepid.learn._unet`: ``depth`` resolution levels, ``convs_per_level``
3×3×3 convolutions per level (padding 1), filters doubling from ``initial_filters`` up to ``max_filters``,
max-pooling down, transposed convolutions up, skip connections by concatenation, batch normalisation from a
given level, ReLU. It is fully convolutional: any input whose sizes are multiples of ``2 ** (depth - 1)``
(see :func:`pad_to_multiple`). Used by InTrEPID-3D to refine the first-order dose (Martins et al. 2023 use a
U-Net of the same family for the FOD → dose step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import ParameterError
from intrepid.learn._unet import SIZE_FIELDS, check_positive_ints

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["UNet3DConfig", "build_unet3d", "pad_to_multiple"]


@dataclass(frozen=True)
class UNet3DConfig:
    """Architecture of the 3D U-Net.

    Parameters
    ----------
    depth : int
        Resolution levels including the bottleneck (1–5).
    initial_filters, max_filters : int
        Filters of the first level and the cap (doubling per level).
    convs_per_level : int
        Convolutions per level (encoder and decoder).
    batch_norm_from_level : int or None
        First level (0-based) with batch normalisation; None: none.
    in_channels, out_channels : int

    Examples
    --------
    >>> UNet3DConfig(depth=3, initial_filters=8).filters_per_level
    (8, 16, 32)
    """

    depth: int = 3
    initial_filters: int = 8
    max_filters: int = 64
    convs_per_level: int = 2
    batch_norm_from_level: int | None = 1
    in_channels: int = 4
    out_channels: int = 1

    def __post_init__(self) -> None:
        check_positive_ints(self, SIZE_FIELDS)
        if self.depth > 5:
            raise ParameterError(f"depth must be <= 5 for a 3D U-Net, got {self.depth}")
        if self.max_filters < self.initial_filters:
            raise ParameterError("max_filters must be >= initial_filters")

    @property
    def filters_per_level(self) -> tuple[int, ...]:
        """Filters of each level."""
        return tuple(min(self.initial_filters * 2**i, self.max_filters) for i in range(self.depth))

    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this."""
        return int(2 ** (self.depth - 1))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": "unet3d", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNet3DConfig:
        """Inverse of :meth:`to_dict`."""
        keys = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**keys)


def pad_to_multiple(a: NDArray[Any], multiple: int) -> tuple[NDArray[Any], tuple[slice, ...]]:
    """Zero-pad the last three axes of ``a`` up to multiples of ``multiple``; returns the slices back."""
    pads = [(0, 0)] * (a.ndim - 3)
    back = [slice(None)] * (a.ndim - 3)
    for n in a.shape[-3:]:
        extra = (-n) % multiple
        pads.append((0, extra))
        back.append(slice(0, n))
    return np.pad(a, pads), tuple(back)


def build_unet3d(config: UNet3DConfig | None = None) -> torch.nn.Module:
    """A fresh 3D U-Net for ``config`` (default :class:`UNet3DConfig`)."""
    import torch
    from torch import nn

    cfg = config or UNet3DConfig()
    filters = cfg.filters_per_level

    def block(cin: int, cout: int, level: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for n in range(cfg.convs_per_level):
            layers.append(nn.Conv3d(cin if n == 0 else cout, cout, 3, padding=1))
            if cfg.batch_norm_from_level is not None and level >= cfg.batch_norm_from_level:
                layers.append(nn.BatchNorm3d(cout))
            layers.append(nn.ReLU(inplace=True))
        return nn.Sequential(*layers)

    class UNet3D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down = nn.ModuleList()
            cin = cfg.in_channels
            for lvl, f in enumerate(filters):
                self.down.append(block(cin, f, lvl))
                cin = f
            self.up = nn.ModuleList()
            self.dec = nn.ModuleList()
            for lvl in range(cfg.depth - 2, -1, -1):
                self.up.append(nn.ConvTranspose3d(filters[lvl + 1], filters[lvl], 2, stride=2))
                self.dec.append(block(2 * filters[lvl], filters[lvl], lvl))
            self.head = nn.Conv3d(filters[0], cfg.out_channels, 1)
            self.pool = nn.MaxPool3d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for i, b in enumerate(self.down):
                x = b(x)
                if i < len(self.down) - 1:
                    skips.append(x)
                    x = self.pool(x)
            for up, dec in zip(self.up, self.dec, strict=True):
                x = up(x)
                x = dec(torch.cat([x, skips.pop()], dim=1))
            out: torch.Tensor = self.head(x)
            return out

    return UNet3D()
