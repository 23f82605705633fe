"""``intrepid compensator``: design a proton range compensator (geometric or dose-optimised) and export it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from intrepid.cli._common import bounded, output_file, write_json

__all__ = ["register", "run"]


_ANGLE = bounded(-360, 360, unit="degrees")
#: Thickness range of a compensator, mm: PMMA compensators stay below ~15 cm (a 230 MeV proton range in
#: PMMA is ~28 cm); 300 mm is the hard ceiling.
_THICKNESS = bounded(0, 300, unit="mm")
#: Dose-optimisation iterations: each costs one pencil-beam dose calculation (seconds); beyond 1000 the
#: command would run for hours.
MAX_ITERATIONS = 1000


def register(subparsers: Any) -> None:
    """Add the ``compensator`` sub-command."""
    p = subparsers.add_parser(
        "compensator",
        help="design a proton range compensator (thickness in mm) from CT + target; RT Ion Plan / JSON out",
        description=(
            "Range compensator for one passively scattered proton field: WEPL of the target's distal surface "
            "along divergent rays (HU -> stopping power, Schneider 1996), distal margin (percent of the WEPL "
            "+ mm of water), setup shifts, Urie smearing, border handling, material, min/max thickness "
            "(mm); patch fields from an existing RTDOSE; dose-based optimisation with a Hong 1996 "
            "pencil-beam engine. Units: mm, degrees, MeV; ranges in mm of water."
        ),
    )
    p.add_argument(
        "--ct", type=Path, required=True, help="CT series folder (or a matRad .mat phantom such as TG119.mat)"
    )
    p.add_argument(
        "--struct", type=Path, default=None, help="RT Structure Set (not needed with a .mat phantom)"
    )
    p.add_argument("--target", required=True, help="target ROI name")
    g = p.add_argument_group("beam geometry (a plan beam, or the angles and source distances)")
    g.add_argument("--plan", type=Path, default=None, help="RT Ion Plan giving the beam geometry")
    g.add_argument("--beam", default=None, help="beam number or name in --plan")
    g.add_argument(
        "--gantry", type=_ANGLE, default=0.0, metavar="DEG", help="gantry angle, degrees (default 0)"
    )
    g.add_argument(
        "--couch", type=_ANGLE, default=0.0, metavar="DEG", help="couch angle, degrees (default 0)"
    )
    g.add_argument(
        "--collimator", type=_ANGLE, default=0.0, metavar="DEG", help="collimator angle, degrees (default 0)"
    )
    g.add_argument(
        "--sad",
        type=bounded(100, 1e5, unit="mm"),
        nargs=2,
        default=(2000.0, 2000.0),
        metavar=("X", "Y"),
        help="virtual source-axis distances x y, mm (default 2000 2000; different = dual source)",
    )
    g.add_argument(
        "--isocenter",
        type=bounded(-1e4, 1e4, unit="mm"),
        nargs=3,
        default=None,
        metavar=("X", "Y", "Z"),
        help="isocentre, LPS mm (default: the target's centre)",
    )
    g.add_argument("--patient-position", default="HFS", help="DICOM patient position (default HFS)")
    d = p.add_argument_group("design")
    d.add_argument(
        "--distal-margin-percent",
        type=bounded(0, 20, unit="%"),
        default=0.0,
        metavar="P",
        help="distal margin, percent of the distal WEPL (Moyers: 3.5)",
    )
    d.add_argument(
        "--distal-margin-mm",
        type=bounded(0, 50, unit="mm"),
        default=0.0,
        metavar="D",
        help="distal margin, mm of water (Moyers: 3)",
    )
    d.add_argument(
        "--smear-mm",
        type=bounded(0, 50, unit="mm"),
        default=0.0,
        metavar="R",
        help="Urie smearing radius at the isocentre plane, mm",
    )
    d.add_argument(
        "--shift-mm",
        type=bounded(0, 50, unit="mm"),
        default=0.0,
        metavar="S",
        help="lateral setup shift +-S along x and y at the isocentre plane, mm",
    )
    d.add_argument(
        "--min-thickness-mm", type=_THICKNESS, default=0.0, help="minimum thickness, mm [0, 300] (default 0)"
    )
    d.add_argument(
        "--max-thickness-mm", type=_THICKNESS, default=None, help="maximum thickness, mm [0, 300]"
    )
    d.add_argument("--material", default="pmma", help="pmma (RSP 1.165), wax (RSP 0.99) or RSP:DENSITY")
    d.add_argument(
        "--border",
        choices=("extrapolate", "max_thickness", "min_thickness"),
        default="extrapolate",
        help="thickness of rays without target (default extrapolate)",
    )
    d.add_argument(
        "--pixel-spacing-mm", type=bounded(0.1, 20, unit="mm"), default=2.0,
        help="grid spacing at the device, mm [0.1, 20] (default 2)",
    )
    d.add_argument(
        "--isocenter-to-compensator-mm",
        type=bounded(0, 5000, unit="mm", low_open=True),
        default=200.0,
        help="isocentre to the compensator's downstream face (tray), mm (default 200)",
    )
    d.add_argument(
        "--milling-tool-mm", type=bounded(0, 50, unit="mm", low_open=True), default=None,
        help="milling tool diameter, mm (0, 50] (DICOM)",
    )
    d.add_argument(
        "--patch-dose",
        type=Path,
        default=None,
        metavar="RTDOSE",
        help="existing (through-field) dose: design a patch-field compensator",
    )
    d.add_argument(
        "--patch-percent",
        type=bounded(0, 100, unit="%", low_open=True, high_open=True),
        default=50.0,
        metavar="P",
        help="isodose of --patch-dose used as the distal surface, percent of its max (default 50)",
    )
    d.add_argument(
        "--iterations",
        type=bounded(0, MAX_ITERATIONS, integer=True),
        default=0,
        metavar="N",
        help="dose-optimisation iterations (0: geometric design)",
    )
    d.add_argument(
        "--isodose-percent",
        type=bounded(0, 100, unit="%", low_open=True),
        default=90.0,
        help="distal isodose placed on the distal surface, percent (default 90)",
    )
    d.add_argument(
        "--source-size-mm", type=bounded(0, 20, unit="mm"), default=0.0,
        help="effective source size sigma, mm [0, 20]",
    )
    e = p.add_argument_group("beam range (default: deepest required range + minimum thickness)")
    e.add_argument(
        "--energy", type=bounded(0, 400, unit="MeV", low_open=True), default=None, metavar="MEV",
        help="pristine peak energy, MeV (0, 400]",
    )
    e.add_argument(
        "--range-mm", type=bounded(0, 500, unit="mm", low_open=True), default=None, metavar="R",
        help="distal 90%% range in water, mm (0, 500]",
    )
    e.add_argument(
        "--modulation-mm", type=bounded(0, 500, unit="mm", low_open=True), default=None, metavar="M",
        help="SOBP modulation, mm (0, 500]",
    )
    p.add_argument(
        "--out", type=output_file(".dcm", ".json"), required=True,
        help="OUT.dcm (RT Ion Plan) or OUT.json (full result)",
    )
    p.add_argument(
        "--csv", type=output_file(".csv"), default=None,
        help="milling table CSV (row, column, x, y, thickness)",
    )
    p.add_argument(
        "--stl", type=output_file(".stl"), default=None, help="closed STL surface of the compensator (mm)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(
        func=run,
        param_flags={
            "smearing_radius_mm": "--smear-mm",
            "min_thickness_mm": "--min-thickness-mm",
            "max_thickness_mm": "--max-thickness-mm",
            "pixel_spacing_mm": "--pixel-spacing-mm",
            "isocenter_to_compensator_mm": "--isocenter-to-compensator-mm",
            "milling_tool_diameter_mm": "--milling-tool-mm",
            "patch_isodose_percent": "--patch-percent",
            "distal_isodose_percent": "--isodose-percent",
            "source_size_mm": "--source-size-mm",
        },
    )


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from intrepid.errors import ParameterError

    if args.ct.suffix.lower() == ".mat":
        from intrepid.dicom import read_matrad_phantom

        ph = read_matrad_phantom(args.ct)
        if args.target not in ph.structures:
            raise ParameterError(
                f"{args.ct}: no structure {args.target!r}; available: {sorted(ph.structures)}"
            )
        return ph.ct, ph.structures[args.target]
    from intrepid.dicom import read_ct_series, read_rtstruct, roi_mask

    if args.struct is None:
        raise ParameterError("--struct is required with a CT series")
    ct = read_ct_series(args.ct)
    roi = read_rtstruct(args.struct).roi(args.target)
    return ct, roi_mask(roi, ct)


def _geometry(args: argparse.Namespace, target: Any) -> tuple[Any, Any]:
    import numpy as np

    from intrepid.devices import BeamGeometry
    from intrepid.errors import ParameterError

    if args.plan is not None:
        from shapely.geometry import Polygon
        from shapely.ops import unary_union

        from intrepid.dicom import read_rtplan

        if args.beam is None:
            raise ParameterError("--beam is required with --plan")
        plan = read_rtplan(args.plan)
        key: int | str = int(args.beam) if str(args.beam).isdigit() else str(args.beam)
        geo = BeamGeometry.from_ion_plan(plan, key)
        blocks = [b for b in plan.beam(key).blocks if b.block_type.value == "APERTURE"]
        aperture = unary_union([Polygon(b.points_mm) for b in blocks]) if blocks else None
        return geo, aperture
    if args.isocenter is None:
        idx = np.argwhere(np.asarray(target.array) != 0)[:, ::-1].astype(float)
        iso = target.grid.index_to_world(idx.mean(axis=0))
    else:
        iso = np.asarray(args.isocenter, dtype=float)
    return BeamGeometry(
        sad_mm=tuple(args.sad),
        gantry_deg=args.gantry,
        couch_deg=args.couch,
        collimator_deg=args.collimator,
        isocenter_mm=(float(iso[0]), float(iso[1]), float(iso[2])),
        patient_position=args.patient_position,
    ), None


def run(args: argparse.Namespace) -> int:
    """Execute ``intrepid compensator``."""
    import time

    from intrepid.devices import (
        BorderHandling,
        CompensatorMaterial,
        CompensatorSettings,
        design_compensator,
    )
    from intrepid.dicom import all_or_nothing
    from intrepid.errors import ParameterError
    from intrepid.physics import pristine_peak, spread_out_bragg_peak

    suffix = args.out.suffix.lower()
    if suffix not in (".dcm", ".json"):
        raise ParameterError(f"--out must end in .dcm or .json, got {args.out}")
    if args.energy is not None and (args.range_mm is not None or args.modulation_mm is not None):
        raise ParameterError("give either --energy or --range-mm/--modulation-mm, not both")
    if args.modulation_mm is not None and args.range_mm is None:
        raise ParameterError("--modulation-mm needs --range-mm")
    if args.max_thickness_mm is not None and args.min_thickness_mm >= args.max_thickness_mm:
        raise ParameterError(
            f"--min-thickness-mm {args.min_thickness_mm:g} must be below --max-thickness-mm "
            f"{args.max_thickness_mm:g}"
        )
    if args.beam is not None and args.plan is None:
        raise ParameterError("--beam selects a beam of --plan; give --plan too (or drop --beam)")
    t0 = time.perf_counter()
    ct, target = _load(args)
    geometry, aperture = _geometry(args, target)
    depth_dose: Any = None
    beam_range: float | None = None
    if args.energy is not None:
        depth_dose = pristine_peak(args.energy)
        beam_range = depth_dose.distal_depth_mm(args.isodose_percent)
    elif args.range_mm is not None:
        beam_range = float(args.range_mm)
        if args.modulation_mm is not None:
            depth_dose = spread_out_bragg_peak(args.range_mm, args.modulation_mm)
            beam_range = depth_dose.distal_depth_mm(args.isodose_percent)
    settings = CompensatorSettings(
        distal_margin_percent=args.distal_margin_percent,
        distal_margin_mm=args.distal_margin_mm,
        smearing_radius_mm=args.smear_mm,
        shift_mm=args.shift_mm,
        min_thickness_mm=args.min_thickness_mm,
        max_thickness_mm=args.max_thickness_mm,
        material=CompensatorMaterial.parse(args.material),
        border=BorderHandling(args.border),
        pixel_spacing_mm=args.pixel_spacing_mm,
        isocenter_to_compensator_mm=args.isocenter_to_compensator_mm,
        beam_range_mm=beam_range,
        patch_isodose_percent=args.patch_percent,
        distal_isodose_percent=args.isodose_percent,
        iterations=args.iterations,
        milling_tool_diameter_mm=args.milling_tool_mm,
    )
    patch = None
    if args.patch_dose is not None:
        from intrepid.dicom import read_rtdose

        patch = read_rtdose(args.patch_dose).volume
    result = design_compensator(
        ct,
        target,
        geometry,
        settings,
        aperture=aperture,
        patch_dose=patch,
        depth_dose=depth_dose,
        source_size_mm=args.source_size_mm,
    )
    with all_or_nothing():
        _write_outputs(args, suffix, geometry, result, ct)
    _report(args, result, t0)
    return 0


def _write_outputs(args: argparse.Namespace, suffix: str, geometry: Any, result: Any, ct: Any) -> None:
    """--out, --csv and --stl, inside the caller's all-or-nothing block."""
    from intrepid.devices import write_compensator_csv, write_compensator_stl, write_ion_plan_devices

    if suffix == ".dcm":
        write_ion_plan_devices(
            args.out,
            geometry=geometry,
            compensator=result,
            aperture=None,
            reference_plan=args.plan,
            beam_number=int(args.beam) if args.plan is not None and str(args.beam).isdigit() else 1,
            nominal_energy_mev=args.energy,
            frame_of_reference_uid=ct.frame_of_reference_uid,
        )
    else:
        import json

        from intrepid.cli._common import to_jsonable
        from intrepid.dicom import atomic_write

        def write(tmp: Path) -> None:
            tmp.write_text(json.dumps(to_jsonable(result.to_dict(include_arrays=True)), allow_nan=False))

        atomic_write(args.out, write)
    if args.csv is not None:
        write_compensator_csv(args.csv, result)
    if args.stl is not None:
        write_compensator_stl(args.stl, result)


def _report(args: argparse.Namespace, result: Any, t0: float) -> None:
    import time

    summary = result.to_dict()
    summary["out"] = str(args.out)
    summary["target"] = args.target
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    if result.coverage:
        summary["distal_coverage_final"] = result.coverage[-1].to_dict()
    if args.json:
        write_json(summary)
    else:
        s = result.statistics()
        sys.stdout.write(
            f"compensator {result.shape[0]} x {result.shape[1]} px at "
            f"{result.isocenter_to_compensator_mm:g} mm: "
            f"thickness {s['thickness_min_mm']:.1f}-{s['thickness_max_mm']:.1f} mm (mean "
            f"{s['thickness_mean_mm']:.1f}), beam range {result.beam_range_mm:.1f} mm -> {args.out}\n"
        )
        for c in result.coverage:
            sys.stdout.write(
                f"  iteration {c.iteration}: mean |error| {c.mean_abs_error_mm:.2f} mm, max "
                f"{c.max_abs_error_mm:.2f} mm, {c.within_1mm_percent:.1f} % of rays within 1 mm\n"
            )
