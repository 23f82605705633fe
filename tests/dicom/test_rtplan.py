"""Tests of the RT Plan / RT Ion Plan reader."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from intrepid.dicom import (
    BeamLimitingDeviceType,
    BeamType,
    BlockType,
    IonBlock,
    RotationDirection,
    read_rtplan,
)
from intrepid.errors import DicomError, ParameterError
from intrepid.geometry import PatientPosition

RTPLAN_CLASS = "1.2.840.10008.5.1.4.1.1.481.5"
RTIONPLAN_CLASS = "1.2.840.10008.5.1.4.1.1.481.8"


def _item(**kw: object) -> Dataset:
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def _photon_plan(path: Path, edit: Callable[[Dataset], None] | None = None) -> Path:
    """A 3-control-point dynamic photon arc with MLC; later control points omit unchanged values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTPLAN_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = RTPLAN_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTPLAN"
    ds.RTPlanLabel = "ARC"
    ds.FrameOfReferenceUID = "1.2.3.4"
    ds.PatientSetupSequence = DicomSequence([_item(PatientSetupNumber=1, PatientPosition="FFP")])
    ds.FractionGroupSequence = DicomSequence([_item(
        FractionGroupNumber=1, NumberOfFractionsPlanned=5, NumberOfBeams=1,
        ReferencedBeamSequence=DicomSequence(
            [_item(ReferencedBeamNumber=3, BeamMeterset=200.0, BeamDose=2.0)]
        ),
    )])
    devices = DicomSequence([
        _item(RTBeamLimitingDeviceType="ASYMX", NumberOfLeafJawPairs=1),
        _item(RTBeamLimitingDeviceType="ASYMY", NumberOfLeafJawPairs=1),
        _item(RTBeamLimitingDeviceType="MLCX", NumberOfLeafJawPairs=3,
              LeafPositionBoundaries=[-15, -5, 5, 15]),
    ])
    cp0 = _item(
        ControlPointIndex=0, NominalBeamEnergy=6, GantryAngle=180.0, GantryRotationDirection="CW",
        BeamLimitingDeviceAngle=10.0, PatientSupportAngle=270.0, IsocenterPosition=[1.0, 2.0, 3.0],
        CumulativeMetersetWeight=0.0,
        BeamLimitingDevicePositionSequence=DicomSequence([
            _item(RTBeamLimitingDeviceType="ASYMX", LeafJawPositions=[-50, 50]),
            _item(RTBeamLimitingDeviceType="ASYMY", LeafJawPositions=[-40, 40]),
            _item(RTBeamLimitingDeviceType="MLCX", LeafJawPositions=[-1, -2, -3, 1, 2, 3]),
        ]),
    )
    cp1 = _item(ControlPointIndex=1, GantryAngle=270.0, CumulativeMetersetWeight=0.5,
                BeamLimitingDevicePositionSequence=DicomSequence([
                    _item(RTBeamLimitingDeviceType="MLCX", LeafJawPositions=[-4, -5, -6, 4, 5, 6])]))
    cp2 = _item(ControlPointIndex=2, GantryAngle=0.0, CumulativeMetersetWeight=1.0)
    beam = _item(
        BeamNumber=3, BeamName="Arc", BeamType="DYNAMIC", RadiationType="PHOTON", PrimaryDosimeterUnit="MU",
        TreatmentDeliveryType="TREATMENT", SourceAxisDistance=1000.0, FinalCumulativeMetersetWeight=1.0,
        NumberOfControlPoints=3, BeamLimitingDeviceSequence=devices,
        ControlPointSequence=DicomSequence([cp0, cp1, cp2]), ReferencedPatientSetupNumber=1,
        BlockSequence=DicomSequence([_item(
            BlockNumber=1, BlockName="shield", BlockType="SHIELDING", BlockDivergence="PRESENT",
            SourceToBlockTrayDistance=650.0, BlockThickness=70.0, BlockTransmission=0.03,
            BlockNumberOfPoints=3, BlockData=[0, 0, 10, 0, 0, 10], MaterialID="CERROBEND",
        )]),
        WedgeSequence=DicomSequence([_item(WedgeNumber=1, WedgeID="W30", WedgeType="STANDARD",
                                           WedgeAngle=30, WedgeOrientation=90, WedgeFactor=0.6)]),
    )
    ds.BeamSequence = DicomSequence([beam])
    if edit is not None:
        edit(ds)
    ds.save_as(path, enforce_file_format=True)
    return path


def _ion_plan(path: Path) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTIONPLAN_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = RTIONPLAN_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTPLAN"
    ds.FractionGroupSequence = DicomSequence([_item(
        FractionGroupNumber=1, NumberOfFractionsPlanned=30,
        ReferencedBeamSequence=DicomSequence([_item(ReferencedBeamNumber=1, BeamMeterset=150.0)]),
    )])
    thickness = np.arange(6, dtype=float).reshape(2, 3) * 1.5
    comp = _item(
        CompensatorNumber=1, CompensatorID="RC1", CompensatorRows=2, CompensatorColumns=3,
        CompensatorPixelSpacing=[2.0, 2.5], CompensatorPosition=[-3.75, 2.0],
        CompensatorThicknessData=thickness.reshape(-1).tolist(), CompensatorRelativeStoppingPowerRatio=1.165,
        CompensatorMillingToolDiameter=4.0, IsocenterToCompensatorTrayDistance=250.0,
        IsocenterToCompensatorDistances=(250.0 + thickness).reshape(-1).tolist(),
        CompensatorMountingPosition="PATIENT_SIDE", CompensatorDivergence="PRESENT", MaterialID="PMMA",
    )
    cps = DicomSequence([
        _item(ControlPointIndex=0, NominalBeamEnergy=160.0, GantryAngle=45.0, BeamLimitingDeviceAngle=0.0,
              PatientSupportAngle=0.0, IsocenterPosition=[0, 0, 0], CumulativeMetersetWeight=0.0,
              SnoutPosition=300.0,
              RangeShifterSettingsSequence=DicomSequence([_item(
                  ReferencedRangeShifterNumber=1, RangeShifterSetting="IN",
                  RangeShifterWaterEquivalentThickness=40.0, IsocenterToRangeShifterDistance=280.0)])),
        _item(ControlPointIndex=1, CumulativeMetersetWeight=1.0),
    ])
    beam = _item(
        BeamNumber=1, BeamName="P1", BeamType="STATIC", RadiationType="PROTON", PrimaryDosimeterUnit="MU",
        TreatmentDeliveryType="TREATMENT", VirtualSourceAxisDistances=[2300.0, 1900.0],
        FinalCumulativeMetersetWeight=1.0, NumberOfControlPoints=2, IonControlPointSequence=cps,
        IonRangeCompensatorSequence=DicomSequence([comp]),
        RangeShifterSequence=DicomSequence([_item(RangeShifterNumber=1, RangeShifterID="RS40",
                                                  RangeShifterType="BINARY")]),
        SnoutSequence=DicomSequence([_item(SnoutID="S1")]),
    )
    ds.IonBeamSequence = DicomSequence([beam])
    ds.save_as(path, enforce_file_format=True)
    return path


def test_pydicom_rtplan() -> None:
    plan = read_rtplan(get_testdata_file("rtplan.dcm"))
    assert (plan.label, plan.patient_position, plan.is_ion) == ("Plan1", PatientPosition.HFS, False)
    assert plan.frame_of_reference_uid is None
    fg = plan.fraction_groups[0]
    assert fg.fractions_planned == 30 and fg.referenced_beams[0].beam_dose_gy == pytest.approx(1.0275401)
    beam = plan.beam(1)
    assert beam is plan.beam("FIELD 1")
    assert (beam.radiation_type, beam.beam_type, beam.sad_mm) == ("PHOTON", BeamType.STATIC, (1000.0, 1000.0))
    assert (beam.nominal_energy, beam.energy_unit, beam.primary_dosimeter_unit) == (6.0, "MV", "MU")
    assert beam.meterset == pytest.approx(116.0036697)
    cp0, cp1 = beam.control_points
    # The second control point carries only its weight: everything else is inherited.
    assert cp1.gantry_deg == 0.0
    assert cp1.isocenter_mm == pytest.approx((235.7111728, 244.1354371, -724.9781541))
    assert cp1.jaw_x_mm == (-100.0, 100.0) and cp1.jaw_y_mm == (-100.0, 100.0) and cp1.mlc_mm is None
    assert cp0.meterset == 0.0 and cp1.meterset == pytest.approx(116.0036697)
    assert [d.device_type for d in beam.devices] == [BeamLimitingDeviceType.X, BeamLimitingDeviceType.Y]


def test_truncated_and_wrong_modality() -> None:
    path = get_testdata_file("rtplan_truncated.dcm")
    # refused by the dataset check (value multiplicity) before the plan is interpreted
    expected = r"rtplan_truncated\.dcm: BeamSequence\[0\] > .*IsocenterPosition has 2 value\(s\)"
    with pytest.raises(DicomError, match=expected):
        read_rtplan(path)
    with pytest.raises(DicomError, match="Modality is 'RTSTRUCT', expected RTPLAN"):
        read_rtplan(get_testdata_file("rtstruct.dcm"))


def test_inheritance_devices_blocks_wedges(tmp_path: Path) -> None:
    plan = read_rtplan(_photon_plan(tmp_path / "p.dcm"))
    assert plan.patient_position is PatientPosition.FFP and plan.frame_of_reference_uid == "1.2.3.4"
    beam = plan.beams[0]
    assert beam.patient_position is PatientPosition.FFP and beam.beam_type is BeamType.DYNAMIC
    cps = beam.control_points
    assert [c.gantry_deg for c in cps] == [180.0, 270.0, 0.0]
    assert all(c.collimator_deg == 10.0 and c.couch_deg == 270.0 for c in cps)
    assert all(c.gantry_rotation_direction is RotationDirection.CW for c in cps)
    assert all(c.isocenter_mm == (1.0, 2.0, 3.0) and c.nominal_energy == 6.0 for c in cps)
    # Jaws inherited from CP 0 throughout; the MLC changes at CP 1 and is inherited by CP 2.
    assert cps[2].jaw_x_mm == (-50.0, 50.0) and cps[2].jaw_y_mm == (-40.0, 40.0)
    np.testing.assert_array_equal(cps[0].mlc_mm, [[-1, -2, -3], [1, 2, 3]])
    np.testing.assert_array_equal(cps[2].mlc_mm, [[-4, -5, -6], [4, 5, 6]])
    assert [c.meterset for c in cps] == [0.0, 100.0, 200.0]
    mlc = beam.device(BeamLimitingDeviceType.MLCX)
    assert mlc is not None and mlc.leaf_widths_mm.tolist() == [10, 10, 10]
    block = beam.blocks[0]
    assert not isinstance(block, IonBlock) and block.block_type is BlockType.SHIELDING and block.divergent
    assert block.points_mm.tolist() == [[0, 0], [10, 0], [0, 10]] and block.source_to_block_tray_mm == 650.0
    assert beam.wedges[0].angle_deg == 30.0 and beam.wedges[0].factor == 0.6
    summary = plan.summary()
    assert summary["beams"][0]["control_points"] == 3 and summary["beams"][0]["meterset"] == 200.0
    assert summary["beams"][0]["devices"][2] == {"type": "MLCX", "pairs": 3}
    with pytest.raises(ParameterError, match=r"no beam 9 in the plan; available: 3 'Arc'"):
        plan.beam(9)


def test_ion_plan_with_compensator(tmp_path: Path) -> None:
    plan = read_rtplan(_ion_plan(tmp_path / "ion.dcm"))
    beam = plan.beams[0]
    assert plan.is_ion and beam.is_ion and beam.sad_mm == (2300.0, 1900.0)
    assert (beam.radiation_type, beam.energy_unit, beam.nominal_energy) == ("PROTON", "MeV", 160.0)
    assert beam.snout_id == "S1" and beam.range_shifters[0].id == "RS40"
    cp1 = beam.control_points[1]
    assert cp1.snout_position_mm == 300.0 and cp1.gantry_deg == 45.0  # inherited
    assert cp1.range_shifter_settings[0].water_equivalent_thickness_mm == 40.0
    comp = beam.range_compensators[0]
    np.testing.assert_allclose(comp.thickness_mm, np.arange(6).reshape(2, 3) * 1.5)
    assert comp.pixel_spacing_mm == (2.0, 2.5) and comp.position_mm == (-3.75, 2.0)
    assert comp.relative_stopping_power == pytest.approx(1.165) and comp.milling_tool_diameter_mm == 4.0
    assert comp.isocenter_to_compensator_tray_mm == 250.0 and comp.divergent
    np.testing.assert_allclose(comp.isocenter_to_compensator_distances_mm, 250 + comp.thickness_mm)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ds: delattr(ds.BeamSequence[0], "SourceAxisDistance"), r"missing required tag \(300A,00B4\)"),
        (lambda ds: setattr(ds.BeamSequence[0].ControlPointSequence[0], "IsocenterPosition", [1.0, 2.0]),
         r"ControlPointSequence\[0\] > \(300A,012C\) IsocenterPosition has 2 value\(s\), the DICOM standard "
         r"requires 3"),
        (lambda ds: delattr(ds.BeamSequence[0].ControlPointSequence[0], "GantryAngle"),
         r"missing \(300A,011E\) GantryAngle \(required in the first control point\)"),
        (lambda ds: setattr(ds.BeamSequence[0], "BeamType", "WOBBLY"),
         r"BeamType is 'WOBBLY', expected one of STATIC, DYNAMIC"),
        (lambda ds: setattr(ds.BeamSequence[0].ControlPointSequence[1].BeamLimitingDevicePositionSequence[0],
                            "LeafJawPositions", [1.0, 2.0]),
         r"control point 1: .*LeafJawPositions of MLCX has 2 values, expected 6"),
        (lambda ds: setattr(ds.BeamSequence[0].BlockSequence[0], "BlockNumberOfPoints", 4),
         r"block 1: .*BlockNumberOfPoints is 4 but .*BlockData holds 3 points"),
        (lambda ds: setattr(ds.PatientSetupSequence[0], "PatientPosition", "XYZ"),
         r"Patient Position .* must be one of"),
    ],
)
def test_bad_plans(tmp_path: Path, edit: Callable[[Dataset], None], message: str) -> None:
    path = _photon_plan(tmp_path / "bad.dcm", edit)
    with pytest.raises(DicomError, match=message) as info:
        read_rtplan(path)
    assert "bad.dcm" in str(info.value)


# ----------------------------------------------------------------------------------------------- real data
@pytest.mark.external
def test_dicompyler_plan(external_data: Path) -> None:
    plan = read_rtplan(external_data / "dicompyler-example" / "rtplan.dcm")
    assert len(plan.beams) == 4 and plan.fraction_groups[0].fractions_planned == 7
    assert [round(b.gantry_deg) for b in plan.beams] == [327, 0, 56, 150]
    assert sorted({b.nominal_energy for b in plan.beams}) == [6.0, 10.0]
    assert [b.meterset for b in plan.beams] == [97.0, 87.0, 89.0, 94.0]
    for beam in plan.beams:
        assert 92 <= beam.number_of_control_points <= 103 and beam.sad_mm == (1000.0, 1000.0)
        assert beam.beam_type is BeamType.DYNAMIC
        mlc = beam.device("MLCX")
        assert mlc is not None and mlc.number_of_pairs == 60 and mlc.leaf_boundaries_mm.size == 61
        assert all(cp.mlc_mm.shape == (2, 60) and cp.jaw_x_mm is not None for cp in beam.control_points)
        # Leaves never cross (bank A <= bank B) at any control point.
        assert all(np.all(cp.mlc_mm[0] <= cp.mlc_mm[1] + 1e-6) for cp in beam.control_points)
        assert beam.control_points[-1].meterset == pytest.approx(beam.meterset)


@pytest.mark.external
def test_ion_plan_aperture(external_data: Path) -> None:
    plan = read_rtplan(external_data / "ion-plan" / "rtip_demo.dcm")
    beam = plan.beams[0]
    assert plan.is_ion and beam.sad_mm == (1800.0, 2000.0) and beam.nominal_energy == pytest.approx(155.03)
    assert beam.number_of_control_points == 24 and beam.primary_dosimeter_unit == "NP"
    block = beam.blocks[0]
    assert isinstance(block, IonBlock) and block.block_type is BlockType.APERTURE
    assert block.points_mm.shape == (72, 2) and block.thickness_mm == 30.0
    assert block.isocenter_to_block_tray_mm == pytest.approx(192.27, abs=1e-3)
    assert block.mounting_position == "PATIENT_SIDE" and not block.divergent
    assert beam.range_shifters[0].id == "40mm"
    assert all(cp.gantry_deg == 90.0 for cp in beam.control_points)
    assert beam.control_points[5].spot_positions_mm is not None
