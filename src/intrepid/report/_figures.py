"""Figures of portal-dose comparisons, rendered with Matplotlib (Agg) to PNG bytes.

- :func:`comparison_figure`: EPID signal, reference and evaluated portal doses, the difference and gamma
  maps, an optional uncertainty map and the central profiles, all **zoomed to the irradiated area** (the
  reference above 5 % of its maximum, plus a margin), with units on every axis and colour bar and doses in mGy
  when the maximum is below 1 Gy;
- :func:`image_figure`: the same for one image of an InTrEPID-2D evaluation;
- :func:`distribution_figure`: the per-image pass-rate distributions of every method at every criterion.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import ParameterError
from intrepid.transit._evaluation import Evaluation, ImageEvaluation

__all__ = [
    "DoseScale",
    "comparison_figure",
    "distribution_figure",
    "dose_scale",
    "field_window_mm",
    "image_figure",
]

_COLOURS = {"network": "#1f77b4", "baseline": "#d62728", "reference": "#000000"}
_TITLE_PT = 11
_LABEL_PT = 10
_TICK_PT = 9


@dataclass(frozen=True)
class DoseScale:
    """Display unit of a dose: ``unit`` (``"mGy"`` or ``"Gy"``) and ``factor`` (display = Gy × factor)."""

    unit: str
    factor: float


def dose_scale(max_dose_gy: float) -> DoseScale:
    """mGy when the largest dose is below 1 Gy (portal doses are ~0.1-0.5 Gy), Gy otherwise."""
    return DoseScale("mGy", 1000.0) if max_dose_gy < 1.0 else DoseScale("Gy", 1.0)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # laid out by tight_layout: no second "tight" drawing pass
    _pyplot().close(fig)
    return buf.getvalue()


def _axes_mm(shape: tuple[int, ...], spacing_mm: tuple[float, float]) -> tuple[NDArray[Any], NDArray[Any]]:
    """Centre positions (mm at the detector, beam axis at 0) of the rows and columns."""
    rows = (np.arange(shape[0]) - (shape[0] - 1) / 2) * spacing_mm[0]
    cols = (np.arange(shape[1]) - (shape[1] - 1) / 2) * spacing_mm[1]
    return rows, cols


def field_window_mm(
    reference: NDArray[Any],
    spacing_mm: tuple[float, float],
    *,
    threshold_fraction: float = 0.05,
    margin_mm: float = 15.0,
    min_half_width_mm: float = 20.0,
) -> tuple[float, float, float, float]:
    """The irradiated area of a dose image, to zoom the figures on: ``(x_min, x_max, y_min, y_max)`` in mm.

    The bounding box of the pixels at or above ``threshold_fraction`` of the maximum, widened by
    ``margin_mm`` on every side (so the penumbra and the low-dose tail stay in view), at least
    ``min_half_width_mm`` either side of its centre, clipped to the image. x runs along the columns, y along
    the rows; both are centred on the image centre (the beam axis).
    """
    a = np.nan_to_num(np.asarray(reference, dtype=float), nan=0.0)
    rows_mm, cols_mm = _axes_mm(a.shape, spacing_mm)
    full = (float(cols_mm[0]), float(cols_mm[-1]), float(rows_mm[0]), float(rows_mm[-1]))
    peak = float(a.max()) if a.size else 0.0
    if peak <= 0:
        return full
    r, c = np.nonzero(a >= threshold_fraction * peak)
    box = [cols_mm[c.min()], cols_mm[c.max()], rows_mm[r.min()], rows_mm[r.max()]]
    out = []
    for lo, hi, (flo, fhi) in ((box[0], box[1], full[:2]), (box[2], box[3], full[2:])):
        centre, half = (lo + hi) / 2, max((hi - lo) / 2 + margin_mm, min_half_width_mm)
        out += [max(flo, centre - half), min(fhi, centre + half)]
    return (float(out[0]), float(out[1]), float(out[2]), float(out[3]))


def _decorate(fig: Any, ax: Any, im: Any, title: str, bar_label: str) -> None:
    ax.set_title(title, fontsize=_TITLE_PT)
    ax.set_xlabel("x at detector (mm)", fontsize=_LABEL_PT)
    ax.set_ylabel("y at detector (mm)", fontsize=_LABEL_PT)
    ax.tick_params(labelsize=_TICK_PT)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=_TICK_PT)
    bar.set_label(bar_label, fontsize=_LABEL_PT)


def comparison_figure(
    *,
    epid: NDArray[Any] | None,
    reference: NDArray[Any],
    evaluated: Mapping[str, NDArray[Any]],
    gamma: Mapping[str, NDArray[Any]],
    spacing_mm: tuple[float, float],
    reference_label: str = "reference",
    gamma_label: str = "3%/3mm",
    uncertainty_gy: NDArray[Any] | None = None,
    epid_units: str = "CU",
    title: str = "",
    dpi: int = 80,
) -> bytes:
    """PNG of a portal-dose comparison, zoomed to the irradiated area.

    Parameters
    ----------
    epid : ndarray or None
        EPID signal ``[row, column]`` (``epid_units``), shown first when given.
    reference : ndarray
        Reference portal dose (Gy), ``[row, column]``.
    evaluated : mapping of str to ndarray
        Label -> evaluated portal dose (Gy) on the same grid; the difference map is drawn for the first.
    gamma : mapping of str to ndarray
        Label -> gamma map (NaN below the cut-off) on the same grid.
    spacing_mm : (row, column) float
        Pixel spacing at the detector, mm.
    reference_label : str
        Name of the reference in titles and legends (``"true portal dose"``, ``"fraction 1"``).
    gamma_label : str
        The gamma criterion of the maps.
    uncertainty_gy : ndarray, optional
        Standard uncertainty of the first evaluated dose (Gy), drawn as a map when given.
    epid_units : str
        Units of the EPID signal.
    title : str
        Figure title.
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    bytes
        The PNG file.
    """
    if not evaluated:
        raise ParameterError("evaluated must hold at least one dose map, got none")
    plt = _pyplot()
    ref = np.asarray(reference, dtype=float)
    first = next(iter(evaluated))
    peak = float(np.nanmax(ref)) if ref.size else 0.0
    scale = dose_scale(peak)
    vmax = (peak or 1.0) * scale.factor
    x0, x1, y0, y1 = field_window_mm(ref, spacing_mm)
    rows_mm, cols_mm = _axes_mm(ref.shape, spacing_mm)
    extent = (
        cols_mm[0] - spacing_mm[1] / 2,
        cols_mm[-1] + spacing_mm[1] / 2,
        rows_mm[-1] + spacing_mm[0] / 2,
        rows_mm[0] - spacing_mm[0] / 2,
    )
    panels: list[tuple[str, Any, dict[str, Any], str]] = []
    if epid is not None:
        panels.append(("EPID signal", np.asarray(epid, dtype=float), {"cmap": "gray"}, epid_units))
    dose_kw = {"cmap": "viridis", "vmin": 0.0, "vmax": vmax}
    panels.append((reference_label, ref * scale.factor, dose_kw, f"portal dose ({scale.unit})"))
    for label, arr in evaluated.items():
        dose = np.asarray(arr, dtype=float) * scale.factor
        panels.append((label, dose, dose_kw, f"portal dose ({scale.unit})"))
    diff = (np.asarray(evaluated[first], dtype=float) - ref) / (peak or 1.0) * 100.0
    inside = diff[np.nan_to_num(ref) >= 0.05 * peak] if peak > 0 else diff.ravel()
    lim = max(1.0, float(np.nanpercentile(np.abs(inside), 99.5))) if inside.size else 1.0
    panels.append(
        (f"{first} − {reference_label}", diff, {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim},
         "difference (% of reference max)")
    )
    for label, g in gamma.items():
        panels.append(
            (f"γ {gamma_label}: {label}", np.asarray(g, dtype=float),
             {"cmap": "RdYlGn_r", "vmin": 0, "vmax": 2}, "γ (dimensionless)")
        )
    if uncertainty_gy is not None:
        panels.append(
            (f"uncertainty of {first}", np.asarray(uncertainty_gy, dtype=float) * scale.factor,
             {"cmap": "magma"}, f"standard uncertainty ({scale.unit})")
        )
    n = len(panels) + 2
    ncols = 3
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 4.3 * nrows))
    axes = np.atleast_1d(axes).ravel()
    for ax, (label, arr, kw, bar_label) in zip(axes, panels, strict=False):
        im = ax.imshow(arr, extent=extent, interpolation="nearest", **kw)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)
        _decorate(fig, ax, im, label, bar_label)
    r0, c0 = ref.shape[0] // 2, ref.shape[1] // 2
    for ax, axis, label, (lo, hi) in (
        (axes[len(panels)], 1, "cross-plane (x)", (x0, x1)),
        (axes[len(panels) + 1], 0, "in-plane (y)", (y0, y1)),
    ):
        pos = cols_mm if axis == 1 else rows_mm
        cut = (lambda a: a[r0, :]) if axis == 1 else (lambda a: a[:, c0])
        ax.plot(pos, cut(ref) * scale.factor, color=_COLOURS["reference"], lw=1.8, label=reference_label)
        for m, arr in evaluated.items():
            ax.plot(pos, cut(np.asarray(arr, dtype=float)) * scale.factor, color=_COLOURS.get(m), lw=1.2,
                    ls="--", label=m)
        ax.set_xlim(lo, hi)
        ax.set_title(f"central profile, {label}", fontsize=_TITLE_PT)
        ax.set_xlabel("position at detector (mm)", fontsize=_LABEL_PT)
        ax.set_ylabel(f"portal dose ({scale.unit})", fontsize=_LABEL_PT)
        ax.tick_params(labelsize=_TICK_PT)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=_TICK_PT)
    for ax in axes[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=_TITLE_PT + 2)
    fig.tight_layout()
    return _png(fig, dpi)


def image_figure(image: ImageEvaluation, *, dpi: int = 80, gamma_label: str = "3%/3mm") -> bytes:
    """PNG of one evaluated image's maps and profiles (see :func:`comparison_figure`).

    Parameters
    ----------
    image : ImageEvaluation
        An evaluated image with its maps (``evaluate_pairs(..., keep_maps=True)``).
    dpi : int
        Resolution of the PNG.
    gamma_label : str
        The criterion of the kept gamma maps (the evaluation's first).

    Raises
    ------
    ParameterError
        The image has no maps.
    """
    if image.maps is None:
        raise ParameterError(f"image {image.name!r} has no maps; evaluate with keep_maps=True")
    maps = image.maps
    first = next(iter(maps.predictions), None)
    spread = getattr(maps, "uncertainty", {}) or {}
    return comparison_figure(
        epid=maps.epid,
        reference=maps.reference,
        evaluated=maps.predictions,
        gamma=maps.gamma,
        spacing_mm=maps.spacing_mm,
        reference_label="true portal dose",
        gamma_label=gamma_label,
        uncertainty_gy=spread.get(first) if first is not None else None,
        title=f"{image.name} — {image.family}, {image.field_group}",
        dpi=dpi,
    )


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
    fig, axes = plt.subplots(1, len(crit), figsize=(4.2 * len(crit), 3.8), squeeze=False)
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
            ax.scatter(x, vals, s=12, color=_COLOURS.get(m, "gray"), alpha=0.7, zorder=3)
        ax.set_title(f"γ {c.label} pass rate", fontsize=_TITLE_PT)
        ax.set_ylabel("points with γ ≤ 1 (%)", fontsize=_LABEL_PT)
        ax.set_xlabel("method", fontsize=_LABEL_PT)
        ax.tick_params(labelsize=_TICK_PT)
        lo = min((v for vals in data for v in vals if math.isfinite(v)), default=90.0)
        ax.set_ylim(min(lo - 1.0, 95.0), 100.5)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig, dpi)
