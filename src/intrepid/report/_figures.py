"""Figures of the InTrEPID-2D evaluation, rendered with Matplotlib (Agg) to PNG bytes.

- :func:`image_figure`: one test image — EPID signal, true portal dose, each method's prediction, the
  difference and gamma maps of the first method, and the central in-plane / cross-plane profiles;
- :func:`distribution_figure`: the per-image pass-rate distributions of every method at every criterion.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from intrepid.errors import ParameterError
from intrepid.transit._evaluation import Evaluation, ImageEvaluation

__all__ = ["distribution_figure", "image_figure"]

_COLOURS = {"network": "#1f77b4", "baseline": "#d62728", "reference": "#000000"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def image_figure(image: ImageEvaluation, *, dpi: int = 80) -> bytes:
    """PNG of one image's maps and profiles.

    Parameters
    ----------
    image : ImageEvaluation
        An evaluated image with its maps (``evaluate_pairs(..., keep_maps=True)``).
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    bytes
        The PNG file.

    Raises
    ------
    ParameterError
        The image has no maps.
    """
    if image.maps is None:
        raise ParameterError(f"image {image.name!r} has no maps; evaluate with keep_maps=True")
    plt = _pyplot()
    maps = image.maps
    methods = list(maps.predictions)
    first = methods[0]
    rows_mm = maps.reference.shape[0] * maps.spacing_mm[0]
    cols_mm = maps.reference.shape[1] * maps.spacing_mm[1]
    extent = (-cols_mm / 2, cols_mm / 2, rows_mm / 2, -rows_mm / 2)
    vmax = float(np.nanmax(maps.reference)) or 1.0
    panels: list[tuple[str, Any, dict[str, Any]]] = [
        ("EPID signal", maps.epid, {"cmap": "gray"}),
        ("true portal dose (Gy)", maps.reference, {"cmap": "viridis", "vmin": 0, "vmax": vmax}),
    ]
    for m in methods:
        panels.append((f"{m} (Gy)", maps.predictions[m], {"cmap": "viridis", "vmin": 0, "vmax": vmax}))
    diff = (maps.predictions[first] - maps.reference) / vmax * 100.0
    lim = max(1.0, float(np.nanpercentile(np.abs(diff), 99.5)))
    panels.append((f"{first} − true (% of max)", diff, {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}))
    for m in methods:
        panels.append((f"γ {m}", maps.gamma[m], {"cmap": "RdYlGn_r", "vmin": 0, "vmax": 2}))
    n = len(panels) + 2
    ncols = 4
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows))
    axes = np.atleast_1d(axes).ravel()
    for ax, (title, arr, kw) in zip(axes, panels, strict=False):
        im = ax.imshow(arr, extent=extent, **kw)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (mm at detector)", fontsize=7)
        ax.tick_params(labelsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
    r0, c0 = maps.reference.shape[0] // 2, maps.reference.shape[1] // 2
    for ax, axis, label in (
        (axes[len(panels)], 1, "cross-plane (x)"),
        (axes[len(panels) + 1], 0, "in-plane (y)"),
    ):
        n_pts = maps.reference.shape[axis]
        pos = (np.arange(n_pts) - (n_pts - 1) / 2) * maps.spacing_mm[0 if axis == 0 else 1]
        ref = maps.reference[r0, :] if axis == 1 else maps.reference[:, c0]
        ax.plot(pos, ref, color=_COLOURS["reference"], lw=1.5, label="true")
        for m in methods:
            p = maps.predictions[m][r0, :] if axis == 1 else maps.predictions[m][:, c0]
            ax.plot(pos, p, color=_COLOURS.get(m), lw=1.0, ls="--", label=m)
        ax.set_title(f"central profile, {label}", fontsize=9)
        ax.set_xlabel("mm at detector", fontsize=7)
        ax.set_ylabel("Gy", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
    for ax in axes[n:]:
        ax.axis("off")
    fig.suptitle(f"{image.name} — {image.family}, {image.field_group}", fontsize=11)
    fig.tight_layout()
    return _png(fig, dpi)


def distribution_figure(evaluation: Evaluation, *, dpi: int = 90) -> bytes:
    """PNG of the per-image gamma pass-rate distributions (box plot with the points) per criterion.

    Parameters
    ----------
    evaluation : Evaluation
    dpi : int
        Resolution of the PNG.
    """
    plt = _pyplot()
    crit = evaluation.criteria
    fig, axes = plt.subplots(1, len(crit), figsize=(3.6 * len(crit), 3.4), squeeze=False)
    rng = np.random.default_rng(0)  # jitter of the points only
    for ax, c in zip(axes[0], crit, strict=True):
        data = [
            [im.metrics[m].pass_rates_percent[c.key] for im in evaluation.images if m in im.metrics]
            for m in evaluation.methods
        ]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(evaluation.methods) + 1), list(evaluation.methods))
        for n, (m, vals) in enumerate(zip(evaluation.methods, data, strict=True)):
            x = n + 1 + rng.uniform(-0.12, 0.12, len(vals))
            ax.scatter(x, vals, s=10, color=_COLOURS.get(m, "gray"), alpha=0.7, zorder=3)
        ax.set_title(f"γ {c.label} pass rate", fontsize=10)
        ax.set_ylabel("% of points with γ ≤ 1", fontsize=8)
        lo = min((v for vals in data for v in vals if math.isfinite(v)), default=90.0)
        ax.set_ylim(min(lo - 1.0, 95.0), 100.5)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig, dpi)
