"""The per-plan trend figure: gamma pass rate, mean gamma and isocentre ratio over fractions, per beam, with
the action levels drawn as bands."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from intrepid.report import ActionLevels

__all__ = ["trend_figure"]


def trend_figure(rows: Sequence[dict[str, Any]], levels: ActionLevels, *, dpi: int = 80) -> bytes:
    """PNG of the trend; ``rows`` hold ``fraction``, ``beam``, ``gamma_pass_percent``, ``mean_gamma``,
    ``iso_ratio`` (None where not computed, e.g. the baseline fraction)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    beams = sorted({r["beam"] for r in rows})
    specs = (
        (
            "gamma_pass_percent",
            f"γ {levels.criterion_label} pass rate (%)",
            (levels.min_pass_rate_percent, None),
        ),
        ("mean_gamma", f"mean γ ({levels.criterion_label})", (None, levels.max_mean_gamma)),
        (
            "iso_ratio",
            "isocentre ratio (measured / reference)",
            (levels.iso_ratio_low, levels.iso_ratio_high),
        ),
    )
    for ax, (key, label, (lo, hi)) in zip(axes, specs, strict=True):
        for beam in beams:
            pts = [(r["fraction"], r[key]) for r in rows if r["beam"] == beam and r[key] is not None]
            if pts:
                x, y = zip(*sorted(pts), strict=True)
                ax.plot(x, y, marker="o", label=beam)
        for level in (lo, hi):
            if level is not None:
                ax.axhline(level, color="#b00020", ls="--", lw=1.2)
        ax.set_xlabel("fraction", fontsize=10)
        ax.set_ylabel(label, fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if beams:
            ax.legend(fontsize=9)
    fig.suptitle("trend over fractions (dashed: action levels)", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
