"""``intrepid predict``: outputs named after the inputs, JSON contract, error lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from intrepid.cli._main import main
from intrepid.dicom import read_rtimage, write_rtimage
from intrepid.geometry import Quantity


def _tiny_model(folder: Path) -> Path:
    from intrepid.learn import Ensemble, PreprocessConfig, UNetConfig, build_unet

    unet = UNetConfig(depth=2, initial_filters=2)
    state = {k: v.detach().numpy().copy() for k, v in build_unet(unet).state_dict().items()}
    pre = PreprocessConfig(working_shape=(16, 16), input_scale=100.0, target_scale=1.0, fitted=True)
    return Ensemble(unet, pre, [state]).save(folder)


def _epid(path: Path) -> Path:
    a = np.zeros((32, 32))
    a[8:24, 8:24] = 50.0
    return write_rtimage(path, a, pixel_spacing_mm=1.6, quantity=Quantity.EPID_SIGNAL, units="CU")


def test_predict_writes_rtimage_and_npz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _tiny_model(tmp_path / "model")
    a, b = _epid(tmp_path / "one.dcm"), _epid(tmp_path / "two.dcm")
    out = tmp_path / "out"
    assert main(["predict", str(a), str(b), "--out", str(out), "--model", str(model), "--npz", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"model", "model_members", "out", "outputs", "load_seconds", "predict_seconds"} <= set(doc)
    assert [Path(o["rtimage"]).name for o in doc["outputs"]] == ["one.dcm", "two.dcm"]
    assert (out / "one.npz").is_file() and (out / "two.npz").is_file()
    assert read_rtimage(out / "two.dcm").image.quantity is Quantity.PORTAL_DOSE
    assert main(["predict", str(a), "--out", str(tmp_path / "o2"), "--model", str(model)]) == 0
    assert "one.dcm" in capsys.readouterr().out


def test_predict_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _epid(tmp_path / "one.dcm")
    assert main(["predict", str(a), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("intrepid predict: error:") and "no model here" in err
    model = _tiny_model(tmp_path / "model")
    assert (
        main(["predict", str(tmp_path / "missing.dcm"), "--out", str(tmp_path / "o"), "--model", str(model)])
        == 1
    )
    assert "missing.dcm" in capsys.readouterr().err
