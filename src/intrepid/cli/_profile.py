"""``intrepid profile``: dose along a line between two points (mm), as a table, CSV, JSON or plot."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from intrepid.cli._common import bounded, output_file, write_json

__all__ = ["register", "run"]


_POSITION = bounded(-1e5, 1e5, unit="mm")
#: Most samples one profile may hold (a 1 m line at 0.01 mm is 1e5 samples).
MAX_SAMPLES = 1_000_000


def register(subparsers: Any) -> None:
    """Add the ``profile`` sub-command."""
    p = subparsers.add_parser(
        "profile",
        help="dose profile along a line between two points in mm (linear interpolation)",
        description=(
            "Sample DOSE (RTDOSE, RTIMAGE, NIfTI, NRRD, npz) every --step mm along the segment --from -> "
            "--to "
            "(patient LPS coordinates in mm), by trilinear interpolation; points outside the grid are null. "
            "Without --json, --csv or --plot a table is printed."
        ),
    )
    p.add_argument("dose", type=Path, help="dose file")
    p.add_argument(
        "--from",
        dest="start",
        type=_POSITION,
        nargs=3,
        required=True,
        metavar=("X", "Y", "Z"),
        help="start point in mm (LPS)",
    )
    p.add_argument(
        "--to",
        dest="stop",
        type=_POSITION,
        nargs=3,
        required=True,
        metavar=("X", "Y", "Z"),
        help="end point in mm (LPS)",
    )
    p.add_argument(
        "--step", type=bounded(0.01, 100, unit="mm"), default=1.0, metavar="MM",
        help="sampling step in mm, [0.01, 100] (default 1)",
    )
    p.add_argument(
        "--csv",
        type=output_file(".csv"),
        default=None,
        metavar="OUT",
        help="write distance_mm, x_mm, y_mm, z_mm, dose as CSV",
    )
    p.add_argument(
        "--plot", type=output_file(".png"), default=None, metavar="OUT.png", help="write a plot (PNG)"
    )
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``intrepid profile``."""
    import numpy as np

    from intrepid.analysis import dose_profile
    from intrepid.dicom import all_or_nothing, atomic_write, read_volume
    from intrepid.errors import ParameterError

    length = float(np.linalg.norm(np.subtract(args.stop, args.start)))
    if length / args.step > MAX_SAMPLES:
        raise ParameterError(
            f"--from/--to are {length:.4g} mm apart: at --step {args.step:g} mm that is more than "
            f"{MAX_SAMPLES} samples; use a larger --step"
        )
    dose = read_volume(args.dose)
    prof = dose_profile(dose, args.start, args.stop, step_mm=args.step)
    units = prof.units or "Gy"
    outside = ~np.isfinite(np.asarray(prof.dose, dtype=float))
    if outside.all():
        lo, hi = dose.grid.bounds_mm()
        raise ParameterError(
            f"--from/--to: the line lies entirely outside {args.dose}, which spans "
            f"x {lo[0]:g} to {hi[0]:g}, y {lo[1]:g} to {hi[1]:g}, z {lo[2]:g} to {hi[2]:g} mm"
        )
    if outside.any():
        sys.stderr.write(
            f"intrepid profile: warning: {int(outside.sum())} of {outside.size} samples lie outside "
            f"{args.dose} (no value: empty in CSV, null in JSON)\n"
        )
    with all_or_nothing():  # --csv and --plot: both or neither
        if args.csv is not None:

            def write_csv(tmp: Path) -> None:
                with open(tmp, "w", newline="") as fh:
                    w = csv.writer(fh)
                    w.writerow(["distance_mm", "x_mm", "y_mm", "z_mm", f"dose_{units.lower()}"])
                    for d, p, v in zip(prof.distance_mm, prof.points_mm, prof.dose, strict=True):
                        w.writerow(
                            [
                                f"{d:.4f}",
                                f"{p[0]:.4f}",
                                f"{p[1]:.4f}",
                                f"{p[2]:.4f}",
                                "" if not np.isfinite(v) else f"{v:.6g}",
                            ]
                        )

            atomic_write(args.csv, write_csv)
        if args.plot is not None:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
            ax.plot(prof.distance_mm, prof.dose, "-", lw=1.5)
            start = ", ".join(f"{c:g}" for c in prof.start_mm)
            stop = ", ".join(f"{c:g}" for c in prof.stop_mm)
            ax.set_xlabel(f"Distance from ({start}) mm along the line (mm)")
            ax.set_ylabel(f"Dose ({units})")
            ax.set_title(f"Dose profile — {args.dose.name}, to ({stop}) mm")
            ax.grid(True, alpha=0.3)
            fig.tight_layout()

            def write_png(tmp: Path) -> None:
                fig.savefig(tmp, format="png")

            try:
                atomic_write(args.plot, write_png)
            finally:
                plt.close(fig)
    if args.json:
        write_json(prof.to_dict())
    elif args.csv is not None or args.plot is not None:
        written = [str(p) for p in (args.csv, args.plot) if p is not None]
        sys.stdout.write(f"wrote {', '.join(written)} ({prof.distance_mm.size} samples)\n")
    else:
        rows = [f"{'distance_mm':>12} {'x_mm':>9} {'y_mm':>9} {'z_mm':>9} {'dose_' + units.lower():>10}"]
        for d, p, v in zip(prof.distance_mm, prof.points_mm, prof.dose, strict=True):
            rows.append(f"{d:12.2f} {p[0]:9.2f} {p[1]:9.2f} {p[2]:9.2f} {v:10.4f}")
        sys.stdout.write("\n".join(rows) + "\n")
    return 0
