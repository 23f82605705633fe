"""``intrepid resample``: put any volume onto any other volume's grid by patient coordinates."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from intrepid.cli._common import bounded, output_file, write_json

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``resample`` sub-command."""
    p = subparsers.add_parser(
        "resample",
        help="resample a volume onto another volume's grid (dose onto CT, CT onto dose)",
        description=(
            "Resample MOVING onto the grid of REFERENCE by patient (LPS, mm) coordinates, never by index. "
            "Inputs and output: RTDOSE / RTIMAGE / CT (.dcm or a CT folder), .nii, .nii.gz, .nrrd, .npz; "
            "the output type follows the extension of --out. Outside MOVING the fill value is used "
            "(default 0 for dose, -1000 HU for CT). Volumes in different Frames of Reference are refused "
            "unless --transform gives the rigid registration."
        ),
    )
    p.add_argument("moving", type=Path, help="volume to resample")
    p.add_argument("--onto", type=Path, required=True, help="volume whose grid the output takes")
    p.add_argument(
        "--out", type=output_file(".dcm", ".nii", ".nii.gz", ".nrrd", ".npz"), required=True,
        help="output file (.dcm, .nii, .nii.gz, .nrrd, .npz)",
    )
    p.add_argument("--method", choices=("linear", "nearest"), default="linear", help="interpolation")
    p.add_argument(
        "--fill", type=bounded(-1e6, 1e6), default=None, help="value outside MOVING (default by quantity)"
    )
    p.add_argument(
        "--transform",
        type=Path,
        default=None,
        help="text file with a 4 x 4 rigid matrix (mm) mapping REFERENCE patient coordinates into MOVING's",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``intrepid resample``."""
    import numpy as np

    from intrepid.dicom import read_volume, write_volume
    from intrepid.errors import ParameterError
    from intrepid.geometry import Interpolation, RigidTransform, resample

    start = time.perf_counter()
    moving = read_volume(args.moving)
    reference = read_volume(args.onto)
    transform = None
    if args.transform is not None:
        try:
            matrix = np.loadtxt(args.transform, dtype=float)
        except (OSError, ValueError) as exc:
            raise ParameterError(f"{args.transform}: cannot read a 4 x 4 matrix ({exc})") from exc
        if matrix.shape == (4, 4) and not np.all(np.isfinite(matrix)):
            raise ParameterError(f"{args.transform}: --transform holds NaN or infinite values")
        if matrix.shape != (4, 4):
            raise ParameterError(
                f"{args.transform}: --transform must hold a 4 x 4 matrix, got {matrix.shape}"
            )
        transform = RigidTransform(matrix)
    method = Interpolation.LINEAR if args.method == "linear" else Interpolation.NEAREST
    out = resample(moving, reference, method=method, fill_value=args.fill, transform=transform)
    write_volume(out, args.out)
    summary = {
        "output": str(args.out),
        "shape": list(out.shape),
        "origin_mm": list(out.grid.origin_mm),
        "spacing_mm": list(out.grid.spacing_mm),
        "method": args.method,
        **out.statistics(),
        "units": out.units,
        "compute_seconds": time.perf_counter() - start,
    }
    if args.json:
        write_json(summary)
    else:
        print(
            f"wrote {args.out}: {out.shape} voxels, {out.units or 'no units'}, "
            f"min {summary['min']:.4g} max {summary['max']:.4g} mean {summary['mean']:.4g}"
        )
    return 0
