"""``intrepid evaluate``: the JSON contract (per-image and summary pass rates of network and baseline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intrepid.cli._main import main


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from intrepid.simulate import PAPER_TEST_SET, generate_pairs

    out = tmp_path_factory.mktemp("pairs")
    specs = [PAPER_TEST_SET[0], PAPER_TEST_SET[-1]]  # a homogeneous slab and a multi-plug image, both "test"
    generate_pairs(specs, out, seed=3, progress=False, detector_pixels=64)
    return out


def _tiny_model(folder: Path) -> Path:
    from intrepid.learn import Ensemble, PreprocessConfig, UNetConfig, build_unet

    unet = UNetConfig(depth=2, initial_filters=2)
    state = {k: v.detach().numpy().copy() for k, v in build_unet(unet).state_dict().items()}
    pre = PreprocessConfig(working_shape=(16, 16), input_scale=100.0, target_scale=1.0, fitted=True)
    return Ensemble(unet, pre, [state]).save(folder)


def test_evaluate_json_contract(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from intrepid.learn import load_dataset
    from intrepid.transit import fit_baseline

    model = _tiny_model(tmp_path / "model")
    fit_baseline(load_dataset(tiny_data)).save(model / "baseline.json")
    report = tmp_path / "r.html"
    assert (
        main(["evaluate", str(model), str(tiny_data), "--json", "--no-progress", "--report", str(report)])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["methods"] == ["network", "baseline"] and doc["n_images"] == 2
    assert doc["settings"]["split"] == "test" and doc["settings"]["baseline"].endswith("baseline.json")
    for image in doc["images"]:
        for method in ("network", "baseline"):
            for c in ("3mm3pct", "5mm5pct", "2mm2pct", "1mm1pct", "2mm2pct_local"):
                assert 0.0 <= image[method][f"pass_rate_{c}_percent"] <= 100.0
            # stricter criteria never pass more pixels
            assert image[method]["pass_rate_1mm1pct_percent"] <= image[method]["pass_rate_2mm2pct_percent"]
            assert image[method]["mae_gy"] >= 0.0 and image[method]["max_error_gy"] >= image[method]["mae_gy"]
    for method in ("network", "baseline"):
        assert set(doc["summary"][method]["pass_rate_3mm3pct_percent"]) == {
            "mean",
            "std",
            "median",
            "min",
            "max",
            "n",
        }
    # The baseline fitted on these very images passes nearly everywhere (closed-form-like sanity check).
    assert doc["summary"]["baseline"]["pass_rate_3mm3pct_percent"]["mean"] > 90.0
    assert {"OMG", "MP"} == set(doc["by_family"])
    comp = {c["metric"]: c for c in doc["comparisons"]}
    assert {"pass_rate_2mm2pct_percent", "pass_rate_2mm2pct_local_percent", "mae_gy"} <= set(comp)
    c22 = comp["pass_rate_2mm2pct_percent"]
    assert (c22["method_a"], c22["method_b"], c22["n"]) == ("network", "baseline", 2)
    assert c22["ci95_low"] <= c22["mean_difference"] <= c22["ci95_high"]
    assert report.is_file() and "<table" in report.read_text()
    assert main(["evaluate", str(model), str(tiny_data), "--no-progress"]) == 0
    assert "| network |" in capsys.readouterr().out


def test_evaluate_errors(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path / "none"), str(tiny_data)]) == 1
    assert "no model here" in capsys.readouterr().err
    model = _tiny_model(tmp_path / "model")
    assert main(["evaluate", str(model), str(tiny_data), "--split", "val"]) == 1
    assert "--split must be test, train or all, got 'val'" in capsys.readouterr().err
