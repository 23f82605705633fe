"""Write a photon :class:`~intrepid.dicom.RTPlan` as a DICOM RT Plan file that reads back unchanged.

The writer is the inverse of :func:`intrepid.dicom.read_rtplan` for photon plans: one fraction group, one
patient set-up, beams with their beam-limiting devices (jaws ASYMX / ASYMY, MLCX with Leaf Position
Boundaries) and control points. Every control point carries the angles, the isocentre and all device
positions in full (no inheritance), which every TPS and the reader accept; Cumulative Meterset Weights go
from 0 to the Final Cumulative Meterset Weight and the Beam Meterset (MU) sits in the fraction group's
Referenced Beam Sequence (PS3.3 C.8.8.13-14).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import RTPlanStorage, RTStructureSetStorage
from pydicom.valuerep import format_number_as_ds

from intrepid.dicom._patient import new_instance, save_instance
from intrepid.dicom._rtplan import RTPlan
from intrepid.errors import ParameterError

__all__ = ["write_rtplan"]

_log = logging.getLogger(__name__)


def _ds(value: float) -> str:
    return str(format_number_as_ds(float(value)))


def _check(plan: RTPlan) -> None:
    if not isinstance(plan, RTPlan):
        raise ParameterError(f"plan must be an intrepid RTPlan, got {type(plan).__name__}")
    if plan.is_ion:
        raise ParameterError("write_rtplan writes photon plans; ion plans go through intrepid.devices")
    if not plan.beams:
        raise ParameterError("plan must hold at least one beam")
    numbers = [b.number for b in plan.beams]
    if len(set(numbers)) != len(numbers):
        raise ParameterError(f"beam numbers must be unique, got {numbers}")
    for b in plan.beams:
        if b.meterset is None or not np.isfinite(b.meterset) or b.meterset < 0:
            raise ParameterError(
                f"beam {b.number} {b.name!r}: meterset must be a finite MU >= 0, got {b.meterset}"
            )
        if len(b.control_points) < 2:
            raise ParameterError(f"beam {b.number} {b.name!r}: at least 2 control points are needed")
        w = [cp.cumulative_meterset_weight for cp in b.control_points]
        if w[0] != 0.0 or np.any(np.diff(w) < 0) or abs(w[-1] - b.final_cumulative_meterset_weight) > 1e-9:
            raise ParameterError(
                f"beam {b.number} {b.name!r}: cumulative meterset weights must rise from 0 to the final "
                f"weight {b.final_cumulative_meterset_weight}, got {w[0]} .. {w[-1]}"
            )


def write_rtplan(
    plan: RTPlan,
    path: str | os.PathLike[str],
    *,
    patient_id: str = "INTREPID",
    patient_name: str = "Anonymous^InTrEPID",
    study_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    structure_set_uid: str | None = None,
    prescription_gy: float | None = None,
    machine_name: str = "INTREPID_LINAC",
) -> Path:
    """Write a photon plan as an RT Plan file, atomically.

    Parameters
    ----------
    plan : RTPlan
        Photon beams with devices and control points (as :func:`intrepid.dicom.read_rtplan` returns them);
        each beam's ``meterset`` (MU) is written in the fraction group and ``beam_dose_gy`` as its Beam Dose.
    path : path-like
        Output file; its folder must exist.
    patient_id, patient_name : str
        Non-empty patient identification.
    study_instance_uid : str, optional
        Study to join (new by default).
    frame_of_reference_uid : str, optional
        Frame of Reference; default the plan's, else a new one.
    structure_set_uid : str, optional
        SOP Instance UID of the RT Structure Set the plan was made on (Referenced Structure Set Sequence).
    prescription_gy : float, optional
        Dose per fraction (Gy) written as Target Prescription Dose of a Dose Reference (× fractions).
    machine_name : str
        Treatment Machine Name.

    Returns
    -------
    Path
        The written file; its SOP Instance UID is the dataset's.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> from intrepid.dicom import read_rtplan
    >>> plan = read_rtplan(get_testdata_file("rtplan.dcm"))
    >>> write_rtplan(plan, "plan.dcm")  # doctest: +SKIP
    """
    _check(plan)
    ds = new_instance(
        RTPlanStorage, "RTPLAN", patient_id=patient_id, patient_name=patient_name,
        study_instance_uid=study_instance_uid,
        frame_of_reference_uid=frame_of_reference_uid or plan.frame_of_reference_uid,
        series_description=plan.label or "InTrEPID plan",
    )
    ds.SeriesNumber = 3
    ds.RTPlanLabel = (plan.label or "INTREPID")[:16]
    ds.RTPlanName = plan.name[:64]
    ds.RTPlanDate, ds.RTPlanTime = ds.StudyDate, ds.StudyTime
    ds.RTPlanGeometry = "PATIENT" if structure_set_uid else "TREATMENT_DEVICE"
    if structure_set_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = RTStructureSetStorage
        ref.ReferencedSOPInstanceUID = structure_set_uid
        ds.ReferencedStructureSetSequence = DicomSequence([ref])
    position = plan.patient_position.value if plan.patient_position else "HFS"
    setup = Dataset()
    setup.PatientSetupNumber = 1
    setup.PatientPosition = position
    ds.PatientSetupSequence = DicomSequence([setup])

    group = plan.fraction_groups[0] if plan.fraction_groups else None
    fractions = group.fractions_planned if group and group.fractions_planned else 1
    if prescription_gy is not None:
        dref = Dataset()
        dref.DoseReferenceNumber = 1
        dref.DoseReferenceStructureType = "SITE"
        dref.DoseReferenceType = "TARGET"
        dref.TargetPrescriptionDose = _ds(float(prescription_gy) * fractions)
        ds.DoseReferenceSequence = DicomSequence([dref])
    fg = Dataset()
    fg.FractionGroupNumber = 1
    fg.NumberOfFractionsPlanned = int(fractions)
    fg.NumberOfBeams = len(plan.beams)
    fg.NumberOfBrachyApplicationSetups = 0
    refs = []
    for b in plan.beams:
        rb = Dataset()
        rb.ReferencedBeamNumber = b.number
        rb.BeamMeterset = _ds(float(b.meterset or 0.0))
        if b.beam_dose_gy is not None:
            rb.BeamDose = _ds(b.beam_dose_gy)
        refs.append(rb)
    fg.ReferencedBeamSequence = DicomSequence(refs)
    ds.FractionGroupSequence = DicomSequence([fg])

    beams = []
    for b in plan.beams:
        item = Dataset()
        item.BeamNumber = b.number
        item.BeamName = b.name[:64]
        item.BeamType = b.beam_type.value
        item.RadiationType = b.radiation_type or "PHOTON"
        item.TreatmentDeliveryType = b.treatment_delivery_type or "TREATMENT"
        item.PrimaryDosimeterUnit = b.primary_dosimeter_unit or "MU"
        item.SourceAxisDistance = _ds(b.sad_mm[0])
        item.TreatmentMachineName = (b.treatment_machine_name or machine_name)[:64]
        item.ReferencedPatientSetupNumber = 1
        devices = []
        for d in b.devices:
            di = Dataset()
            di.RTBeamLimitingDeviceType = d.device_type.value
            di.NumberOfLeafJawPairs = int(d.number_of_pairs)
            if d.source_to_device_distance_mm is not None:
                di.SourceToBeamLimitingDeviceDistance = _ds(d.source_to_device_distance_mm)
            if d.leaf_boundaries_mm is not None:
                di.LeafPositionBoundaries = [_ds(v) for v in d.leaf_boundaries_mm]
            devices.append(di)
        item.BeamLimitingDeviceSequence = DicomSequence(devices)
        item.NumberOfWedges = 0
        item.NumberOfCompensators = 0
        item.NumberOfBoli = 0
        item.NumberOfBlocks = 0
        item.FinalCumulativeMetersetWeight = _ds(b.final_cumulative_meterset_weight)
        cps = []
        for n, cp in enumerate(b.control_points):
            ci = Dataset()
            ci.ControlPointIndex = n
            ci.CumulativeMetersetWeight = _ds(cp.cumulative_meterset_weight)
            if n == 0:
                ci.NominalBeamEnergy = _ds(cp.nominal_energy or b.nominal_energy or 6.0)
            ci.GantryAngle = _ds(cp.gantry_deg % 360.0)
            ci.GantryRotationDirection = cp.gantry_rotation_direction.value
            ci.BeamLimitingDeviceAngle = _ds(cp.collimator_deg % 360.0)
            ci.BeamLimitingDeviceRotationDirection = "NONE"
            ci.PatientSupportAngle = _ds(cp.couch_deg % 360.0)
            ci.PatientSupportRotationDirection = "NONE"
            ci.TableTopEccentricAngle = "0"
            ci.TableTopEccentricRotationDirection = "NONE"
            ci.IsocenterPosition = [_ds(v) for v in cp.isocenter_mm]
            positions = []
            for t, pos in cp.device_positions_mm.items():
                pi = Dataset()
                pi.RTBeamLimitingDeviceType = t.value
                pi.LeafJawPositions = [_ds(v) for v in np.asarray(pos, dtype=float).reshape(-1)]
                positions.append(pi)
            ci.BeamLimitingDevicePositionSequence = DicomSequence(positions)
            cps.append(ci)
        item.NumberOfControlPoints = len(cps)
        item.ControlPointSequence = DicomSequence(cps)
        beams.append(item)
    ds.BeamSequence = DicomSequence(beams)
    ds.ApprovalStatus = "UNAPPROVED"
    out = save_instance(ds, path)
    _log.info("wrote RTPLAN %s: %d beams, %.1f MU", out, len(plan.beams),
              sum(float(b.meterset or 0) for b in plan.beams))
    return out
