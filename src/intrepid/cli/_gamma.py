"""``intrepid gamma``: exact gamma index of an evaluated dose against a reference dose (2D or 3D)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from intrepid.cli._common import bounded, write_json

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``gamma`` sub-command."""
    p = subparsers.add_parser(
        "gamma",
        help="gamma index (pass rate, mean, γ1%%, map) of EVALUATED against REFERENCE",
        description=(
            "Gamma index (Low 1998) at every REFERENCE point at or above the cut-off, minimised over an "
            "interpolant of EVALUATED: --interpolant simplex (default; linear on the Kuhn simplices of each "
            "cell, exact minimum, Ju 2008) or trilinear (multi-linear in each cell, as pymedphys; branch and "
            "bound, within 1e-4 in gamma, pass/fail exact). Inputs: RTDOSE, RTIMAGE (.dcm), "
            ".nii, .nii.gz, .nrrd or .npz, in the same units (Gy) and Frame of Reference; grids may "
            "differ in spacing and origin. Criteria: --dd in percent (of the reference maximum, or of "
            "--normalisation-dose, or of the local dose with --local) and --dta in mm. A point passes when "
            "gamma <= 1 (+1e-9)."
        ),
    )
    p.add_argument("reference", type=Path, help="reference dose (e.g. the plan)")
    p.add_argument("evaluated", type=Path, help="evaluated dose (e.g. the measurement), interpolated")
    p.add_argument(
        "--dd", type=bounded(0, 100, unit="%", low_open=True), required=True,
        help="dose-difference criterion, percent (0, 100]",
    )
    p.add_argument("--dta", type=float, required=True, help="distance-to-agreement criterion, mm")
    p.add_argument(
        "--cutoff",
        type=bounded(0, 100, unit="%", high_open=True),
        default=10.0,
        help="low-dose cut-off on the reference, percent of the normalisation dose (default 10, TG-218)",
    )
    p.add_argument("--local", action="store_true", help="local dose difference (default: global)")
    p.add_argument(
        "--max-gamma",
        type=float,
        default=2.0,
        help="search limit (> 1, default 2); larger gamma values are reported as this value",
    )
    p.add_argument(
        "--normalisation-dose",
        type=bounded(0, 1e4, unit="Gy", low_open=True),
        default=None,
        metavar="GY",
        help="dose (Gy) for global normalisation and the cut-off (default: reference maximum)",
    )
    p.add_argument(
        "--backend",
        choices=("numba", "torch", "cuda"),
        default="numba",
        help="numba (CPU, default), torch (GPU when available) or cuda (numba-cuda kernel, NVIDIA GPU)",
    )
    p.add_argument(
        "--interpolant",
        choices=("simplex", "trilinear"),
        default="simplex",
        help="interpolant of EVALUATED: simplex (default, exact) or trilinear (within 1e-4 in gamma)",
    )
    p.add_argument(
        "--ignore-frame-of-reference",
        action="store_true",
        help="compare volumes whose Frame of Reference UIDs differ (you assert they are registered)",
    )
    p.add_argument(
        "--gamma-map",
        type=Path,
        default=None,
        metavar="OUT",
        help="write the gamma map (.dcm, .nii, .nii.gz, .nrrd, .npz; NaN below the cut-off) or draw it "
        "(.png: the 2D map, or three planes through the highest gamma of a 3D map, axes in mm)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``intrepid gamma``."""
    from intrepid.analysis import Normalisation, gamma
    from intrepid.dicom import read_volume, write_volume
    from intrepid.errors import ParameterError

    reference = read_volume(args.reference)
    evaluated = read_volume(args.evaluated)
    if (reference.units or "").lower() != (evaluated.units or "").lower():
        raise ParameterError(
            f"{args.reference} is in {reference.units or 'no units'!r} but {args.evaluated} is in "
            f"{evaluated.units or 'no units'!r}; gamma compares doses in the same units"
        )
    result = gamma(
        reference,
        evaluated,
        dd_percent=args.dd,
        dta_mm=args.dta,
        cutoff_percent=args.cutoff,
        normalisation=Normalisation.LOCAL if args.local else Normalisation.GLOBAL,
        normalisation_dose=args.normalisation_dose,
        max_gamma=args.max_gamma,
        backend=args.backend,
        ignore_frame_of_reference=args.ignore_frame_of_reference,
        interpolant=args.interpolant,
    )
    data = result.to_dict()
    data["reference"] = str(args.reference)
    data["evaluated"] = str(args.evaluated)
    if args.gamma_map is not None and args.gamma_map.suffix.lower() == ".png":
        from intrepid.report._gamma_png import write_gamma_png

        data["gamma_map"] = str(write_gamma_png(result.gamma_map, args.gamma_map))
    elif args.gamma_map is not None:
        data["gamma_map"] = str(write_volume(result.gamma_map, args.gamma_map))
    if args.json:
        write_json(data)
        return 0
    s = result.settings
    lines = [
        f"gamma {s.dd_percent:g}%/{s.dta_mm:g} mm {s.normalisation.value}, cut-off {s.cutoff_percent:g}% "
        f"({s.cutoff_dose_gy:.4g} Gy), normalisation dose {s.normalisation_dose_gy:.4g} Gy, "
        f"interpolant {s.interpolant.value} "
        + ("(exact minimum)" if s.gamma_tolerance == 0 else f"(minimum within {s.gamma_tolerance:g})"),
        f"  pass rate      {result.pass_rate_percent:.2f} % ({result.passed_points} of "
        f"{result.evaluated_points} points)",
        f"  mean gamma     {result.mean_gamma:.3f}",
        f"  gamma 1%       {result.gamma_1percent:.3f}",
        f"  max gamma      {result.max_gamma:.3f} (search limit {s.max_gamma:g})",
        f"  compute time   {result.compute_seconds:.3f} s",
    ]
    if args.gamma_map is not None:
        lines.append(f"  gamma map      {data['gamma_map']}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
