"""``intrepid dose``: recompute a photon plan on its CT (collapsed cone) and compare it with the TPS dose.

JSON keys (``--json``), a contract: ``beams`` (a list of ``number``, ``name``, ``mu``, ``max_gy``,
``seconds``), ``max_gy``, ``grid``, ``engine``, ``compute_seconds``, ``dose_quantity``, ``out``; with
``--per-beam`` ``per_beam`` (file per beam number); with ``--compare`` a ``compare`` object: ``gamma``
(pass rate, mean, settings) and, with ``--struct``, ``dvh`` (per ROI: mean, D95, D2 of both doses and their
differences in Gy).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from intrepid.cli._common import write_json

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``dose`` sub-command."""
    p = subparsers.add_parser(
        "dose",
        help="recompute a 6 MV photon plan on its CT by collapsed-cone convolution/superposition",
        description=(
            "Independent dose recalculation: the RTPLAN's beams (static, step-and-shoot, sliding window, "
            "arcs) "
            "on the CT by collapsed-cone convolution/superposition (EDKnrc 6 MV kernel, 64 cones; "
            "docs/dose.md). Writes the plan dose (and each beam's with --per-beam) as RTDOSE, dose to "
            "medium, "
            "Gy per fraction. --compare runs a 3D gamma against the planning system's RTDOSE and, with "
            "--struct, per-structure DVH differences: a secondary dose check."
        ),
    )
    p.add_argument("--ct", type=Path, required=True, help="CT series folder (or a volume file in HU)")
    p.add_argument("--plan", type=Path, required=True, help="RTPLAN file")
    p.add_argument("--out", type=Path, required=True, help="output RTDOSE of the plan (.dcm)")
    p.add_argument(
        "--beam",
        action="append",
        default=None,
        metavar="N",
        help="beam number or name to compute (repeatable; default: all treatment beams)",
    )
    p.add_argument(
        "--grid-mm", type=float, default=None, help="isotropic dose grid spacing, mm (default: CT)"
    )
    p.add_argument(
        "--per-beam", type=Path, default=None, metavar="DIR", help="also write one RTDOSE per beam"
    )
    p.add_argument("--engine", choices=("auto", "numba", "torch"), default="auto", help="compute engine")
    p.add_argument("--compare", type=Path, default=None, metavar="TPS_RTDOSE", help="planning system dose")
    p.add_argument("--dd", type=float, default=3.0, help="gamma dose difference, percent (default 3)")
    p.add_argument("--dta", type=float, default=2.0, help="gamma distance to agreement, mm (default 2)")
    p.add_argument(
        "--struct", type=Path, default=None, metavar="RTSTRUCT", help="structures for DVH differences"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _beam_key(text: str) -> int | str:
    return int(text) if text.strip().lstrip("-").isdigit() else text


def _read_ct(path: Path) -> Any:
    from intrepid.dicom import read_ct_series, read_volume
    from intrepid.errors import ParameterError

    if not path.exists():
        raise ParameterError(f"--ct {path}: no such file or folder")
    return read_ct_series(path) if path.is_dir() else read_volume(path)


def _compare(dose: Any, args: argparse.Namespace) -> dict[str, Any]:
    from intrepid.analysis import compute_dvhs, gamma
    from intrepid.dicom import read_rtstruct, read_volume

    tps = read_volume(args.compare)
    result = gamma(tps, dose, dd_percent=args.dd, dta_mm=args.dta, ignore_frame_of_reference=False)
    out: dict[str, Any] = {
        "tps_dose": str(args.compare),
        "gamma": {
            "dd_percent": args.dd,
            "dta_mm": args.dta,
            "pass_rate_percent": result.pass_rate_percent,
            "mean_gamma": result.mean_gamma,
            "evaluated_points": result.evaluated_points,
        },
        "tps_max_gy": float(tps.array.max()),
    }
    if args.struct is not None:
        ss = read_rtstruct(args.struct)
        structures: Any = ss
        ours = compute_dvhs(dose, structures)
        theirs = compute_dvhs(tps, structures)
        rows = {}
        for name, d in ours.items():
            t = theirs[name]
            if d.is_empty or t.is_empty:
                continue
            stats = {
                "mean_gy": (d.mean_gy, t.mean_gy),
                "d95_gy": (d.dose_at_volume_percent(95.0), t.dose_at_volume_percent(95.0)),
                "d2_gy": (d.dose_at_volume_percent(2.0), t.dose_at_volume_percent(2.0)),
            }
            rows[name] = {
                **{f"{k}_engine": a for k, (a, _) in stats.items()},
                **{f"{k}_tps": b for k, (_, b) in stats.items()},
                **{f"{k}_difference": a - b for k, (a, b) in stats.items()},
            }
        out["dvh"] = rows
    return out


def run(args: argparse.Namespace) -> int:
    """Execute ``intrepid dose``."""
    from intrepid.dicom import read_rtplan, write_rtdose
    from intrepid.dose import compute_dose
    from intrepid.errors import ParameterError

    if not args.plan.exists():
        raise ParameterError(f"--plan {args.plan}: no such file")
    if args.out.suffix.lower() != ".dcm":
        raise ParameterError(f"--out {args.out}: the plan dose is written as RTDOSE, give a .dcm path")
    if not args.out.parent.exists():
        raise ParameterError(f"--out {args.out}: folder {args.out.parent} does not exist")
    if args.per_beam is not None and not args.per_beam.is_dir():
        raise ParameterError(f"--per-beam {args.per_beam}: not a folder")
    plan = read_rtplan(args.plan)
    ct = _read_ct(args.ct)
    beams = [_beam_key(b) for b in args.beam] if args.beam else None
    try:
        result = compute_dose(ct, plan, beams=beams, grid=args.grid_mm, engine=args.engine)
    except ParameterError as exc:
        text = str(exc)
        raise ParameterError(text if str(args.plan) in text else f"{args.plan}: {text}") from None
    desc = f"InTrEPID collapsed cone, {result.quantity.value}"
    data: dict[str, Any] = result.summary()
    data["out"] = str(write_rtdose(result.total, args.out, summation_type="PLAN", description=desc))
    if args.per_beam is not None:
        data["per_beam"] = {
            str(b.number): str(
                write_rtdose(
                    b.dose, args.per_beam / f"beam_{b.number}.dcm", summation_type="BEAM", description=desc
                )
            )
            for b in result.beams
        }
    if args.compare is not None:
        data["compare"] = _compare(result.total, args)
    if args.json:
        write_json(data)
        return 0
    lines = [f"dose ({result.engine}, {result.quantity.value}) -> {data['out']}"]
    for b in data["beams"]:
        lines.append(
            f"  beam {b['number']:>3} {b['name']:<16} {b['mu']:8.1f} MU  max {b['max_gy']:.3f} Gy  "
            f"{b['seconds']:.2f} s"
        )
    lines.append(f"  plan max {data['max_gy']:.3f} Gy, compute {data['compute_seconds']:.2f} s")
    if "compare" in data:
        g = data["compare"]["gamma"]
        lines.append(
            f"  gamma {g['dd_percent']:g}%/{g['dta_mm']:g} mm vs {args.compare}: "
            f"{g['pass_rate_percent']:.1f} % pass"
        )
        for name, row in data["compare"].get("dvh", {}).items():
            lines.append(
                f"    {name:<20} mean {row['mean_gy_engine']:.3f} vs {row['mean_gy_tps']:.3f} Gy "
                f"(diff {row['mean_gy_difference']:+.3f})"
            )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
