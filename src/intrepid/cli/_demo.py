"""``intrepid demo``: the README's main command.

By default the InTrEPID-2D demo: simulate a fresh test set of EPID / portal-dose pairs, predict it with the
shipped default model and with the physics baseline, evaluate both (gamma, MAE) and write a self-contained
HTML report (:func:`intrepid.report.run_demo`). ``--foundation`` runs the earlier foundation demo instead: it
builds a small synthetic CT + RTSTRUCT + RTDOSE case, reads it back with the DICOM layer, co-registers the
dose onto the CT, checks the results against their closed-form values and writes ``summary.json``,
``summary.md`` and the co-registered dose (NIfTI).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from intrepid.cli._common import bounded, write_json

__all__ = ["previous_demo_output", "register", "run", "run_foundation_demo"]


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command."""
    p = subparsers.add_parser(
        "demo",
        help="run the built-in demonstration (2D transit dosimetry: simulate, predict, evaluate, report)",
        description=(
            "Simulate a fresh test set of EPID / portal-dose pairs (the seed's test split, fresh noise), "
            "predict the portal dose (Gy) with the shipped U-Net ensemble and with the physics baseline, "
            "evaluate both with global gamma (3%/3mm, 5%/5mm, 2%/2mm, 10% cut-off; mm at the detector) "
            "and MAE (Gy), and write OUT/report.html (self-contained), OUT/evaluation.json and the data in "
            "OUT/data. --foundation instead builds a synthetic CT + RTSTRUCT + RTDOSE case, co-registers the "
            "dose onto the CT and writes a summary (doses in Gy, distances in mm)."
        ),
    )
    p.add_argument(
        "--out", type=Path, default=Path("intrepid-demo"), help="output folder (default ./intrepid-demo)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output folder even if it holds other files (a previous demo's output is always "
        "replaced)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--foundation",
        action="store_true",
        help="run the foundation demo (synthetic CT/RTSTRUCT/RTDOSE co-registration) instead",
    )
    p.add_argument(
        "--images",
        type=bounded(1, 23, integer=True),
        default=12,
        help="test images to simulate, 1-23 (default 12: three per phantom family)",
    )
    p.add_argument(
        "--seed", type=bounded(0, 2**32 - 1, integer=True), default=1,
        help="simulation seed (>= 0, default 1)",
    )
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    p.add_argument(
        "--workers", type=bounded(1, 64, integer=True), default=2,
        help="simulation processes, 1-64 (default 2)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run_foundation_demo(out: Path, overwrite: bool = False) -> dict[str, Any]:
    """Generate, read back, co-register and check the synthetic case; return the summary dictionary."""
    import shutil

    import numpy as np

    from intrepid.dicom import read_ct_series, read_rtdose, read_rtstruct, roi_fractional_mask, write_volume
    from intrepid.errors import ParameterError
    from intrepid.geometry import resample
    from intrepid.simulate._demo_case import analytic_demo_dose, make_demo_case

    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ParameterError(f"{out}: output folder exists and is not empty (use --overwrite)")
        shutil.rmtree(out)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    case = make_demo_case(out / "dicom")
    timings["generate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ct = read_ct_series(case.ct_folder)
    dose = read_rtdose(case.rtdose_path)
    structures = read_rtstruct(case.rtstruct_path)
    timings["read_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dose_on_ct = resample(dose.volume, ct)
    timings["coregister_s"] = time.perf_counter() - t0
    write_volume(dose_on_ct, out / "dose_on_ct.nii.gz")
    write_volume(ct, out / "ct.nii.gz")

    # Closed-form checks: the resampled dose against the analytic dose inside the dose grid's interior.
    pts = ct.grid.world_points()
    exact = analytic_demo_dose(pts, case.prescription_gy)
    lo, hi = dose.volume.grid.bounds_mm()
    interior = np.all((pts >= lo + 3.0) & (pts <= hi - 3.0), axis=-1)
    resample_error = float(np.max(np.abs(dose_on_ct.array[interior] - exact[interior])))

    t0 = time.perf_counter()
    rois = []
    for roi in structures.rois:
        occupancy = roi_fractional_mask(roi, ct)
        weights = np.asarray(occupancy.array, dtype=float)
        volume_cc = float(weights.sum() * ct.grid.voxel_volume_mm3 / 1000.0)
        mean_gy = (
            float((weights * dose_on_ct.array).sum() / weights.sum()) if weights.sum() > 0 else float("nan")
        )
        rois.append(
            {
                "name": roi.name,
                "number": roi.number,
                "contours": len(roi.contours),
                "volume_cc": volume_cc,
                "mean_gy": mean_gy,
            }
        )
    timings["structures_s"] = time.perf_counter() - t0
    ptv = next(r for r in rois if r["name"] == case.target_name)

    summary: dict[str, Any] = {
        "output_folder": str(out),
        "ct": {
            "shape": list(ct.shape),
            "spacing_mm": list(ct.grid.spacing_mm),
            "origin_mm": list(ct.grid.origin_mm),
            **ct.statistics(),
        },
        "dose": {
            "shape": list(dose.volume.shape),
            "spacing_mm": list(dose.volume.grid.spacing_mm),
            "origin_mm": list(dose.volume.grid.origin_mm),
            "units": dose.volume.units,
            "summation_type": dose.summation_type,
            **dose.volume.statistics(),
        },
        "frame_of_reference_uid_match": ct.frame_of_reference_uid == dose.volume.frame_of_reference_uid,
        "dose_on_ct": {
            "shape": list(dose_on_ct.shape),
            **dose_on_ct.statistics(),
            "max_abs_error_vs_analytic_gy": resample_error,
        },
        "rois": rois,
        "target": {
            "name": case.target_name,
            "volume_cc": ptv["volume_cc"],
            "exact_volume_cc": case.target_volume_cc,
            "mean_gy": ptv["mean_gy"],
            "prescription_gy": case.prescription_gy,
        },
        "timings": timings,
        "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.parent == out),
    }
    _write_summary(out, summary)
    return summary


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _write_summary(out: Path, summary: dict[str, Any]) -> None:
    import json

    from intrepid.cli._common import to_jsonable
    from intrepid.dicom import atomic_write

    atomic_write(
        out / "summary.json",
        lambda p: _write_text(p, json.dumps(to_jsonable(summary), indent=2, allow_nan=False)),
    )
    t = summary["target"]
    d = summary["dose_on_ct"]
    lines = [
        "# InTrEPID demo: synthetic CT + RTSTRUCT + RTDOSE",
        "",
        f"- CT: {summary['ct']['shape']} voxels (slices, rows, columns) at {summary['ct']['spacing_mm']} mm",
        f"- RTDOSE: {summary['dose']['shape']} voxels at {summary['dose']['spacing_mm']} mm, "
        f"max {summary['dose']['max']:.3f} Gy ({summary['dose']['summation_type']})",
        f"- Dose on CT grid: max {d['max']:.3f} Gy; largest deviation from the analytic dose "
        f"{d['max_abs_error_vs_analytic_gy']:.4f} Gy (linear interpolation error)",
        f"- {t['name']}: {t['volume_cc']:.2f} cc (exact {t['exact_volume_cc']:.2f} cc), "
        f"mean dose {t['mean_gy']:.3f} Gy (prescribed {t['prescription_gy']:.3f} Gy)",
        "",
        "| ROI | contours | volume (cc) | mean dose (Gy) |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['name']} | {r['contours']} | {r['volume_cc']:.2f} | {r['mean_gy']:.3f} |"
        for r in summary["rois"]
    ]
    text = "\n".join(lines) + "\n"
    atomic_write(out / "summary.md", lambda p: _write_text(p, text))


def _demo_table(summary: dict[str, Any]) -> str:
    lines = [
        "| method | γ 3%/3mm mean ± σ (%) | median | γ 2%/2mm mean (%) | γ 5%/5mm mean (%) | MAE (mGy) "
        "| max error (mGy) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m, s in summary.items():
        g3 = s["pass_rate_3mm3pct_percent"]
        lines.append(
            f"| {m} | {g3['mean']:.2f} ± {g3['std']:.2f} | {g3['median']:.2f} | "
            f"{s['pass_rate_2mm2pct_percent']['mean']:.2f} | {s['pass_rate_5mm5pct_percent']['mean']:.2f} | "
            f"{1000 * s['mae_gy']['mean']:.3f} | {1000 * s['max_error_gy']['mean']:.3f} |"
        )
    return "\n".join(lines) + "\n"


#: Names that a previous ``intrepid demo`` (either kind) leaves in its output folder.
_DEMO_OUTPUTS = frozenset(
    {"report.html", "evaluation.json", "data", "summary.json", "summary.md", "dose_on_ct.nii.gz", "ct.nii.gz",
     "dicom"}
)


def previous_demo_output(out: Path) -> bool:
    """True when ``out`` holds only what an earlier ``intrepid demo`` wrote (so it may be replaced)."""
    if not out.is_dir():
        return False
    names = {p.name for p in out.iterdir()}
    return bool(names) and names <= _DEMO_OUTPUTS and bool(names & {"evaluation.json", "summary.json"})


def run(args: argparse.Namespace) -> int:
    """Execute ``intrepid demo``."""
    import sys

    if not args.overwrite and previous_demo_output(args.out):
        sys.stderr.write(f"replacing the previous demo output in {args.out}\n")
        args.overwrite = True
    if args.foundation:
        summary = run_foundation_demo(args.out, overwrite=args.overwrite)
        if args.json:
            write_json(summary)
        else:
            print((args.out / "summary.md").read_text(), end="")
            print(f"\nwrote {args.out}/summary.json, summary.md, dose_on_ct.nii.gz, ct.nii.gz and dicom/")
        return 0
    from intrepid.report import run_demo

    result = run_demo(
        args.out,
        n_images=args.images,
        seed=args.seed,
        model=args.model,
        overwrite=args.overwrite,
        workers=args.workers,
        progress=not args.no_progress,
    )
    doc = result.to_dict()
    if args.json:
        write_json(doc)
    else:
        print(
            f"InTrEPID-2D demo: {doc['n_images']} simulated test images, default model vs physics baseline\n"
        )
        print(_demo_table(doc["summary"]), end="")
        fam = doc["by_family"]
        print("\n| family | images | network γ 3%/3mm (%) | baseline γ 3%/3mm (%) |\n|---|---:|---:|---:|")
        for name, d in fam.items():
            n = d["network"]["pass_rate_3mm3pct_percent"]
            b = d["baseline"]["pass_rate_3mm3pct_percent"]
            print(f"| {name} | {n['n']} | {n['mean']:.2f} | {b['mean']:.2f} |")
        print(
            f"\nreport: {result.report}\nevaluation: {result.summary_json}\n"
            f"time: {result.seconds['total']:.0f} s (simulate {result.seconds['simulate']:.0f} s, "
            f"predict + evaluate {result.seconds['predict_evaluate']:.0f} s, report "
            f"{result.seconds['report']:.0f} s)"
        )
    return 0
