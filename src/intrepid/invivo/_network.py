"""The 3D network of InTrEPID-3D: a residual 3D U-Net ensemble that refines the physics baseline per beam.

Inputs per beam (the images of an arc beam are combined), on the CT grid, normalised by the beam's
baseline near-maximum ``s`` (99.9th percentile):

1. the physics-only baseline dose / s (also the residual base: prediction = base + net);
2. the first-order dose / s (clipped at 3);
3. the relative electron density of the CT (clipped to [0, 2]);
4. the water-equivalent entrance depth / 200 mm (beam geometry; mean over the frames of an arc).

Output: beam dose / s. Trained on simulated cases against the dose engine's delivered beam doses with
:func:`intrepid.learn.train_volume_ensemble` (repeated group K-fold, one group per case).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.invivo._reconstruct import BeamInputs

__all__ = ["InvivoNetwork", "beam_features", "default_invivo_model_path", "load_invivo_model"]

_log = logging.getLogger(__name__)

#: Channels of the network input, in order.
CHANNELS = ("baseline_over_scale", "fod_over_scale", "relative_electron_density", "entrance_depth_over_200mm")


def default_invivo_model_path() -> Path | None:
    """The shipped default model folder, or None when the package holds none."""
    p = Path(__file__).parent / "models" / "invivo3d"
    return p if (p / "model.json").is_file() else None


def beam_features(
    inputs: Sequence[BeamInputs],
) -> dict[int, tuple[NDArray[np.float32], NDArray[np.float32], float]]:
    """Per beam number: (channels (4, Z, Y, X), base (Z, Y, X), scale s in Gy)."""
    by_beam: dict[int, list[BeamInputs]] = {}
    for b in inputs:
        by_beam.setdefault(b.image.beam_number, []).append(b)
    out = {}
    for n, items in by_beam.items():
        base = np.sum([np.asarray(b.baseline.array, dtype=np.float64) for b in items], axis=0)
        fod = np.sum([np.asarray(b.fod.array, dtype=np.float64) for b in items], axis=0)
        ent = np.mean([b.entrance_mm for b in items], axis=0)
        red = np.asarray(items[0].red.array, dtype=np.float64)
        s = float(np.percentile(base, 99.9))
        if not s > 0:
            s = 1.0
        x = np.stack([base / s, np.clip(fod / s, 0, 3), np.clip(red, 0, 2), ent / 200.0]).astype(np.float32)
        out[n] = (x, (base / s).astype(np.float32), s)
    return out


class InvivoNetwork:
    """A loaded ensemble as a :class:`~intrepid.invivo.BeamRefiner`."""

    def __init__(self, ensemble: Any, source: str = "", device: str | None = None) -> None:
        self.ensemble = ensemble
        self.source = source
        self.device = device

    def refine(self, inputs: Sequence[BeamInputs]) -> dict[int, NDArray[np.float32]]:
        """Beam doses (Gy) per beam number (the beams of a plan share the CT grid: batched inference)."""
        feats = beam_features(inputs)
        preds = self.ensemble.predict_batch([(x, base) for x, base, _ in feats.values()], device=self.device)
        return {n: (p * s).astype(np.float32) for (n, (_, _, s)), p in zip(feats.items(), preds, strict=True)}

    def describe(self) -> dict[str, Any]:
        """Architecture, members and training facts."""
        e = self.ensemble
        return {
            "source": self.source,
            "architecture": e.architecture.to_dict(),
            "members": len(e.members),
            "training": e.training,
        }


def load_invivo_model(
    path: str | os.PathLike[str] | None = None, *, device: str | None = None
) -> InvivoNetwork:
    """Load a 3D in-vivo model folder (default: the shipped model); ``device``: PyTorch device of inference
    (``"cpu"`` default, ``"cuda"`` on a GPU)."""
    from intrepid.errors import ParameterError
    from intrepid.learn._volume_ensemble import VolumeEnsemble

    p = Path(path) if path is not None else default_invivo_model_path()
    if p is None:
        raise ParameterError("no shipped 3D in-vivo model; pass a model folder")
    return InvivoNetwork(VolumeEnsemble.load(p), str(p), device)
