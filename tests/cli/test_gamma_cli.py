"""Tests of ``intrepid gamma``: JSON contract, human output, γ-map output and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from intrepid.cli import main
from intrepid.dicom import read_volume, write_volume
from intrepid.geometry import Grid, Quantity, Volume


@pytest.fixture
def doses(tmp_path: Path) -> tuple[Path, Path]:
    grid = Grid((20, 24), (0, 0, 0), (1.0, 1.0, 1.0))
    y, x = np.mgrid[0:20, 0:24].astype(float)
    ref = 2.0 * np.exp(-((x - 12) ** 2 + (y - 10) ** 2) / 50.0)
    ref_path = write_volume(Volume(ref, grid, Quantity.DOSE, "Gy"), tmp_path / "ref.npz")
    ev_path = write_volume(Volume(ref * 1.02, grid, Quantity.DOSE, "Gy"), tmp_path / "ev.nrrd")
    return ref_path, ev_path


def test_json_output_has_the_contract_keys(doses: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    status = main(["gamma", str(doses[0]), str(doses[1]), "--dd", "3", "--dta", "2", "--json"])
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    for key in (
        "pass_rate_percent",
        "mean_gamma",
        "gamma_1percent",
        "max_gamma",
        "evaluated_points",
        "dd_percent",
        "dta_mm",
        "cutoff_percent",
        "normalisation",
        "compute_seconds",
    ):
        assert key in data
    assert data["normalisation"] == "global"
    assert data["dd_percent"] == 3.0 and data["dta_mm"] == 2.0 and data["cutoff_percent"] == 10.0
    assert data["pass_rate_percent"] == 100.0
    assert data["max_gamma"] <= 2 / 3 + 1e-9  # a 2 % scaling is at most 2/3 of 3 % of the maximum


def test_local_option_and_gamma_map(
    doses: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "gamma.npz"
    status = main(
        [
            "gamma",
            str(doses[0]),
            str(doses[1]),
            "--dd",
            "1",
            "--dta",
            "1",
            "--local",
            "--cutoff",
            "20",
            "--max-gamma",
            "3",
            "--gamma-map",
            str(out),
        ]
    )
    assert status == 0
    text = capsys.readouterr().out
    assert "pass rate" in text and "local" in text
    gmap = read_volume(out)
    assert gmap.shape == (20, 24)
    assert np.nanmax(gmap.array) <= 3.0


def test_bad_criterion_exits_1_with_one_line(doses: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    status = main(["gamma", str(doses[0]), str(doses[1]), "--dd", "3", "--dta", "-1"])
    assert status == 1
    err = capsys.readouterr().err
    assert "dta_mm must be a finite number > 0, got -1.0" in err


def test_missing_file_exits_1(
    tmp_path: Path, doses: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    status = main(["gamma", str(tmp_path / "none.npz"), str(doses[1]), "--dd", "3", "--dta", "2"])
    assert status == 1
    assert "none.npz" in capsys.readouterr().err


def test_interpolant_option_reaches_the_json(doses: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    args = ["gamma", str(doses[0]), str(doses[1]), "--dd", "3", "--dta", "2", "--json"]
    assert main([*args, "--interpolant", "trilinear"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["interpolation"] == "trilinear"
    assert data["gamma_tolerance"] == 1e-4
    assert main(args) == 0  # the documented default: simplex, exact
    data = json.loads(capsys.readouterr().out)
    assert data["interpolation"] == "linear"
    assert data["gamma_tolerance"] == 0.0


def test_search_beyond_the_budget_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    grid = Grid((1100, 1100), (0, 0, 0), (1.0, 1.0, 1.0))
    path = write_volume(Volume(np.ones((1100, 1100)), grid, Quantity.DOSE, "Gy"), tmp_path / "big.npz")
    status = main(["gamma", str(path), str(path), "--dd", "3", "--dta", "1e4"])
    assert status == 1
    err = capsys.readouterr().err.strip()
    assert "dta_mm 10000" in err
    assert len(err.splitlines()) == 1


def test_gamma_map_as_png(doses: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from PIL import Image

    out = tmp_path / "gamma.png"
    args = ["gamma", str(doses[0]), str(doses[1]), "--dd", "1", "--dta", "1", "--gamma-map", str(out)]
    args.append("--json")
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["gamma_map"] == str(out)
    pixels = np.asarray(Image.open(out).convert("L"), dtype=float)
    assert pixels.shape[0] > 300 and pixels.std() > 10  # a drawn figure, not a blank canvas
    assert not list(tmp_path.glob("*.tmp*"))


def test_cuda_backend_without_a_gpu_exits_1_with_one_line(
    doses: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    from intrepid.analysis._gamma_cuda import cuda_available

    if cuda_available():
        pytest.skip("a CUDA device is present: the refusal cannot be observed here")
    status = main(["gamma", str(doses[0]), str(doses[1]), "--dd", "3", "--dta", "2", "--backend", "cuda"])
    assert status == 1
    err = capsys.readouterr().err.strip()
    assert "needs an NVIDIA GPU" in err and "\n" not in err
