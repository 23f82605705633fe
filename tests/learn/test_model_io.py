"""Tests of the safe model files (``intrepid.learn._model_io``): safetensors + JSON, nothing else."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from intrepid.errors import ModelError
from intrepid.learn import (
    Ensemble,
    PreprocessConfig,
    UNetConfig,
    build_unet,
    describe_model,
    load_model,
    read_model_files,
)

torch = pytest.importorskip("torch")

UNET = UNetConfig(depth=3, initial_filters=4, batch_norm_from_level=1)
PRE = PreprocessConfig(
    working_shape=(16, 16), input_offset=10.0, input_scale=100.0, target_scale=0.5, fitted=True
)


def _states(n: int) -> list[dict[str, np.ndarray]]:
    out = []
    for m in range(n):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(m)
            net = build_unet(UNET)
        # non-trivial batch-norm statistics, so that folding them is tested too
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
        out.append({k: v.numpy().copy() for k, v in net.state_dict().items()})
    return out


@pytest.fixture
def saved(tmp_path):
    ens = Ensemble(UNET, PRE, _states(2), member_info=[{"fold": 0}, {"fold": 1}], training={"note": "test"})
    folder = ens.save(tmp_path / "model")
    return ens, folder


def test_round_trip_gives_the_same_predictions(saved, monkeypatch):
    ens, folder = saved
    assert (folder / "model.json").is_file() and (folder / "model.safetensors").is_file()
    # loading never goes through torch.load (pickle)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called"))
    loaded = load_model(folder)
    assert loaded.members == 2 and loaded.unet == UNET and loaded.preprocess == PRE
    assert [i["fold"] for i in loaded.member_info] == [0, 1]
    assert loaded.training["note"] == "test"
    signal = np.random.default_rng(0).random((2, 40, 24)) * 100 + 10
    np.testing.assert_array_equal(loaded.predict_array(signal), ens.predict_array(signal))
    # either file of the pair names the model too
    assert load_model(folder / "model.json").members == 2
    assert load_model(folder / "model.safetensors").members == 2


def test_description_is_complete_json(saved):
    _, folder = saved
    doc = describe_model(folder)
    assert doc["format"] == "intrepid-model" and doc["format_version"] == 1 and doc["kind"] == "unet-ensemble"
    assert UNetConfig.from_dict(doc["architecture"]) == UNET
    assert PreprocessConfig.from_dict(doc["preprocessing"]) == PRE
    assert [m["prefix"] for m in doc["members"]] == ["member0.", "member1."]
    assert {"intrepid", "safetensors", "torch"} <= set(doc["software"])
    assert len(doc["weights_sha256"]) == 64 and doc["created"].endswith("+00:00")
    desc, tensors = read_model_files(folder)
    assert desc == doc and "member1.head.weight" in tensors


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".ckpt"])
def test_pickle_suffixes_are_refused_by_name(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(ModelError, match=f"refusing a \\{suffix} file: pickle-based checkpoints"):
        load_model(path)


def test_pickle_disguised_as_safetensors_is_refused(saved):
    _, folder = saved
    (folder / "model.safetensors").write_bytes(pickle.dumps({"evil": 1}))
    with pytest.raises(ModelError, match="is a pickle, not safetensors"):
        load_model(folder)


def test_torch_archive_disguised_as_safetensors_is_refused(saved):
    _, folder = saved
    torch.save({"w": torch.zeros(2)}, folder / "model.safetensors")
    with pytest.raises(ModelError, match=r"is a zip archive \(torch.save format"):
        load_model(folder)


def test_changed_weights_are_refused(saved):
    _, folder = saved
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256 differs from weights_sha256"):
        load_model(folder)


def _edit_json(folder, edit):
    doc = json.loads((folder / "model.json").read_text())
    edit(doc)
    (folder / "model.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(format="onnx"), "key 'format' must be 'intrepid-model', got 'onnx'"),
        (lambda d: d.update(format_version=7), "format_version 7 is not supported"),
        (lambda d: d.pop("architecture"), "lacks the key 'architecture'"),
        (lambda d: d.update(members=[]), "'members' must be a non-empty list"),
        (lambda d: d["members"][0].pop("prefix"), "member 0 lacks its tensor 'prefix'"),
        (
            lambda d: d.update(weights_file="../other.safetensors"),
            "'weights_file' must be a .safetensors file",
        ),
        (lambda d: d["members"].pop(), "tensors of no member"),
        (lambda d: d["members"][1].update(prefix="nobody."), "member 1: no tensors with prefix 'nobody.'"),
        (
            lambda d: d["architecture"].update(initial_filters=8),
            "member 0: weights do not fit the architecture",
        ),
    ],
)
def test_inconsistent_descriptions_are_refused(saved, edit, match):
    _, folder = saved
    _edit_json(folder, edit)
    with pytest.raises(ModelError, match=match):
        load_model(folder)


def test_missing_or_foreign_files(tmp_path, saved):
    with pytest.raises(ModelError, match="no such model file or folder"):
        load_model(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="not a model folder"):
        load_model(empty)
    (tmp_path / "weights.onnx").write_bytes(b"\x08\x01")
    with pytest.raises(ModelError, match=r"not a model \(.onnx\)"):
        load_model(tmp_path / "weights.onnx")
    _, folder = saved
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="missing weights"):
        load_model(folder)
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable model description"):
        describe_model(folder)


def test_member_states_are_the_saved_weights(saved):
    ens, folder = saved
    loaded = load_model(folder)
    assert len(loaded.member_states) == 2
    for a, b in zip(loaded.member_states, ens.member_states, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
