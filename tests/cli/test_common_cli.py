"""The shared argument checks of the CLI: bounded numbers, output files, flag names in library errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from intrepid.cli import main
from intrepid.cli._common import bounded, output_file
from intrepid.cli._main import name_flags


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nan", "must be a finite number in (0, 20] mm, got nan"),
        ("inf", "must be a finite number in (0, 20] mm, got inf"),
        ("0", "must be in (0, 20] mm, got 0"),
        ("20.5", "must be in (0, 20] mm, got 20.5"),
        ("abc", "must be a number in (0, 20] mm, got 'abc'"),
    ],
)
def test_bounded_refuses_with_the_rule(text: str, message: str) -> None:
    parse = bounded(0, 20, unit="mm", low_open=True)
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse(text)
    assert str(info.value) == message


def test_bounded_accepts_the_range_and_integers() -> None:
    assert bounded(0, 20, unit="mm", low_open=True)("20") == 20.0
    count = bounded(1, 10, integer=True)
    assert count("3") == 3 and isinstance(count("3"), int)
    with pytest.raises(argparse.ArgumentTypeError, match="whole number"):
        count("2.5")


def test_output_file_checks_the_extension_and_folders(tmp_path: Path) -> None:
    parse = output_file(".png")
    assert parse(str(tmp_path / "a.PNG")).name == "a.PNG"
    with pytest.raises(argparse.ArgumentTypeError, match=r"must end with \.png"):
        parse("a.jpgx")
    (tmp_path / "d.png").mkdir()
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        parse(str(tmp_path / "d.png"))


def test_library_names_become_flags() -> None:
    flags = {"min_spacing_mm": "--mesh-spacing", "step_mm": "--step"}
    assert name_flags("min_spacing_mm must be > 0, got -1", flags) == "--mesh-spacing must be > 0, got -1"
    # only a name used as the subject of a rule is replaced, not a word inside another one
    assert name_flags("the xstep_mm must be", flags) == "the xstep_mm must be"


def test_parser_errors_are_one_line_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gamma", "a.dcm", "b.dcm", "--dd", "1e9", "--dta", "3"]) == 2
    err = capsys.readouterr().err
    expected = "intrepid gamma: error: argument --dd: must be in (0, 100] %, got 1e9"
    assert err == expected + " (see `intrepid gamma --help`)\n"


def test_sub_sub_command_errors_name_the_full_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f").write_text("a file, not a folder")
    assert main(["simulate", "pairs", "--out", str(tmp_path / "f"), "--n", "1"]) == 1
    assert capsys.readouterr().err.startswith("intrepid simulate pairs: error: ")


def test_help_texts_show_single_percent_signs(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("demo", "train", "evaluate"):
        assert main([command, "--help"]) == 0
        assert "%%" not in capsys.readouterr().out
