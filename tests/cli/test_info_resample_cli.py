"""``intrepid info``, ``intrepid resample`` and ``intrepid demo``: JSON contract, outputs and error lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from scipy.interpolate import RegularGridInterpolator

from intrepid.cli import main
from intrepid.dicom import read_volume, write_volume
from intrepid.geometry import Grid, Quantity, Volume

VOLUME_KEYS = {"modality", "shape", "origin_mm", "spacing_mm", "direction", "units", "min", "max", "mean"}


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_info_rtdose_from_pydicom(capsys: pytest.CaptureFixture[str]) -> None:
    info = _run_json(capsys, "info", get_testdata_file("rtdose.dcm"))
    assert isinstance(info, dict)
    assert VOLUME_KEYS <= set(info)
    assert info["modality"] == "RTDOSE"
    assert info["shape"] == [15, 10, 10]
    assert info["units"] == "relative"  # the file says DoseUnits RELATIVE
    assert info["max"] >= info["mean"] >= info["min"]


def test_info_several_paths_gives_a_list(capsys: pytest.CaptureFixture[str]) -> None:
    info = _run_json(
        capsys,
        "info",
        get_testdata_file("rtplan.dcm"),
        get_testdata_file("rtstruct.dcm"),
        get_testdata_file("CT_small.dcm"),
    )
    assert isinstance(info, list) and [e["modality"] for e in info] == ["RTPLAN", "RTSTRUCT", "CT"]
    plan, struct, ct = info
    assert all(
        {"gantry_deg", "isocenter_mm", "sad_mm", "mu", "control_points", "devices"} <= set(b)
        for b in plan["beams"]
    )
    assert all({"name", "number", "type", "contours"} <= set(r) for r in struct["rois"])
    assert ct["shape"] == [1, 128, 128] and VOLUME_KEYS <= set(ct)


@pytest.mark.external
def test_info_on_dicompyler_example(external_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = external_data / "dicompyler-example"
    dose, plan, rs = _run_json(
        capsys, "info", str(folder / "rtdose.dcm"), str(folder / "rtplan.dcm"), str(folder / "rtss.dcm")
    )
    assert dose["shape"] == [98, 129, 194]
    assert dose["spacing_mm"] == pytest.approx([2.5, 2.5, 3.0])
    assert dose["max"] == pytest.approx(14.68, abs=0.01)
    assert len(plan["beams"]) == 4
    assert [b["gantry_deg"] for b in plan["beams"]] == pytest.approx([327, 0, 56, 150])
    assert all(b["sad_mm"] == [1000.0, 1000.0] for b in plan["beams"])
    assert len(rs["rois"]) == 10


@pytest.mark.external
def test_info_on_varian_epid(external_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = _run_json(capsys, "info", str(external_data / "varian-epid" / "RI_test_linearity.dcm"))
    assert info["rows"] == 768 and info["columns"] == 1024
    assert info["vendor"] == "varian" and info["pixel_units"] == "CU"
    assert info["pixel_spacing_mm"] == pytest.approx([0.392, 0.392])
    expected_iso = 0.392 * info["sad_mm"] / info["sid_mm"]
    assert info["pixel_spacing_iso_mm"] == pytest.approx([expected_iso, expected_iso])


def test_info_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing.dcm"
    assert main(["info", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing.dcm" in err and "Traceback" not in err
    truncated = tmp_path / "trunc.dcm"
    truncated.write_bytes(Path(get_testdata_file("rtplan_truncated.dcm")).read_bytes())
    assert main(["info", str(truncated)]) == 1
    err = capsys.readouterr().err
    assert "trunc.dcm" in err and err.count("\n") == 1


def test_verbose_error_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-v", "info", str(tmp_path / "nothing.dcm")]) == 1
    assert "Traceback" in capsys.readouterr().err


def _moving_and_reference(
    tmp_path: Path, for_uids: tuple[str, str] = ("1.2.3", "1.2.3")
) -> tuple[Path, Path]:
    rng = np.random.default_rng(11)
    moving = Volume(
        rng.random((12, 14, 16)) * 2.0,
        Grid((12, 14, 16), (-15.0, -13.0, -11.0), (2.0, 2.0, 2.0)),
        Quantity.DOSE,
        "Gy",
        for_uids[0],
    )
    reference = Volume(
        np.zeros((9, 10, 11)),
        Grid((9, 10, 11), (-9.3, -8.1, -7.7), (1.7, 1.9, 2.3)),
        Quantity.CT_NUMBER,
        "HU",
        for_uids[1],
    )
    mp, rp = tmp_path / "moving.npz", tmp_path / "reference.nrrd"
    write_volume(moving, mp)
    write_volume(reference, rp)
    return mp, rp


@pytest.mark.parametrize("ext", [".nii.gz", ".npz", ".dcm"])
def test_resample_matches_independent_trilinear(
    tmp_path: Path, ext: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mp, rp = _moving_and_reference(tmp_path)
    out = tmp_path / f"out{ext}"
    summary = _run_json(capsys, "resample", str(mp), "--onto", str(rp), "--out", str(out))
    assert isinstance(summary, dict) and summary["shape"] == [9, 10, 11]
    result = read_volume(out)
    moving = read_volume(mp)
    reference = read_volume(rp)
    assert result.grid.is_close(reference.grid)
    xs, ys, zs = moving.grid.world_axes_mm()
    interp = RegularGridInterpolator((zs, ys, xs), moving.array, method="linear")
    pts = reference.grid.world_points()[..., ::-1]  # (z, y, x) for the interpolator
    expected = interp(pts)
    # RTDOSE stores 32-bit integers with a scaling: 2 Gy / 2^32 quantisation; NIfTI/npz keep float64.
    np.testing.assert_allclose(result.array, expected, atol=1e-6)


def test_resample_refuses_other_frame_of_reference_unless_transform(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mp, rp = _moving_and_reference(tmp_path, ("1.2.3", "1.2.4"))
    out = tmp_path / "out.npz"
    assert main(["resample", str(mp), "--onto", str(rp), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "1.2.3" in err and "1.2.4" in err
    assert not out.exists()
    matrix = tmp_path / "identity.txt"
    np.savetxt(matrix, np.eye(4))
    assert main(["resample", str(mp), "--onto", str(rp), "--out", str(out), "--transform", str(matrix)]) == 0
    assert out.exists()
    bad = tmp_path / "bad.txt"
    np.savetxt(bad, np.eye(3))
    assert main(["resample", str(mp), "--onto", str(rp), "--out", str(out), "--transform", str(bad)]) == 1
    assert "4 x 4" in capsys.readouterr().err


def test_demo_writes_summary_with_correct_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    summary = _run_json(capsys, "demo", "--foundation", "--out", str(out))
    assert isinstance(summary, dict)
    for name in ("summary.json", "summary.md", "dose_on_ct.nii.gz", "ct.nii.gz"):
        assert (out / name).is_file()
    target = summary["target"]
    # Fractional occupancy keeps the sphere's true volume within 2 % (72-gon contours every 2.5 mm).
    assert target["volume_cc"] == pytest.approx(target["exact_volume_cc"], rel=0.02)
    assert target["mean_gy"] == pytest.approx(target["prescription_gy"], rel=0.01)
    assert summary["frame_of_reference_uid_match"] is True
    # Linear interpolation of a Gaussian fall-off (σ 10 mm) sampled every 3 mm errs by at most ~2 % of max.
    assert summary["dose_on_ct"]["max_abs_error_vs_analytic_gy"] < 0.05
    # A second run into the same folder replaces the previous demo's output...
    assert main(["demo", "--foundation", "--out", str(out)]) == 0
    assert "replacing the previous demo output" in capsys.readouterr().err
    # ...but a folder holding a file of the user's needs --overwrite.
    (out / "notes.txt").write_text("mine")
    assert main(["demo", "--foundation", "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
