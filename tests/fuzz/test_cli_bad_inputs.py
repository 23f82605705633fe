"""CLI bad-input matrix (issue 15, campaign 1): every command, fed one bad input at a time, answers with one
line on stderr that names the culprit (the file or the flag), a non-zero status, and no output file.

Bad inputs: missing, truncated, random-byte and wrong-modality files, volumes with infinite or complex values,
absurd or nonsensical parameters, outputs in a missing folder or with the wrong extension. Each case runs the
real ``intrepid`` entry point in-process; the whole matrix takes a few seconds (nothing is simulated or
trained: every case is refused before the work starts).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from intrepid.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def files(seeds: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-matrix")
    f: dict[str, Path] = {k: v for k, v in seeds.items()}
    f["missing"] = folder / "missing.dcm"
    data = seeds["rtdose"].read_bytes()
    f["truncated"] = folder / "truncated.dcm"
    f["truncated"].write_bytes(data[: len(data) // 2])
    f["random"] = folder / "random.dcm"
    f["random"].write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for name, value in (("inf", np.inf), ("complex", 1j)):
        path = folder / f"{name}.npz"
        with np.load(seeds["npz"]) as d:
            arrays = {k: d[k] for k in d.files}
        arrays["array"] = arrays["array"] + value
        np.savez(path, **arrays)
        f[name] = path
    f["pickle"] = folder / "model.pt"
    f["pickle"].write_bytes(b"\x80\x04K\x01.")
    f["outdir"] = folder / "out"
    f["outdir"].mkdir()
    f["nodir"] = folder / "no-such-folder"
    return f


#: (case id, argv with {placeholders}, the text the error line must contain)
CASES: list[tuple[str, list[str], str]] = [
    # info
    ("info-missing", ["info", "{missing}"], "{missing}"),
    ("info-random", ["info", "{random}"], "{random}"),
    ("info-truncated", ["info", "{truncated}"], "{truncated}"),
    ("info-inf", ["info", "{inf}"], "{inf}"),
    ("info-complex", ["info", "{complex}"], "{complex}"),
    ("info-unknown-format", ["info", "{outdir}/x.jpgx"], "x.jpgx"),
    # resample
    (
        "resample-missing",
        ["resample", "{missing}", "--onto", "{npz}", "--out", "{outdir}/r.npz"],
        "{missing}",
    ),
    (
        "resample-random-onto",
        ["resample", "{npz}", "--onto", "{random}", "--out", "{outdir}/r.npz"],
        "{random}",
    ),
    ("resample-bad-out", ["resample", "{npz}", "--onto", "{npz}", "--out", "{outdir}/r.jpgx"], "--out"),
    ("resample-nodir", ["resample", "{npz}", "--onto", "{npz}", "--out", "{nodir}/r.npz"], "{nodir}"),
    (
        "resample-nan-fill",
        ["resample", "{npz}", "--onto", "{npz}", "--out", "{outdir}/r.npz", "--fill", "nan"],
        "--fill",
    ),
    # gamma
    ("gamma-missing", ["gamma", "{missing}", "{npz}", "--dd", "3", "--dta", "3"], "{missing}"),
    ("gamma-wrong-modality", ["gamma", "{rtplan}", "{npz}", "--dd", "3", "--dta", "3"], "{rtplan}"),
    ("gamma-complex", ["gamma", "{npz}", "{complex}", "--dd", "3", "--dta", "3"], "{complex}"),
    ("gamma-dd-huge", ["gamma", "{npz}", "{npz}", "--dd", "1e9", "--dta", "3"], "--dd"),
    ("gamma-dd-nan", ["gamma", "{npz}", "{npz}", "--dd", "nan", "--dta", "3"], "--dd"),
    ("gamma-cutoff", ["gamma", "{npz}", "{npz}", "--dd", "3", "--dta", "3", "--cutoff", "-5"], "--cutoff"),
    ("gamma-units", ["gamma", "{rtdose_relative}", "{rtdose}", "--dd", "3", "--dta", "3"], "same units"),
    # dvh
    ("dvh-missing-dose", ["dvh", "--dose", "{missing}", "--struct", "{rtstruct}"], "{missing}"),
    ("dvh-random-struct", ["dvh", "--dose", "{rtdose}", "--struct", "{random}"], "{random}"),
    ("dvh-struct-is-plan", ["dvh", "--dose", "{rtdose}", "--struct", "{rtplan}"], "{rtplan}"),
    # isodose
    ("isodose-missing", ["isodose", "{missing}", "--levels", "1", "--out", "{outdir}/i.png"], "{missing}"),
    ("isodose-bad-ext", ["isodose", "{npz}", "--levels", "1", "--out", "{outdir}/i.jpgx"], "--out"),
    ("isodose-negative-level", ["isodose", "{npz}", "--levels", "-1", "--out", "{outdir}/i.png"], "--levels"),
    ("isodose-inf", ["isodose", "{inf}", "--levels", "1", "--out", "{outdir}/i.png"], "{inf}"),
    ("isodose-nodir", ["isodose", "{npz}", "--levels", "1", "--out", "{nodir}/i.png"], "{nodir}"),
    # profile
    (
        "profile-step",
        ["profile", "{npz}", "--from", "0", "0", "0", "--to", "1", "0", "0", "--step", "0"],
        "--step",
    ),
    (
        "profile-too-many",
        ["profile", "{npz}", "--from", "-90000", "0", "0", "--to", "90000", "0", "0", "--step", "0.01"],
        "--step",
    ),
    ("profile-nan-point", ["profile", "{npz}", "--from", "nan", "0", "0", "--to", "1", "0", "0"], "--from"),
    (
        "profile-bad-csv",
        ["profile", "{npz}", "--from", "0", "0", "0", "--to", "1", "0", "0", "--csv", "{outdir}/p.txt"],
        "--csv",
    ),
    # simulate
    ("simulate-n-huge", ["simulate", "pairs", "--out", "{outdir}/s", "--n", "1000000000"], "--n"),
    ("simulate-n-zero", ["simulate", "pairs", "--out", "{outdir}/s", "--n", "0"], "--n"),
    (
        "simulate-workers",
        ["simulate", "pairs", "--out", "{outdir}/s", "--n", "1", "--workers", "-1"],
        "--workers",
    ),
    # train
    (
        "train-working-size",
        ["train", "{outdir}", "--out", "{outdir}/t", "--working-size", "65536"],
        "--working-size",
    ),
    ("train-no-data", ["train", "{missing}", "--out", "{outdir}/t"], "{missing}"),
    # predict / evaluate
    ("predict-random", ["predict", "{random}", "--out", "{outdir}/p"], "{random}"),
    (
        "predict-pickle-model",
        ["predict", "{rtimage}", "--out", "{outdir}/p", "--model", "{pickle}"],
        "{pickle}",
    ),
    ("evaluate-pickle-model", ["evaluate", "{pickle}", "{outdir}"], "{pickle}"),
    # demo
    ("demo-images", ["demo", "--out", "{outdir}/d", "--images", "1000"], "--images"),
    ("demo-workers", ["demo", "--out", "{outdir}/d", "--workers", "0"], "--workers"),
    # aperture
    (
        "aperture-iterations",
        [
            "aperture",
            "--ct",
            "{ct}",
            "--struct",
            "{rtstruct}",
            "--target",
            "x",
            "--margin",
            "1",
            "--mill-radius",
            "1",
            "--out",
            "{outdir}/a.json",
            "--iterations",
            "-1",
        ],
        "--iterations",
    ),
    (
        "aperture-mill-radius",
        [
            "aperture",
            "--ct",
            "{ct}",
            "--struct",
            "{rtstruct}",
            "--target",
            "x",
            "--margin",
            "1",
            "--mill-radius",
            "1e9",
            "--out",
            "{outdir}/a.json",
        ],
        "--mill-radius",
    ),
    (
        "aperture-margin",
        [
            "aperture",
            "--ct",
            "{ct}",
            "--struct",
            "{rtstruct}",
            "--target",
            "x",
            "--margin",
            "1e9",
            "--mill-radius",
            "1",
            "--out",
            "{outdir}/a.json",
        ],
        "--margin",
    ),
    (
        "aperture-mount",
        [
            "aperture",
            "--ct",
            "{ct}",
            "--struct",
            "{rtstruct}",
            "--target",
            "x",
            "--margin",
            "1",
            "--mill-radius",
            "1",
            "--out",
            "{outdir}/a.json",
            "--gantry",
            "0",
            "--sad",
            "2000",
            "2000",
            "--isocenter",
            "0",
            "0",
            "0",
            "--downstream-edge",
            "100",
            "--mount",
            "circle:1e9",
        ],
        "--mount",
    ),
    (
        "aperture-beam-without-plan",
        [
            "aperture",
            "--ct",
            "{ct}",
            "--struct",
            "{rtstruct}",
            "--target",
            "x",
            "--margin",
            "1",
            "--mill-radius",
            "1",
            "--out",
            "{outdir}/a.json",
            "--beam",
            "1",
        ],
        "--beam",
    ),
    (
        "aperture-bad-svg",
        [
            "aperture",
            "--ct",
            "{ct}",
            "--struct",
            "{rtstruct}",
            "--target",
            "x",
            "--margin",
            "1",
            "--mill-radius",
            "1",
            "--out",
            "{outdir}/a.json",
            "--svg",
            "{outdir}/a.png",
        ],
        "--svg",
    ),
    (
        "aperture-random-struct",
        [
            "aperture",
            "--ct",
            "{ct}",
            "--struct",
            "{random}",
            "--target",
            "x",
            "--margin",
            "1",
            "--mill-radius",
            "1",
            "--out",
            "{outdir}/a.json",
            "--gantry",
            "0",
            "--sad",
            "2000",
            "2000",
            "--isocenter",
            "0",
            "0",
            "0",
            "--downstream-edge",
            "100",
        ],
        "{random}",
    ),
    # compensator
    (
        "compensator-iterations",
        [
            "compensator",
            "--ct",
            "{ct}",
            "--struct",
            "{rtstruct}",
            "--target",
            "x",
            "--out",
            "{outdir}/c.json",
            "--iterations",
            "100000000",
        ],
        "--iterations",
    ),
    (
        "compensator-min-thickness",
        [
            "compensator",
            "--ct",
            "{ct}",
            "--struct",
            "{rtstruct}",
            "--target",
            "x",
            "--out",
            "{outdir}/c.json",
            "--min-thickness-mm",
            "500",
        ],
        "--min-thickness-mm",
    ),
    (
        "compensator-source-size",
        [
            "compensator",
            "--ct",
            "{ct}",
            "--struct",
            "{rtstruct}",
            "--target",
            "x",
            "--out",
            "{outdir}/c.json",
            "--source-size-mm",
            "-3",
        ],
        "--source-size-mm",
    ),
    (
        "compensator-min-above-max",
        [
            "compensator",
            "--ct",
            "{ct}",
            "--struct",
            "{rtstruct}",
            "--target",
            "x",
            "--out",
            "{outdir}/c.json",
            "--min-thickness-mm",
            "50",
            "--max-thickness-mm",
            "20",
        ],
        "--min-thickness-mm",
    ),
    (
        "compensator-missing-ct",
        [
            "compensator",
            "--ct",
            "{missing}",
            "--struct",
            "{rtstruct}",
            "--target",
            "x",
            "--out",
            "{outdir}/c.json",
        ],
        "{missing}",
    ),
]


def _fill(text: str, files: dict[str, Path]) -> str:
    for key, value in files.items():
        text = text.replace("{" + key + "}", str(value))
    return text


@pytest.fixture(scope="module")
def relative_dose(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    import pydicom

    path = tmp_path_factory.mktemp("relative") / "relative.dcm"
    ds = pydicom.dcmread(files["rtdose"])
    ds.DoseUnits = "RELATIVE"
    ds.save_as(path)
    return path


@pytest.mark.parametrize(("case", "argv", "culprit"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_naming_the_culprit(
    files: dict[str, Path],
    relative_dose: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    argv: list[str],
    culprit: str,
) -> None:
    paths = {**files, "rtdose_relative": relative_dose}
    args = [_fill(a, paths) for a in argv]
    before = sorted(p.name for p in files["outdir"].rglob("*"))
    capsys.readouterr()
    status = main(args)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status in (1, 2), f"{case}: exit status {status}, stderr {err!r}"
    assert len(lines) == 1, f"{case}: expected one line on stderr, got {err!r}"
    assert lines[0].startswith("intrepid "), lines[0]
    assert "internal error" not in lines[0] and "Traceback" not in err, lines[0]
    assert _fill(culprit, paths) in lines[0], f"{case}: the error does not name {culprit}: {lines[0]!r}"
    after = sorted(p.name for p in files["outdir"].rglob("*"))
    assert after == before, f"{case}: files were left behind: {sorted(set(after) - set(before))}"
    for leftover in files["outdir"].rglob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
        pytest.fail(f"{case}: temporary file {leftover} left behind")
