"""HTML of the review application's pages, rendered from plain rows (no database access here).

Server-side rendering with escaped values only; no script except the vendored 3D viewer's page. Every form
that changes state carries the CSRF token.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["fraction_page", "layout", "login_page", "quarantine_page", "trend_page", "worklist_page"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#143d59;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#fff;text-decoration:none}header .who{margin-left:auto;font-size:.9em}
main{padding:1em 1.5em;max-width:1400px}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em;background:#fff}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#eef2f5}
td.n{text-align:right}.fail{color:#b00020;font-weight:bold}.pass{color:#1b7a1b;font-weight:bold}
.pending{color:#8a6d00}.note{color:#555;font-size:.9em}tr.alert{background:#fff0f0}
img.fig{max-width:100%;border:1px solid #ddd;background:#fff}
form.inline{display:inline}button{padding:.35em .9em;margin:.2em;cursor:pointer}
textarea{width:40em;max-width:100%;height:4em}.badge{padding:.1em .5em;border-radius:.6em;font-size:.85em}
.viewer{width:100%;max-width:1200px;height:460px;background:#000}.viewer canvas{width:100%;height:100%}
.badge.new{background:#ffe9a8}.badge.approved{background:#c8f0c8}.badge.escalated{background:#ffc8c8}
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _num(v: float | None, digits: int = 1) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def layout(title: str, body: str, *, user: str | None, csrf: str, auth: bool) -> str:
    """The page frame: header with navigation and the signed-in user."""
    who = ""
    if user:
        who = f'<span class="who">signed in as <b>{_e(user)}</b>'
        if auth:
            who += (
                f'<form class="inline" method="post" action="/logout"><input type="hidden" name="csrf_token" '
                f'value="{_e(csrf)}"><button>sign out</button></form>'
            )
        who += "</span>"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)} · InTrEPID review</title><style>{_STYLE}</style></head><body>"
        '<header><b>InTrEPID review</b><a href="/">work list</a><a href="/quarantine">quarantine</a>'
        f"{who}</header><main>{body}</main></body></html>"
    )


def _verdict_cell(passed: bool | None, fired: Sequence[str] = ()) -> str:
    if passed is None:
        return '<td class="pending">baseline / pending</td>'
    if passed:
        return '<td class="pass">PASS</td>'
    return '<td class="fail">FAIL' + "".join(f"<br><small>{_e(f)}</small>" for f in fired) + "</td>"


def worklist_page(rows: Sequence[dict[str, Any]], n_quarantined: int, csrf: str = "") -> str:
    """The work list: fractions to review, alerts first; a form to upload a DICOM file (e.g. a reference)."""
    out = [
        "<h1>Work list</h1>",
        '<form method="post" action="/upload" enctype="multipart/form-data" id="upload">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf)}"><input type="hidden" name="redirect" '
        'value="1">Upload a DICOM file (EPID image, or a portal-dose reference for its beam): '
        '<input type="file" name="file"> <button>upload</button></form>',
    ]
    if n_quarantined:
        out.append(f'<p class="fail"><a href="/quarantine">{n_quarantined} file(s) in quarantine</a></p>')
    if not rows:
        out.append(
            '<p class="note">No fractions yet. Drop DICOM files into the watched folder or run '
            "<code>intrepid ingest PATH</code>.</p>"
        )
        return "".join(out)
    out.append(
        '<table id="worklist"><tr><th>status</th><th>verdict</th><th>patient ID</th><th>name</th>'
        "<th>plan</th>"
        "<th>fraction</th><th>delivered</th><th>beams</th><th>lowest γ pass (%)</th><th>highest mean γ</th>"
        "<th>isocentre ratio (range)</th><th></th></tr>"
    )
    for r in rows:
        alert = ' class="alert"' if r["passed"] is False else ""
        ratios = [v for v in r["iso_ratios"] if v is not None]
        iso = f"{min(ratios):.3f}–{max(ratios):.3f}" if ratios else "–"
        out.append(
            f'<tr{alert}><td><span class="badge {_e(r["status"])}">{_e(r["status"])}</span></td>'
            f"{_verdict_cell(r['passed'])}<td>{_e(r['patient_key'])}</td><td>{_e(r['patient_name'])}</td>"
            f'<td><a href="/plans/{r["plan_id"]}">'
            f"{_e(r['plan_label'] or 'plan ' + str(r['plan_id']))}</a></td>"
            f'<td class="n">{r["number"]}</td><td>{_e(r["delivered_on"])}</td><td class="n">'
            f"{r['n_beams']}</td>"
            f'<td class="n">{_num(r["min_pass"])}</td><td class="n">{_num(r["max_mean_gamma"], 2)}</td>'
            f'<td class="n">{iso}</td><td><a href="/fractions/{r["id"]}">review</a></td></tr>'
        )
    out.append("</table>")
    return "".join(out)


def fraction_page(f: dict[str, Any], csrf: str, levels: list[str], levels_source: str) -> str:
    """One fraction: per beam the metrics, verdict, figure and settings; comments, approvals, actions."""
    out = [
        f"<h1>Patient {_e(f['patient_key'])} ({_e(f['patient_name'])}) · "
        f'<a href="/plans/{f["plan_id"]}">{_e(f["plan_label"] or "plan")}</a> · fraction {f["number"]}</h1>',
        f'<p>Status: <span class="badge {_e(f["status"])}" id="status">{_e(f["status"])}</span> · delivered '
        f"{_e(f['delivered_on'] or '–')}</p>",
        '<p class="note">Action levels: ' + "; ".join(_e(x) for x in levels) + f" ({_e(levels_source)})</p>",
        '<table id="beams"><tr><th>beam</th><th>reference</th><th>γ pass (%)</th><th>mean γ</th><th>γ1%</th>'
        "<th>isocentre ratio</th><th>max dose (mGy)</th><th>verdict</th></tr>",
    ]
    for b in f["beams"]:
        out.append(
            f"<tr><td>{_e(b['beam'])}</td><td>{_e(b['reference_kind'])}</td>"
            f'<td class="n">{_num(b["gamma_pass_percent"])}</td><td class="n">{_num(b["mean_gamma"], 2)}</td>'
            f'<td class="n">{_num(b["gamma_1percent"], 2)}</td><td class="n">{_num(b["iso_ratio"], 3)}</td>'
            f'<td class="n">{_num(b["max_dose_gy"] * 1000.0, 1)}</td>'
            f"{_verdict_cell(b['passed'], b['fired'])}</tr>"
        )
    out.append("</table>")
    d3 = f.get("dose3d")
    if d3 is not None:
        out.append(_dose3d_summary(f["id"], d3))
    for b in f["beams"]:
        settings = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in b["settings"].items())
        out.append(
            f'<h2>{_e(b["beam"])}</h2><img class="fig" src="/files/{_e(b["figure_path"])}" '
            f'alt="{_e(b["beam"])}: EPID, portal doses, difference, gamma, profiles">'
            f"<details><summary>settings</summary><table>{settings}</table></details>"
        )
    out.append("<h2>Review</h2>")
    hist = [
        f"<li>{_e(a['created_at'])} <b>{_e(a['username'])}</b> {_e(a['action'])} "
        f"<small>(signature {_e(a['signature'][:16])}…)</small></li>"
        for a in f["approvals"]
    ] + [f"<li>{_e(c['created_at'])} <b>{_e(c['username'])}</b>: {_e(c['text'])}</li>" for c in f["comments"]]
    out.append(f'<ul id="history">{"".join(hist) or "<li class=note>no review yet</li>"}</ul>')
    out.append(
        f'<form method="post" action="/fractions/{f["id"]}/review" id="review">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf)}">'
        '<textarea name="text" placeholder="comment (optional)"></textarea><br>'
        '<button name="action" value="approve" id="approve">approve</button>'
        '<button name="action" value="escalate" id="escalate">escalate</button>'
        '<button name="action" value="comment" id="comment">comment only</button></form>'
    )
    return "".join(out)


def _dose3d_summary(fraction_id: int, d3: dict[str, Any]) -> str:
    if d3["status"] != "done":
        reasons = "".join(f"<br><small>{_e(r)}</small>" for r in d3["reasons"])
        return f'<h2>3D in-vivo check</h2><p class="fail" id="dose3d">not available{reasons}</p>'
    ok = d3["verdict"] == "pass"
    reasons = "".join(f"<br><small>{_e(r)}</small>" for r in d3["reasons"])
    return (
        '<h2>3D in-vivo check</h2><table id="dose3d"><tr><th>verdict</th><th>γ 3 %/2 mm pass (%)</th>'
        "<th>γ 2 %/2 mm pass (%)</th><th>mean γ (3 %/2 mm)</th><th>isocentre ratio</th><th></th></tr>"
        f'<tr><td class="{"pass" if ok else "fail"}">{_e(d3["verdict"].upper())}{reasons}</td>'
        f'<td class="n">{_num(d3["gamma_3pct2mm_percent"])}</td>'
        f'<td class="n">{_num(d3["gamma_2pct2mm_percent"])}</td>'
        f'<td class="n">{_num(d3["mean_gamma_3pct2mm"], 2)}</td>'
        f'<td class="n">{_num(d3["isocenter_ratio"], 3)}</td>'
        f'<td><a href="/fractions/{fraction_id}/3d" id="open3d">3D view</a></td></tr></table>'
    )


def dose3d_page(f: dict[str, Any]) -> str:
    """The 3D view of a fraction: CT with dose overlays and isodoses in three planes (vendored NiiVue),
    the 3D metrics and verdict, the DVH differences per ROI and the DVH comparison figure."""
    d3 = f["dose3d"]
    fid = f["id"]
    out = [
        f"<h1>Patient {_e(f['patient_key'])} ({_e(f['patient_name'])}) · "
        f'<a href="/fractions/{fid}">fraction {f["number"]}</a> · 3D</h1>',
        _dose3d_summary(fid, d3).replace("<h2>3D in-vivo check</h2>", ""),
    ]
    if d3["status"] != "done":
        return "".join(out)
    presc = d3["prescription_gy"] or 0.0
    out.append(
        '<p class="note">CT with the dose overlay (Gy) and the isodose lines of the planned dose '
        f"(50, 80, 95, 107 % of the prescription {presc:.2f} Gy, the plan's PTV D50). "
        "Show: "
        '<button type="button" data-overlay="reconstructed">reconstructed dose</button>'
        '<button type="button" data-overlay="planned">planned dose</button>'
        '<button type="button" data-overlay="gamma">γ (3 %/2 mm)</button>'
        ' · isodoses of <button type="button" data-iso="planned">plan</button>'
        '<button type="button" data-iso="reconstructed">reconstruction</button>'
        ' <span id="viewer-status">loading…</span></p>'
        f'<div class="viewer"><canvas id="viewer3d" data-fraction="{fid}" width="960" height="420">'
        "</canvas></div>"
        '<script type="module" src="/static/viewer3d.js"></script>'
    )
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{_e(v.get('roi_type'))}</td>"
        + "".join(
            f'<td class="n">{_num(v.get(k))}</td>'
            for k in (
                "d98_diff_percent",
                "d95_diff_percent",
                "d50_diff_percent",
                "d2_diff_percent",
                "dmean_diff_percent",
            )
        )
        + "</tr>"
        for name, v in sorted(d3["dvh"].items())
    )
    out.append(
        "<h2>DVH: reconstructed − planned (% of the prescription)</h2>"
        '<table id="dvh"><tr><th>ROI</th><th>type</th><th>ΔD98</th><th>ΔD95</th><th>ΔD50</th><th>ΔD2</th>'
        f"<th>ΔDmean</th></tr>{rows}</table>"
        f'<img class="fig" id="dvhfig" src="/volumes/{fid}/dvh.png" alt="DVH planned vs reconstructed">'
        f'<p class="note">Reconstruction: {_e(d3["method"])} ({_num(d3["seconds"])} s); in-vivo action '
        "levels of <code>intrepid.invivo.ActionLevels</code> (docs/invivo.md).</p>"
    )
    return "".join(out)


def trend_page(p: dict[str, Any], levels: list[str]) -> str:
    """Per plan: the trend figure and the table of every fraction and beam."""
    rows = "".join(
        f'<tr><td class="n"><a href="/fractions/{r["fraction_id"]}">{r["fraction"]}</a></td><td>'
        f"{_e(r['beam'])}</td>"
        f'<td class="n">{_num(r["gamma_pass_percent"])}</td><td class="n">{_num(r["mean_gamma"], 2)}</td>'
        f'<td class="n">{_num(r["iso_ratio"], 3)}</td>{_verdict_cell(r["passed"])}</tr>'
        for r in p["rows"]
    )
    return (
        f"<h1>{_e(p['plan_label'] or 'plan ' + str(p['plan_id']))} · "
        f"patient {_e(p['patient_key'])}: trend</h1>"
        '<p class="note">Action levels: ' + "; ".join(_e(x) for x in levels) + "</p>"
        f'<img class="fig" id="trend" src="/plans/{p["plan_id"]}/trend.png" alt="trend over fractions">'
        '<table id="trend-table"><tr><th>fraction</th><th>beam</th><th>γ pass (%)</th><th>mean γ</th>'
        f"<th>isocentre ratio</th><th>verdict</th></tr>{rows}</table>"
    )


def quarantine_page(rows: Sequence[dict[str, Any]]) -> str:
    """Files that could not be ingested, with the reason."""
    body = "".join(
        f"<tr><td>{_e(r['created_at'])}</td><td>{_e(r['original_name'])}</td><td>{_e(r['sha256'][:16])}…</td>"
        f"<td>{_e(r['reason'])}</td></tr>"
        for r in rows
    )
    return (
        '<h1>Quarantine</h1><p class="note">Files kept in the data folder\'s <code>'
        "quarantine/</code>; fix and "
        'drop them again.</p><table id="quarantine"><tr><th>when (UTC)</th><th>file</th><th>SHA-256</th>'
        f"<th>reason</th></tr>{body}</table>"
    )


def login_page(csrf: str, error: str = "") -> str:
    """The sign-in form."""
    err = f'<p class="fail">{_e(error)}</p>' if error else ""
    return (
        f'<h1>Sign in</h1>{err}<form method="post" action="/login">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf)}">'
        '<p><label>user <input name="username" autocomplete="username"></label></p>'
        '<p><label>password <input name="password" type="password" autocomplete="current-password">'
        "</label></p>"
        "<button>sign in</button></form>"
    )


def json_script(data: Any) -> str:
    """A JSON island (escaped for embedding in HTML)."""
    return html.escape(json.dumps(data), quote=False)
