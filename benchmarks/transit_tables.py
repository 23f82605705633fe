"""Markdown tables of the InTrEPID-2D benchmark written by ``tools/train_default_model.py --evaluate FILE``.

    python3 benchmarks/transit_tables.py benchmarks/results/transit_2d.json

Prints: the overall table per vendor and method (every criterion, MAE, maximum error), the paired comparisons
(mean difference with its bootstrap 95 % CI and the Wilcoxon p-value), the per family x field group table at
2 %/2 mm and 1 %/1 mm, and the leave-one-family-out table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

METRICS = (
    ("pass_rate_3mm3pct_percent", "γ 3%/3mm"),
    ("pass_rate_2mm2pct_percent", "γ 2%/2mm"),
    ("pass_rate_1mm1pct_percent", "γ 1%/1mm"),
    ("pass_rate_2mm2pct_local_percent", "γ 2%/2mm local"),
    ("mae_gy", "MAE mGy"),
    ("max_error_gy", "max error mGy"),
)


def _cell(stats: dict[str, Any], key: str) -> str:
    scale = 1000.0 if key.endswith("_gy") else 1.0
    mean, std = stats.get("mean"), stats.get("std")
    if mean is None:
        return "–"
    return f"{scale * mean:.2f} ± {scale * (std or 0.0):.2f}"


def overall(doc: dict[str, Any]) -> str:
    lines = ["| test set | method | n | " + " | ".join(label for _, label in METRICS) + " |"]
    lines.append("|---|---|---:|" + "---:|" * len(METRICS))
    for vendor in ("elekta", "varian", "both"):
        if vendor not in doc:
            continue
        d = doc[vendor]
        for m in d["methods"]:
            s = d["summary"][m]
            n = s["pass_rate_2mm2pct_percent"]["n"]
            lines.append(f"| {vendor} | {m} | {n} | " + " | ".join(_cell(s[k], k) for k, _ in METRICS) + " |")
    return "\n".join(lines)


def comparisons(doc: dict[str, Any], vendor: str = "both") -> str:
    lines = ["| comparison | metric | mean difference | bootstrap 95 % CI | Wilcoxon p | a better / n |"]
    lines.append("|---|---|---:|---|---:|---:|")
    for c in doc[vendor]["comparisons"]:
        label = dict(METRICS).get(c["metric"])
        if label is None:
            continue
        scale = 1000.0 if c["metric"].endswith("_gy") else 1.0
        p = "–" if c["wilcoxon_p"] is None else f"{c['wilcoxon_p']:.2g}"
        lines.append(
            f"| {c['method_a']} − {c['method_b']} | {label} | {scale * c['mean_difference']:+.2f} | "
            f"[{scale * c['ci95_low']:+.2f}, {scale * c['ci95_high']:+.2f}] | {p} | "
            f"{c['a_better']} / {c['n']} |"
        )
    return "\n".join(lines)


def by_group(doc: dict[str, Any], vendor: str = "both") -> str:
    d = doc[vendor]
    methods = d["methods"]
    head = " | ".join(f"{m} γ2/2 · γ1/1" for m in methods)
    lines = [f"| family \\| field group | n | {head} |", "|---|---:|" + "---:|" * len(methods)]
    for group, table in d["by_family_field"].items():
        n = table[methods[0]]["pass_rate_2mm2pct_percent"]["n"]
        cells = [
            f"{table[m]['pass_rate_2mm2pct_percent']['mean']:.1f} · "
            f"{table[m]['pass_rate_1mm1pct_percent']['mean']:.1f}"
            for m in methods
        ]
        lines.append(f"| {group} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def lofo(doc: dict[str, Any]) -> str:
    rows = doc.get("leave_one_family_out") or []
    if not rows:
        return ""
    lines = [
        "| held-out family | train / test | hybrid γ2/2 | baseline γ2/2 | hybrid γ1/1 | baseline γ1/1 | "
        "Δ γ2/2 [95 % CI], p |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        s = r["summary"]
        c = next(c for c in r["comparisons"] if c["metric"] == "pass_rate_2mm2pct_percent")
        p = "–" if c["wilcoxon_p"] is None else f"{c['wilcoxon_p']:.2g}"
        lines.append(
            f"| {r['family']} | {r['n_train']} / {r['n_test']} | "
            f"{s['hybrid']['pass_rate_2mm2pct_percent']['mean']:.2f} | "
            f"{s['baseline']['pass_rate_2mm2pct_percent']['mean']:.2f} | "
            f"{s['hybrid']['pass_rate_1mm1pct_percent']['mean']:.2f} | "
            f"{s['baseline']['pass_rate_1mm1pct_percent']['mean']:.2f} | "
            f"{c['mean_difference']:+.2f} [{c['ci95_low']:+.2f}, {c['ci95_high']:+.2f}], {p} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: transit_tables.py EVALUATION.json\n")
        return 2
    doc = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    parts = [
        "### Overall (mean ± SD over test images)", overall(doc),
        "### Paired comparisons, both vendors", comparisons(doc),
        "### Per family × field group, both vendors", by_group(doc),
    ]  # fmt: skip
    if doc.get("leave_one_family_out"):
        parts += ["### Leave one family out", lofo(doc)]
    sys.stdout.write("\n\n".join(parts) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
