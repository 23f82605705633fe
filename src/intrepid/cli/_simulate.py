"""``intrepid simulate pairs``: synthetic EPID / portal-dose pairs as DICOM RT Image files plus a manifest."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from intrepid.cli._common import bounded
from intrepid.errors import ParameterError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``simulate`` (with its ``pairs`` sub-command) to the ``intrepid`` parser."""
    parser = subparsers.add_parser(
        "simulate",
        help="simulate data sets (paired EPID and portal-dose images)",
        description="Simulate synthetic data sets with the InTrEPID physics model.",
    )
    sub = parser.add_subparsers(dest="simulate_command", metavar="WHAT")
    pairs = sub.add_parser(
        "pairs",
        help="paired EPID and portal-dose images (DICOM RTIMAGE) with manifest.csv",
        description=(
            "Simulate 6 MV transit EPID images and the matching portal dose (dose to water at the detector, "
            "Gy) through synthetic phantoms, written as DICOM RT Image files under OUT/epid and "
            "OUT/portal_dose, with OUT/manifest.csv (paths relative to it; columns epid_file, "
            "portal_dose_file, phantom, family, field, rotation_deg, isocenter, mu, seed, split, vendor). "
            "Field sizes are in cm at the isocentre (SAD 1000 mm), rotations in degrees, doses in Gy."
        ),
    )
    pairs.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    what = pairs.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--n", type=bounded(1, 100_000, integer=True), help="number of random pairs, 1-100000"
    )
    what.add_argument(
        "--composition", choices=["paper"],
        help="'paper': the seed's data set, Table 1 by phantom family and field size with its named test "
        "split",
    )
    pairs.add_argument(
        "--seed", type=int, default=0, help="random seed (>= 0, default 0); same seed, same pixels"
    )
    pairs.add_argument(
        "--vendor", default="elekta",
        help="EPID model and pixel encoding: elekta (iView GT, 1024 x 1024 at 0.405 mm, SID 1600 mm, "
        "inverted 16-bit) or varian (aS1000, 768 x 1024 at 0.392 mm, calibrated units); default elekta",
    )
    pairs.add_argument(
        "--effects", default=None, metavar="SPEC",
        help="detector and transit effects drawn per pair within their published ranges (docs/physics.md): "
        "'all', 'none', 'all-glare-couch' (all but those) or 'glare,couch' (only those); effect names: "
        "energy_response, spectral_scatter, heterogeneity_position, glare, off_axis_softening, flood_field, "
        "dark_field, gain_drift, dead_lines, arm_backscatter, couch, frame_averaging, ghosting, dose_rate, "
        "panel_shift, saturation. Default: the earlier near-linear physics",
    )
    pairs.add_argument(
        "--panel", choices=["image", "dataset"], default="image",
        help="with --effects: draw the panel, beam and scatter-physics values per image (default: the set "
        "spans the published spread between panels) or once per data set (one panel in one clinic)",
    )
    pairs.add_argument(
        "--mlc-fraction", type=float, default=0.0,
        help="with --n: fraction (0-1) of pairs given MLC-modulated fields (step-and-shoot, sliding window, "
        "VMAT-like control points); default 0",
    )
    pairs.add_argument(
        "--workers", type=bounded(1, 64, integer=True), default=1, help="worker processes, 1-64 (default 1)"
    )
    pairs.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="simulate the pairs as Ray tasks (extra intrepid-rt[ray]): without ADDRESS on a local Ray "
        "instance, 'auto' or HOST:PORT on a running cluster (OUT must be visible to every node)",
    )
    pairs.add_argument(
        "--phantom-spacing-mm", type=float, default=2.5, help="phantom voxel size in mm (default 2.5)"
    )
    pairs.add_argument(
        "--detector-pixels", type=int, default=None,
        help="use N columns (a multiple of 4; rows scaled) on the vendor's panel size instead of the real "
        "matrix (quick previews)",
    )
    pairs.add_argument("--overwrite", action="store_true", help="allow a non-empty output folder")
    pairs.add_argument("--no-progress", action="store_true", help="no progress bar")
    pairs.add_argument("--json", action="store_true", help="print the summary as JSON")
    pairs.set_defaults(func=run)
    from intrepid.cli._invivo import add_simulate_invivo  # ``simulate invivo`` (InTrEPID-3D cases)

    add_simulate_invivo(sub)
    parser.set_defaults(func=_usage(parser))


def _ray(address: str | None) -> Any:
    """RayOptions for ``--ray [ADDRESS]`` (None without the flag)."""
    if address is None:
        return None
    from intrepid.learn import RayOptions

    return RayOptions(address=None if address == "local" else address)


def _usage(parser: argparse.ArgumentParser) -> Any:
    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return show


def run(args: argparse.Namespace) -> int:
    """Run ``intrepid simulate pairs``."""
    from intrepid.cli._common import write_json
    from intrepid.simulate import composition_counts, generate_pairs, paper_composition, random_composition

    vendor = str(args.vendor).lower()
    if vendor not in ("elekta", "varian"):
        raise ParameterError(f"--vendor must be elekta or varian, got {args.vendor!r}")
    if args.n is not None and args.n <= 0:
        raise ParameterError(f"--n must be > 0, got {args.n}")
    if args.seed < 0:
        raise ParameterError(f"--seed must be >= 0, got {args.seed}")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise ParameterError(f"--out {out} is not empty; pass --overwrite to write into it")

    if not 0.0 <= args.mlc_fraction <= 1.0:
        raise ParameterError(f"--mlc-fraction must be in [0, 1], got {args.mlc_fraction}")
    if args.mlc_fraction > 0 and args.composition == "paper":
        raise ParameterError("--mlc-fraction applies to --n (random compositions); the paper composition "
                             "has Table 1's jaw fields only")
    flags = None
    if args.effects is not None:
        from intrepid.physics import EffectFlags

        try:
            flags = EffectFlags.parse(args.effects)
        except ParameterError as exc:
            raise ParameterError(f"--effects {args.effects!r}: {exc}") from None
    if args.composition == "paper":
        specs = paper_composition(args.seed)
    else:
        specs = random_composition(args.n, args.seed, mlc_fraction=args.mlc_fraction)
    start = time.perf_counter()
    manifest = generate_pairs(
        specs, out, vendor=vendor, seed=args.seed, progress=not args.no_progress, workers=args.workers,
        phantom_spacing_mm=args.phantom_spacing_mm, detector_pixels=args.detector_pixels, effects=flags,
        panel=args.panel, ray=_ray(args.ray),
    )
    seconds = time.perf_counter() - start
    counts = composition_counts(specs)
    summary = {
        "out": str(out),
        "manifest": str(manifest),
        "composition": args.composition or "random",
        "pairs": counts["total"],
        "vendor": vendor,
        "seed": args.seed,
        "by_split": counts["by_split"],
        "by_family": counts["by_family"],
        "effects": "legacy" if flags is None else list(flags.enabled()),
        "panel": args.panel,
        "seconds": round(seconds, 2),
    }
    if args.json:
        write_json(summary)
    else:
        splits = ", ".join(f"{k} {v}" for k, v in sorted(counts["by_split"].items()))
        families = ", ".join(f"{k} {v}" for k, v in counts["by_family"].items())
        sys.stdout.write(
            f"{counts['total']} pairs ({splits}; {families}) for {vendor} in {seconds:.1f} s\n"
            f"manifest: {manifest}\n"
        )
    return 0
