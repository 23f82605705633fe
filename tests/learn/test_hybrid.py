"""The hybrid (physics-informed residual) model: a kernel base plus a network correction."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from intrepid.errors import ModelError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.learn import (
    Ensemble,
    PreprocessConfig,
    Scaling,
    TrainConfig,
    UNetConfig,
    WorkingArrays,
    load_model,
    register_base_model,
    to_working_grid,
    train_model,
)
from intrepid.transit import KernelBaseline, kernel_basis

SIZE = 32
WORK = (16, 16)
SPACING = 4.0
UNET = UNetConfig(initial_filters=4, depth=3)
BASE = KernelBaseline((4.0, 12.0), (1e-4, 3e-5, -1e-5), 0.0005)


def _signals(n: int = 6) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    out = []
    for k in range(n):
        half = 5 + 2 * (k % 3)
        field = (np.abs(xx - 16) < half) & (np.abs(yy - 16) < half)
        out.append(field * (1000.0 + 200 * k) + 10.0)
    return np.asarray(out, dtype=np.float32)


def _arrays(n: int = 6) -> WorkingArrays:
    s = _signals(n)
    full = np.stack([BASE.predict_array(x, SPACING) for x in s])
    dose = full * 1.05 + 0.001  # the truth differs from the base by a smooth, learnable correction
    basis = np.stack(
        [[to_working_grid(b, WORK) for b in kernel_basis(x, SPACING, BASE.sigmas_mm)] for x in s]
    )
    base_wg = BASE.from_basis(np.moveaxis(basis, 1, 0)).astype(np.float32)
    return WorkingArrays(
        np.stack([to_working_grid(x, WORK) for x in s]),
        np.stack([to_working_grid(x, WORK) for x in dose]),
        (SIZE, SIZE),
        (SPACING, SPACING),
        (),
        base_wg,
    )


def _train(unet: UNetConfig = UNET, epochs: int = 2):
    arr = _arrays()
    cfg = TrainConfig(epochs=epochs, batch_size=2, device="cpu", seed=1)
    return train_model(
        arr.take([0, 1, 2, 3]),
        arr.take([4, 5]),
        cfg,
        unet=unet,
        preprocess=PreprocessConfig(working_shape=WORK),
    )


def _zero_head(ens_states: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    return [{k: (np.zeros_like(v) if k.startswith("head.") else v) for k, v in s.items()} for s in ens_states]


def test_zero_correction_gives_the_base_exactly(tmp_path: Path) -> None:
    # Closed form: with the network's last 1x1 convolution zeroed the correction is 0 everywhere, so the
    # hybrid output must equal the base model on the detector grid (to float32 rounding).
    model = _train(epochs=1)
    ens = Ensemble(UNET, model.preprocess, _zero_head([model.state]), base=BASE)
    s = _signals(2)
    out = ens.predict_array(s, SPACING)
    ref = np.stack([BASE.predict_array(x, SPACING) for x in s])
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-7 * float(ref.max()) + 1e-9)
    # the same via Volumes (the spacing comes from the grid) and after a save / load round trip
    g = Grid((SIZE, SIZE), (0.0, 0.0, 0.0), (SPACING, SPACING, 1.0))
    vol = ens.predict(Volume(s[0].astype(np.float64), g, Quantity.EPID_SIGNAL, "CU"))
    np.testing.assert_allclose(vol.array, ref[0], atol=1e-7 * float(ref.max()) + 1e-9)
    assert vol.metadata["method"].startswith("hybrid")
    ens.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.residual and isinstance(again.base, KernelBaseline) and again.base == BASE
    np.testing.assert_array_equal(again.predict_array(s, SPACING), out)


def test_trained_hybrid_round_trip_and_metadata(tmp_path: Path) -> None:
    model = _train()
    assert model.residual and model.history()["residual"] is True
    path = model.save(tmp_path / "h", base=BASE)
    doc = json.loads((path / "model.json").read_text())
    assert doc["residual"]["base"]["format"] == "intrepid-kernel-baseline"
    assert doc["residual"]["base_input_channel"] is False
    ens = load_model(path)
    s = _signals(3)
    a = ens.predict_array(s, SPACING)
    b = model.ensemble(base=BASE).predict_array(s, SPACING)
    np.testing.assert_array_equal(a, b)
    assert np.all(a >= 0)
    # predict_working = clipped base + correction on the working grid
    arr = _arrays(3)
    w = ens.predict_working(arr.epid, arr.base_gy)
    assert w.shape == (3, *WORK)


def test_base_as_second_input_channel(tmp_path: Path) -> None:
    unet = replace(UNET, in_channels=2)
    model = _train(unet, epochs=1)
    ens = model.ensemble(base=BASE)
    out = ens.predict_array(_signals(2), SPACING)
    ens.save(tmp_path / "c2")
    assert json.loads((tmp_path / "c2" / "model.json").read_text())["residual"]["base_input_channel"]
    np.testing.assert_array_equal(load_model(tmp_path / "c2").predict_array(_signals(2), SPACING), out)


def test_plain_model_files_have_no_residual_key(tmp_path: Path) -> None:
    arr = _arrays().with_base(None)
    cfg = TrainConfig(epochs=1, batch_size=2, device="cpu")
    pre = PreprocessConfig(working_shape=WORK)
    model = train_model(arr.take([0, 1, 2]), arr.take([3]), cfg, unet=UNET, preprocess=pre)
    assert not model.residual
    model.save(tmp_path / "p")
    assert "residual" not in json.loads((tmp_path / "p" / "model.json").read_text())
    assert not load_model(tmp_path / "p").residual


def test_hybrid_training_errors() -> None:
    arr = _arrays()
    cfg = TrainConfig(epochs=1, batch_size=2, device="cpu")
    pre = PreprocessConfig(working_shape=WORK)
    with pytest.raises(ParameterError, match="val_pairs do not"):
        train_model(arr.take([0, 1]), arr.with_base(None).take([2]), cfg, unet=UNET, preprocess=pre)
    with pytest.raises(ParameterError, match="needs linear scaling"):
        train_model(arr.take([0, 1]), (), cfg, unet=UNET, preprocess=replace(pre, scaling=Scaling.LOG))
    with pytest.raises(ParameterError, match=r"in_channels must be 1 .*, got 3"):
        train_model(arr.take([0, 1]), (), cfg, unet=replace(UNET, in_channels=3), preprocess=pre)
    with pytest.raises(ParameterError, match="in_channels must be 1 \\(EPID signal\\), got 2"):
        train_model(
            arr.with_base(None).take([0, 1]), (), cfg, unet=replace(UNET, in_channels=2), preprocess=pre
        )
    with pytest.raises(ParameterError, match="base_gy must have the shape of epid"):
        WorkingArrays(arr.epid, arr.dose_gy, None, None, (), arr.base_gy[:2])


def test_hybrid_ensemble_errors() -> None:
    model = _train(epochs=1)
    with pytest.raises(ParameterError, match="pass base="):
        model.ensemble()
    ens = model.ensemble(base=BASE)
    arr = _arrays(2)
    with pytest.raises(ParameterError, match="needs base_gy"):
        ens.predict_working(arr.epid)
    with pytest.raises(ParameterError, match="base must have predict_array"):
        Ensemble(UNET, model.preprocess, [model.state], base=object())
    with pytest.raises(ParameterError, match="needs linear scaling"):
        Ensemble(UNET, replace(model.preprocess, scaling=Scaling.LOG), [model.state], base=BASE)
    no_spacing = Ensemble(UNET, replace(model.preprocess, detector_spacing_mm=None), [model.state], base=BASE)
    with pytest.raises(ParameterError, match="spacing_mm is required"):
        no_spacing.predict_array(_signals(1))
    plain = _train(epochs=1)
    with pytest.raises(ParameterError, match="only for hybrid ensembles"):
        Ensemble(UNET, plain.preprocess, [plain.state]).predict_working(arr.epid, arr.base_gy)


def test_model_file_errors(tmp_path: Path) -> None:
    model = _train(epochs=1)
    path = model.save(tmp_path / "bad", base=BASE)
    doc = json.loads((path / "model.json").read_text())
    doc["residual"]["base"]["format"] = "unknown-base"
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="'unknown-base', which no registered base model reads"):
        load_model(path)
    doc["residual"] = [1]
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="key 'residual' must be an object"):
        load_model(path)
    doc["residual"] = {"base": {"format": "intrepid-kernel-baseline", "sigmas_mm": [1.0]}}
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="incomplete or malformed"):
        load_model(path)


def test_register_base_model_errors() -> None:
    with pytest.raises(ParameterError, match="format_name must be a non-empty string"):
        register_base_model("", KernelBaseline.from_dict)
    with pytest.raises(ParameterError, match="loader must be callable"):
        register_base_model("x", 3)  # type: ignore[arg-type]
