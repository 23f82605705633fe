"""``intrepid compensator`` on a synthetic CT + RTSTRUCT, and on the TG-119 phantom (external data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from intrepid.cli import main
from intrepid.dicom import StructureDefinition, read_rtplan, write_ct_series, write_rtstruct
from intrepid.geometry import Grid, Quantity, Volume


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rc_case")
    g = Grid((31, 61, 41), origin_mm=(-40, -60, -30), spacing_mm=(2, 2, 2))
    ax = [g.origin_mm[a] + g.axis_coordinates_mm(a) for a in range(3)]
    z, y, x = np.meshgrid(ax[2], ax[1], ax[0], indexing="ij")
    hu = np.where(y >= -41.0, 0.0, -1000.0)
    ct = Volume(hu, g, Quantity.CT_NUMBER)
    series = write_ct_series(ct, root / "ct")
    mask = Volume(
        x**2 + y**2 + z**2 <= 15.0**2, g, Quantity.MASK, frame_of_reference_uid=series.frame_of_reference_uid
    )
    write_rtstruct(root / "rs.dcm", [StructureDefinition("PTV", mask=mask, roi_type="PTV")], series)
    return root / "ct", root / "rs.dcm"


def test_cli_json_and_dicom(
    case: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ct, rs = case
    out = tmp_path / "rc.dcm"
    status = main(
        [
            "compensator",
            "--ct",
            str(ct),
            "--struct",
            str(rs),
            "--target",
            "PTV",
            "--gantry",
            "0",
            "--sad",
            "2000",
            "2000",
            "--isocenter",
            "0",
            "0",
            "0",
            "--distal-margin-percent",
            "3.5",
            "--distal-margin-mm",
            "1",
            "--smear-mm",
            "3",
            "--min-thickness-mm",
            "2",
            "--material",
            "wax",
            "--out",
            str(out),
            "--csv",
            str(tmp_path / "rc.csv"),
            "--stl",
            str(tmp_path / "rc.stl"),
            "--json",
        ]
    )
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("thickness_min_mm", "thickness_max_mm", "thickness_mean_mm"):
        assert key in data
    assert data["thickness_min_mm"] == pytest.approx(2.0)
    assert data["settings"]["material"]["name"] == "wax"
    rc = read_rtplan(out).beams[0].range_compensators[0]
    assert rc.relative_stopping_power == pytest.approx(0.99)
    assert (tmp_path / "rc.csv").is_file() and (tmp_path / "rc.stl").is_file()


def test_cli_optimisation_reports_distal_coverage(
    case: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ct, rs = case
    out = tmp_path / "rc.json"
    status = main(
        [
            "compensator",
            "--ct",
            str(ct),
            "--struct",
            str(rs),
            "--target",
            "PTV",
            "--iterations",
            "1",
            "--range-mm",
            "80",
            "--modulation-mm",
            "40",
            "--isocenter-to-compensator-mm",
            "80",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["distal_coverage"]) == 2 and "distal_coverage_final" in data
    assert data["beam_range_mm"] == pytest.approx(80.0, abs=0.1)
    full = json.loads(out.read_text())
    assert np.asarray(full["thickness_mm"]).shape == (full["rows"], full["columns"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "x.txt"], "argument --out: must end with .dcm or .json"),
        (["--out", "x.json", "--energy", "150", "--range-mm", "100"], "either --energy or --range-mm"),
        (["--out", "x.json", "--material", "lead"], "material must be 'pmma', 'wax'"),
        (["--out", "x.json", "--smear-mm", "-1"], "argument --smear-mm: must be in [0, 50] mm, got -1"),
        (["--out", "x.json", "--iterations", "100000000"], "argument --iterations: must be in [0, 1000]"),
        (["--out", "x.json", "--min-thickness-mm", "500"], "--min-thickness-mm: must be in [0, 300]"),
        (["--out", "x.json", "--source-size-mm", "-3"], "argument --source-size-mm: must be in [0, 20]"),
        (["--out", "x.json", "--beam", "1"], "--beam selects a beam of --plan"),
    ],
)
def test_cli_errors(
    case: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    ct, rs = case
    args = ["compensator", "--ct", str(ct), "--struct", str(rs), "--target", "PTV"]
    extra = [str(tmp_path / e) if e.startswith("x.") else e for e in extra]
    assert main(args + extra) in (1, 2)  # 2: refused by argparse, 1: by the command
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1  # one line, no traceback, no usage block


def test_cli_unknown_roi(case: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ct, rs = case
    assert (
        main(
            [
                "compensator",
                "--ct",
                str(ct),
                "--struct",
                str(rs),
                "--target",
                "GTV",
                "--out",
                str(tmp_path / "a.json"),
            ]
        )
        == 1
    )
    assert "GTV" in capsys.readouterr().err


@pytest.mark.external
def test_cli_on_tg119(external_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mat = external_data / "tg119" / "TG119.mat"
    status = main(
        [
            "compensator",
            "--ct",
            str(mat),
            "--target",
            "OuterTarget",
            "--gantry",
            "90",
            "--distal-margin-percent",
            "3.5",
            "--distal-margin-mm",
            "1",
            "--smear-mm",
            "3",
            "--min-thickness-mm",
            "5",
            "--out",
            str(tmp_path / "tg119.dcm"),
            "--json",
        ]
    )
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert data["thickness_min_mm"] == pytest.approx(5.0)
    # the C-shape wraps the core: its distal surface varies by centimetres across the field
    assert data["thickness_max_mm"] - data["thickness_min_mm"] > 10.0
