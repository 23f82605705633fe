"""Self-contained HTML report of an InTrEPID-2D evaluation: tables and figures embedded as base64 PNG.

The report holds, in order: the summary table (network beside baseline, mean ± σ and median of every gamma
criterion, MAE and maximum error), the pass-rate distributions, the table per phantom family and per family ×
field group, the per-image table, one figure per image (EPID, true and predicted portal dose, difference and
gamma maps, profiles) and the settings (criteria, normalisation, cut-off, software versions), as Hussein et
al. 2017 ask of a gamma report (doi:10.1016/j.ejmp.2017.03.001). No external file, script or style sheet is
referenced, so the file opens anywhere, offline.
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

from intrepid.dicom._common import atomic_write
from intrepid.errors import ParameterError
from intrepid.transit._evaluation import Evaluation, ImageEvaluation

__all__ = ["render_html", "write_report"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f2f2f2}
td.l,th.l{text-align:left}.fail{color:#b00020;font-weight:bold}.note{color:#555;font-size:.9em}
img{max-width:100%;height:auto}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
.wide{overflow-x:auto}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _num(v: float, digits: int = 2) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _summary_table(ev: Evaluation, images: Sequence[ImageEvaluation] | None, table_id: str) -> str:
    head = "".join(f"<th>γ {_e(c.label)} mean ± σ (%)</th><th>median (%)</th>" for c in ev.criteria)
    rows = []
    summary = ev.summary(images)
    for m in ev.methods:
        cells = []
        for c in ev.criteria:
            s = summary[m][f"pass_rate_{c.key}_percent"]
            cells.append(f"<td>{_num(s.mean)} ± {_num(s.std)}</td><td>{_num(s.median)}</td>")
        mae = summary[m]["mae_gy"]
        mx = summary[m]["max_error_gy"]
        rows.append(
            f'<tr><td class="l">{_e(m)}</td>{"".join(cells)}<td>{_num(mae.mean, 4)}</td>'
            f"<td>{_num(mx.mean, 4)}</td><td>{mae.n}</td></tr>"
        )
    return (
        f'<table id="{_e(table_id)}"><tr><th class="l">method</th>{head}<th>MAE (Gy)</th>'
        f"<th>max error (Gy)</th><th>images</th></tr>{''.join(rows)}</table>"
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


def _image_table(ev: Evaluation) -> str:
    head = "".join(f"<th>{_e(m)} γ {_e(c.label)} (%)</th>" for c in ev.criteria for m in ev.methods)
    head += "".join(f"<th>{_e(m)} MAE (Gy)</th><th>{_e(m)} max error (Gy)</th>" for m in ev.methods)
    rows = []
    for im in ev.images:
        cells = []
        for c in ev.criteria:
            for m in ev.methods:
                v = im.metrics[m].pass_rates_percent[c.key]
                cls = ' class="fail"' if math.isfinite(v) and v < 95.0 else ""
                cells.append(f"<td{cls}>{_num(v)}</td>")
        for m in ev.methods:
            cells.append(
                f"<td>{_num(im.metrics[m].mae_gy, 4)}</td><td>{_num(im.metrics[m].max_error_gy, 4)}</td>"
            )
        rows.append(
            f'<tr><td class="l">{_e(im.name)}</td><td class="l">{_e(im.family)}</td>'
            f'<td class="l">{_e(im.field_group)}</td>{"".join(cells)}</tr>'
        )
    return (
        f'<div class="wide"><table id="per-image"><tr><th class="l">image</th><th class="l">family</th>'
        f'<th class="l">field</th>{head}</tr>{"".join(rows)}</table></div>'
    )


def _settings_table(ev: Evaluation, extra: dict[str, Any]) -> str:
    import intrepid

    items: dict[str, Any] = {
        "gamma criteria": ", ".join(c.label for c in ev.criteria),
        "normalisation": "global: dose difference in % of the reference (true portal dose) maximum",
        "low-dose cut-off": f"{ev.cutoff_percent:g} % of the reference maximum",
        "distances": "mm at the detector plane (image receptor), on the detector grid",
        "gamma": "exact search (intrepid.analysis.gamma), evaluated image interpolated linearly",
        "MAE / max error": "over the reference pixels at or above the cut-off",
        "software": f"intrepid {intrepid.__version__}",
    }
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
        "<h2>Pass-rate distributions</h2>",
        f"<figure>{_img(distribution_figure(evaluation), 'pass-rate distributions')}"
        "<figcaption>Per-image global gamma pass rates (box: quartiles; points: images)."
        "</figcaption></figure>",
        "<h2>Per phantom family</h2>",
        _group_table(evaluation, "family", "by-family"),
        "<h2>Per family × field group</h2>",
        _group_table(evaluation, "family_field", "by-family-field"),
        "<h2>Per image</h2>",
        _image_table(evaluation),
        "<h2>Images</h2>",
    ]
    shown = [im for im in evaluation.images if im.maps is not None]
    if max_image_figures is not None:
        shown = shown[:max_image_figures]
    for im in shown:
        parts.append(
            f'<figure class="image-figure">{_img(image_figure(im), im.name)}'
            f"<figcaption>{_e(im.name)}: EPID, true and predicted portal dose, difference, gamma "
            f"({_e(evaluation.criteria[0].label)}) and central profiles.</figcaption></figure>"
        )
    if not shown:
        parts.append('<p class="note">No image maps were kept for this evaluation.</p>')
    parts += ["<h2>Settings</h2>", _settings_table(evaluation, settings or {}), "</body></html>"]
    return "\n".join(parts) + "\n"


def write_report(
    evaluation: Evaluation,
    path: str | os.PathLike[str],
    *,
    title: str = "InTrEPID-2D evaluation",
    settings: dict[str, Any] | None = None,
    max_image_figures: int | None = None,
) -> Path:
    """Write :func:`render_html` to ``path`` atomically (its folder is created); returns the path.

    Examples
    --------
    >>> write_report(evaluation, "report.html")  # doctest: +SKIP
    PosixPath('report.html')
    """
    text = render_html(evaluation, title=title, settings=settings, max_image_figures=max_image_figures)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(p, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return p
