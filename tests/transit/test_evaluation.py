"""Evaluation: closed-form metrics, monotone pass rates, summaries, JSON contract, leave-one-family-out."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.transit import (
    DEFAULT_CRITERIA,
    Criterion,
    Statistics,
    evaluate_image,
    evaluate_pairs,
    leave_one_family_out,
)

N = 48
SPACING_MM = 2.0


def _grid() -> Grid:
    half = (N - 1) / 2 * SPACING_MM
    return Grid((N, N), (-half, -half, 0.0), (SPACING_MM, SPACING_MM, 1.0))


def _dose(width: int = 20, scale: float = 1.0) -> Volume:
    a = np.zeros((N, N))
    a[N // 2 - width // 2 : N // 2 + width // 2, N // 2 - width // 2 : N // 2 + width // 2] = scale
    return Volume(gaussian_filter(a, 2.0), _grid(), Quantity.PORTAL_DOSE, "Gy")


def _pair(name: str, family: str, width: int, split: str = "test") -> SimpleNamespace:
    dose = _dose(width)
    epid = Volume(np.asarray(dose.array) * 1000.0, _grid(), Quantity.EPID_SIGNAL, "CU")
    rec = SimpleNamespace(name=name, family=family, field_group=f"{width}px", field=f"{width}px", split=split)
    return SimpleNamespace(epid=epid, portal_dose=dose, record=rec)


def test_criterion_keys_and_validation() -> None:
    assert [c.key for c in DEFAULT_CRITERIA] == ["3mm3pct", "5mm5pct", "2mm2pct", "1mm1pct", "2mm2pct_local"]
    assert Criterion(2.5, 1.0).label == "2.5%/1mm"
    assert Criterion(2.0, 2.0, local=True).label == "2%/2mm local"
    with pytest.raises(ParameterError, match="dta_mm must be > 0, got -1"):
        Criterion(3.0, -1.0)
    with pytest.raises(ParameterError, match="dd_percent must be > 0"):
        Criterion(float("nan"), 3.0)


def test_identical_images_pass_everywhere_with_zero_error() -> None:
    ref = _dose()
    m, maps = evaluate_image(ref, ref)
    assert all(v == 100.0 for v in m.pass_rates_percent.values())
    assert m.mae_gy == 0.0 and m.max_error_gy == 0.0
    assert len(maps) == len(DEFAULT_CRITERIA) == 5


def test_constant_offset_gives_closed_form_mae() -> None:
    ref = _dose()
    pred = ref.with_array(np.asarray(ref.array) + 0.01)
    m, _ = evaluate_image(ref, pred)
    # |pred - ref| = 0.01 Gy at every pixel above the cut-off.
    assert m.mae_gy == pytest.approx(0.01, abs=1e-12)
    assert m.max_error_gy == pytest.approx(0.01, abs=1e-12)
    assert m.mae_percent == pytest.approx(1.0, rel=1e-9)  # 0.01 Gy of a 1 Gy maximum


def test_pass_rate_is_monotone_in_the_criteria() -> None:
    # A 4 % over-dose fails 3 %/3 mm in the flat field centre, passes 5 %/5 mm everywhere.
    ref = _dose()
    pred = ref.with_array(np.asarray(ref.array) * 1.04)
    crit = (Criterion(2.0, 2.0), Criterion(3.0, 3.0), Criterion(5.0, 5.0))
    m, _ = evaluate_image(ref, pred, criteria=crit)
    rates = [m.pass_rates_percent[c.key] for c in crit]
    assert rates[0] <= rates[1] <= rates[2]
    assert rates[1] < 100.0 and rates[2] == 100.0


def test_evaluate_image_refuses_bad_inputs() -> None:
    ref = _dose()
    with pytest.raises(ParameterError, match="criteria must hold at least one"):
        evaluate_image(ref, ref, criteria=())
    with pytest.raises(ParameterError, match=r"cutoff_percent must be in \[0, 100\), got 100"):
        evaluate_image(ref, ref, cutoff_percent=100.0)
    small = Volume(
        np.zeros((4, 4)), Grid((4, 4), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), Quantity.PORTAL_DOSE, "Gy"
    )
    with pytest.raises(ParameterError, match="differs from the reference shape"):
        evaluate_image(ref, small)


def test_statistics_closed_form() -> None:
    s = Statistics.of([1.0, 2.0, 3.0, 4.0, float("nan")])
    assert (s.mean, s.median, s.minimum, s.maximum, s.n) == (2.5, 2.5, 1.0, 4.0, 4)
    assert s.std == pytest.approx(math.sqrt(5.0 / 3.0))  # sample standard deviation (n - 1)
    assert Statistics.of([7.0]).std == 0.0
    assert Statistics.of([]).n == 0


def _evaluation() -> Any:
    pairs = [_pair("a", "OMG", 20), _pair("b", "OMG", 12), _pair("c", "CIRS", 16)]
    def perfect(epid: Volume) -> Volume:
        return epid.with_array(np.asarray(epid.array) / 1000.0, quantity=Quantity.PORTAL_DOSE, units="Gy")

    def over(epid: Volume) -> Volume:
        return epid.with_array(np.asarray(epid.array) * 1.04e-3, quantity=Quantity.PORTAL_DOSE, units="Gy")
    return evaluate_pairs(
        pairs,
        {"network": perfect, "baseline": over},
        keep_maps=True,
        display_pixels=16,
        settings={"model": "test"},
    )


def test_evaluate_pairs_summary_groups_and_json_contract() -> None:
    ev = _evaluation()
    assert ev.methods == ("network", "baseline")
    assert ev.statistics("network", "pass_rate_3mm3pct_percent").mean == 100.0
    assert ev.statistics("baseline", "pass_rate_3mm3pct_percent").mean < 100.0
    assert set(ev.groups("family")) == {"OMG", "CIRS"}
    assert set(ev.groups("family_field")) == {"OMG | 20px", "OMG | 12px", "CIRS | 16px"}
    doc = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert {"settings", "methods", "n_images", "images", "summary", "by_family", "by_family_field"} <= set(
        doc
    )
    img = doc["images"][0]
    assert {"name", "family", "field_group", "network", "baseline"} <= set(img)
    for key in (
        "pass_rate_3mm3pct_percent",
        "pass_rate_5mm5pct_percent",
        "pass_rate_2mm2pct_percent",
        "mae_gy",
        "max_error_gy",
    ):
        assert key in img["network"]
        assert {"mean", "std", "median", "min", "max", "n"} == set(doc["summary"]["baseline"][key])
    assert doc["settings"]["cutoff_percent"] == 10.0 and doc["settings"]["model"] == "test"
    maps = ev.images[0].maps
    assert maps is not None and maps.reference.shape == (16, 16) and maps.spacing_mm == (6.0, 6.0)
    assert set(maps.gamma) == {"network", "baseline"}


def test_evaluate_pairs_refuses_bad_inputs() -> None:
    with pytest.raises(ParameterError, match="pairs must hold at least one pair"):
        evaluate_pairs([], {"network": lambda v: v})
    with pytest.raises(ParameterError, match="predictors must name at least one method"):
        evaluate_pairs([_pair("a", "OMG", 20)], {})
    with pytest.raises(ParameterError, match="display_pixels must be an integer >= 16"):
        evaluate_pairs([_pair("a", "OMG", 20)], {"n": lambda v: v}, display_pixels=4)
    ev = _evaluation()
    with pytest.raises(ParameterError, match="method must be one of"):
        ev.statistics("other", "mae_gy")
    with pytest.raises(ParameterError, match="metric must be one of"):
        ev.statistics("network", "gamma")
    with pytest.raises(ParameterError, match="by must be 'family' or 'family_field'"):
        ev.groups("field")


class _Data:
    def __init__(self, pairs: list[SimpleNamespace]) -> None:
        self.pairs = pairs
        self.records = [p.record for p in pairs]

    def __getitem__(self, i: int) -> SimpleNamespace:
        return self.pairs[i]


def test_leave_one_family_out_trains_without_the_family() -> None:
    from intrepid.learn import PreprocessConfig, TrainConfig, UNetConfig

    pairs = [
        _pair(f"{f}{w}", f, w, split)
        for f in ("OMG", "CIRS")
        for w, split in ((20, "train"), (12, "train"), (16, "test"))
    ]
    folds = leave_one_family_out(
        _Data(pairs),
        train_config=TrainConfig(epochs=1, batch_size=2, device="cpu"),
        unet=UNetConfig(depth=2, initial_filters=2),
        preprocess=PreprocessConfig(working_shape=(16, 16)),
        families=["CIRS"],
    )
    assert len(folds) == 1 and folds[0].family == "CIRS"
    assert folds[0].n_train == 2  # the two OMG training pairs only
    assert [im.name for im in folds[0].evaluation.images] == ["CIRS16"]
    assert set(folds[0].to_dict()["summary"]) == {"network", "baseline"}
    with pytest.raises(ParameterError, match="family 'MP' is not in the data set"):
        leave_one_family_out(_Data(pairs), families=["MP"])
    with pytest.raises(ParameterError, match="needs at least two families"):
        leave_one_family_out(_Data(pairs[:3]))


def _fake_evaluation(a: list[float], b: list[float]) -> Any:
    from intrepid.transit import Evaluation, ImageEvaluation, MethodMetrics

    images = []
    for n, (x, y) in enumerate(zip(a, b, strict=True)):
        metrics = {
            m: MethodMetrics({"3mm3pct": v}, {"3mm3pct": 0.1}, 0.01 * (100 - v), 0.1, 1.0)
            for m, v in (("network", x), ("baseline", y))
        }
        images.append(ImageEvaluation(f"i{n}", "OMG", "10x10", "10x10", 1.0, metrics))
    return Evaluation(tuple(images), ("network", "baseline"), (Criterion(3.0, 3.0),))


def test_paired_comparison_wilcoxon_and_bootstrap() -> None:
    from scipy.stats import wilcoxon

    from intrepid.transit import compare_methods

    rng = np.random.default_rng(5)
    b = list(90 + rng.random(20))
    a = [v + 2.0 + 0.5 * rng.standard_normal() for v in b]
    ev = _fake_evaluation(a, b)
    rate, mae, _ = compare_methods(ev, "network", "baseline", n_bootstrap=2000, seed=1)
    d = np.subtract(a, b)
    assert rate.n == 20 and rate.mean_difference == pytest.approx(d.mean())
    assert rate.ci95[0] < d.mean() < rate.ci95[1] and rate.ci95[0] > 0  # clearly better
    assert rate.wilcoxon_p == pytest.approx(wilcoxon(d).pvalue) and rate.wilcoxon_p < 1e-4
    assert rate.a_better == int(np.sum(d > 0))
    assert mae.metric == "mae_gy" and mae.a_better == rate.a_better  # lower error counts as better
    same = compare_methods(_fake_evaluation(b, b), "network", "baseline")[0]
    assert same.mean_difference == 0.0 and math.isnan(same.wilcoxon_p)
    assert same.to_dict()["wilcoxon_p"] is None
    assert json.loads(json.dumps(ev.to_dict(), allow_nan=False))["comparisons"][0]["metric"] == (
        "pass_rate_3mm3pct_percent"
    )
    with pytest.raises(ParameterError, match="method must be one of"):
        compare_methods(ev, "network", "unet")
