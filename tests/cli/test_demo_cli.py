"""``intrepid demo``: the 2D demo end to end on one image (simulate, predict, evaluate, HTML report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intrepid.cli._main import main
from intrepid.report import demo_specs


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert (
        main(["demo", "--out", str(out), "--images", "1", "--workers", "1", "--no-progress", "--json"]) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_images"] == 1
    assert set(doc["summary"]) == {"network", "baseline"}
    for method in ("network", "baseline"):
        assert 0.0 <= doc["summary"][method]["pass_rate_3mm3pct_percent"]["mean"] <= 100.0
    assert {"simulate", "predict_evaluate", "report", "total"} <= set(doc["seconds"])
    report = out / "report.html"
    text = report.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 2 and 'id="by-family"' in text
    assert (out / "evaluation.json").is_file() and (out / "data" / "manifest.csv").is_file()
    # A second run into the same folder replaces the previous demo's output (no --overwrite needed)...
    from intrepid.cli._demo import previous_demo_output

    assert previous_demo_output(out)
    # ...but a folder that also holds a file of the user's is refused without --overwrite, before any work.
    (out / "notes.txt").write_text("mine")
    assert not previous_demo_output(out)
    assert main(["demo", "--out", str(out), "--images", "1"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_demo_specs_spread_over_families() -> None:
    specs = demo_specs(12, seed=1)
    fams = [s.family.value for s in specs]
    assert len(specs) == 12 and {fams.count(f) for f in set(fams)} == {3}
    assert len({s.seed for s in specs}) == 12 and all(s.split.value == "test" for s in specs)
    assert [s.seed for s in demo_specs(12, seed=1)] == [s.seed for s in specs]  # deterministic
    assert [s.seed for s in demo_specs(12, seed=2)] != [s.seed for s in specs]


def test_demo_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path / "d"), "--images", "0"]) == 2
    assert "argument --images: must be in [1, 23], got 0" in capsys.readouterr().err
