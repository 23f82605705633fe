"""Tests of the ``intrepid dvh``, ``isodose`` and ``profile`` sub-commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from intrepid.cli import main
from intrepid.dicom import write_npz
from intrepid.geometry import Grid, Quantity, Volume

DVH_KEYS = {"volume_cc", "min_gy", "max_gy", "mean_gy", "d98_gy", "d95_gy", "d50_gy", "d2_gy", "curve"}


def _cone_dose_file(tmp_path: Path) -> Path:
    """npz dose falling 0.5 Gy/mm from 20 Gy at the origin (isodose d: sphere of radius 40 - 2 d mm)."""
    g = Grid((21, 31, 41), (-20.0, -15.0, -10.0), (1.0, 1.0, 1.0))
    r = np.linalg.norm(g.world_points(), axis=-1)
    path = tmp_path / "dose.npz"
    write_npz(Volume(20.0 - 0.5 * r, g, Quantity.DOSE, "Gy"), path)
    return path


def test_profile_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dose = _cone_dose_file(tmp_path)
    out_csv = tmp_path / "p.csv"
    rc = main(
        [
            "profile",
            str(dose),
            "--from",
            "0",
            "0",
            "0",
            "--to",
            "10",
            "0",
            "0",
            "--step",
            "2.5",
            "--json",
            "--csv",
            str(out_csv),
        ]
    )
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    # Along x from the peak: 20 - 0.5 x exactly at the samples (they sit on voxel centres or between two
    # centres of a linear run of the cone): 1e-9 Gy.
    np.testing.assert_allclose(data["dose"], [20.0, 18.75, 17.5, 16.25, 15.0], atol=1e-9)
    assert data["distance_mm"] == [0.0, 2.5, 5.0, 7.5, 10.0]
    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["distance_mm", "x_mm", "y_mm", "z_mm", "dose_gy"] and len(rows) == 6


def test_profile_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dose = _cone_dose_file(tmp_path)
    assert main(["profile", str(dose), "--from", "0", "0", "0", "--to", "0", "0", "4"]) == 0
    assert "distance_mm" in capsys.readouterr().out
    png = tmp_path / "p.png"
    assert (
        main(["profile", str(dose), "--from", "0", "0", "0", "--to", "0", "0", "4", "--plot", str(png)]) == 0
    )
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_profile_bad_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dose = _cone_dose_file(tmp_path)
    rc = main(["profile", str(dose), "--from", "0", "0", "0", "--to", "1", "0", "0", "--step", "-1"])
    assert rc == 2  # refused by argparse, naming the flag
    assert "argument --step: must be in [0.01, 100] mm, got -1" in capsys.readouterr().err


def test_isodose_image_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dose = _cone_dose_file(tmp_path)
    png = tmp_path / "iso.png"
    rc = main(
        [
            "isodose",
            str(dose),
            "--levels",
            "75",
            "50",
            "--percent-of",
            "20",
            "--slice-z",
            "0",
            "--out",
            str(png),
            "--json",
        ]
    )
    assert rc == 0 and png.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(capsys.readouterr().out)
    lv = data["levels"]
    assert [x["level_gy"] for x in lv] == [15.0, 10.0]
    # 15 Gy: circle of radius 10 mm in the plane z = 0 (inside the grid): length 2π·10 within 1 %.
    assert lv[0]["length_mm"] == pytest.approx(2 * np.pi * 10, rel=0.01)
    assert data["plane_position_mm"] == pytest.approx(0.0)


def test_isodose_with_ct_and_axis(tmp_path: Path) -> None:
    dose = _cone_dose_file(tmp_path)
    g = Grid((11, 16, 21), (-20.0, -15.0, -10.0), (2.0, 2.0, 2.0))
    ct = tmp_path / "ct.npz"
    write_npz(Volume(np.zeros(g.shape), g, Quantity.CT_NUMBER, "HU"), ct)
    png = tmp_path / "cor.png"
    assert (
        main(
            ["isodose", str(dose), "--levels", "15", "--ct", str(ct), "--axis", "coronal", "--out", str(png)]
        )
        == 0
    )
    assert png.stat().st_size > 1000


def test_isodose_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dose = _cone_dose_file(tmp_path)
    rc = main(["isodose", str(dose), "--levels", "-1", "--out", str(tmp_path / "x.png")])
    assert rc == 2 and "argument --levels: must be in (0, 10000], got -1" in capsys.readouterr().err
    rc = main(["isodose", str(dose), "--levels", "5", "--position", "3", "--out", str(tmp_path / "x.png")])
    assert rc == 1 and "--position needs --axis" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_dvh_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["dvh", "--dose", str(tmp_path / "none.dcm"), "--struct", str(tmp_path / "none2.dcm")])
    assert rc == 1
    assert "none.dcm" in capsys.readouterr().err


@pytest.mark.external
def test_dvh_cli_on_eclipse_case(
    external_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = external_data / "dicompyler-example"
    out_csv, png = tmp_path / "dvh.csv", tmp_path / "dvh.png"
    rc = main(
        [
            "dvh",
            "--dose",
            str(d / "rtdose.dcm"),
            "--struct",
            str(d / "rtss.dcm"),
            "--roi",
            "Tumor Bed",
            "--roi",
            "heart",
            "--json",
            "--csv",
            str(out_csv),
            "--plot",
            str(png),
        ]
    )
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["rois"]) == ["Tumor Bed", "Heart"]
    for roi in data["rois"].values():
        assert DVH_KEYS <= set(roi)
        assert len(roi["curve"]["dose_gy"]) == len(roi["curve"]["volume_cc"])
    # Tumor Bed: the CLI reports what the library computes; 13.159 cm³ = Σ contour areas × 3 mm (stepwise
    # model) and the interpolated solid differ by 0.2 %; mean vs Eclipse 14.291 Gy within 0.01 Gy (see
    # test_dvh_eclipse.py).
    from intrepid.analysis import compute_dvh
    from intrepid.dicom import read_rtdose, read_rtstruct

    lib = compute_dvh(read_rtdose(d / "rtdose.dcm").volume, read_rtstruct(d / "rtss.dcm").roi("Tumor Bed"))
    assert data["rois"]["Tumor Bed"]["volume_cc"] == pytest.approx(lib.volume_cc, rel=1e-12)
    assert data["rois"]["Tumor Bed"]["volume_cc"] == pytest.approx(13.159, rel=0.005)
    assert data["rois"]["Tumor Bed"]["mean_gy"] == pytest.approx(14.291, abs=0.01)
    assert png.read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["roi", "dose_gy", "volume_cc", "volume_percent"]
    rc = main(["dvh", "--dose", str(d / "rtdose.dcm"), "--struct", str(d / "rtss.dcm"), "--roi", "Nope"])
    assert rc == 1 and "no ROI 'Nope'" in capsys.readouterr().err
    rc = main(["dvh", "--dose", str(d / "rtdose.dcm"), "--struct", str(d / "rtss.dcm"), "--bin-width", "0"])
    assert rc == 1 and "bin_width_gy must be > 0" in capsys.readouterr().err
