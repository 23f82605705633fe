"""Physics-only reconstruction: the first-order dose with a scatter and build-up correction, no learning.

    D_beam(x) = k · [G_σ ∗ FOD](x) · (1 − exp(−d_ent(x) / λ))

- ``G_σ ∗``: a 3D Gaussian of σ mm spreads the FOD (primary-like) into the patient-scatter dose around it —
  the dose from a pencil beam in water has a scatter halo of centimetre range (Ahnesjö & Aspradakis 1999,
  Phys Med Biol 44:R99, doi:10.1088/0031-9155/44/11/201); a single Gaussian is the crudest kernel that
  moves dose from inside the field to its penumbra;
- ``k``: the absolute scale — it removes the patient scatter contained in the portal dose (scatter-to-primary
  ratio 5–15 % at the EPID [recall, team references]) and adds the in-patient scatter on the axis;
- ``1 − exp(−d_ent / λ)``: the build-up below the entrance surface (d_ent the water-equivalent depth from the
  entrance; for 6 MV the dose maximum lies at 15 mm, BJR Suppl. 25 [recall], so λ ≈ 3–6 mm).

``k``, ``σ`` and ``λ`` are fitted by least squares (``k`` in closed form on a grid of σ and λ) to pairs of FOD
and dose-engine beam doses of training cases: :func:`fit_baseline`. The default parameters ship as
``intrepid/invivo/models/baseline.json``, reproducible by ``python benchmarks/invivo/train_invivo.py``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from intrepid.errors import ParameterError
from intrepid.geometry import Volume

__all__ = ["InvivoBaseline", "apply_baseline", "baseline_path", "fit_baseline", "load_baseline"]

_log = logging.getLogger(__name__)

#: Candidate σ (mm) and λ (mm) of the fit.
SIGMAS_MM = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
LAMBDAS_MM = (0.0, 2.0, 4.0, 6.0, 8.0)


@dataclass(frozen=True)
class InvivoBaseline:
    """Parameters of the physics-only reconstruction (module docstring)."""

    scale: float = 1.0
    sigma_mm: float = 4.0
    buildup_mm: float = 4.0
    training: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ParameterError(f"baseline scale must be > 0, got {self.scale}")
        if self.sigma_mm < 0 or self.buildup_mm < 0:
            raise ParameterError("baseline sigma_mm and buildup_mm must be >= 0")

    def save(self, path: str | Path) -> Path:
        """Write as JSON."""
        p = Path(path)
        p.write_text(json.dumps({"kind": "intrepid-invivo-baseline-1", **asdict(self)}, indent=2) + "\n")
        return p


def baseline_path() -> Path:
    """The shipped default baseline parameters."""
    return Path(__file__).parent / "models" / "baseline.json"


def load_baseline(path: str | Path | None = None) -> InvivoBaseline:
    """Read baseline parameters (default: the shipped file; built-in defaults if it is missing)."""
    p = Path(path) if path is not None else baseline_path()
    if not p.exists():
        if path is not None:
            raise ParameterError(f"{p}: no such baseline file")
        return InvivoBaseline(training="built-in defaults (no fitted file)")
    d = json.loads(p.read_text())
    if d.get("kind") != "intrepid-invivo-baseline-1":
        raise ParameterError(f"{p}: not an InTrEPID in-vivo baseline file (kind {d.get('kind')!r})")
    return InvivoBaseline(
        float(d["scale"]), float(d["sigma_mm"]), float(d["buildup_mm"]), str(d.get("training", ""))
    )


def _smooth(a: NDArray[np.float64], sigma_mm: float, spacing_mm: tuple[float, ...]) -> NDArray[np.float64]:
    if sigma_mm <= 0:
        return a
    sx, sy, sz = spacing_mm
    return np.asarray(
        ndimage.gaussian_filter(a, (sigma_mm / sz, sigma_mm / sy, sigma_mm / sx), mode="constant")
    )


def _buildup(entrance_mm: NDArray[np.float64], lam: float) -> NDArray[np.float64]:
    if lam <= 0:
        return np.ones_like(entrance_mm)
    return np.asarray(1.0 - np.exp(-np.maximum(entrance_mm, 0.0) / lam))


def apply_baseline(fod: Volume, entrance_mm: NDArray[np.float64], model: InvivoBaseline) -> Volume:
    """The physics-only beam dose (Gy) from a beam's FOD and its water-equivalent entrance depth (mm)."""
    a = np.asarray(fod.array, dtype=np.float64)
    d = (
        model.scale
        * _smooth(a, model.sigma_mm, fod.grid.spacing_mm)
        * _buildup(entrance_mm, model.buildup_mm)
    )
    d[a <= 0] *= 1.0  # keep the smoothed dose in small cavities (the dose engine reports dose there too)
    return fod.with_array(d.astype(np.float32), metadata={**fod.metadata, "kind": "baseline_dose"})


def fit_baseline(
    samples: Sequence[tuple[Volume, NDArray[np.float64], Volume]], *, training: str = ""
) -> InvivoBaseline:
    """Least-squares fit of (k, σ, λ) to ``(fod, entrance_mm, true beam dose)`` samples.

    The loss is the sum of squared differences over voxels where the true dose is ≥ 10 % of its beam maximum
    (the γ cut-off region), each beam normalised by its maximum so that all beams weigh alike.
    """
    if not samples:
        raise ParameterError("fit_baseline needs at least one sample")
    best: tuple[float, float, float, float] | None = None
    for sigma in SIGMAS_MM:
        smoothed = [
            (_smooth(np.asarray(f.array, dtype=np.float64), sigma, f.grid.spacing_mm), e, t)
            for f, e, t in samples
        ]
        for lam in LAMBDAS_MM:
            num = den = 0.0
            parts = []
            for s, e, t in smoothed:
                ta = np.asarray(t.array, dtype=np.float64)
                tmax = float(ta.max())
                if tmax <= 0:
                    continue
                m = ta >= 0.1 * tmax
                x = (s * _buildup(e, lam))[m] / tmax
                y = ta[m] / tmax
                num += float(x @ y)
                den += float(x @ x)
                parts.append((x, y))
            if den <= 0:
                continue
            k = num / den
            loss = sum(float(((k * x - y) ** 2).sum()) for x, y in parts)
            if best is None or loss < best[0]:
                best = (loss, k, sigma, lam)
    if best is None:
        raise ParameterError("fit_baseline: the samples hold no dose")
    _log.info("in-vivo baseline fit: k %.4f, sigma %.1f mm, lambda %.1f mm", best[1], best[2], best[3])
    return InvivoBaseline(best[1], best[2], best[3], training)
