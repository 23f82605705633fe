"""Tests of ``intrepid simulate pairs`` on tiny data sets."""

from __future__ import annotations

import json

import pytest

from intrepid.cli._main import main
from intrepid.simulate._pairs import read_manifest

# two random pairs on a 64-pixel-wide panel with 5 mm phantom voxels: about a second
FAST = ["--detector-pixels", "64", "--phantom-spacing-mm", "5", "--no-progress"]


def test_pairs_json_summary(tmp_path, capsys):
    out = tmp_path / "set"
    status = main(["simulate", "pairs", "--out", str(out), "--n", "2", "--seed", "5", "--json", *FAST])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"] == 2 and summary["vendor"] == "elekta" and summary["seed"] == 5
    assert summary["composition"] == "random"
    assert sum(summary["by_split"].values()) == 2 and sum(summary["by_family"].values()) == 2
    rows = read_manifest(out / "manifest.csv")
    assert len(rows) == 2 and summary["manifest"] == str(out / "manifest.csv")
    assert all((out / r["epid_file"]).is_file() and (out / r["portal_dose_file"]).is_file() for r in rows)


def test_pairs_with_effects_and_mlc_fields(tmp_path, capsys):
    out = tmp_path / "fx"
    argv = ["simulate", "pairs", "--out", str(out), "--n", "2", "--seed", "1", "--effects", "all-couch",
            "--mlc-fraction", "1", "--json", *FAST]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "couch" not in summary["effects"] and "glare" in summary["effects"]
    rows = read_manifest(out / "manifest.csv")
    assert all(r["field_group"].startswith("MLC ") for r in rows)
    assert (out / "effects.json").is_file()


def test_pairs_text_summary_and_overwrite(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["simulate", "pairs", "--out", str(out), "--n", "1", "--vendor", "varian", *FAST]) == 0
    text = capsys.readouterr().out
    assert text.startswith("1 pairs (") and "for varian in" in text and "manifest:" in text
    # a second run into the same, now non-empty, folder needs --overwrite
    assert main(["simulate", "pairs", "--out", str(out), "--n", "1", *FAST]) == 1
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    assert main(["simulate", "pairs", "--out", str(out), "--n", "1", "--overwrite", *FAST]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n", "0"], "argument --n: must be in [1, 100000], got 0"),
        (["--n", "-2"], "argument --n: must be in [1, 100000], got -2"),
        (["--n", "1", "--vendor", "siemens"], "--vendor must be elekta or varian, got 'siemens'"),
        (["--n", "1", "--seed", "-1"], "--seed must be >= 0, got -1"),
        (["--n", "1", "--detector-pixels", "10"], "--detector-pixels must be a multiple of 4"),
        (["--n", "1", "--effects", "glair"], "--effects 'glair': unknown effect 'glair'"),
        (["--n", "1", "--mlc-fraction", "2"], "--mlc-fraction must be in [0, 1], got 2.0"),
        (["--composition", "paper", "--mlc-fraction", "0.5"], "--mlc-fraction applies to --n"),
    ],
)
def test_pairs_bad_parameters(tmp_path, capsys, argv, message):
    out = tmp_path / "set"
    # 2: refused by argparse (a bounded flag), 1: by the command; the line names the sub-command
    assert main(["simulate", "pairs", "--out", str(out), *argv, "--no-progress"]) in (1, 2)
    err = capsys.readouterr().err
    assert err.startswith("intrepid simulate pairs: error: ") and message in err
    assert not (out / "manifest.csv").exists()


def test_out_must_be_a_folder(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["simulate", "pairs", "--out", str(f), "--n", "1", "--no-progress"]) == 1
    assert "exists and is not a folder" in capsys.readouterr().err


def test_n_and_composition_are_exclusive(tmp_path):
    assert main(["simulate", "pairs", "--out", str(tmp_path), "--n", "1", "--composition", "paper"]) == 2
    assert main(["simulate", "pairs", "--out", str(tmp_path)]) == 2


def test_simulate_without_what_prints_help(capsys):
    assert main(["simulate"]) == 2
    assert "pairs" in capsys.readouterr().err
