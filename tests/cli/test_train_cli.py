"""Tests of ``intrepid train`` on a tiny data set built in the test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from intrepid.cli._main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learn"))
from learn_factories import make_dicom_dataset

pytest.importorskip("torch")

# one configuration, 2 x 2 folds of one epoch on a 16 x 16 working grid: a few seconds
FAST = [
    "--epochs",
    "1",
    "--repeats",
    "2",
    "--folds",
    "2",
    "--filters",
    "8",
    "--lr",
    "1e-3",
    "--batch-size",
    "4",
    "--working-size",
    "16",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--no-progress",
]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """``--threads`` sets PyTorch's thread count for the process; give the other tests theirs back."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dicom_dataset(tmp_path_factory.mktemp("train_cli"), n=9)


def test_train_json(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(data), "--out", str(out), "--json", *FAST]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "train" and result["pairs"] == 8
    assert result["configurations"] == 1 and result["runs"] == 4 and result["members"] == 2
    assert result["best"]["configuration"] == "f8_lr0.001_bs4"
    assert 0.0 <= result["best"]["gamma_pass_rate_mean_percent"] <= 100.0
    assert result["device"] == "cpu"
    for key in ("ensemble", "summary_csv", "summary_md"):
        assert Path(result[key]).exists()
    assert (out / "ensemble" / "model.safetensors").is_file()
    assert len(list((out / "runs" / "f8_lr0.001_bs4").glob("*.json"))) == 4


def test_train_text_and_overwrite(data, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        str(data),
        "--out",
        str(out),
        "--split",
        "all",
        "--augment",
        "none",
        "--loss",
        "mse",
        *FAST,
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.startswith("4 runs (1 configurations x 2 x 2 folds) on 9 pairs (all)")
    assert "best: f8_lr0.001_bs4: gamma 3%/3mm pass rate" in text and "ensemble:" in text
    assert main(args) == 1
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--augment", "shear"], "--augment must list flip-columns, flip-rows, none, rotate-90, got shear"),
        (["--working-size", "24"], "working shape (24, 24) must be multiples of 16"),
        (["--folds", "9"], "9-fold cross-validation needs at least 9 groups"),
        (["--threads", "0"], "--threads must be >= 1, got 0"),
    ],
)
def test_train_errors(data, tmp_path, capsys, extra, message):
    assert main(["train", str(data), "--out", str(tmp_path / "r"), *FAST, *extra]) == 1
    assert message in capsys.readouterr().err


def test_train_missing_data_and_bad_lists(tmp_path, capsys):
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "r"), *FAST]) == 1
    assert "no such manifest" in capsys.readouterr().err
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "r"), "--lr", "fast"]) == 2
    assert "--lr must be comma-separated floats" in capsys.readouterr().err
