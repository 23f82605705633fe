"""Stacked training (``intrepid.learn._stacked``): G runs as one grouped network equal sequential training."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.learn import (
    AugmentConfig,
    Loss,
    PreprocessConfig,
    TrainConfig,
    UNetConfig,
    load_dataset,
    prepare_working_arrays,
    train_model,
)
from intrepid.learn._stacked import StackedJob, build_stacked_unet, member_state, train_stacked

torch = pytest.importorskip("torch")

_PRE = PreprocessConfig(working_shape=(16, 16))


@pytest.fixture(scope="module")
def arrays(dicom_dataset):
    return prepare_working_arrays(load_dataset(dicom_dataset, split="train"), _PRE.working_shape)


def test_grouped_network_computes_each_members_unet():
    cfg = UNetConfig(depth=3, initial_filters=4)
    nets = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        from intrepid.learn import build_unet

        nets.append(build_unet(cfg).eval())
    stacked = build_stacked_unet(cfg, [n.state_dict() for n in nets]).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        out = stacked(x)
        for k, n in enumerate(nets):
            torch.testing.assert_close(out[:, k : k + 1], n(x[:, k : k + 1]), rtol=1e-5, atol=1e-6)
    for k, n in enumerate(nets):
        for name, value in n.state_dict().items():
            np.testing.assert_array_equal(member_state(stacked, k)[name], value.numpy())


@pytest.mark.parametrize("up_mode", ["transposed", "bilinear"])
def test_stacked_training_equals_sequential(arrays, up_mode):
    from intrepid.learn import UpMode

    unet = UNetConfig(depth=3, initial_filters=4, up_mode=UpMode(up_mode))
    aug = AugmentConfig(flip_columns=True, flip_rows=True, rotate_90=True, noise_percent=1.0)
    # three runs with different folds (sizes), seeds, batch sizes, learning rates (one cosine) and epochs
    jobs = [
        StackedJob(arrays.take(range(0, 6)), arrays.take([6, 7]),
                   TrainConfig(epochs=3, batch_size=4, seed=1, learning_rate=1e-3, device="cpu",
                               augmentation=aug)),
        StackedJob(arrays.take(range(2, 7)), arrays.take([0, 1, 7]),
                   TrainConfig(epochs=3, batch_size=3, seed=2, learning_rate=1e-2, device="cpu",
                               augmentation=aug, lr_schedule="cosine")),
        StackedJob(arrays.take(range(1, 8)), arrays.take([0]),
                   TrainConfig(epochs=2, batch_size=4, seed=3, learning_rate=3e-3, device="cpu",
                               weight_decay=1e-4)),
    ]
    stacked = train_stacked(jobs, unet=unet, preprocess=_PRE, device="cpu", progress=False)
    for job, got in zip(jobs, stacked, strict=True):
        want = train_model(job.train, job.val, job.config, unet=unet, preprocess=_PRE, progress=False)
        np.testing.assert_allclose(got.train_losses, want.train_losses, rtol=2e-5)
        np.testing.assert_allclose(got.val_losses, want.val_losses, rtol=2e-5)
        assert got.best_epoch == want.best_epoch
        assert got.augmentation_counts == want.augmentation_counts
        assert got.preprocess == want.preprocess
        for name, w in want.state.items():
            # Adam divides by sqrt(v): float32 round-off in the grouped convolutions reaches ~3e-6 on weights
            # of ~0.05 after a few steps
            np.testing.assert_allclose(got.state[name], w, rtol=1e-4, atol=1e-5, err_msg=name)


def test_stacked_errors(arrays):
    with pytest.raises(ParameterError, match="at least one member"):
        train_stacked([], device="cpu")
    jobs = [
        StackedJob(arrays.take(range(4)), arrays.take([5]), TrainConfig(epochs=1, loss=kind, device="cpu"))
        for kind in (Loss.MAE, Loss.MSE)
    ]
    with pytest.raises(ParameterError, match="share one loss"):
        train_stacked(jobs, unet=UNetConfig(depth=3, initial_filters=4), preprocess=_PRE, device="cpu")


def test_protocol_with_stacked_runs_equals_one_at_a_time(dicom_dataset, tmp_path):
    from intrepid.learn import ProtocolConfig, run_protocol

    ds = load_dataset(dicom_dataset, split="train")
    cfg = ProtocolConfig(
        filters=(4,), learning_rates=(1e-3, 1e-2), batch_sizes=(4,), repeats=2, folds=2, epochs=2, seed=9,
        device="cpu", unet=UNetConfig(depth=3, initial_filters=4), preprocess=_PRE,
    )
    one = run_protocol(ds, cfg, tmp_path / "one", progress=False)
    many = run_protocol(ds, cfg, tmp_path / "many", progress=False, stack=8)
    assert many.runs == one.runs == 8
    for a, b in zip(one.summaries, many.summaries, strict=True):
        assert a.configuration == b.configuration
        assert b.val_loss_mean == pytest.approx(a.val_loss_mean, rel=1e-4)
        assert b.gamma_pass_rate_mean_percent == pytest.approx(a.gamma_pass_rate_mean_percent, abs=0.05)
    import json

    m = json.loads(next((tmp_path / "many" / "runs").rglob("r00_f0.json")).read_text())
    assert m["execution"]["stacked_with"] == 8
