"""``intrepid aperture``: design a proton aperture from the beam's-eye view of RTSTRUCT targets."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from intrepid.cli._common import bounded, output_file, to_jsonable, write_json

__all__ = ["register", "run"]


_ANGLE = bounded(-360, 360, unit="degrees")
_POSITION = bounded(-1e4, 1e4, unit="mm")
#: Ranges of the values inside --organ, --centerline and --mount (mm at the device plane).
_ORGAN_MARGIN_MM = (-100.0, 100.0)
_BAND_WIDTH_MM = (0.0, 200.0)
_MOUNT_MM = (0.0, 1000.0)


def _in_range(
    flag: str, text: str, what: str, value: float, bounds: tuple[float, float], open_low: bool
) -> float:
    from intrepid.errors import ParameterError

    low, high = bounds
    if not math.isfinite(value) or (value <= low if open_low else value < low) or value > high:
        left = "(" if open_low else "["
        raise ParameterError(f"{flag} {text!r}: {what} must be in {left}{low:g}, {high:g}] mm, got {value:g}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``aperture`` sub-command."""
    p = subparsers.add_parser(
        "aperture",
        help="design a proton aperture (BEV of targets, margin, mill radius, smoothing, clipping), mm",
        description=(
            "Design the opening of a proton aperture from the beam's-eye view of RTSTRUCT targets. The "
            "device is modelled at its downstream (patient-side) edge; margins, band widths, plane origins, "
            "the mount and the mill radius are in mm at that plane (true size on the device). The opening is "
            "reported "
            "at the device plane and at the isocentre plane (scaled per axis by SAD/(SAD - distance): dual "
            "source when the two SADs differ). Coordinates: beam frame (IEC beam-limiting device), x and y "
            "in mm. Angles in degrees (IEC 61217)."
        ),
    )
    p.add_argument(
        "--ct", type=Path, required=True,
        help="CT series folder (checks the frame of reference), or a matRad .mat phantom such as TG119.mat",
    )
    p.add_argument(
        "--struct", type=Path, default=None, metavar="RTSTRUCT",
        help="RT Structure Set file (not needed with a .mat phantom, which holds its structures)",
    )
    p.add_argument(
        "--target",
        action="append",
        required=True,
        metavar="NAME",
        help="target ROI name (repeat for several targets: their projections are united)",
    )
    p.add_argument(
        "--plan",
        type=Path,
        default=None,
        metavar="RTIONPLAN",
        help="RT Ion Plan giving SADs, angles, isocentre (and the block tray)",
    )
    p.add_argument("--beam", default=None, metavar="N", help="beam number (or name) in --plan")
    p.add_argument(
        "--gantry", type=_ANGLE, default=None, metavar="DEG", help="gantry angle, degrees [-360, 360]"
    )
    p.add_argument(
        "--couch", type=_ANGLE, default=0.0, metavar="DEG", help="couch angle, degrees (default 0)"
    )
    p.add_argument(
        "--collimator", type=_ANGLE, default=0.0, metavar="DEG", help="collimator angle, degrees (default 0)"
    )
    p.add_argument(
        "--sad",
        type=bounded(100, 1e5, unit="mm"),
        nargs=2,
        default=None,
        metavar=("X", "Y"),
        help="virtual source-axis distances along x and y, mm",
    )
    p.add_argument(
        "--isocenter",
        type=_POSITION,
        nargs=3,
        default=None,
        metavar=("X", "Y", "Z"),
        help="isocentre in patient coordinates (DICOM LPS), mm",
    )
    p.add_argument("--patient-position", default="HFS", help="DICOM patient position without --plan (HFS...)")
    p.add_argument(
        "--downstream-edge",
        type=bounded(0, 5000, unit="mm", low_open=True),
        default=None,
        metavar="MM",
        help="isocentre to the aperture's downstream (patient-side) face, mm; default with --plan: from the "
        "beam's block (isocentre-to-tray distance, thickness and mounting position)",
    )
    p.add_argument(
        "--thickness", type=bounded(0, 500, unit="mm", low_open=True), default=None, metavar="MM",
        help="device thickness, mm (0, 500]",
    )
    p.add_argument(
        "--margin", type=bounded(0, 100, unit="mm"), required=True, metavar="MM",
        help="target margin, mm [0, 100]",
    )
    p.add_argument(
        "--mill-radius", type=bounded(0, 50, unit="mm"), required=True, metavar="MM",
        help="milling tool radius, mm [0, 50]",
    )
    p.add_argument(
        "--mill-mode",
        choices=("open", "close", "both"),
        default="open",
        help="open: what the tool can cut (default); close: fill narrow notches; both",
    )
    p.add_argument("--smooth", type=bounded(0, 1), default=0.0, metavar="F", help="smoothing fraction, 0-1")
    p.add_argument(
        "--iterations", type=bounded(0, 100, integer=True), default=1, metavar="N",
        help="smoothing iterations, 0-100 (default 1)",
    )
    p.add_argument(
        "--organ",
        action="append",
        default=[],
        metavar="NAME:MARGIN[:occlude]",
        help="clip by an organ's projection plus MARGIN mm (negative allowed); ':occlude' ignores "
        "the parts hidden behind the target",
    )
    p.add_argument(
        "--centerline",
        action="append",
        default=[],
        metavar="NAME:WIDTH",
        help="remove a band WIDTH mm wide around the projected centre line of a structure",
    )
    p.add_argument(
        "--half-plane",
        action="append",
        default=[],
        type=_POSITION,
        nargs=3,
        metavar=("X", "Y", "ANGLE"),
        help="remove the positive side of the line through (X, Y) mm with normal at ANGLE degrees",
    )
    p.add_argument(
        "--corner-plane",
        action="append",
        default=[],
        type=_POSITION,
        nargs=4,
        metavar=("X", "Y", "ANGLE1", "ANGLE2"),
        help="remove the region on the positive side of both half planes through (X, Y)",
    )
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="FILE:add|limit",
        help="polygon file (CSV x_mm,y_mm at the isocentre plane, or JSON) added to / limiting the opening",
    )
    p.add_argument("--keep-islands", action="store_true", help="keep holes (floating islands of material)")
    p.add_argument(
        "--mount",
        default=None,
        metavar="circle:R | rect:W:H",
        help="snout bounding the opening: circle of radius R mm or rectangle W x H mm",
    )
    p.add_argument(
        "--mesh-spacing",
        type=bounded(0.1, 10, unit="mm"),
        default=1.0,
        metavar="MM",
        help="meshing resolution of the structures, mm (default 1)",
    )
    p.add_argument(
        "--out",
        type=output_file(".json"),
        required=True,
        metavar="OUT.json",
        help="output JSON file with the polygons, areas and settings",
    )
    p.add_argument("--json", action="store_true", help="also print the JSON on stdout")
    p.add_argument(
        "--svg", type=output_file(".svg"), default=None, metavar="FILE", help="SVG drawing (isocentre plane)"
    )
    p.add_argument(
        "--png", type=output_file(".png"), default=None, metavar="FILE", help="PNG drawing (isocentre plane)"
    )
    p.set_defaults(
        func=run,
        param_flags={
            "target_margin_mm": "--margin",
            "mill_radius_mm": "--mill-radius",
            "downstream_edge_mm": "--downstream-edge",
            "min_spacing_mm": "--mesh-spacing",
            "smoothing_iterations": "--iterations",
            "smoothing": "--smooth",
            "thickness_mm": "--thickness",
        },
    )


def _parse_organ(text: str) -> tuple[str, float, bool]:
    from intrepid.errors import ParameterError

    parts = text.split(":")
    occlude = False
    if len(parts) >= 3 and parts[-1].strip().lower() == "occlude":
        occlude = True
        parts = parts[:-1]
    if len(parts) < 2:
        raise ParameterError(f"--organ must be NAME:MARGIN[:occlude], got {text!r}")
    name, margin = ":".join(parts[:-1]), parts[-1]
    try:
        value = float(margin)
    except ValueError:
        raise ParameterError(f"--organ {text!r}: MARGIN must be a number of mm, got {margin!r}") from None
    return name, _in_range("--organ", text, "MARGIN", value, _ORGAN_MARGIN_MM, False), occlude


def _parse_centerline(text: str) -> tuple[str, float]:
    from intrepid.errors import ParameterError

    name, sep, width = text.rpartition(":")
    if not sep or not name:
        raise ParameterError(f"--centerline must be NAME:WIDTH, got {text!r}")
    try:
        value = float(width)
    except ValueError:
        raise ParameterError(f"--centerline {text!r}: WIDTH must be a number of mm, got {width!r}") from None
    return name, _in_range("--centerline", text, "WIDTH", value, _BAND_WIDTH_MM, True)


def _parse_mount(text: str) -> Any:
    from intrepid.devices import Mount
    from intrepid.errors import ParameterError

    parts = text.split(":")
    kind = parts[0].strip().lower()
    try:
        sizes = [float(v) for v in parts[1:]]
    except ValueError:
        sizes = []
    for v in sizes:
        _in_range("--mount", text, "the size", v, _MOUNT_MM, True)
    if kind == "circle" and len(sizes) == 1:
        return Mount.circle(sizes[0])
    if kind in ("rect", "rectangle") and len(sizes) == 2:
        return Mount.rectangle(sizes[0], sizes[1])
    raise ParameterError(f"--mount must be circle:R or rect:W:H (mm), got {text!r}")


def _geometry(args: argparse.Namespace) -> tuple[Any, float | None, float | None]:
    """BeamGeometry, plus the downstream edge and thickness from the plan's block (None without)."""
    from intrepid.devices import BeamGeometry, downstream_edge_from_tray
    from intrepid.dicom import BlockType, read_rtplan
    from intrepid.errors import ParameterError

    if args.plan is not None:
        given = [
            o
            for o, v in (("--gantry", args.gantry), ("--sad", args.sad), ("--isocenter", args.isocenter))
            if v is not None
        ]
        if given:
            raise ParameterError(f"{', '.join(given)} cannot be combined with --plan (the plan gives them)")
        if args.beam is None:
            raise ParameterError("--plan needs --beam N (beam number or name)")
        plan = read_rtplan(args.plan)
        key: int | str = int(args.beam) if str(args.beam).strip().isdigit() else str(args.beam)
        geometry = BeamGeometry.from_ion_plan(plan, key)
        beam = plan.beam(key)
        blocks = sorted(beam.blocks, key=lambda b: b.block_type is not BlockType.APERTURE)
        for block in blocks:
            if block.isocenter_to_block_tray_mm is not None:
                thickness = block.thickness_mm or 0.0
                edge = downstream_edge_from_tray(
                    block.isocenter_to_block_tray_mm, thickness, block.mounting_position or "PATIENT_SIDE"
                )
                return geometry, edge, block.thickness_mm
        return geometry, None, None
    if args.beam is not None:
        raise ParameterError("--beam selects a beam of --plan; give --plan too (or drop --beam)")
    missing = [
        o
        for o, v in (("--gantry", args.gantry), ("--sad", args.sad), ("--isocenter", args.isocenter))
        if v is None
    ]
    if missing:
        raise ParameterError(f"without --plan, {', '.join(missing)} must be given")
    geometry = BeamGeometry(
        sad_mm=tuple(args.sad),
        gantry_deg=args.gantry,
        couch_deg=args.couch,
        collimator_deg=args.collimator,
        isocenter_mm=tuple(args.isocenter),
        patient_position=args.patient_position,
    )
    return geometry, None, None


def run(args: argparse.Namespace) -> int:
    """Execute ``intrepid aperture``."""

    from intrepid.devices import (
        ApertureCenterline,
        ApertureOrgan,
        ApertureSettings,
        CornerPlane,
        HalfPlane,
        MillMode,
        design_aperture,
        read_override_file,
        target_mesh_from_roi,
    )
    from intrepid.dicom import read_ct_series, read_rtstruct
    from intrepid.errors import FrameOfReferenceError, ParameterError

    geometry, plan_edge, plan_thickness = _geometry(args)
    edge = args.downstream_edge if args.downstream_edge is not None else plan_edge
    if edge is None:
        raise ParameterError("--downstream-edge MM is required (the plan gives no block tray distance)")
    thickness = args.thickness if args.thickness is not None else plan_thickness
    organs_spec = [_parse_organ(t) for t in args.organ]
    bands_spec = [_parse_centerline(t) for t in args.centerline]
    overrides = []
    for text in args.override:
        file_part, sep, mode = text.rpartition(":")
        if not sep or mode.strip().lower() not in ("add", "limit"):
            raise ParameterError(f"--override must be FILE:add or FILE:limit, got {text!r}")
        overrides.extend(read_override_file(Path(file_part), mode))
    settings = ApertureSettings(
        downstream_edge_mm=edge,
        target_margin_mm=args.margin,
        mill_radius_mm=args.mill_radius,
        mill_mode=MillMode(args.mill_mode),
        smoothing=args.smooth,
        smoothing_iterations=args.iterations if args.smooth > 0 else 0,
        keep_islands=args.keep_islands,
        mount=_parse_mount(args.mount) if args.mount else None,
        half_planes=tuple(HalfPlane((h[0], h[1]), h[2]) for h in args.half_plane),
        corner_planes=tuple(CornerPlane((c[0], c[1]), c[2], c[3]) for c in args.corner_plane),
        thickness_mm=thickness,
    )

    if args.ct.suffix.lower() == ".mat":
        return _run_phantom(args, geometry, settings, organs_spec, bands_spec, overrides)
    if args.struct is None:
        raise ParameterError(
            "--struct RTSTRUCT is required with a CT series (only a .mat phantom holds its own)"
        )
    ct = read_ct_series(args.ct)
    structures = read_rtstruct(args.struct)
    ct_uid = ct.frame_of_reference_uid

    def mesh(name: str) -> Any:
        roi = structures.roi(name)
        if ct_uid and roi.frame_of_reference_uid and roi.frame_of_reference_uid != ct_uid:
            raise FrameOfReferenceError(
                f"{args.struct}: ROI {name!r} is in Frame of Reference {roi.frame_of_reference_uid} "
                f"but the CT {args.ct} is in {ct_uid}"
            )
        return target_mesh_from_roi(roi, min_spacing_mm=args.mesh_spacing)

    targets = [mesh(n) for n in args.target]
    organs = [ApertureOrgan(mesh(n), m, occ, n) for n, m, occ in organs_spec]
    bands = [ApertureCenterline(mesh(n), w, n) for n, w in bands_spec]
    result = design_aperture(
        targets, geometry, settings, organs=organs, centerlines=bands, overrides=overrides
    )

    return _finish(args, result, ct, geometry, ct_uid)


def _run_phantom(
    args: argparse.Namespace, geometry: Any, settings: Any, organs_spec: list[tuple[str, float, bool]],
    bands_spec: list[tuple[str, float]], overrides: list[Any],
) -> int:
    """``aperture --ct PHANTOM.mat``: the structures come from the phantom's masks (iso-surface at 0.5)."""
    import numpy as np

    from intrepid.devices import ApertureCenterline, ApertureOrgan, design_aperture
    from intrepid.dicom import read_matrad_phantom
    from intrepid.errors import ParameterError
    from intrepid.geometry import isosurface_mesh

    if args.struct is not None:
        raise ParameterError(
            "--struct cannot be combined with a .mat phantom (the phantom holds the structures)"
        )
    phantom = read_matrad_phantom(args.ct)

    def mesh(name: str) -> Any:
        if name not in phantom.structures:
            raise ParameterError(f"{args.ct}: no structure {name!r}; available: {sorted(phantom.structures)}")
        mask = phantom.structures[name]
        return isosurface_mesh(mask.with_array(np.asarray(mask.array, dtype=np.float32)), 0.5, pad=True)

    targets = [mesh(n) for n in args.target]
    organs = [ApertureOrgan(mesh(n), m, occ, n) for n, m, occ in organs_spec]
    bands = [ApertureCenterline(mesh(n), w, n) for n, w in bands_spec]
    result = design_aperture(
        targets, geometry, settings, organs=organs, centerlines=bands, overrides=overrides
    )
    return _finish(args, result, phantom.ct, geometry, phantom.ct.frame_of_reference_uid)


def _finish(args: argparse.Namespace, result: Any, ct: Any, geometry: Any, ct_uid: str | None) -> int:
    """Write --out, --svg and --png together (all or nothing), print what was written."""
    import numpy as np

    from intrepid.devices import aperture_png, aperture_svg
    from intrepid.dicom import all_or_nothing, atomic_write

    data = result.to_dict()
    iso_inside = bool(ct.grid.contains(np.asarray([geometry.isocenter_mm]))[0])
    data["inputs"] = {
        "ct": str(args.ct),
        "struct": str(args.struct),
        "plan": None if args.plan is None else str(args.plan),
        "beam": args.beam,
        "targets": list(args.target),
        "frame_of_reference_uid": ct_uid,
        "isocenter_inside_ct": iso_inside,
        "mesh_spacing_mm": args.mesh_spacing,
    }
    if not iso_inside:
        data["warnings"].append("the isocentre lies outside the CT volume")
    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    with all_or_nothing():
        atomic_write(args.out, write)
        if args.svg is not None:
            aperture_svg(result, args.svg)
        if args.png is not None:
            aperture_png(result, args.png)
    if args.json:
        write_json(data)
    written = [str(p) for p in (args.out, args.svg, args.png) if p is not None]
    sys.stderr.write(f"wrote {', '.join(written)}\n")
    return 0
