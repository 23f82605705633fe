"""``intrepid isodose``: an image of isodose lines on a plane of a dose (CT underneath where given)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from intrepid.cli._common import bounded, output_file, write_json

__all__ = ["register", "run"]


_POSITION = bounded(-1e5, 1e5, unit="mm")


def register(subparsers: Any) -> None:
    """Add the ``isodose`` sub-command."""
    p = subparsers.add_parser(
        "isodose",
        help="draw isodose lines (Gy or %% of a dose) on a dose plane, optionally over the CT (PNG)",
        description=(
            "Isodose lines of DOSE (RTDOSE, NIfTI, NRRD, npz; Gy) on one plane, drawn over a dose colour "
            "wash or over the CT (--ct, resampled onto the plane by patient coordinates). Axes in mm (DICOM "
            "patient frame LPS), colour bar in Gy. Plane: --slice-z MM (axial plane at z), or --axis with "
            "--position MM (default: the plane through the dose maximum)."
        ),
    )
    p.add_argument("dose", type=Path, help="dose file (Gy)")
    p.add_argument(
        "--levels",
        type=bounded(0, 1e4, low_open=True),
        nargs="+",
        required=True,
        help="isodose levels in Gy, or in %% of --percent-of",
    )
    p.add_argument(
        "--percent-of",
        type=bounded(0, 1e4, unit="Gy", low_open=True),
        default=None,
        metavar="GY",
        help="reference dose in Gy: --levels are then percentages of it",
    )
    p.add_argument(
        "--ct", type=Path, default=None, help="CT (a folder of slices or a volume file) to draw under"
    )
    p.add_argument(
        "--out", type=output_file(".png"), required=True, metavar="OUT.png", help="output image (PNG)"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--slice-z", type=_POSITION, default=None, metavar="MM", help="axial plane at z = MM")
    where.add_argument(
        "--axis",
        choices=("axial", "coronal", "sagittal"),
        default=None,
        help="plane orientation (default axial)",
    )
    p.add_argument(
        "--position",
        type=_POSITION,
        default=None,
        metavar="MM",
        help="with --axis: plane position in mm along its normal (z, y or x)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary of the lines")
    p.set_defaults(func=run)


def _plane_axes(grid: Any) -> tuple[int, int]:
    """World axis (0 = x, 1 = y, 2 = z) along which the plane's columns and rows run."""
    import numpy as np

    d = grid.direction_matrix
    return int(np.argmax(np.abs(d[:, 0]))), int(np.argmax(np.abs(d[:, 1])))


def run(args: argparse.Namespace) -> int:
    """Execute ``intrepid isodose``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from intrepid.analysis import PlaneAxis, dose_plane, isodose_lines
    from intrepid.dicom import atomic_write, read_volume
    from intrepid.errors import ParameterError

    if args.position is not None and args.axis is None:
        raise ParameterError("--position needs --axis (use --slice-z for an axial plane)")
    dose = read_volume(args.dose)
    if dose.ndim == 3:
        if args.slice_z is not None:
            plane = dose_plane(dose, PlaneAxis.AXIAL, args.slice_z)
        else:
            plane = dose_plane(dose, PlaneAxis(args.axis or "axial"), args.position)
    else:
        plane = dose
    lines = isodose_lines(plane, args.levels, percent_of_gy=args.percent_of)
    g = plane.grid
    wu, wv = _plane_axes(g)
    names = "xyz"
    nj, ni = g.shape
    corner0 = g.index_to_world([-0.5, -0.5])
    corner1 = g.index_to_world([ni - 0.5, nj - 0.5])
    extent = (corner0[wu], corner1[wu], corner1[wv], corner0[wv])

    fig, ax = plt.subplots(figsize=(8, 7), dpi=120)
    dose_arr = np.asarray(plane.array, dtype=float)
    if args.ct is not None:
        from intrepid.geometry import resample

        ct = read_volume(args.ct)
        ct_plane = resample(ct, g)
        ax.imshow(
            np.asarray(ct_plane.array, dtype=float),
            cmap="gray",
            vmin=-400,
            vmax=600,
            extent=extent,
            interpolation="bilinear",
        )
        shown = np.ma.masked_less(dose_arr, 0.05 * float(dose_arr.max()))
        im = ax.imshow(shown, cmap="jet", alpha=0.35, extent=extent, interpolation="bilinear")
    else:
        im = ax.imshow(dose_arr, cmap="viridis", extent=extent, interpolation="bilinear")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label(f"Dose ({plane.units or 'Gy'})")
    colours = plt.get_cmap("plasma")(np.linspace(0.0, 0.9, max(len(lines), 1)))
    for line, colour in zip(lines, colours, strict=False):
        label = f"{line.level_gy:.3g} Gy" + (
            f" ({line.level_percent:.3g} %)" if line.level_percent is not None else ""
        )
        for n, poly in enumerate(line.polygons_mm):
            ax.plot(poly[:, wu], poly[:, wv], color=colour, lw=1.5, label=label if n == 0 else None)
    axis_name = plane.metadata.get("plane_axis", "plane")
    pos = plane.metadata.get("plane_position_mm")
    title = f"Isodoses — {args.dose.name}, {axis_name}" + (f" at {pos:.1f} mm" if pos is not None else "")
    ax.set_title(title)
    ax.set_xlabel(f"{names[wu]} (mm, LPS)")
    ax.set_ylabel(f"{names[wv]} (mm, LPS)")
    if any(line.polygons_mm for line in lines):
        ax.legend(fontsize=8, loc="upper right", title="Isodose levels")
    fig.tight_layout()

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png")

    try:
        atomic_write(args.out, write)
    finally:
        plt.close(fig)
    warnings = []
    empty = [ln.level_gy for ln in lines if not ln.polygons_mm]
    if empty:
        warnings.append(
            f"no isodose line at {', '.join(f'{v:.4g}' for v in empty)} Gy on this plane (its dose spans "
            f"{float(dose_arr.min()):.4g} to {float(dose_arr.max()):.4g} Gy)"
        )
    for w in warnings:
        sys.stderr.write(f"intrepid isodose: warning: {w}\n")
    if not args.json:
        drawn = sum(len(ln.polygons_mm) for ln in lines)
        sys.stdout.write(f"wrote {args.out} ({drawn} isodose line(s) on the {axis_name} plane)\n")
    if args.json:
        write_json(
            {
                "dose": str(args.dose),
                "out": str(args.out),
                "plane_axis": axis_name,
                "plane_position_mm": pos,
                "levels": [
                    {
                        "level_gy": ln.level_gy,
                        "level_percent": ln.level_percent,
                        "polygons": len(ln.polygons_mm),
                        "length_mm": ln.total_length_mm,
                    }
                    for ln in lines
                ],
                "warnings": warnings,
            }
        )
    return 0
