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


def _per_mu_model(folder: Path) -> Path:
    """Two members trained per MU (``training.input`` ranges) on a kernel base."""
    import torch

    from intrepid.learn import Ensemble, PreprocessConfig, UNetConfig, build_unet
    from intrepid.physics._kernel_baseline import KernelBaseline

    unet = UNetConfig(depth=2, initial_filters=2)
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append({k: v.detach().numpy().copy() for k, v in build_unet(unet).state_dict().items()})
    pre = PreprocessConfig(working_shape=(16, 16), input_scale=1.0, target_scale=1e-4, fitted=True)
    base = KernelBaseline((2.0,), (0.01, 0.0), input_units="CU/MU")
    ranges = {
        "units": "CU/MU", "vendors": ["varian"], "acquisition_modes": ["integrated"], "sid_mm": [1000, 1600],
        "field_size_iso_cm": [2, 30], "mu": [50, 200], "signal_level_cu_per_mu": [0.05, 1.1],
    }  # fmt: skip
    return Ensemble(unet, pre, states, training={"input": ranges}, base=base).save(folder)


def _varian(path: Path, value: float, mu: float | None, sid: float = 1500.0) -> Path:
    from intrepid.dicom import Vendor

    a = np.zeros((32, 32))
    a[8:24, 8:24] = value
    return write_rtimage(
        path, a, pixel_spacing_mm=4.0, quantity=Quantity.EPID_SIGNAL, units="CU", vendor=Vendor.VARIAN,
        sid_mm=sid, meterset=mu,
    )  # fmt: skip


def test_predict_per_mu_json_ood_uncertainty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _per_mu_model(tmp_path / "model")
    a = _varian(tmp_path / "a.dcm", 30.0, 100.0)  # 0.3 CU/MU -> base 0.003 Gy/MU -> ~0.3 Gy
    b = _varian(tmp_path / "b.dcm", 30.0, 400.0)  # 400 MU: outside the training MU range
    out = tmp_path / "out"
    assert main(["predict", str(a), str(b), "--out", str(out), "--model", str(model), "--npz", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model_convention"] == "CU/MU" and doc["model_members"] == 2
    first, second = doc["outputs"]
    assert first["ood"] is False and first["ood_reasons"] == []
    assert first["central_dose_gy"] == pytest.approx(0.3, rel=0.05)
    assert first["input"]["vendor"] == "varian" and first["input"]["mu"] == 100.0
    assert second["ood"] is True and any("MU 400" in r for r in second["ood_reasons"])
    z = np.load(out / "a.npz")
    assert z["uncertainty_gy"].shape == z["array"].shape and float(z["uncertainty_gy"].max()) > 0
    assert main(["predict", str(a), "--out", str(tmp_path / "o3"), "--model", str(model), "--mu", "50"]) == 0
    text = capsys.readouterr().out
    assert "central 0.3" in text or "central 0.29" in text  # MU given on the command line: same CU/MU x MU


def test_predict_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from intrepid.dicom import Vendor

    model = _per_mu_model(tmp_path / "model")
    raw = np.full((32, 32), 100.0)
    us = write_rtimage(
        tmp_path / "us.dcm", raw, pixel_spacing_mm=4.0, quantity=Quantity.EPID_SIGNAL, units="US",
        vendor=Vendor.VARIAN, sid_mm=1000.0, meterset=100.0,
    )  # fmt: skip
    cases = [
        (us, "us.dcm: uncalibrated image"),
        (_varian(tmp_path / "nomu.dcm", 30.0, None), "nomu.dcm: no meterset"),
        (_varian(tmp_path / "far.dcm", 30.0, 100.0, sid=2200.0), "far.dcm: SID 2200 mm outside the training"),
    ]
    good = _varian(tmp_path / "good.dcm", 30.0, 100.0)
    for path, message in cases:
        out = tmp_path / f"o_{path.stem}"
        assert main(["predict", str(good), str(path), "--out", str(out), "--model", str(model)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
        assert not (out / "good.dcm").exists()  # refused before anything was written
