"""The default model shipped in the package: files, size, manifest, and one real 1024 x 1024 prediction."""

from __future__ import annotations

from pathlib import Path

import pytest

import intrepid.transit._default_model as dm
from intrepid.errors import ModelError
from intrepid.transit import (
    default_model_path,
    default_training_manifest,
    evaluate_image,
    load_default_baseline,
    load_default_model,
)

MAX_BYTES = 10_000_000  # the budget for the shipped model files


def test_files_are_shipped_and_small() -> None:
    folder = default_model_path()
    names = {p.name for p in folder.iterdir() if p.is_file()}
    assert {"model.json", "model.safetensors", "training_manifest.json", "baseline.json"} <= names
    assert sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) <= MAX_BYTES
    assert not any(p.suffix in (".pt", ".pth", ".pkl", ".dcm", ".npz") for p in folder.iterdir())


def test_manifest_records_how_to_reproduce_it() -> None:
    doc = default_training_manifest()
    assert doc["command"].startswith("python3 tools/train_default_model.py")
    assert doc["data"]["simulation_seed"] == 0 and doc["data"]["training_pairs"] == 190
    assert len(doc["data"]["held_out_test_images"]) == 23
    assert len(doc["folds"]) >= 2 and all(f["history"]["best_epoch"] >= 1 for f in doc["folds"])
    # No test image was used to train any member.
    test = set(doc["data"]["held_out_test_images"])
    assert all(test.isdisjoint(f["train"]) and test.isdisjoint(f["val"]) for f in doc["folds"])


def test_missing_files_give_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dm, "_FILES", ("model.json", "absent.safetensors"))
    with pytest.raises(ModelError, match="default model is missing from the installed package"):
        default_model_path()


def test_one_full_size_prediction_against_the_simulated_truth(tmp_path: Path) -> None:
    from intrepid.learn import load_dataset
    from intrepid.simulate import PAPER_TEST_SET, generate_pairs

    model = load_default_model()
    assert model.members == len(default_training_manifest()["folds"])
    assert model.unet.initial_filters == 8
    spec = next(s for s in PAPER_TEST_SET if s.name == "6s20_4")  # homogeneous slabs, a large field
    generate_pairs([spec], tmp_path, seed=11, progress=False)
    pair = load_dataset(tmp_path)[0]
    assert pair.epid.shape == (1024, 1024)
    net, _ = evaluate_image(pair.portal_dose, model.predict(pair.epid))
    base, _ = evaluate_image(pair.portal_dose, load_default_baseline().predict(pair.epid))
    # Measured on this image: the hybrid network and the baseline both pass 100 % at 3 %/3 mm and 2 %/2 mm
    # (the earlier pure network ~97 % and ~70 %); 99 % / 97 % leave room for the noise realisation of another
    # platform without accepting a broken model (an untrained one gets < 20 %).
    assert net.pass_rates_percent["3mm3pct"] >= 99.0
    assert net.pass_rates_percent["2mm2pct"] >= 97.0
    assert base.pass_rates_percent["3mm3pct"] >= 95.0
    assert net.pass_rates_percent["5mm5pct"] >= 99.0
