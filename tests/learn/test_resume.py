"""Per-epoch checkpoints and resumed protocols (checkpoint, runs and resume_protocol of intrepid.learn).

A resumed run must be indistinguishable from an uninterrupted one: same losses epoch by epoch, same weights,
same summary. PyTorch's CPU kernels used by the U-Net are deterministic, so the comparison is exact up to
float32 round-off (tolerance 1e-6 relative).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.learn import (
    PreprocessConfig,
    ProtocolConfig,
    TrainConfig,
    UNetConfig,
    load_dataset,
    prepare_working_arrays,
    read_checkpoint,
    resume_protocol,
    run_protocol,
    train_model,
)

torch = pytest.importorskip("torch")

_UNET = UNetConfig(depth=3, initial_filters=4)
_PRE = PreprocessConfig(working_shape=(16, 16))


def _cfg(**kw):
    base = dict(
        filters=(4,),
        learning_rates=(1e-3,),
        batch_sizes=(4,),
        repeats=2,
        folds=2,
        epochs=3,
        seed=11,
        device="cpu",
        unet=_UNET,
        preprocess=_PRE,
    )
    base.update(kw)
    return ProtocolConfig(**base)


def test_training_resumes_exactly_from_a_checkpoint(dicom_dataset, tmp_path):
    ds = load_dataset(dicom_dataset, split="train")
    arrays = prepare_working_arrays(ds, _PRE.working_shape)
    train, val = arrays.take(range(0, 6)), arrays.take(range(6, 8))
    cfg4 = TrainConfig(epochs=4, batch_size=3, seed=3, device="cpu")
    straight = train_model(train, val, cfg4, unet=_UNET, preprocess=_PRE, progress=False)

    ckpt = tmp_path / "run.ckpt.safetensors"
    # an interrupted run: two epochs written to the checkpoint ...
    train_model(train, val, TrainConfig(epochs=2, batch_size=3, seed=3, device="cpu"), unet=_UNET,
                preprocess=_PRE, progress=False, checkpoint=ckpt)
    assert ckpt.is_file()
    # ... then the same run asked for four epochs continues after epoch 2
    resumed = train_model(train, val, cfg4, unet=_UNET, preprocess=_PRE, progress=False, checkpoint=ckpt)
    np.testing.assert_allclose(resumed.train_losses, straight.train_losses, rtol=1e-6)
    np.testing.assert_allclose(resumed.val_losses, straight.val_losses, rtol=1e-6)
    assert resumed.best_epoch == straight.best_epoch
    for name, w in straight.state.items():
        np.testing.assert_allclose(resumed.state[name], w, rtol=1e-5, atol=1e-7, err_msg=name)


def test_checkpoint_of_another_run_is_ignored(dicom_dataset, tmp_path):
    ds = load_dataset(dicom_dataset, split="train")
    arrays = prepare_working_arrays(ds, _PRE.working_shape)
    ckpt = tmp_path / "c.safetensors"
    train_model(arrays.take(range(6)), arrays.take([6, 7]), TrainConfig(epochs=1, seed=1, device="cpu"),
                unet=_UNET, preprocess=_PRE, progress=False, checkpoint=ckpt)
    # another seed is another run: its key does not match, so nothing is resumed
    other_key = {"seed": 2}
    assert read_checkpoint(ckpt, other_key) is None
    # a torn file is not fatal either
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    model = train_model(arrays.take(range(6)), arrays.take([6, 7]),
                        TrainConfig(epochs=2, seed=1, device="cpu"),
                        unet=_UNET, preprocess=_PRE, progress=False, checkpoint=ckpt)
    assert len(model.train_losses) == 2


class _Stop(Exception):
    pass


def test_interrupted_protocol_resumes_to_the_same_summary(dicom_dataset, tmp_path, monkeypatch):
    ds = load_dataset(dicom_dataset, split="train")
    cfg = _cfg()
    full = run_protocol(ds, cfg, tmp_path / "full", progress=False)

    # the same protocol, killed after its second run
    import intrepid.learn._runs as runs

    real = runs.execute_run
    calls = {"n": 0}

    def dying(ctx, spec, *, progress=False):
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Stop
        return real(ctx, spec, progress=progress)

    monkeypatch.setattr(runs, "execute_run", dying)
    with pytest.raises(_Stop):
        run_protocol(ds, cfg, tmp_path / "cut", progress=False)
    monkeypatch.setattr(runs, "execute_run", real)
    done = sorted((tmp_path / "cut" / "runs").rglob("r*_f*.json"))
    assert len(done) == 2 and not (tmp_path / "cut" / "result.json").exists()

    result = resume_protocol(tmp_path / "cut", progress=False)
    assert result.runs == full.runs == 4
    for s_full, s_cut in zip(full.summaries, result.summaries, strict=True):
        assert s_full.configuration == s_cut.configuration
        assert s_cut.gamma_pass_rate_mean_percent == pytest.approx(
            s_full.gamma_pass_rate_mean_percent, abs=1e-6
        )
        assert s_cut.val_loss_mean == pytest.approx(s_full.val_loss_mean, rel=1e-5)
    # the finished runs were not trained again
    manifests = [json.loads(p.read_text()) for p in done]
    assert all(m["execution"]["resumed_from_epoch"] == 0 for m in manifests)


def test_resume_refuses_another_protocol(dicom_dataset, tmp_path):
    ds = load_dataset(dicom_dataset, split="train")
    run_protocol(ds, _cfg(epochs=1, repeats=1), tmp_path / "r", progress=False)
    with pytest.raises(ParameterError, match="protocol differs"):
        run_protocol(ds, _cfg(epochs=2, repeats=1), tmp_path / "r", progress=False, resume=True)
    with pytest.raises(ParameterError, match=r"no protocol\.json"):
        resume_protocol(tmp_path / "nothing", progress=False)


def test_protocol_config_round_trips():
    cfg = _cfg(learning_rates=(1e-2, 1e-4), keep_all_models=True)
    assert ProtocolConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ParameterError, match="not a protocol description"):
        ProtocolConfig.from_dict({"filters": [8]})


def test_train_cli_resume(dicom_dataset, tmp_path, capsys):
    from intrepid.cli import main

    out = tmp_path / "run"
    args = ["train", str(dicom_dataset), "--out", str(out), "--filters", "4", "--lr", "0.001",
            "--batch-size", "4", "--repeats", "1", "--folds", "2", "--epochs", "1", "--working-size", "16",
            "--device", "cpu", "--no-progress", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    # a resumed finished protocol trains nothing and gives the same result
    (out / "result.json").unlink()
    assert main(["train", "--resume", str(out), "--no-progress", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["runs"] == first["runs"] == 2
    assert again["best"]["gamma_pass_rate_mean_percent"] == pytest.approx(
        first["best"]["gamma_pass_rate_mean_percent"])
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 1
    assert "no such run folder" in capsys.readouterr().err
    assert main(["train", str(dicom_dataset), "--resume", str(out)]) == 1
    assert "drop DATA" in capsys.readouterr().err
