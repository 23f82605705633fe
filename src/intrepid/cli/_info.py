"""``intrepid info``: what is in a DICOM RT file, a CT folder, a NIfTI / NRRD / npz volume or a matRad
phantom (``.mat``).

JSON contract (``--json``; one object for one path, a list of objects for several):

- every entry: ``path``, ``modality``, ``format``;
- volumes (RTDOSE, CT, NIfTI, NRRD, npz): ``shape`` [slices, rows, columns], ``origin_mm``, ``spacing_mm``
  (x, y, z = column, row, slice), ``direction`` (3 × 3, columns = directions of the column, row and slice
  axes), ``units``, ``min``, ``max``, ``mean``; RTDOSE adds ``dose_units``, ``dose_type``, ``summation_type``,
  ``grid_frame_offset_convention``; CT adds ``series`` (the inspection report);
- RTIMAGE: ``rows``, ``columns``, ``pixel_spacing_mm`` (at the detector, [row, column]),
  ``pixel_spacing_iso_mm`` (× SAD / SID), ``sid_mm``, ``sad_mm``, ``gantry_deg`` (null when absent),
  ``vendor``, ``pixel_units`` and the signal statistics;
- RTPLAN: ``label``, ``fraction_groups`` and ``beams`` (each with ``number``, ``name``, ``gantry_deg``,
  ``collimator_deg``, ``couch_deg``, ``isocenter_mm``, ``sad_mm``, ``mu``, ``meterset``, ``control_points``,
  ``devices``...);
- RTSTRUCT: ``rois`` (each with ``name``, ``number``, ``type``, ``contours``...);
- CT folder: also ``other_files`` (``path``, ``modality`` of the non-CT DICOM files found there);
- matRad phantom (``.mat``): the CT volume keys and ``structures`` (``name``, ``type``, ``voxels``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from intrepid.cli._common import to_jsonable, write_json

__all__ = ["describe_path", "register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``info`` sub-command."""
    p = subparsers.add_parser(
        "info",
        help="describe DICOM RT files, CT folders, NIfTI / NRRD / npz volumes and matRad .mat phantoms",
        description=(
            "Describe each PATH: geometry (mm, LPS) and value statistics of volumes, EPID image geometry "
            "(detector and isocentre pixel spacing), plan beams (degrees, mm, MU) and structure ROIs."
        ),
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="file or CT folder")
    p.add_argument("--json", action="store_true", help="print JSON (see the README for the keys)")
    p.set_defaults(func=run)


def _volume_entry(volume: Any) -> dict[str, Any]:
    entry = volume.describe()
    entry.pop("quantity", None)
    entry.pop("frame_of_reference_uid", None)
    if volume.frame_of_reference_uid:
        entry["frame_of_reference_uid"] = volume.frame_of_reference_uid
    entry["quantity"] = volume.quantity.value
    return entry


def describe_path(path: Path) -> dict[str, Any]:
    """The ``intrepid info`` description of one path (see the module docstring for the keys)."""
    from intrepid import dicom
    from intrepid.dicom import VolumeFormat, volume_format

    if path.suffix.lower() == ".mat" and path.is_file():
        phantom = dicom.read_matrad_phantom(path)
        return {
            "path": str(path),
            "modality": "matRad phantom",
            "format": "mat",
            **_volume_entry(phantom.ct),
            "structures": [
                {"name": name, "type": phantom.structure_types.get(name, ""),
                 "voxels": int(mask.array.sum())}
                for name, mask in phantom.structures.items()
            ],
        }
    fmt = volume_format(path)
    if fmt is VolumeFormat.DICOM_FOLDER:
        report = dicom.inspect_ct_series(path)
        entry: dict[str, Any] = {"path": str(path), "modality": "CT", "format": "dicom-folder"}
        entry["series"] = report.to_dict()
        if report.ok:
            entry.update(_volume_entry(dicom.read_ct_series(path)))
        entry["other_files"] = _other_dicom_files(path)
        return entry
    if fmt is not VolumeFormat.DICOM:
        volume = dicom.read_volume(path)
        return {
            "path": str(path),
            "modality": volume.metadata.get("modality", "VOLUME"),
            "format": fmt.value,
            **_volume_entry(volume),
        }
    header = dicom.read_dataset(path, stop_before_pixels=True)
    modality = str(header.get("Modality", ""))
    base = {"path": str(path), "modality": modality, "format": "dicom"}
    if modality == "RTDOSE":
        dose = dicom.read_rtdose(path)
        return {
            **base,
            **_volume_entry(dose.volume),
            "dose_units": dose.dose_units,
            "dose_type": dose.dose_type,
            "summation_type": dose.summation_type,
            "grid_frame_offset_convention": dose.grid_frame_offset_convention.value,
        }
    if modality == "CT":
        return {**base, **_volume_entry(dicom.read_ct_series(path))}
    if modality == "RTIMAGE":
        image = dicom.read_rtimage(path)
        return {**base, **image.describe()}
    if modality == "RTPLAN":
        plan = dicom.read_rtplan(path).summary()
        for beam in plan.get("beams", []):
            unit = str(beam.get("meterset_unit") or "").upper()
            beam["mu"] = beam.get("meterset") if unit in ("MU", "") else None
        return {**base, **plan, "modality": "RTPLAN"}
    if modality == "RTSTRUCT":
        return {**base, **dicom.read_rtstruct(path).summary(), "modality": "RTSTRUCT"}
    return {**base, "note": f"modality {modality!r} is not described in detail"}


def _other_dicom_files(folder: Path) -> list[dict[str, str]]:
    """The non-CT DICOM files of a folder (RTPLAN, RTSTRUCT, RTDOSE...), with their modality."""
    from intrepid import dicom
    from intrepid.errors import DicomError

    out = []
    for f in sorted(folder.iterdir()):
        if not f.is_file():
            continue
        try:
            ds = dicom.read_dataset(f, stop_before_pixels=True)
        except DicomError:
            continue
        modality = str(ds.get("Modality", ""))
        if modality != "CT":
            out.append({"path": str(f), "modality": modality})
    return out


def _num(value: Any) -> str:
    """A number for people: 3 decimals at most, no trailing zeros, no '-0'."""
    if value is None:
        return "n/a"
    text = f"{round(float(value), 3):g}"
    return "0" if text == "-0" else text


def _print_human(entry: dict[str, Any]) -> None:
    print(f"{entry['path']}: {entry['modality']} ({entry['format']})")
    if "shape" in entry:
        print(
            f"  shape [slices, rows, columns] {entry['shape']}, spacing_mm (x, y, z) "
            f"{[round(v, 4) for v in entry['spacing_mm']]}, "
            f"origin_mm {[round(v, 3) for v in entry['origin_mm']]}"
        )
        if entry.get("max") is None:
            print(f"  values {entry.get('units') or ''}: none finite (every voxel is NaN)")
        else:
            print(
                f"  values {entry.get('units') or ''}: min {entry['min']:.6g}, max {entry['max']:.6g}, "
                f"mean {entry['mean']:.6g}"
            )
    if entry["modality"] == "RTIMAGE":
        print(
            f"  {entry['rows']} x {entry['columns']} pixels, {entry['pixel_spacing_mm']} mm at the detector, "
            f"{[round(v, 4) for v in entry['pixel_spacing_iso_mm']]} mm at the isocentre; "
            f"SID {entry['sid_mm']} mm, SAD {entry['sad_mm']} mm, gantry {entry['gantry_deg']}, "
            f"vendor {entry['vendor']}, units {entry['pixel_units']}"
        )
    for beam in entry.get("beams", []):
        iso = ", ".join(_num(v) for v in beam["isocenter_mm"])
        sad = ", ".join(_num(v) for v in beam["sad_mm"])
        devices = ", ".join(d["type"] for d in beam["devices"])
        print(
            f"  beam {beam['number']} {beam['name']!r}: gantry {_num(beam['gantry_deg'])}°, "
            f"collimator {_num(beam['collimator_deg'])}°, couch {_num(beam['couch_deg'])}°, "
            f"isocentre ({iso}) mm, SAD ({sad}) mm, MU {_num(beam.get('mu'))}, "
            f"{beam['control_points']} control points, devices {devices or 'none'}"
        )
        extras = [f"{beam[k]} {k.replace('_', ' ')}" for k in
                  ("blocks", "range_compensators", "range_shifters", "wedges") if beam.get(k)]
        if extras:
            print(f"    beam-modifying devices: {', '.join(extras)}")
    for roi in entry.get("rois", []):
        print(
            f"  ROI {roi.get('number')} {roi.get('name')!r} ({roi.get('type')}): "
            f"{roi.get('contours')} contours"
        )
    for st in entry.get("structures", []):
        print(f"  structure {st['name']!r} ({st['type']}): {st['voxels']} voxels")
    for other in entry.get("other_files", []):
        print(f"  also in the folder: {other['path']} ({other['modality']}); run `intrepid info` on it")
    series = entry.get("series")
    if series and series.get("problems"):
        for problem in series["problems"]:
            print(f"  problem: {problem}")


def run(args: argparse.Namespace) -> int:
    """Execute ``intrepid info``."""
    entries = [describe_path(p) for p in args.paths]
    if args.json:
        write_json(entries[0] if len(entries) == 1 else entries)
    else:
        for entry in entries:
            _print_human(to_jsonable(entry))
    return 0
