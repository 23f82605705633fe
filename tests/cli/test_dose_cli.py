"""Tests of ``intrepid dose``: JSON contract, RTDOSE outputs, comparison, and one-line errors on bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from intrepid.cli import main
from intrepid.dicom import read_volume, write_ct_series
from intrepid.dose import water_phantom

RTPLAN_CLASS = "1.2.840.10008.5.1.4.1.1.481.5"
BOUNDS = [float(v) for v in range(-100, 101, 10)]  # 20 leaf pairs of 10 mm


def _item(**kw: object) -> Dataset:
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def write_plan(
    path: Path,
    *,
    energy: float = 6.0,
    iso: tuple[float, float, float] = (0.0, 50.0, 0.0),
    jaw_y: tuple[float, float] = (-40.0, 40.0),
    edit: Callable[[Dataset], None] | None = None,
) -> Path:
    """A static 6 MV MLC beam (8 x 8 cm2), HFS, gantry 0, 100 MU."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTPLAN_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = RTPLAN_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTPLAN"
    ds.RTPlanLabel = "TEST"
    ds.PatientSetupSequence = DicomSequence([_item(PatientSetupNumber=1, PatientPosition="HFS")])
    ds.FractionGroupSequence = DicomSequence([_item(
        FractionGroupNumber=1, NumberOfFractionsPlanned=1, NumberOfBeams=1,
        ReferencedBeamSequence=DicomSequence([_item(ReferencedBeamNumber=1, BeamMeterset=100.0)]),
    )])  # fmt: skip
    n = len(BOUNDS) - 1
    leaves = [-40.0] * n + [40.0] * n
    devices = DicomSequence([
        _item(RTBeamLimitingDeviceType="ASYMX", NumberOfLeafJawPairs=1),
        _item(RTBeamLimitingDeviceType="ASYMY", NumberOfLeafJawPairs=1),
        _item(RTBeamLimitingDeviceType="MLCX", NumberOfLeafJawPairs=n, LeafPositionBoundaries=BOUNDS),
    ])  # fmt: skip
    cp0 = _item(
        ControlPointIndex=0, NominalBeamEnergy=energy, GantryAngle=0.0, GantryRotationDirection="NONE",
        BeamLimitingDeviceAngle=0.0, PatientSupportAngle=0.0, IsocenterPosition=list(iso),
        CumulativeMetersetWeight=0.0,
        BeamLimitingDevicePositionSequence=DicomSequence([
            _item(RTBeamLimitingDeviceType="ASYMX", LeafJawPositions=[-45.0, 45.0]),
            _item(RTBeamLimitingDeviceType="ASYMY", LeafJawPositions=list(jaw_y)),
            _item(RTBeamLimitingDeviceType="MLCX", LeafJawPositions=leaves),
        ]),
    )  # fmt: skip
    cp1 = _item(ControlPointIndex=1, CumulativeMetersetWeight=1.0)
    beam = _item(
        BeamNumber=1, BeamName="AP", BeamType="STATIC", RadiationType="PHOTON", PrimaryDosimeterUnit="MU",
        TreatmentDeliveryType="TREATMENT", SourceAxisDistance=1000.0, FinalCumulativeMetersetWeight=1.0,
        NumberOfControlPoints=2, BeamLimitingDeviceSequence=devices,
        ControlPointSequence=DicomSequence([cp0, cp1]), ReferencedPatientSetupNumber=1,
    )  # fmt: skip
    ds.BeamSequence = DicomSequence([beam])
    if edit is not None:
        edit(ds)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def ct_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(water_phantom((200.0, 200.0, 200.0), 5.0), folder)
    return folder


def test_json_contract_and_rtdose(ct_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plan = write_plan(tmp_path / "plan.dcm")
    out = tmp_path / "dose.dcm"
    per = tmp_path / "beams"
    per.mkdir()
    status = main(["dose", "--ct", str(ct_dir), "--plan", str(plan), "--out", str(out), "--per-beam",
    str(per),
                   "--json"])  # fmt: skip
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("beams", "max_gy", "grid", "engine", "compute_seconds"):
        assert key in data
    assert set(data["beams"][0]) >= {"number", "name", "mu", "max_gy", "seconds"}
    assert data["beams"][0]["mu"] == 100.0
    assert data["engine"] == "ccc-numba"
    dose = read_volume(out)
    assert float(dose.array.max()) == pytest.approx(data["max_gy"], rel=1e-3)
    # 8 x 8 cm2 at SSD 95 cm, 100 MU: about 1 Gy at d_max (output factor and inverse square within 10 %).
    assert 0.9 < data["max_gy"] < 1.2
    assert (per / "beam_1.dcm").exists()


def test_compare_with_itself_passes_gamma(
    ct_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    plan = write_plan(tmp_path / "plan.dcm")
    first = tmp_path / "a.dcm"
    assert main(["dose", "--ct", str(ct_dir), "--plan", str(plan), "--out", str(first)]) == 0
    capsys.readouterr()
    status = main(["dose", "--ct", str(ct_dir), "--plan", str(plan), "--out", str(tmp_path / "b.dcm"),
                   "--compare", str(first), "--json"])  # fmt: skip
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert data["compare"]["gamma"]["pass_rate_percent"] == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"energy": 10.0}, "unknown energy 10"),
        ({"iso": (0.0, 500.0, 0.0)}, "outside the CT"),
        ({"jaw_y": (-150.0, 150.0)}, "beyond the MLC"),
    ],
)
def test_bad_input_one_line_naming_the_file(
    ct_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, kwargs: dict, message: str
) -> None:
    plan = write_plan(tmp_path / "bad.dcm", **kwargs)
    out = tmp_path / "dose.dcm"
    status = main(["dose", "--ct", str(ct_dir), "--plan", str(plan), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert status != 0
    assert "\n" not in err and "Traceback" not in err
    assert message in err and "bad.dcm" in err
    assert not out.exists()


def test_electron_beam_is_refused(ct_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def electron(ds: Dataset) -> None:
        ds.BeamSequence[0].RadiationType = "ELECTRON"

    plan = write_plan(tmp_path / "e.dcm", edit=electron)
    status = main(["dose", "--ct", str(ct_dir), "--plan", str(plan), "--out", str(tmp_path / "d.dcm")])
    err = capsys.readouterr().err
    assert status != 0 and "photons only" in err and "e.dcm" in err


def test_missing_ct_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plan = write_plan(tmp_path / "plan.dcm")
    status = main(
        ["dose", "--ct", str(tmp_path / "nope"), "--plan", str(plan), "--out", str(tmp_path / "d.dcm")]
    )
    assert status != 0 and "--ct" in capsys.readouterr().err


def test_dose_is_linear_in_grid_choice(ct_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plan = write_plan(tmp_path / "plan.dcm")
    status = main(["dose", "--ct", str(ct_dir), "--plan", str(plan), "--out", str(tmp_path / "g.dcm"),
                   "--grid-mm", "4", "--json"])  # fmt: skip
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert np.allclose(data["grid"]["spacing_mm"], [4.0, 4.0, 4.0])
