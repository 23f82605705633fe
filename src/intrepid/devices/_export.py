"""Export of apertures and range compensators: DICOM RT Ion Plan devices, milling CSV and STL.

RT Ion Plan
-----------
One ion beam (passive scattering, Scan Mode ``NONE``) with two control points, the beam geometry (Virtual
Source-Axis Distances, gantry, collimator, couch, isocentre, patient position) and:

* **Ion Block Sequence** — one ``APERTURE`` block per polygon of the opening, Block Data = the outline at
  the *isocentre plane* in the beam-limiting-device frame (as :func:`~intrepid.dicom.read_rtplan` documents
  it), divergent, mounted patient side at Isocenter to Block Tray Distance = the aperture's downstream edge.
  Holes of the opening cannot be written as Block Data and are reported in a warning.
* **Ion Range Compensator Sequence** — Compensator Rows / Columns, Thickness Data (mm, row by row),
  Pixel Spacing (row, column) and Position (x, y of the *upper-left corner of the first pixel*), both
  projected to the isocentre plane, Relative Stopping Power Ratio, Milling Tool Diameter, Isocenter to
  Compensator Tray Distance (the downstream face) and, per pixel, Isocenter to Compensator Distances to the
  milled, source-side surface (tray distance + thickness, patient-side mounting).

The plan joins a reference (its patient, study, Frame of Reference and, for an ion plan, the beam's machine
and energy) when one is given.

Milling
-------
CSV: one line per pixel ``row, column, x_mm, y_mm, thickness_mm`` with x, y at the compensator plane (true
size). STL: a closed, watertight solid at true size (mm): the milled surface over the pixel centres, a flat
base at ``z = 0`` (the tray side) and four side walls; binary by default.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.devices._beam_geometry import BeamGeometry
from intrepid.devices._compensator import CompensatorResult
from intrepid.errors import ParameterError

__all__ = [
    "compensator_surface_mesh",
    "write_compensator_csv",
    "write_compensator_stl",
    "write_ion_plan_devices",
]

_log = logging.getLogger(__name__)


def _ds(value: float) -> str:
    from pydicom.valuerep import format_number_as_ds

    return str(format_number_as_ds(float(value)))


def _block_items(
    aperture: Any, aperture_distance_mm: float | None, block_thickness_mm: float, material: str
) -> list[Any]:
    from pydicom.dataset import Dataset
    from shapely.geometry import MultiPolygon, Polygon

    geom = getattr(aperture, "opening_iso", aperture)
    if not isinstance(geom, (Polygon, MultiPolygon)) or geom.is_empty:
        raise ParameterError(
            "aperture must be an ApertureResult or a non-empty shapely (Multi)Polygon at the isocentre plane"
        )
    if aperture_distance_mm is None:
        settings = getattr(aperture, "settings", None)
        aperture_distance_mm = getattr(settings, "downstream_edge_mm", None)
    if aperture_distance_mm is None:
        raise ParameterError(
            "aperture_distance_mm is required with a shapely aperture (isocentre to the "
            "aperture's downstream face, mm)"
        )
    polys = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    items = []
    for n, poly in enumerate(polys, start=1):
        if len(poly.interiors):
            _log.warning(
                "aperture polygon %d has %d holes: Block Data holds only the outline", n, len(poly.interiors)
            )
        pts = np.asarray(poly.exterior.coords)[:-1]
        item = Dataset()
        item.BlockTrayID = "INTREPID"
        item.IsocenterToBlockTrayDistance = float(aperture_distance_mm)
        item.BlockType = "APERTURE"
        item.BlockDivergence = "PRESENT"
        item.BlockMountingPosition = "PATIENT_SIDE"
        item.BlockNumber = n
        item.BlockName = f"APERTURE {n}"
        item.MaterialID = material
        item.BlockThickness = _ds(block_thickness_mm)
        item.BlockNumberOfPoints = int(pts.shape[0])
        item.BlockData = [_ds(v) for v in pts.reshape(-1)]
        items.append(item)
    return items


def _compensator_item(comp: CompensatorResult, milling_tool_diameter_mm: float | None) -> Any:
    from pydicom.dataset import Dataset

    rows, cols = comp.shape
    sr, sc = comp.pixel_spacing_iso_mm
    x0, y0 = comp.first_pixel_iso_mm
    item = Dataset()
    item.CompensatorDescription = "InTrEPID range compensator"
    item.CompensatorNumber = 1
    item.MaterialID = comp.material.name[:16]
    item.CompensatorID = "RC1"
    item.IsocenterToCompensatorTrayDistance = float(comp.isocenter_to_compensator_mm)
    item.CompensatorDivergence = "PRESENT"
    item.CompensatorMountingPosition = "PATIENT_SIDE"
    item.CompensatorRows = rows
    item.CompensatorColumns = cols
    item.CompensatorPixelSpacing = [_ds(sr), _ds(sc)]
    item.CompensatorPosition = [_ds(x0 - sc / 2.0), _ds(y0 + sr / 2.0)]
    item.CompensatorThicknessData = [_ds(round(float(v), 3)) for v in comp.thickness_mm.reshape(-1)]
    item.IsocenterToCompensatorDistances = [
        float(comp.isocenter_to_compensator_mm + v) for v in comp.thickness_mm.reshape(-1)
    ]
    item.CompensatorRelativeStoppingPowerRatio = float(comp.material.relative_stopping_power)
    tool = (
        milling_tool_diameter_mm
        if milling_tool_diameter_mm is not None
        else comp.settings.milling_tool_diameter_mm
    )
    if tool is not None:
        item.CompensatorMillingToolDiameter = float(tool)
    return item


def write_ion_plan_devices(
    path: str | os.PathLike[str],
    *,
    geometry: BeamGeometry,
    aperture: Any = None,
    compensator: CompensatorResult | None = None,
    reference_plan: str | os.PathLike[str] | None = None,
    beam_number: int = 1,
    beam_name: str = "INTREPID",
    nominal_energy_mev: float | None = None,
    aperture_distance_mm: float | None = None,
    block_thickness_mm: float = 50.0,
    block_material: str = "BRASS",
    milling_tool_diameter_mm: float | None = None,
    patient_id: str = "INTREPID",
    patient_name: str = "Anonymous^InTrEPID",
    frame_of_reference_uid: str | None = None,
    label: str = "INTREPID DEVICES",
) -> Path:
    """Write a DICOM RT Ion Plan holding an aperture (Ion Block Sequence) and / or a range compensator.

    Parameters
    ----------
    path : path-like
        Output file (written atomically).
    geometry : BeamGeometry
        Virtual source distances, angles, isocentre and patient position of the beam.
    aperture : ApertureResult or shapely (Multi)Polygon, optional
        The opening at the isocentre plane (beam x, y mm).
    compensator : CompensatorResult, optional
    reference_plan : path-like, optional
        An RT (Ion) Plan whose patient, study and Frame of Reference the new plan joins; for an ion plan
        the beam ``beam_number`` (if present) also gives the machine name and the energy.
    beam_number, beam_name : int, str
    nominal_energy_mev : float, optional
        Nominal Beam Energy of the control points (MeV).
    aperture_distance_mm : float, optional
        Isocenter to Block Tray Distance; default: the aperture's ``settings.downstream_edge_mm``.
    block_thickness_mm, block_material : float, str
        Block Thickness and Material ID of the aperture.
    milling_tool_diameter_mm : float, optional
        Overrides the compensator settings' value.
    patient_id, patient_name, frame_of_reference_uid : str
        Used without a reference plan.
    label : str
        RT Plan Label.

    Returns
    -------
    Path

    Raises
    ------
    ParameterError
        Neither an aperture nor a compensator; a shapely aperture without ``aperture_distance_mm``.
    DicomError
        The reference plan cannot be read.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import RTIonPlanStorage

    from intrepid.dicom._common import read_dataset
    from intrepid.dicom._patient import new_instance, save_instance

    if aperture is None and compensator is None:
        raise ParameterError("give an aperture, a compensator or both to export")
    if not isinstance(geometry, BeamGeometry):
        raise ParameterError(f"geometry must be a BeamGeometry, got {type(geometry).__name__}")
    study_uid = None
    machine = "INTREPID"
    energy = nominal_energy_mev
    if reference_plan is not None:
        ref = read_dataset(reference_plan, modality="RTPLAN", stop_before_pixels=True)
        patient_id = str(ref.get("PatientID", "") or patient_id)
        patient_name = str(ref.get("PatientName", "") or patient_name)
        study_uid = ref.get("StudyInstanceUID")
        frame_of_reference_uid = ref.get("FrameOfReferenceUID") or frame_of_reference_uid
        for b in ref.get("IonBeamSequence", []):
            if int(b.get("BeamNumber", -1)) == int(beam_number):
                machine = str(b.get("TreatmentMachineName", machine) or machine)
                cps = b.get("IonControlPointSequence", [])
                if energy is None and len(cps) and cps[0].get("NominalBeamEnergy") is not None:
                    energy = float(cps[0].NominalBeamEnergy)
    ds = new_instance(
        RTIonPlanStorage,
        "RTPLAN",
        patient_id=patient_id,
        patient_name=patient_name,
        study_instance_uid=study_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        series_description="InTrEPID proton devices",
    )
    ds.RTPlanLabel = label[:16]
    ds.RTPlanName = label[:64]
    ds.RTPlanDate, ds.RTPlanTime = ds.ContentDate, ds.ContentTime
    ds.RTPlanGeometry = "PATIENT"
    setup = Dataset()
    setup.PatientPosition = geometry.patient_position.value
    setup.PatientSetupNumber = 1
    ds.PatientSetupSequence = DicomSequence([setup])
    fg = Dataset()
    fg.FractionGroupNumber = 1
    fg.NumberOfFractionsPlanned = 1
    fg.NumberOfBeams = 1
    fg.NumberOfBrachyApplicationSetups = 0
    rb = Dataset()
    rb.ReferencedBeamNumber = int(beam_number)
    fg.ReferencedBeamSequence = DicomSequence([rb])
    ds.FractionGroupSequence = DicomSequence([fg])

    beam = Dataset()
    beam.BeamNumber = int(beam_number)
    beam.BeamName = beam_name[:64]
    beam.BeamType = "STATIC"
    beam.RadiationType = "PROTON"
    beam.TreatmentDeliveryType = "TREATMENT"
    beam.TreatmentMachineName = machine[:64]
    beam.PrimaryDosimeterUnit = "MU"
    beam.ScanMode = "NONE"
    beam.VirtualSourceAxisDistances = [float(geometry.sad_mm[0]), float(geometry.sad_mm[1])]
    beam.ReferencedPatientSetupNumber = 1
    beam.NumberOfWedges = 0
    beam.NumberOfBoli = 0
    beam.NumberOfRangeShifters = 0
    beam.NumberOfLateralSpreadingDevices = 0
    beam.NumberOfRangeModulators = 0
    beam.PatientSupportType = "TABLE"
    blocks = (
        []
        if aperture is None
        else _block_items(aperture, aperture_distance_mm, block_thickness_mm, block_material)
    )
    beam.NumberOfBlocks = len(blocks)
    if blocks:
        beam.IonBlockSequence = DicomSequence(blocks)
    beam.NumberOfCompensators = 0 if compensator is None else 1
    if compensator is not None:
        if not isinstance(compensator, CompensatorResult):
            raise ParameterError(f"compensator must be a CompensatorResult, got {type(compensator).__name__}")
        beam.IonRangeCompensatorSequence = DicomSequence(
            [_compensator_item(compensator, milling_tool_diameter_mm)]
        )
    beam.FinalCumulativeMetersetWeight = 1.0
    beam.NumberOfControlPoints = 2
    cps = []
    for n in range(2):
        cp = Dataset()
        cp.ControlPointIndex = n
        cp.CumulativeMetersetWeight = float(n)
        if n == 0:
            if energy is not None:
                cp.NominalBeamEnergy = float(energy)
            cp.GantryAngle = _ds(geometry.gantry_deg)
            cp.GantryRotationDirection = "NONE"
            cp.BeamLimitingDeviceAngle = _ds(geometry.collimator_deg)
            cp.BeamLimitingDeviceRotationDirection = "NONE"
            cp.PatientSupportAngle = _ds(geometry.couch_deg)
            cp.PatientSupportRotationDirection = "NONE"
            cp.IsocenterPosition = [_ds(v) for v in geometry.isocenter_mm]
        cps.append(cp)
    beam.IonControlPointSequence = DicomSequence(cps)
    ds.IonBeamSequence = DicomSequence([beam])
    ds.ApprovalStatus = "UNAPPROVED"
    out = save_instance(ds, path)
    _log.info(
        "wrote RT Ion Plan %s: %d aperture block(s), %d compensator(s)",
        out,
        len(blocks),
        beam.NumberOfCompensators,
    )
    return out


def write_compensator_csv(path: str | os.PathLike[str], compensator: CompensatorResult) -> Path:
    """Milling table: ``row, column, x_mm, y_mm, thickness_mm`` per pixel (x, y at the compensator plane)."""
    from intrepid.dicom._common import atomic_write

    xx, yy = compensator.ray_positions_mm("device")
    t = compensator.thickness_mm

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(
                f"# InTrEPID range compensator, material {compensator.material.name}, RSP "
                f"{compensator.material.relative_stopping_power:g}; x, y at the compensator plane "
                f"({compensator.isocenter_to_compensator_mm:g} mm from the isocentre), mm\n"
            )
            fh.write("row,column,x_mm,y_mm,thickness_mm\n")
            for r in range(t.shape[0]):
                for c in range(t.shape[1]):
                    fh.write(f"{r},{c},{xx[r, c]:.3f},{yy[r, c]:.3f},{t[r, c]:.3f}\n")

    return atomic_write(path, write)


def compensator_surface_mesh(compensator: CompensatorResult) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Closed triangle mesh of the compensator solid: vertices (n, 3) in mm and triangles (m, 3), outward.

    The top surface joins the pixel centres at height = thickness; the base is at z = 0; side walls close it.
    """
    xx, yy = compensator.ray_positions_mm("device")
    t = compensator.thickness_mm
    rows, cols = t.shape
    if rows < 2 or cols < 2:
        raise ParameterError(f"a compensator needs at least 2 x 2 pixels for a surface, got {rows} x {cols}")
    top = np.column_stack([xx.ravel(), yy.ravel(), t.ravel()])
    bottom = np.column_stack([xx.ravel(), yy.ravel(), np.zeros(t.size)])
    verts = np.vstack([top, bottom])
    nb = t.size
    idx = np.arange(nb).reshape(rows, cols)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    # rows run towards -y, columns towards +x: (a, c, b) is counter-clockwise seen from +z
    tris = [np.column_stack([a, c, b]), np.column_stack([b, c, d])]
    tris += [np.column_stack([a, b, c]) + nb, np.column_stack([b, d, c]) + nb]
    ring = np.concatenate([idx[0, :], idx[1:, -1], idx[-1, -2::-1], idx[-2:0:-1, 0]])  # clockwise from +z
    p, q = ring, np.roll(ring, -1)
    tris += [np.column_stack([p, q, p + nb]), np.column_stack([q, q + nb, p + nb])]
    faces = np.vstack(tris).astype(np.int64)
    return verts, faces


def write_compensator_stl(
    path: str | os.PathLike[str], compensator: CompensatorResult, *, binary: bool = True
) -> Path:
    """Write the compensator solid as an STL file (mm, true size, closed; binary or ASCII)."""
    from intrepid.dicom._common import atomic_write

    verts, faces = compensator_surface_mesh(compensator)
    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)

    def write(tmp: Path) -> None:
        if binary:
            rec = np.zeros(len(faces), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
            rec["n"] = normals
            rec["v"] = tri
            with open(tmp, "wb") as fh:
                fh.write(b"InTrEPID range compensator (mm)".ljust(80, b" "))
                fh.write(struct.pack("<I", len(faces)))
                fh.write(rec.tobytes())
        else:
            with open(tmp, "w", encoding="ascii") as fh:
                fh.write("solid compensator\n")
                for nrm, tr in zip(normals, tri, strict=True):
                    fh.write(f"  facet normal {nrm[0]:.6e} {nrm[1]:.6e} {nrm[2]:.6e}\n    outer loop\n")
                    for v in tr:
                        fh.write(f"      vertex {v[0]:.6e} {v[1]:.6e} {v[2]:.6e}\n")
                    fh.write("    endloop\n  endfacet\n")
                fh.write("endsolid compensator\n")

    return atomic_write(path, write)
