"""3D U-Net and the repeated-CV volume ensemble (tiny settings: seconds on a CPU)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from intrepid.errors import ModelError, ParameterError  # noqa: E402
from intrepid.learn._unet3d import UNet3DConfig, build_unet3d, pad_to_multiple  # noqa: E402
from intrepid.learn._volume_ensemble import (  # noqa: E402
    VolumeEnsemble,
    VolumeSample,
    VolumeTrainConfig,
    train_volume_ensemble,
)


def test_unet3d_keeps_the_shape_of_padded_inputs() -> None:
    cfg = UNet3DConfig(depth=3, initial_filters=4, in_channels=2)
    net = build_unet3d(cfg)
    x, back = pad_to_multiple(np.zeros((1, 2, 9, 10, 11), np.float32), cfg.multiple)
    assert x.shape[-3:] == (12, 12, 12)
    y = net(torch.from_numpy(x)).detach().numpy()
    assert y.shape == (1, 1, 12, 12, 12) and y[back].shape == (1, 1, 9, 10, 11)
    assert cfg.filters_per_level == (4, 8, 16)
    with pytest.raises(ParameterError, match="depth"):
        UNet3DConfig(depth=9)


def _samples(n_groups: int = 4) -> list[VolumeSample]:
    rng = np.random.default_rng(0)
    out = []
    for g in range(n_groups):
        base = rng.random((8, 8, 8)).astype(np.float32)
        x = np.stack([base, np.ones_like(base)])
        # the truth is the base scaled by 1.2: a correction the residual network can learn
        out.append(VolumeSample(x, base, 1.2 * base, np.ones_like(base), f"case{g}"))
    return out


def test_training_improves_on_the_base_and_round_trips(tmp_path: Path) -> None:
    arch = UNet3DConfig(depth=2, initial_filters=4, in_channels=2, batch_norm_from_level=None)
    cfg = VolumeTrainConfig(
        repeats=1, folds=2, epochs=8, patch=8, batch_size=2, learning_rate=1e-2, threads=1
    )
    ens = train_volume_ensemble(_samples(), arch, cfg)
    assert len(ens.members) == 2
    for run in ens.runs:
        assert run["val_loss"] < run["val_loss_untrained"]  # better than the physics base alone
        assert run["held_out_groups"]
    s = _samples()[0]
    before = ens.predict(s.inputs, s.base)
    ens.save(tmp_path / "m")
    again = VolumeEnsemble.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict(s.inputs, s.base), before, rtol=1e-5, atol=1e-6)
    (tmp_path / "m" / "model.json").write_text(
        (tmp_path / "m" / "model.json").read_text().replace("unet3d-residual-ensemble", "something-else")
    )
    with pytest.raises(ModelError):
        VolumeEnsemble.load(tmp_path / "m")


def test_cosine_schedule_decays_to_five_percent_and_trains() -> None:
    cfg = VolumeTrainConfig(epochs=5, learning_rate=1e-2, lr_schedule="cosine")
    lrs = [cfg.epoch_learning_rate(e) for e in range(5)]
    assert lrs[0] == pytest.approx(1e-2) and lrs[-1] == pytest.approx(5e-4)
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert VolumeTrainConfig(epochs=5).epoch_learning_rate(4) == 1e-3  # constant by default
    with pytest.raises(ParameterError, match="lr_schedule"):
        VolumeTrainConfig(lr_schedule="step")
    arch = UNet3DConfig(depth=2, initial_filters=4, in_channels=2, batch_norm_from_level=None)
    ens = train_volume_ensemble(
        _samples(),
        arch,
        VolumeTrainConfig(
            folds=2, epochs=6, patch=8, batch_size=2, learning_rate=1e-2, threads=1, lr_schedule="cosine"
        ),
    )
    assert all(run["val_loss"] < run["val_loss_untrained"] for run in ens.runs)
    assert ens.training["protocol"]["lr_schedule"] == "cosine"


def test_too_few_groups_for_the_folds() -> None:
    with pytest.raises(ParameterError, match="groups"):
        train_volume_ensemble(_samples(1), UNet3DConfig(depth=2, in_channels=2), VolumeTrainConfig(folds=2))


def test_batched_inference_equals_one_volume_at_a_time() -> None:
    """predict_batch groups volumes of one shape into batches; results equal per-volume predict."""
    arch = UNet3DConfig(depth=2, initial_filters=4, in_channels=2, batch_norm_from_level=None)
    torch.manual_seed(0)
    ens = VolumeEnsemble(arch, [build_unet3d(arch), build_unet3d(arch)])
    rng = np.random.default_rng(1)
    items = []
    for shape in [(8, 8, 8), (6, 9, 7), (8, 8, 8), (8, 8, 8)]:
        base = rng.random(shape).astype(np.float32)
        items.append((np.stack([base, rng.random(shape).astype(np.float32)]), base))
    batched = ens.predict_batch(items, device="cpu", batch_size=2)
    assert [b.shape for b in batched] == [it[1].shape for it in items]
    for (x, base), got in zip(items, batched, strict=True):
        one = ens.predict(x, base)
        np.testing.assert_allclose(got, one, rtol=1e-5, atol=1e-6)
        assert np.abs(got - base).max() > 0  # the members do correct the base
    with pytest.raises(ParameterError, match="batch_size"):
        ens.predict_batch(items, batch_size=0)


def test_2d_train_config_schedule_is_checked_and_recorded() -> None:
    from intrepid.learn import TrainConfig

    cfg = TrainConfig(epochs=11, learning_rate=1e-3, lr_schedule="cosine")
    assert cfg.epoch_learning_rate(0) == pytest.approx(1e-3)
    assert cfg.epoch_learning_rate(5) == pytest.approx(0.525e-3)  # half-way: mean of 1 and 0.05
    assert cfg.to_dict()["lr_schedule"] == "cosine"
    with pytest.raises(ParameterError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
