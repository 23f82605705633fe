"""Self-contained HTML report of an in-vivo (3D) check: verdict, per-beam table, CT slices with planned vs
reconstructed isodoses, γ slices, DVH overlay. Figures are PNG (Matplotlib Agg) embedded as base64; no
external resources."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from intrepid.dicom import atomic_write
from intrepid.invivo import InvivoResult

__all__ = ["invivo_figures", "render_invivo_html", "write_invivo_report"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.pass{color:#fff;background:#2a7a2a;padding:4px 10px;border-radius:4px}
.alert{color:#fff;background:#b22;padding:4px 10px;border-radius:4px}
img{max-width:100%}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _n(v: float | None, d: int = 1) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{d}f}"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def invivo_figures(result: InvivoResult) -> dict[str, str]:
    """Base64 PNGs: ``slices`` (axial / coronal / sagittal through the isocentre: CT with planned (solid) and
    reconstructed (dashed) isodoses at 20/50/80/95 % of the prescription, and the γ 3%/2mm map) and
    ``dvh``."""
    plt = _pyplot()
    st = result.study
    ct = np.asarray(st.ct.array, dtype=float)
    plan = np.asarray(st.planned_dose.array, dtype=float)
    rec = np.asarray(result.reconstruction.total.array, dtype=float)
    gam = np.asarray(result.plan_comparison.gamma_map.array, dtype=float)
    rx = result.plan_comparison.prescription_gy
    iso = st.plan.beams[0].isocenter_mm
    i, j, k = (round(float(v)) for v in st.ct.grid.world_to_index(np.asarray(iso, dtype=float)))
    k = min(max(k, 0), ct.shape[0] - 1)
    j = min(max(j, 0), ct.shape[1] - 1)
    i = min(max(i, 0), ct.shape[2] - 1)
    views = [
        ("axial", lambda a: a[k]),
        ("coronal", lambda a: a[:, j, :][::-1]),
        ("sagittal", lambda a: a[:, :, i][::-1]),
    ]
    levels = [0.2 * rx, 0.5 * rx, 0.8 * rx, 0.95 * rx]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for col, (name, cut) in enumerate(views):
        ax = axes[0, col]
        ax.imshow(cut(ct), cmap="gray", vmin=-1000, vmax=1000)
        ax.contour(
            cut(plan), levels=levels, colors=["#3b4cc0", "#2ca02c", "#ff7f0e", "#d62728"], linewidths=1.2
        )
        ax.contour(
            cut(rec),
            levels=levels,
            colors=["#3b4cc0", "#2ca02c", "#ff7f0e", "#d62728"],
            linewidths=1.2,
            linestyles="dashed",
        )
        ax.set_title(f"{name}: planned (solid) vs reconstructed (dashed)", fontsize=9)
        ax.axis("off")
        ax = axes[1, col]
        ax.imshow(cut(ct), cmap="gray", vmin=-1000, vmax=1000)
        g = np.ma.masked_invalid(cut(gam))
        im = ax.imshow(g, cmap="RdYlGn_r", vmin=0, vmax=2, alpha=0.85)
        ax.set_title(f"{name}: gamma 3%/2mm", fontsize=9)
        ax.axis("off")
    fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.7, label="gamma")
    out = {"slices": _png(fig)}
    cp = result.plan_comparison
    if cp.dvh_planned:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for n, (name, h) in enumerate(cp.dvh_planned.items()):
            c = colours[n % len(colours)]
            ax.plot(h.dose_bin_edges_gy, 100 * h.cumulative_cc / max(h.volume_cc, 1e-9), color=c, label=name)
            r = cp.dvh_reconstructed[name]
            ax.plot(r.dose_bin_edges_gy, 100 * r.cumulative_cc / max(r.volume_cc, 1e-9), color=c, ls="--")
        ax.set_xlabel("dose (Gy)")
        ax.set_ylabel("volume (%)")
        ax.set_title("DVH: planned (solid) vs reconstructed (dashed)", fontsize=10)
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        out["dvh"] = _png(fig)
    return out


def render_invivo_html(result: InvivoResult, *, figures: bool = True) -> str:
    """The report as one HTML string."""
    d = result.to_json()
    cls = "pass" if d["verdict"] == "pass" else "alert"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>InTrEPID in-vivo check</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>InTrEPID-3D in-vivo check</h1>",
        f"<p>Study <code>{_e(result.study.folder.name)}</code> · "
        f"plan <code>{_e(result.study.plan.label)}</code> · "
        f"method <b>{_e(d['method'])}</b> ({_e(d['model'])}) · {d['compute_seconds']:.1f} s</p>",
        f"<p><span class='{cls}'>{_e(d['verdict'].upper())}</span></p>",
    ]
    if d["alert_reasons"]:
        parts.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in d["alert_reasons"]) + "</ul>")
    parts.append("<h2>Plan sum</h2><table><tr><th>metric</th><th>value</th><th>action level</th></tr>")
    lv = d["action_levels"]
    rows = [
        ("gamma 3%/2mm pass rate (%)", _n(d["gamma_3pct2mm_percent"]), f"≥ {lv['gamma_pass_min_percent']:g}"),
        ("gamma 2%/2mm pass rate (%)", _n(d["gamma_2pct2mm_percent"]), "–"),
        ("mean gamma 3%/2mm", _n(d["mean_gamma_3pct2mm"], 2), f"≤ {lv['mean_gamma_max']:g}"),
        (
            "isocentre ratio",
            _n(d["isocenter_ratio"], 3),
            f"{lv['isocenter_ratio_range'][0]:g}–{lv['isocenter_ratio_range'][1]:g}",
        ),
        ("prescription (planned PTV D50, Gy)", _n(d["prescription_gy"], 3), "–"),
    ]
    parts += [f"<tr><td>{_e(a)}</td><td>{b}</td><td>{_e(c)}</td></tr>" for a, b, c in rows]
    parts.append("</table>")
    if d.get("accuracy"):
        a = d["accuracy"]
        parts.append(
            "<h2>Accuracy against the given true dose</h2><table><tr><th>gamma 3%/2mm (%)</th>"
            "<th>gamma 2%/2mm (%)</th><th>MAE (% of prescription)</th></tr>"
            f"<tr><td>{_n(a['gamma_3pct2mm_percent'])}</td><td>{_n(a['gamma_2pct2mm_percent'])}</td>"
            f"<td>{_n(a['mae_percent'], 2)}</td></tr></table>"
        )
    parts.append(
        "<h2>Per beam</h2><table><tr><th>beam</th><th>gamma 3%/2mm (%)</th><th>gamma 2%/2mm (%)</th>"
        "<th>isocentre ratio</th></tr>"
    )
    for b in d["beams"]:
        parts.append(
            f"<tr><td>{b['number']} {_e(b['name'])}</td><td>{_n(b['gamma_3pct2mm_percent'])}</td>"
            f"<td>{_n(b['gamma_2pct2mm_percent'])}</td><td>{_n(b['isocenter_ratio'], 3)}</td></tr>"
        )
    parts.append(
        "</table><h2>DVH differences (% of the prescription)</h2><table><tr><th>ROI</th><th>type</th>"
        "<th>ΔD98</th><th>ΔD95</th><th>ΔD50</th><th>ΔD2</th><th>ΔDmean</th></tr>"
    )
    for name, r in d["dvh"].items():
        parts.append(
            f"<tr><td>{_e(name)}</td><td>{_e(r['roi_type'])}</td><td>{_n(r['d98_diff_percent'])}</td>"
            f"<td>{_n(r['d95_diff_percent'])}</td><td>{_n(r['d50_diff_percent'])}</td>"
            f"<td>{_n(r['d2_diff_percent'])}</td><td>{_n(r['dmean_diff_percent'])}</td></tr>"
        )
    parts.append("</table>")
    if figures:
        figs = invivo_figures(result)
        parts.append(
            "<h2>Slices through the isocentre</h2>"
            f"<img alt='CT slices with isodoses and gamma' src='data:image/png;base64,{figs['slices']}'>"
        )
        if "dvh" in figs:
            parts.append(f"<h2>DVH</h2><img alt='DVH overlay' src='data:image/png;base64,{figs['dvh']}'>")
    if result.study.notes:
        parts.append(
            "<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in result.study.notes) + "</ul>"
        )
    parts.append(
        "<p style='color:#777;font-size:.85em'>Gamma: global, 10 % cut-off, reference = plan "
        "(AAPM TG-218). Reconstruction: first-order dose back-projection (Martins et al., Phys Med 2023)"
        ". Action levels after SOFTDISO (Cilla et al. 2018) and NKI practice; see docs/invivo.md.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_invivo_report(result: InvivoResult, path: str | os.PathLike[str]) -> Path:
    """Write the report atomically."""
    text = render_invivo_html(result)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
