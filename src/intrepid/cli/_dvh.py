"""``intrepid dvh``: DVHs and dose statistics of the ROIs of an RT Structure Set on an RT Dose."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

from intrepid.cli._common import write_json

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``dvh`` sub-command."""
    p = subparsers.add_parser(
        "dvh",
        help="DVHs and dose statistics (volume cc, Dmin/Dmax/Dmean, D98/D95/D50/D2 in Gy) per ROI",
        description=(
            "Cumulative DVH of each ROI of RTSTRUCT on the dose of RTDOSE (Gy). ROIs up to 50 cm³ are "
            "continuous solids (shape-based interpolation between contours, end caps half a contour spacing "
            "beyond the outermost ones, Nelms et al. 2015) sampled finely with trilinear dose, Dmin/Dmax "
            "including the surface; larger ROIs use exact partial volume of the stepwise contour stack on "
            "the "
            "dose grid. Dx are interpolated linearly between bins. Volumes in cm³, doses in Gy. "
            "See docs/dvh.md."
        ),
    )
    p.add_argument("--dose", type=Path, required=True, help="RT Dose file (Gy)")
    p.add_argument("--struct", type=Path, required=True, help="RT Structure Set file")
    p.add_argument(
        "--roi",
        action="append",
        default=None,
        metavar="NAME",
        help="ROI name (repeat for several; default: every ROI)",
    )
    p.add_argument(
        "--bin-width", type=float, default=0.01, metavar="GY", help="bin width in Gy (default 0.01)"
    )
    p.add_argument(
        "--supersample",
        default="auto",
        help="'auto' (default: the interpolated solid for ROIs up to 50 cm³) or a sub-voxel factor per axis "
        "1-16 (the stepwise model)",
    )
    p.add_argument("--json", action="store_true", help="print JSON (per ROI: statistics and the curve)")
    p.add_argument(
        "--csv",
        type=Path,
        default=None,
        metavar="OUT",
        help="write the cumulative curves as CSV: roi, dose_gy, volume_cc, volume_percent",
    )
    p.add_argument("--plot", type=Path, default=None, metavar="OUT.png", help="write a DVH plot (PNG)")
    p.set_defaults(func=run)


def _supersample(value: str) -> int | str:
    from intrepid.errors import ParameterError

    if value == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError as exc:
        raise ParameterError(f"--supersample must be 'auto' or an integer, got {value!r}") from exc


def _write_csv(path: Path, dvhs: dict[str, Any]) -> None:
    from intrepid.dicom import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["roi", "dose_gy", "volume_cc", "volume_percent"])
            for name, d in dvhs.items():
                if d.is_empty:
                    continue
                for dose, vol in zip(d.dose_bin_edges_gy, d.cumulative_cc, strict=True):
                    w.writerow([name, f"{dose:.6g}", f"{vol:.6g}", f"{100 * vol / d.volume_cc:.6g}"])

    atomic_write(path, write)


def _write_plot(path: Path, dvhs: dict[str, Any], dose_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from intrepid.dicom import atomic_write

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for name, d in dvhs.items():
        if d.is_empty:
            continue
        ax.plot(
            d.dose_bin_edges_gy,
            100 * d.cumulative_cc / d.volume_cc,
            label=f"{name} ({d.volume_cc:.1f} cm³, mean {d.mean_gy:.2f} Gy)",
        )
    ax.set_xlabel("Dose (Gy)")
    ax.set_ylabel("Volume (%)")
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Cumulative DVH — {dose_name}")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png")

    try:
        atomic_write(path, write)
    finally:
        plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Execute ``intrepid dvh``."""
    from intrepid.analysis import compute_dvhs
    from intrepid.dicom import read_rtdose, read_rtstruct
    from intrepid.errors import ParameterError

    supersample = _supersample(str(args.supersample))
    if not args.bin_width > 0:  # checked before the (slow) file reading
        raise ParameterError(f"bin_width_gy must be > 0, got {args.bin_width}")
    dose = read_rtdose(args.dose).volume
    ss = read_rtstruct(args.struct)
    names = None
    if args.roi:
        names = [ss.roi(n).name for n in args.roi]  # case-insensitive look-up, clear error on a miss
    start = time.perf_counter()
    dvhs = compute_dvhs(dose, ss, names, bin_width_gy=args.bin_width, supersample=supersample)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    if args.csv is not None:
        _write_csv(args.csv, dvhs)
    if args.plot is not None:
        _write_plot(args.plot, dvhs, args.dose.name)
    if args.json:
        write_json(
            {
                "dose": str(args.dose),
                "struct": str(args.struct),
                "bin_width_gy": args.bin_width,
                "compute_seconds": seconds,
                "rois": {name: d.to_dict() for name, d in dvhs.items()},
            }
        )
        return 0
    header = (
        f"{'ROI':<20} {'volume_cc':>10} {'min_gy':>8} {'max_gy':>8} {'mean_gy':>8} {'d98_gy':>8} "
        f"{'d95_gy':>8} {'d50_gy':>8} {'d2_gy':>8}"
    )
    lines = [header]
    for name, d in dvhs.items():
        s = d.to_dict(curve=False)
        vals = " ".join(
            f"{s[k]:>8.3f}" for k in ("min_gy", "max_gy", "mean_gy", "d98_gy", "d95_gy", "d50_gy", "d2_gy")
        )
        lines.append(f"{name[:20]:<20} {s['volume_cc']:>10.3f} {vals}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
