"""EPID files -> portal-dose RT Image / npz files with a (tiny) ensemble."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from intrepid.dicom import read_npz, read_rtimage, write_rtimage
from intrepid.errors import ModelError, ParameterError
from intrepid.geometry import Quantity
from intrepid.transit import PredictionOutput, load_predictor, predict_files, resolve_model_path

ROWS = 32


def _tiny_model(folder: Path) -> Path:
    from intrepid.learn import Ensemble, PreprocessConfig, UNetConfig, build_unet

    unet = UNetConfig(depth=2, initial_filters=2)
    state = {k: v.detach().numpy().copy() for k, v in build_unet(unet).state_dict().items()}
    pre = PreprocessConfig(working_shape=(16, 16), input_scale=100.0, target_scale=1.0, fitted=True)
    return Ensemble(unet, pre, [state, state]).save(folder)


def _epid(path: Path, value: float = 50.0) -> Path:
    a = np.zeros((ROWS, ROWS))
    a[8:24, 8:24] = value
    return write_rtimage(
        path,
        a,
        pixel_spacing_mm=1.6,
        quantity=Quantity.EPID_SIGNAL,
        units="CU",
        image_position_mm=(-20.0, 24.8),
        meterset=100.0,
        gantry_deg=90.0,
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_model(tmp_path_factory.mktemp("model"))


def test_one_output_per_input_named_after_the_stem(tmp_path: Path, model_dir: Path) -> None:
    a, b = _epid(tmp_path / "beam_a.dcm"), _epid(tmp_path / "beam_b.dcm", 80.0)
    model = load_predictor(model_dir)
    outs = predict_files([a, b], tmp_path / "out", model=model, npz=True)
    assert [o.rtimage.name for o in outs] == ["beam_a.dcm", "beam_b.dcm"]
    assert all(isinstance(o, PredictionOutput) and o.npz is not None for o in outs)
    rt = read_rtimage(outs[0].rtimage)
    assert rt.image.quantity is Quantity.PORTAL_DOSE and rt.pixel_units.upper() == "GY"
    src = read_rtimage(a)
    # The output keeps the input's detector geometry (spacing, position of the first pixel, angles, MU).
    assert rt.pixel_spacing_mm == src.pixel_spacing_mm
    np.testing.assert_allclose(rt.image.grid.origin_mm, src.image.grid.origin_mm, atol=1e-6)
    assert rt.gantry_deg == 90.0 and rt.meterset == 100.0
    # The RT Image stores the dose with a rescale slope: equal to the network output within 16-bit steps.
    direct = model.predict(src.image)
    step = float(np.max(direct.array)) / 60000 + 1e-12
    np.testing.assert_allclose(rt.image.array, direct.array, atol=2 * step)
    npz = read_npz(outs[0].npz)  # type: ignore[arg-type]
    np.testing.assert_allclose(npz.array, direct.array, rtol=1e-6, atol=1e-9)
    assert outs[1].to_dict()["source"].endswith("beam_b.dcm")


def test_model_argument_may_be_a_path_or_a_run_folder(tmp_path: Path, model_dir: Path) -> None:
    run = tmp_path / "run"
    (run / "ensemble").mkdir(parents=True)
    for f in model_dir.iterdir():
        (run / "ensemble" / f.name).write_bytes(f.read_bytes())
    assert resolve_model_path(run) == run / "ensemble"
    assert resolve_model_path(model_dir / "model.json") == model_dir
    outs = predict_files([_epid(tmp_path / "x.dcm")], tmp_path / "o", model=run)
    assert outs[0].rtimage.is_file() and outs[0].npz is None


def test_bad_inputs_are_refused(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(ParameterError, match="must name at least one EPID file"):
        predict_files([], tmp_path, model=model_dir)
    a = _epid(tmp_path / "a.dcm")
    (tmp_path / "sub").mkdir()
    a2 = _epid(tmp_path / "sub" / "a.dcm")
    with pytest.raises(ParameterError, match="share the file stem 'a'"):
        predict_files([a, a2], tmp_path / "o", model=model_dir)
    dose = write_rtimage(tmp_path / "dose.dcm", np.ones((ROWS, ROWS)), pixel_spacing_mm=1.0)
    with pytest.raises(ParameterError, match="is already a portal-dose image"):
        predict_files([dose], tmp_path / "o", model=model_dir)
    predict_files([a], tmp_path / "o2", model=model_dir)
    with pytest.raises(ParameterError, match="exists; pass overwrite=True"):
        predict_files([a], tmp_path / "o2", model=model_dir, overwrite=False)
    with pytest.raises(ModelError, match="no model here"):
        resolve_model_path(tmp_path / "nothing")


def test_batch_and_single_image_predictions_agree(tmp_path: Path) -> None:
    # Metamorphic: predicting a batch (one loaded model, one forward pass) equals predicting one at a time.
    folder = _tiny_model(tmp_path / "m")
    files = [_epid(tmp_path / f"e{i}.dcm", 20.0 + 10 * i) for i in range(3)]
    model: Any = load_predictor(folder)
    batch = predict_files(files, tmp_path / "batch", model=model, npz=True)
    for f, out in zip(files, batch, strict=True):
        single = predict_files([f], tmp_path / f"single_{f.stem}", model=model, npz=True)[0]
        np.testing.assert_allclose(
            read_npz(single.npz).array,
            read_npz(out.npz).array,  # type: ignore[arg-type]
            rtol=1e-5,
            atol=1e-7,
        )
