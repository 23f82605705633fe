"""Hostile model folders: every one refused with a :class:`ModelError` that names the file, never a traceback,
an allocation bomb or a silently wrong network (``intrepid.learn._model_io`` limits)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from intrepid.errors import ModelError
from intrepid.learn import load_model, read_model_files

pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "intrepid" / "transit" / "models" / "default"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.json", "model.safetensors"):
        shutil.copy(SHIPPED / name, folder / name)
    return folder


def _edit_json(folder: Path, edit) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((folder / "model.json").read_text())
    edit(doc)
    (folder / "model.json").write_text(json.dumps(doc))


def _rewrite_weights(folder: Path, change) -> None:  # type: ignore[no-untyped-def]
    tensors = safetensors_numpy.load_file(str(folder / "model.safetensors"))
    change(tensors)
    safetensors_numpy.save_file(tensors, str(folder / "model.safetensors"))
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    _edit_json(folder, lambda d: d.update(weights_sha256=digest))


def test_the_shipped_model_passes(model: Path) -> None:
    doc, tensors = read_model_files(model)
    assert doc["architecture"]["initial_filters"] <= 256 and tensors


def test_absurd_architecture_is_refused_before_allocation(model: Path) -> None:
    _edit_json(model, lambda d: d["architecture"].update(initial_filters=1_000_000))
    with pytest.raises(ModelError, match=r"model\.json: architecture key 'initial_filters' must be an"):
        load_model(model)


def test_huge_working_shape_is_refused(model: Path) -> None:
    _edit_json(model, lambda d: d["preprocessing"].update(working_shape=[65536, 65536]))
    with pytest.raises(ModelError, match=r"model\.json: preprocessing key 'working_shape'"):
        load_model(model)


def test_deep_json_is_refused_without_recursion_error(model: Path) -> None:
    (model / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelError, match=r"model\.json: JSON nested deeper than 64 levels"):
        load_model(model)


def test_float64_and_int8_tensors_are_refused(model: Path) -> None:
    def to_float64(t: dict[str, np.ndarray]) -> None:
        key = next(k for k, v in t.items() if v.dtype == np.float32)
        t[key] = t[key].astype(np.float64)

    _rewrite_weights(model, to_float64)
    with pytest.raises(ModelError, match=r"model\.safetensors: tensor .* is float64"):
        load_model(model)


def test_nan_weights_are_refused(model: Path) -> None:
    def poison(t: dict[str, np.ndarray]) -> None:
        key = next(k for k, v in t.items() if v.dtype == np.float32 and v.size > 1)
        t[key] = t[key].copy()
        t[key].flat[0] = np.nan

    _rewrite_weights(model, poison)
    with pytest.raises(ModelError, match="NaN or infinite"):
        load_model(model)


def test_wrong_tensor_shape_names_the_model(model: Path) -> None:
    def reshape(t: dict[str, np.ndarray]) -> None:
        key = next(k for k, v in t.items() if v.dtype == np.float32 and v.ndim == 4)
        t[key] = np.zeros((*t[key].shape[:-1], t[key].shape[-1] + 2), dtype=np.float32)

    _rewrite_weights(model, reshape)
    with pytest.raises(ModelError, match=r"weights do not fit the architecture") as info:
        load_model(model)
    assert str(info.value).startswith(str(model)) and "\n" not in str(info.value)
