"""Evaluate InTrEPID-3D on unseen simulated STUDY_DIRs: accuracy, error detection (ROC), speed.

    python benchmarks/invivo/make_cases.py test /tmp/ivdata/test --seeds 1
    python benchmarks/invivo/evaluate_invivo.py /tmp/ivdata/test --json benchmarks/invivo/results.json

For every study and every method (``fod``: the raw first-order dose, ``baseline``: physics-only,
``network``: the shipped 3D network) the reconstruction is compared (a) with ``delivered_dose.dcm``
(accuracy: 3D γ 3%/2mm and 2%/2mm global 10 % cut-off, MAE in % of the prescription inside the 10 %
isodose) and (b) with the planned dose (verdict under the default action levels; the γ 3%/2mm failure rate
100 − pass % is the ROC score). Accuracy is reported on the error-free fractions per site (the goal is per
phantom type); detection per error type.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from intrepid.dicom import read_rtdose
from intrepid.geometry import Volume
from intrepid.invivo import (
    ActionLevels,
    beam_inputs,
    compare_doses,
    load_baseline,
    load_study,
    portal_images,
    verdict,
)
from intrepid.invivo._network import default_invivo_model_path, load_invivo_model


def _total(ct: Volume, per_beam: dict[int, np.ndarray]) -> Volume:
    tot = np.sum([np.maximum(a, 0) for a in per_beam.values()], axis=0).astype(np.float32)
    return ct.with_array(tot, units="Gy")


def _auc(neg: list[float], pos: list[float]) -> float:
    if not neg or not pos:
        return float("nan")
    n = np.asarray(neg)[:, None]
    p = np.asarray(pos)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (n.size * p.size))


def evaluate(
    folder: Path, methods: list[str], partial: Path | None = None, model: Path | None = None
) -> dict[str, Any]:
    net = None
    if "network" in methods and (model is not None or default_invivo_model_path()):
        net = load_invivo_model(model)
    if net is None and "network" in methods:
        methods = [m for m in methods if m != "network"]
    rows = []
    # the error tag first, then the site: an interrupted run has covered every site for the first tags
    studies = [p for p in folder.iterdir() if (p / "case.json").is_file()]
    for study_dir in sorted(studies, key=lambda p: (p.name.split("_s0_")[-1], p.name)):
        info = json.loads((study_dir / "case.json").read_text())
        t0 = time.perf_counter()
        st = load_study(study_dir)
        images = portal_images(st)
        inputs = beam_inputs(images, st.ct, baseline=load_baseline())
        t_fod = time.perf_counter() - t0
        truth = read_rtdose(study_dir / "delivered_dose.dcm").volume
        iso = st.plan.beams[0].isocenter_mm
        for m in methods:
            t1 = time.perf_counter()
            if m == "network":
                assert net is not None
                per_beam = net.refine(inputs)
            else:
                per_beam = {}
                for b in inputs:
                    a = np.asarray((b.fod if m == "fod" else b.baseline).array, dtype=np.float64)
                    per_beam[b.image.beam_number] = per_beam.get(b.image.beam_number, 0) + a
            rec = _total(st.ct, per_beam)
            t_model = time.perf_counter() - t1
            vs_plan = compare_doses(
                st.planned_dose, rec, structures=st.structures, roi_types=st.roi_types, isocenter_mm=iso
            )
            v, reasons = verdict(vs_plan, ActionLevels())
            acc = compare_doses(truth, rec, isocenter_mm=iso, prescription_gy=vs_plan.prescription_gy)
            ta = np.asarray(truth.array, dtype=np.float64)
            region = ta >= 0.1 * ta.max()
            mae = float(100 * np.abs(np.asarray(rec.array) - ta)[region].mean() / vs_plan.prescription_gy)
            rows.append(
                {
                    "study": study_dir.name,
                    "site": info["site"],
                    "plan": info["plan"],
                    "errors": [e["spec"] for e in info["errors"]],
                    "method": m,
                    "acc_gamma_3pct2mm": acc.gamma_3pct2mm.pass_rate_percent,
                    "acc_gamma_2pct2mm": acc.gamma_2pct2mm.pass_rate_percent,
                    "acc_mae_percent": mae,
                    "plan_gamma_3pct2mm": vs_plan.gamma_3pct2mm.pass_rate_percent,
                    "plan_mean_gamma": vs_plan.gamma_3pct2mm.mean_gamma,
                    "iso_ratio": vs_plan.isocenter_ratio,
                    "ptv_d50_diff": next(
                        (
                            r.diff_percent("d50", vs_plan.prescription_gy)
                            for r in vs_plan.rois
                            if r.roi_type == "PTV"
                        ),
                        None,
                    ),
                    "verdict": v,
                    "reasons": reasons,
                    "seconds_fod": t_fod,
                    "seconds_model": t_model,
                    "delivered_over_planned_ptv_d50": info["ptv_d50_delivered_over_planned"],
                }
            )
            print(
                f"{study_dir.name:40s} {m:8s} acc {rows[-1]['acc_gamma_3pct2mm']:6.1f} "
                f"{rows[-1]['acc_gamma_2pct2mm']:6.1f} mae {mae:5.2f} | "
                f"plan {rows[-1]['plan_gamma_3pct2mm']:6.1f}"
                f" iso {vs_plan.isocenter_ratio:.3f} {v}",
                flush=True,
            )
        if partial is not None:  # rows so far, so that an interrupted run still leaves its numbers
            partial.write_text(json.dumps({"rows": rows}, default=float) + "\n")
    return {"rows": rows, "summary": summarise(rows)}


def _kind(errors: list[str]) -> str:
    if not errors:
        return "none"
    e = errors[0]
    return e


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in sorted({r["method"] for r in rows}):
        rm = [r for r in rows if r["method"] == m]
        free = [r for r in rm if not r["errors"]]
        acc = {}
        for site in sorted({r["site"] for r in free}):
            rs = [r for r in free if r["site"] == site]
            acc[site] = {
                k: float(np.mean([r[k] for r in rs]))
                for k in ("acc_gamma_3pct2mm", "acc_gamma_2pct2mm", "acc_mae_percent")
            } | {"n": len(rs)}
        allacc = {
            k: float(np.mean([r[k] for r in rm]))
            for k in ("acc_gamma_3pct2mm", "acc_gamma_2pct2mm", "acc_mae_percent")
        } | {"n": len(rm)}
        neg = [100 - r["plan_gamma_3pct2mm"] for r in free]
        det = {}
        for kind in sorted({_kind(r["errors"]) for r in rm if r["errors"]}):
            rs = [r for r in rm if r["errors"] and _kind(r["errors"]) == kind]
            det[kind] = {
                "n": len(rs),
                "sensitivity_percent": 100 * float(np.mean([r["verdict"] == "alert" for r in rs])),
                "auc_gamma_fail": _auc(neg, [100 - r["plan_gamma_3pct2mm"] for r in rs]),
                "auc_iso": _auc(
                    [abs(r["iso_ratio"] - 1) for r in free], [abs(r["iso_ratio"] - 1) for r in rs]
                ),
                "auc_d50": _auc(
                    [abs(r["ptv_d50_diff"] or 0) for r in free], [abs(r["ptv_d50_diff"] or 0) for r in rs]
                ),
            }
        out[m] = {
            "accuracy_error_free_by_site": acc,
            "accuracy_all_cases": allacc,
            "false_alert_percent": 100 * float(np.mean([r["verdict"] == "alert" for r in free]))
            if free
            else float("nan"),
            "error_free_n": len(free),
            "detection": det,
            "seconds_model_mean": float(np.mean([r["seconds_model"] for r in rm])),
            "seconds_fod_mean": float(np.mean([r["seconds_fod"] for r in rm])),
        }
    return out


def markdown(summary: dict[str, Any]) -> str:
    """Markdown tables of a summary (accuracy per site, detection per error type)."""
    lines = []
    for m, sm in summary.items():
        lines.append(f"**{m}** — accuracy against the delivered dose, error-free fractions:\n")
        lines.append("| site | n | γ 3%/2mm (%) | γ 2%/2mm (%) | MAE (% of Rx) |")
        lines.append("|---|---|---|---|---|")
        for site, a in sm["accuracy_error_free_by_site"].items():
            lines.append(
                f"| {site} | {a['n']} | {a['acc_gamma_3pct2mm']:.1f} | {a['acc_gamma_2pct2mm']:.1f} | "
                f"{a['acc_mae_percent']:.2f} |"
            )
        a = sm["accuracy_all_cases"]
        lines.append(
            f"| all cases (with errors) | {a['n']} | {a['acc_gamma_3pct2mm']:.1f} | "
            f"{a['acc_gamma_2pct2mm']:.1f} | {a['acc_mae_percent']:.2f} |"
        )
        lines.append(
            f"\nFalse alerts on error-free fractions: {sm['false_alert_percent']:.0f} % "
            f"(n = {sm['error_free_n']}).\n"
        )
        lines.append(
            "| error | n | sensitivity (%) | ROC AUC: 100 − γ% | AUC: abs(iso ratio − 1) | "
            "AUC: abs(PTV ΔD50) |"
        )
        lines.append("|---|---|---|---|---|---|")
        for kind, d in sm["detection"].items():
            lines.append(
                f"| `{kind}` | {d['n']} | {d['sensitivity_percent']:.0f} | {d['auc_gamma_fail']:.2f} | "
                f"{d['auc_iso']:.2f} | {d['auc_d50']:.2f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, nargs="?")
    ap.add_argument("--methods", default="fod,baseline,network")
    ap.add_argument("--model", type=Path, default=None, help="3D model folder (default: the shipped one)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--merge", type=Path, nargs="*", default=None, help="summarise earlier --json outputs")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if args.merge:
        rows = [r for p in args.merge for r in json.loads(p.read_text())["rows"]]
        res = {"rows": rows, "summary": summarise(rows)}
    else:
        res = evaluate(args.folder, args.methods.split(","), partial=args.json, model=args.model)
    text = json.dumps(res, indent=2, default=float)
    if args.json:
        args.json.write_text(text + "\n")
    print(markdown(res["summary"]) if args.markdown else json.dumps(res["summary"], indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
