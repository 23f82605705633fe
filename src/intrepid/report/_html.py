"""Self-contained HTML report of an InTrEPID-2D evaluation: tables and figures embedded as base64 PNG.

The report holds, in order: the summary table (network beside baseline, mean ± σ and median of every gamma
criterion, MAE and maximum error), the pass-rate distributions, the table per phantom family and per family ×
field group, the per-image table, one figure per image (EPID, true and predicted portal dose, difference and
gamma maps, profiles) and the settings (criteria, normalisation, cut-off, software versions), as Hussein et
al. 2017 ask of a gamma report (doi:10.1016/j.ejmp.2017.03.001). Every image gets a pass / fail verdict under
the action levels (:mod:`intrepid.report._verdict`, SOFTDISO defaults) with the levels that fired. Doses and
errors are in mGy; the tables carry the mean gamma and the near-maximum γ1%. No external file, script or style
sheet is referenced, so the file opens anywhere, offline; printed (or :func:`~intrepid.report.write_pdf`) each
image figure starts a new page.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from intrepid.dicom._common import atomic_write
from intrepid.errors import ParameterError
from intrepid.report._verdict import DEFAULT_ACTION_LEVELS, ActionLevels, Verdict, judge
from intrepid.transit._evaluation import Evaluation, ImageEvaluation, Statistics

__all__ = ["image_verdict", "render_html", "write_report"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f2f2f2}
td.l,th.l{text-align:left}.fail{color:#b00020;font-weight:bold}.note{color:#555;font-size:.9em}
img{max-width:100%;height:auto}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
.wide{overflow-x:auto}.pass{color:#1b7a1b;font-weight:bold}
@media print{body{margin:0;max-width:none}.image-figure{break-before:page;page-break-before:always}
h2{break-after:avoid}table{font-size:.8em}}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _num(v: float, digits: int = 2) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _mgy(v: float) -> str:
    return _num(v * 1000.0 if v is not None and math.isfinite(v) else float("nan"), 2)


def _gamma_1percent(im: ImageEvaluation, method: str) -> float:
    """γ1% (99th percentile) of the kept gamma map of the first criterion (NaN without maps).

    The kept map is the block maximum of the full-resolution map, so this is an upper bound of the
    full-resolution γ1%."""
    if im.maps is None or method not in im.maps.gamma:
        return float("nan")
    g = np.asarray(im.maps.gamma[method], dtype=float)
    g = g[np.isfinite(g)]
    return float(np.percentile(g, 99.0)) if g.size else float("nan")


def _iso_ratio(im: ImageEvaluation, method: str, radius_mm: float = 5.0) -> float | None:
    """Evaluated / reference dose averaged over ``radius_mm`` around the image centre (the beam axis);
    None without maps or when the reference there is below 5 % of its maximum (isocentre blocked)."""
    if im.maps is None or method not in im.maps.predictions:
        return None
    ref = np.asarray(im.maps.reference, dtype=float)
    ev = np.asarray(im.maps.predictions[method], dtype=float)
    sr, sc = im.maps.spacing_mm
    rows = (np.arange(ref.shape[0]) - (ref.shape[0] - 1) / 2) * sr
    cols = (np.arange(ref.shape[1]) - (ref.shape[1] - 1) / 2) * sc
    near = (rows[:, None] ** 2 + cols[None, :] ** 2) <= max(radius_mm, sr, sc) ** 2
    r = float(ref[near].mean())
    if not r > 0.05 * float(np.nanmax(ref)):
        return None
    return float(ev[near].mean()) / r


def image_verdict(im: ImageEvaluation, method: str, levels: ActionLevels) -> Verdict | None:
    """The verdict of one method on one image (None when the levels' criterion was not evaluated)."""
    key = f"{levels.gamma_dta_mm:g}mm{levels.gamma_dd_percent:g}pct"
    m = im.metrics[method]
    if key not in m.pass_rates_percent:
        return None
    return judge(m.pass_rates_percent[key], m.mean_gamma[key], _iso_ratio(im, method), levels)


def _summary_table(ev: Evaluation, images: Sequence[ImageEvaluation] | None, table_id: str) -> str:
    head = "".join(
        f"<th>γ {_e(c.label)} mean ± σ (%)</th><th>median (%)</th><th>mean γ</th>" for c in ev.criteria
    )
    rows = []
    summary = ev.summary(images)
    ims = list(ev.images if images is None else images)
    for m in ev.methods:
        cells = []
        for c in ev.criteria:
            s = summary[m][f"pass_rate_{c.key}_percent"]
            mg = Statistics.of([im.metrics[m].mean_gamma[c.key] for im in ims if m in im.metrics])
            cells.append(
                f"<td>{_num(s.mean)} ± {_num(s.std)}</td><td>{_num(s.median)}</td><td>{_num(mg.mean)}</td>"
            )
        g1 = Statistics.of([_gamma_1percent(im, m) for im in ims])
        mae = summary[m]["mae_gy"]
        mx = summary[m]["max_error_gy"]
        rows.append(
            f'<tr><td class="l">{_e(m)}</td>{"".join(cells)}<td>{_num(g1.mean)}</td><td>{_mgy(mae.mean)}</td>'
            f"<td>{_mgy(mx.mean)}</td><td>{mae.n}</td></tr>"
        )
    return (
        f'<table id="{_e(table_id)}"><tr><th class="l">method</th>{head}'
        f"<th>γ1% {_e(ev.criteria[0].label)} (mean)</th><th>MAE (mGy)</th>"
        f"<th>max error (mGy)</th><th>images</th></tr>{''.join(rows)}</table>"
    )


def _group_table(ev: Evaluation, by: str, table_id: str) -> str:
    c = ev.criteria[0]
    key = f"pass_rate_{c.key}_percent"
    head = "".join(
        f"<th>{_e(m)} γ {_e(c.label)} mean ± σ (%)</th><th>{_e(m)} median</th>" for m in ev.methods
    )
    rows = []
    for group, ims in ev.groups(by).items():
        cells = []
        for m in ev.methods:
            s = ev.statistics(m, key, ims)
            cells.append(f"<td>{_num(s.mean)} ± {_num(s.std)}</td><td>{_num(s.median)}</td>")
        rows.append(f'<tr><td class="l">{_e(group)}</td><td>{len(ims)}</td>{"".join(cells)}</tr>')
    label = "family" if by == "family" else "family | field group"
    return (
        f'<table id="{_e(table_id)}"><tr><th class="l">{label}</th><th>images</th>{head}</tr>'
        f"{''.join(rows)}</table>"
    )


def _image_table(ev: Evaluation, levels: ActionLevels) -> str:
    c0 = ev.criteria[0]
    head = "".join(f"<th>{_e(m)} γ {_e(c.label)} (%)</th>" for c in ev.criteria for m in ev.methods)
    head += "".join(
        f"<th>{_e(m)} mean γ {_e(c0.label)}</th><th>{_e(m)} γ1%</th><th>{_e(m)} MAE (mGy)</th>"
        f"<th>{_e(m)} max error (mGy)</th><th>{_e(m)} verdict</th>"
        for m in ev.methods
    )
    rows = []
    for im in ev.images:
        cells = []
        for c in ev.criteria:
            for m in ev.methods:
                v = im.metrics[m].pass_rates_percent[c.key]
                cls = ' class="fail"' if math.isfinite(v) and v < levels.min_pass_rate_percent else ""
                cells.append(f"<td{cls}>{_num(v)}</td>")
        for m in ev.methods:
            mm = im.metrics[m]
            verdict = image_verdict(im, m, levels)
            if verdict is None:
                vcell = "<td>–</td>"
            else:
                fired = "".join(f"<br>{_e(f)}" for f in verdict.fired)
                cls = "pass" if verdict.passed else "fail"
                vcell = f'<td class="{cls} l">{verdict.label}{fired}</td>'

            cells.append(
                f"<td>{_num(mm.mean_gamma[c0.key])}</td><td>{_num(_gamma_1percent(im, m))}</td>"
                f"<td>{_mgy(mm.mae_gy)}</td><td>{_mgy(mm.max_error_gy)}</td>{vcell}"
            )
        rows.append(
            f'<tr><td class="l">{_e(im.name)}</td><td class="l">{_e(im.family)}</td>'
            f'<td class="l">{_e(im.field_group)}</td>{"".join(cells)}</tr>'
        )
    return (
        f'<div class="wide"><table id="per-image"><tr><th class="l">image</th><th class="l">family</th>'
        f'<th class="l">field</th>{head}</tr>{"".join(rows)}</table></div>'
    )


def _verdict_section(ev: Evaluation, levels: ActionLevels) -> str:
    counts = []
    for m in ev.methods:
        verdicts = [image_verdict(im, m, levels) for im in ev.images]
        judged = [v for v in verdicts if v is not None]
        failed = sum(not v.passed for v in judged)
        counts.append(
            f'<tr><td class="l">{_e(m)}</td><td>{len(judged)}</td><td>{len(judged) - failed}</td>'
            f'<td class="{"fail" if failed else "pass"}">{failed}</td></tr>'
        )
    lv = "".join(f"<li>{_e(t)}</li>" for t in levels.describe())
    return (
        f'<p>Action levels ({_e(levels.source)}):</p><ul id="action-levels">{lv}</ul>'
        '<table id="verdicts"><tr><th class="l">method</th><th>images judged</th><th>pass</th>'
        "<th>fail</th></tr>"
        f"{''.join(counts)}</table>"
        '<p class="note">Isocentre ratio: evaluated / reference portal dose averaged within 5 mm of the beam '
        "axis. γ1%: 99th percentile of the kept (block-maximum) gamma map, an upper bound of the "
        "full-resolution value.</p>"
    )


def _settings_table(ev: Evaluation, extra: dict[str, Any], levels: ActionLevels) -> str:
    import intrepid

    items: dict[str, Any] = {
        "gamma criteria": ", ".join(c.label for c in ev.criteria),
        "normalisation": "global: dose difference in % of the reference (true portal dose) maximum",
        "low-dose cut-off": f"{ev.cutoff_percent:g} % of the reference maximum",
        "distances": "mm at the detector plane (image receptor), on the detector grid",
        "gamma": "exact search (intrepid.analysis.gamma), evaluated image interpolated linearly",
        "MAE / max error": "over the reference pixels at or above the cut-off",
        "software": f"intrepid {intrepid.__version__}",
        "doses": "mGy in the tables; figures in mGy when the maximum is below 1 Gy",
    }
    items["action levels"] = "; ".join(levels.describe()) + f" ({levels.source})"
    items.update(ev.settings)
    items.update(extra)
    rows = "".join(
        f'<tr><th class="l">{_e(k)}</th><td class="l">'
        f"{_e(v if isinstance(v, str) else json.dumps(v, default=str))}</td></tr>"
        for k, v in items.items()
    )
    return f'<table id="settings">{rows}</table>'


def render_html(
    evaluation: Evaluation,
    *,
    title: str = "InTrEPID-2D evaluation",
    settings: dict[str, Any] | None = None,
    max_image_figures: int | None = None,
    levels: ActionLevels = DEFAULT_ACTION_LEVELS,
) -> str:
    """The report as one HTML string (figures embedded as base64 PNG).

    Parameters
    ----------
    evaluation : Evaluation
        Per-image metrics; images evaluated with ``keep_maps=True`` get a figure.
    title : str
        Page title.
    settings : dict, optional
        Extra settings to list (model, data, timings).
    max_image_figures : int, optional
        At most this many per-image figures (default: all images with maps).
    levels : ActionLevels
        Action levels of the verdicts (default: SOFTDISO's).

    Raises
    ------
    ParameterError
        An evaluation without images, or a negative ``max_image_figures``.
    """
    from intrepid.report._figures import distribution_figure, image_figure

    if not evaluation.images:
        raise ParameterError("evaluation has no images to report")
    if max_image_figures is not None and max_image_figures < 0:
        raise ParameterError(f"max_image_figures must be >= 0, got {max_image_figures}")
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="note">{len(evaluation.images)} images, methods: {_e(", ".join(evaluation.methods))}. '
        f"Created {created}.</p>",
        "<h2>Summary</h2>",
        _summary_table(evaluation, None, "summary"),
        "<h2>Verdict</h2>",
        _verdict_section(evaluation, levels),
        "<h2>Pass-rate distributions</h2>",
        f"<figure>{_img(distribution_figure(evaluation), 'pass-rate distributions')}"
        "<figcaption>Per-image global gamma pass rates (box: quartiles; points: images)."
        "</figcaption></figure>",
        "<h2>Per phantom family</h2>",
        _group_table(evaluation, "family", "by-family"),
        "<h2>Per family × field group</h2>",
        _group_table(evaluation, "family_field", "by-family-field"),
        "<h2>Per image</h2>",
        _image_table(evaluation, levels),
        "<h2>Images</h2>",
    ]
    shown = [im for im in evaluation.images if im.maps is not None]
    if max_image_figures is not None:
        shown = shown[:max_image_figures]
    for im in shown:
        parts.append(
            f'<figure class="image-figure">'
            f"{_img(image_figure(im, gamma_label=evaluation.criteria[0].label), im.name)}"
            f"<figcaption>{_e(im.name)}: EPID, true and predicted portal dose, difference, gamma "
            f"({_e(evaluation.criteria[0].label)}) and central profiles.</figcaption></figure>"
        )
    if not shown:
        parts.append('<p class="note">No image maps were kept for this evaluation.</p>')
    parts += ["<h2>Settings</h2>", _settings_table(evaluation, settings or {}, levels), "</body></html>"]
    return "\n".join(parts) + "\n"


def write_report(
    evaluation: Evaluation,
    path: str | os.PathLike[str],
    *,
    title: str = "InTrEPID-2D evaluation",
    settings: dict[str, Any] | None = None,
    max_image_figures: int | None = None,
    levels: ActionLevels = DEFAULT_ACTION_LEVELS,
) -> Path:
    """Write :func:`render_html` to ``path`` atomically (its folder is created); returns the path.

    Examples
    --------
    >>> write_report(evaluation, "report.html")  # doctest: +SKIP
    PosixPath('report.html')
    """
    text = render_html(
        evaluation, title=title, settings=settings, max_image_figures=max_image_figures, levels=levels
    )
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(p, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return p
