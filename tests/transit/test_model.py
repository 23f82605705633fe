"""TransitModel: per-MU prediction, training ranges, out-of-distribution flags, SID refusal, member spread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intrepid.geometry import Grid, Quantity, Volume
from intrepid.physics._kernel_baseline import KernelBaseline
from intrepid.transit import (
    InputRefused,
    TrainingRanges,
    TransitModel,
    canonical_volume,
    training_ranges,
)

N = 32


def _epid(level_cu: float, *, mu: float = 100.0, sid: float = 1500.0, vendor: str = "varian") -> Volume:
    a = np.zeros((N, N))
    a[8:24, 8:24] = level_cu
    grid = Grid((N, N), (0.0, 0.0, 0.0), (4.0, 4.0, 1.0))
    meta = {"vendor": vendor, "source": "e.dcm", "mu": mu, "sid_mm": sid}
    return Volume(a, grid, Quantity.EPID_SIGNAL, "CU", metadata=meta)


RANGES = TrainingRanges(
    vendors=("elekta", "varian"),
    acquisition_modes=("integrated",),
    sid_mm=(1000.0, 1600.0),
    field_size_iso_cm=(2.0, 30.0),
    mu=(50.0, 200.0),
    signal_level_cu_per_mu=(0.05, 1.1),
)


def test_ranges_round_trip_and_come_from_the_training_images() -> None:
    assert TrainingRanges.from_dict(RANGES.to_dict()) == RANGES
    r = training_ranges([canonical_volume(_epid(30.0)), canonical_volume(_epid(60.0, mu=200.0, sid=1000.0))])
    assert r.mu == (100.0, 200.0) and r.sid_mm == (1000.0, 1500.0) and r.vendors == ("varian",)
    assert r.signal_level_cu_per_mu == pytest.approx((0.3, 0.3))


def test_kernel_model_predicts_per_mu_times_mu() -> None:
    # 0.01 Gy per CU: 30 CU at 100 MU is 0.3 CU/MU -> 0.003 Gy/MU -> 0.3 Gy
    model = TransitModel(KernelBaseline((2.0,), (0.01, 0.0), input_units="CU/MU"), RANGES)
    pred = model.predict_full(_epid(30.0, mu=100.0))
    assert pred.dose.units == "Gy"
    assert float(pred.dose.array[N // 2, N // 2]) == pytest.approx(0.3, rel=1e-4)
    assert pred.ood_reasons == () and pred.uncertainty is None
    # the same image with twice the MU in the file is half the signal per MU, twice the MU: same dose
    again = model.predict(_epid(30.0, mu=200.0))
    assert float(again.array[N // 2, N // 2]) == pytest.approx(0.3, rel=1e-4)


def test_out_of_distribution_reasons_name_each_quantity() -> None:
    c = canonical_volume(_epid(600.0, mu=400.0, sid=1700.0, vendor="generic"), image_type=())
    text = " | ".join(RANGES.ood_reasons(c))
    assert "acquisition mode" not in text  # CU: the integrated (dosimetry) acquisition
    for word in ("vendor generic", "MU 400", "signal level 1.5", "SID 1700"):
        assert word in text
    assert "field size" not in text  # 64 mm at SID 1700 mm: 3.8 cm at the isocentre, inside [2, 30]


def test_sid_far_outside_the_range_is_refused() -> None:
    model = TransitModel(KernelBaseline((2.0,), (0.01, 0.0)), RANGES)
    with pytest.raises(InputRefused, match=r"^e\.dcm: SID 2000 mm outside the training range"):
        model.predict(_epid(30.0, sid=2000.0))


def test_ensemble_spread_is_a_map_in_gy() -> None:
    from intrepid.learn import Ensemble, PreprocessConfig, UNetConfig, build_unet

    unet = UNetConfig(depth=2, initial_filters=2)
    states = []
    for seed in (1, 2):
        import torch

        torch.manual_seed(seed)
        states.append({k: v.detach().numpy().copy() for k, v in build_unet(unet).state_dict().items()})
    pre = PreprocessConfig(
        working_shape=(16, 16), input_scale=1.0, target_scale=0.01, fitted=True, clip_negative=False
    )
    ens = Ensemble(unet, pre, states, training={"input": RANGES.to_dict()})
    model = TransitModel.from_ensemble(ens)
    assert not model.legacy and model.members == 2
    pred = model.predict_full(_epid(30.0))
    assert pred.uncertainty is not None and pred.uncertainty.shape == (N, N)
    assert pred.uncertainty.units == "Gy" and float(pred.uncertainty.array.max()) > 0
    # the spread is that of the members' doses
    doses = [TransitModel(m, RANGES).predict(_epid(30.0)).array for m in model._member_models()]
    np.testing.assert_allclose(pred.uncertainty.array, np.std(doses, axis=0, ddof=1), rtol=1e-4, atol=1e-9)


def test_legacy_model_refuses_another_vendor() -> None:
    from intrepid.learn import Ensemble, PreprocessConfig, UNetConfig, build_unet

    unet = UNetConfig(depth=2, initial_filters=2)
    state = {k: v.detach().numpy().copy() for k, v in build_unet(unet).state_dict().items()}
    pre = PreprocessConfig(working_shape=(16, 16), input_scale=100.0, target_scale=1.0, fitted=True)
    ens = Ensemble(unet, pre, [state], training={"data": {"vendor": "elekta"}})
    model = TransitModel.from_ensemble(ens)
    assert model.legacy
    with pytest.raises(InputRefused, match="vendor varian differs from the elekta images"):
        model.predict(_epid(30.0))
    assert model.predict(_epid(30.0, vendor="elekta")).shape == (N, N)


def test_kernel_model_folder_round_trip(tmp_path: Path) -> None:
    from intrepid.transit import load_transit_model
    from intrepid.transit._model import save_kernel_model

    base = KernelBaseline((2.0,), (0.01, 0.0), input_units="CU/MU")
    folder = save_kernel_model(base, RANGES, tmp_path / "kernel", {"command": "test"})
    model = load_transit_model(folder)
    assert model.ranges == RANGES and model.members == 1 and model.predictor == base
    pred = model.predict_full(_epid(30.0))
    assert float(pred.dose.array[N // 2, N // 2]) == pytest.approx(0.3, rel=1e-4) and pred.uncertainty is None


def test_evaluation_keeps_the_spread_map_for_the_report() -> None:
    from types import SimpleNamespace

    import torch

    from intrepid.learn import Ensemble, PreprocessConfig, UNetConfig, build_unet
    from intrepid.transit import evaluate_pairs

    unet = UNetConfig(depth=2, initial_filters=2)
    states = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        states.append({k: v.detach().numpy().copy() for k, v in build_unet(unet).state_dict().items()})
    pre = PreprocessConfig(
        working_shape=(16, 16), input_scale=1.0, target_scale=0.01, fitted=True, clip_negative=False
    )
    model = TransitModel.from_ensemble(Ensemble(unet, pre, states, training={"input": RANGES.to_dict()}))
    epid = _epid(30.0)
    ref = Volume(np.asarray(epid.array) * 0.01, epid.grid, Quantity.PORTAL_DOSE, "Gy")
    rec = SimpleNamespace(name="p", family="SLAB", field_group="10x10", field="10x10")
    pair = SimpleNamespace(epid=epid, portal_dose=ref, record=rec)
    ev = evaluate_pairs([pair], {"network": model}, keep_maps=True, display_pixels=16)
    maps = ev.images[0].maps
    assert maps is not None and maps.uncertainty["network"].shape == (16, 16)
    assert float(np.nanmax(maps.uncertainty["network"])) > 0
