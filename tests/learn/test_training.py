"""Tests of training (``intrepid.learn._training``) and of the predictor (``intrepid.learn._ensemble``)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.learn import (
    AugmentConfig,
    Ensemble,
    Loss,
    PreprocessConfig,
    TrainConfig,
    UNetConfig,
    WorkingArrays,
    build_unet,
    load_dataset,
    prepare_working_arrays,
    select_device,
    to_working_grid,
    train_model,
)

torch = pytest.importorskip("torch")

SMALL = UNetConfig(depth=3, initial_filters=4)
PRE16 = PreprocessConfig(working_shape=(16, 16))


def _arrays(n: int = 6, seed: int = 0) -> WorkingArrays:
    rng = np.random.default_rng(seed)
    epid = (rng.random((n, 16, 16)) * 1000 + 100).astype(np.float32)
    return WorkingArrays(epid, ((epid - 100) / 2000).astype(np.float32), (16, 16), (1.0, 1.0))


def test_training_is_deterministic_for_a_seed():
    cfg = TrainConfig(epochs=2, batch_size=2, seed=3, device="cpu")
    a = train_model(_arrays(), _arrays(2, 1), cfg, unet=SMALL, preprocess=PRE16, progress=False)
    b = train_model(_arrays(), _arrays(2, 1), cfg, unet=SMALL, preprocess=PRE16, progress=False)
    assert a.train_losses == b.train_losses and a.val_losses == b.val_losses
    for k in a.state:
        np.testing.assert_array_equal(a.state[k], b.state[k])
    c = train_model(
        _arrays(), _arrays(2, 1), replace(cfg, seed=4), unet=SMALL, preprocess=PRE16, progress=False
    )
    assert c.train_losses != a.train_losses


def test_global_torch_generator_is_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_model(
        _arrays(), (), TrainConfig(epochs=1, device="cpu"), unet=SMALL, preprocess=PRE16, progress=False
    )
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


def test_best_checkpoint_is_the_lowest_validation_loss():
    cfg = TrainConfig(epochs=4, batch_size=3, learning_rate=1e-2, loss=Loss.MSE, device="cpu")
    m = train_model(_arrays(), _arrays(3, 1), cfg, unet=SMALL, preprocess=PRE16, progress=False)
    assert len(m.train_losses) == len(m.val_losses) == 4
    assert m.best_val_loss == min(m.val_losses)
    assert m.best_epoch == int(np.argmin(m.val_losses)) + 1
    assert m.n_train == 6 and m.n_val == 3 and m.config.device == "cpu"
    # the kept weights give the recorded validation loss (eval mode, MSE on normalised dose)
    val = _arrays(3, 1)
    ens = m.ensemble()
    pred = ens.predict_working(val.epid)
    mse = float(
        np.mean((m.preprocess.normalise_target(pred) - m.preprocess.normalise_target(val.dose_gy)) ** 2)
    )
    assert mse == pytest.approx(m.best_val_loss, rel=1e-4)  # float32 sums in another order


def test_learning_reduces_the_loss_on_a_learnable_mapping():
    # dose proportional to signal: a U-Net with a linear path learns it quickly
    cfg = TrainConfig(
        epochs=12,
        batch_size=2,
        learning_rate=1e-2,
        device="cpu",
        augmentation=AugmentConfig(flip_columns=False),
    )
    m = train_model(_arrays(8), (), cfg, unet=SMALL, preprocess=PRE16, progress=False)
    assert min(m.train_losses[-3:]) < 0.5 * m.train_losses[0]
    assert math.isnan(m.best_val_loss) and m.val_losses == ()
    assert m.best_epoch == int(np.argmin(m.train_losses)) + 1
    assert m.augmentation_counts["flip_columns"] == 0


def test_preprocessing_is_fitted_on_the_training_pairs(dicom_dataset):
    ds = load_dataset(dicom_dataset, split="train")
    pre = PreprocessConfig(working_shape=(16, 16))
    m = train_model(
        ds.subset(range(6)),
        ds.subset([6, 7]),
        TrainConfig(epochs=1, device="cpu"),
        unet=SMALL,
        preprocess=pre,
        progress=False,
    )
    assert m.preprocess.fitted and m.preprocess.detector_shape == (64, 64)
    assert m.preprocess.detector_spacing_mm == (6.48, 6.48)
    # dark level of the synthetic EPID: 500 counts (the 0.1th percentile of blurred fields is the background)
    assert m.preprocess.input_offset == pytest.approx(500.0, abs=1.0)
    arrays = prepare_working_arrays(ds.subset(range(6)), (16, 16))
    assert arrays.epid.shape == (6, 16, 16)
    np.testing.assert_allclose(arrays.dose_gy[0], to_working_grid(ds[0].portal_dose.array, (16, 16)))


def test_training_rejects_bad_settings():
    with pytest.raises(ParameterError, match=r"learning_rate must be > 0, got -0\.1"):
        TrainConfig(learning_rate=-0.1)
    with pytest.raises(ParameterError, match="batch_size must be an integer >= 1, got 0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ParameterError, match="epochs must be an integer >= 1"):
        TrainConfig(epochs=2.5)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="seed must be an integer >= 0"):
        TrainConfig(seed=-1)
    with pytest.raises(ParameterError, match="loss must be a Loss"):
        TrainConfig(loss="mae")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="train_pairs must hold at least one pair"):
        train_model([], [], TrainConfig(device="cpu"), unet=SMALL, preprocess=PRE16, progress=False)
    with pytest.raises(ParameterError, match=r"working_shape \(18, 18\) must be multiples of 4"):
        train_model(
            _arrays(),
            (),
            TrainConfig(device="cpu"),
            unet=SMALL,
            preprocess=PreprocessConfig(working_shape=(18, 18)),
            progress=False,
        )
    with pytest.raises(ParameterError, match="not the working grid"):
        train_model(
            _arrays(),
            (),
            TrainConfig(device="cpu"),
            unet=SMALL,
            preprocess=PreprocessConfig(working_shape=(32, 32)),
            progress=False,
        )


def test_device_selection():
    assert select_device("cpu") == "cpu"
    assert select_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ParameterError, match="device must be auto, cpu, cuda or cuda:N, got 'tpu'"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="no CUDA GPU is available"):
            select_device("cuda")


@pytest.mark.gpu
def test_training_on_the_gpu():
    m = train_model(
        _arrays(),
        _arrays(2, 1),
        TrainConfig(epochs=2, device="cuda"),
        unet=SMALL,
        preprocess=PRE16,
        progress=False,
    )
    assert m.config.device == "cuda" and all(np.isfinite(m.val_losses))
    ens = m.ensemble(device="cuda")
    assert ens.predict_array(np.full((32, 32), 500.0)).shape == (32, 32)


# ------------------------------------------------------------------------------------------- ensemble
def _random_states(n: int, cfg: UNetConfig = SMALL) -> list[dict[str, np.ndarray]]:
    out = []
    for m in range(n):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(10 + m)
            net = build_unet(cfg)
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
        out.append({k: v.numpy().copy() for k, v in net.state_dict().items()})
    return out


PRE = PreprocessConfig(
    working_shape=(16, 16),
    input_offset=100.0,
    input_scale=1000.0,
    target_scale=0.5,
    fitted=True,
    clip_negative=False,
)


def test_batch_norm_folding_is_exact():
    state = _random_states(1)[0]
    net = build_unet(SMALL)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    net.eval()
    signal = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32) * 1000 + 100
    with torch.no_grad():
        x = torch.from_numpy(PRE.normalise_input(signal))[:, None]
        expected = net(x)[:, 0].numpy() * PRE.target_scale
    got = Ensemble(SMALL, PRE, [state]).predict_working(signal)
    # folding changes the float32 rounding only
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_ensemble_is_the_mean_of_its_members():
    states = _random_states(3)
    signal = np.random.default_rng(1).random((2, 48, 40)).astype(np.float32) * 1000 + 100
    singles = [Ensemble(SMALL, PRE, [s]).predict_array(signal) for s in states]
    both = Ensemble(SMALL, PRE, states).predict_array(signal)
    # linear scaling, no clipping: averaging commutes with the (linear) resampling
    np.testing.assert_allclose(both, np.mean(singles, axis=0), rtol=1e-4, atol=1e-6)


def test_members_may_have_their_own_normalisation():
    state = _random_states(1)[0]
    other = replace(PRE, input_offset=50.0, input_scale=500.0, target_scale=2.0)
    signal = np.random.default_rng(2).random((1, 16, 16)).astype(np.float32) * 1000 + 100
    a = Ensemble(SMALL, PRE, [state]).predict_working(signal)
    b = Ensemble(SMALL, other, [state]).predict_working(signal)
    mixed = Ensemble(SMALL, PRE, [state, state], member_preprocess=[PRE, other]).predict_working(signal)
    np.testing.assert_allclose(mixed, (a + b) / 2, rtol=1e-5, atol=1e-7)
    with pytest.raises(ParameterError, match=r"working shape .* differ from the ensemble's"):
        Ensemble(SMALL, PRE, [state], member_preprocess=[replace(PRE, working_shape=(32, 32))])


def test_predict_volumes_keeps_the_grid_and_batches():
    ens = Ensemble(SMALL, replace(PRE, clip_negative=True), _random_states(2), batch_size=2)
    grid = Grid(
        (48, 40), origin_mm=(-100, 100, 0), spacing_mm=(5, 5, 1), direction=(1, 0, 0, 0, -1, 0, 0, 0, -1)
    )
    rng = np.random.default_rng(3)
    vols = [
        Volume(
            rng.random((48, 40)) * 1000 + 100,
            grid,
            Quantity.EPID_SIGNAL,
            "raw",
            "1.2.3",
            {"source": f"img{n}"},
        )
        for n in range(3)
    ]
    vols.append(
        Volume(rng.random((16, 16)) * 1000, Grid((16, 16), (0, 0, 0), (1, 1, 1)), Quantity.EPID_SIGNAL)
    )
    out = ens.predict_volumes(vols)
    assert [o.shape for o in out] == [(48, 40)] * 3 + [(16, 16)]
    first = out[0]
    assert first.quantity is Quantity.PORTAL_DOSE and first.units == "Gy" and first.grid == grid
    assert first.frame_of_reference_uid == "1.2.3" and first.metadata["source"] == "img0"
    assert first.metadata["model_members"] == 2 and float(first.array.min()) >= 0.0
    np.testing.assert_allclose(ens.predict(vols[1]).array, out[1].array, rtol=1e-6)
    np.testing.assert_allclose(ens.predict_array(vols[2].array), out[2].array, rtol=1e-6)


def test_ensemble_rejects_bad_input():
    states = _random_states(1)
    with pytest.raises(ParameterError, match="at least one member"):
        Ensemble(SMALL, PRE, [])
    with pytest.raises(ParameterError, match=r"working_shape \(18, 18\) must be multiples of 4"):
        Ensemble(SMALL, replace(PRE, working_shape=(18, 18)), states)
    ens = Ensemble(SMALL, PRE, states)
    with pytest.raises(ParameterError, match="signal contains NaN"):
        ens.predict_array(np.full((8, 8), np.nan))
    with pytest.raises(ParameterError, match=r"signal must be .rows, columns. or .N, rows, columns."):
        ens.predict_array(np.ones(8))
    with pytest.raises(ParameterError, match=r"epids\[0\] must be a 2D Volume"):
        ens.predict_volumes([np.ones((8, 8))])  # type: ignore[list-item]
    with pytest.raises(ParameterError, match="member_info has 2 entries for 1 members"):
        Ensemble(SMALL, PRE, states, member_info=[{}, {}])


def test_a_last_batch_of_one_joins_the_previous_one():
    from intrepid.learn._training import _batches

    sizes = [len(b) for b in _batches(np.arange(9), 4)]
    assert sizes == [4, 5]
    assert sorted(np.concatenate(_batches(np.arange(9)[::-1], 4)).tolist()) == list(range(9))
    assert [len(b) for b in _batches(np.arange(1), 4)] == [1]
    # a 16 x 16 grid and depth 5: a 1 x 1 bottleneck with batch normalisation
    with pytest.raises(ParameterError, match="one training image with a 1 x 1 bottleneck"):
        train_model(_arrays(1), (), TrainConfig(device="cpu"), preprocess=PRE16, progress=False)


def test_prediction_on_a_real_varian_epid_image(external_data, caplog):
    from intrepid.dicom import read_rtimage

    image = read_rtimage(external_data / "varian-epid" / "RI_test_linearity.dcm").image
    pre = replace(PRE, detector_shape=(1024, 1024), detector_spacing_mm=(0.405, 0.405), clip_negative=True)
    ens = Ensemble(SMALL, pre, _random_states(1))
    with caplog.at_level("WARNING"):
        dose = ens.predict(image)
    # a 768 x 1024 aS1000 image at 0.392 mm: predicted on its own grid, with a warning about the panel
    assert dose.shape == (768, 1024) and dose.grid == image.grid
    assert np.all(np.isfinite(dose.array)) and float(dose.array.min()) >= 0.0
    assert "differs from the training detector" in caplog.text
