"""Tests of model selection (``intrepid.learn._selection``): CV splits, protocol, run manifests, ensemble."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrepid.errors import ParameterError
from intrepid.learn import (
    PairRecord,
    PreprocessConfig,
    ProtocolConfig,
    UNetConfig,
    ValidationGrid,
    cv_splits,
    describe_model,
    load_dataset,
    load_model,
    run_protocol,
)


def _records(spec: list[tuple[int, int, int]]) -> list[PairRecord]:
    """Records from (family, phantom, field group) codes."""
    return [
        PairRecord(
            index=n,
            name=f"p{n}",
            epid_file=Path("e"),
            portal_dose_file=Path("d"),
            phantom=f"ph{fam}_{ph}",
            family=f"F{fam}",
            field=f"G{grp}",
            field_group=f"G{grp}",
        )
        for n, (fam, ph, grp) in enumerate(spec)
    ]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 3)), min_size=6, max_size=60),
    st.integers(2, 5),
    st.integers(0, 1000),
)
def test_splits_are_grouped_partitions(spec, folds, seed):
    records = _records(spec)
    groups = {r.group for r in records}
    if len(groups) < folds:
        with pytest.raises(ParameterError, match="needs at least"):
            cv_splits(records, folds, 1, seed)
        return
    splits = cv_splits(records, folds, 2, seed)
    assert len(splits) == 2 * folds
    for repeat in (0, 1):
        mine = [s for s in splits if s.repeat == repeat]
        # the validation sets partition the data; every fold validates something and trains on the rest
        assert sorted(i for s in mine for i in s.val_indices) == list(range(len(records)))
        for s in mine:
            assert s.val_indices and s.train_indices
            assert set(s.train_indices) | set(s.val_indices) == set(range(len(records)))
            # grouped: no phantom × field group on both sides
            train_groups = {records[i].group for i in s.train_indices}
            assert not train_groups & {records[i].group for i in s.val_indices}


def test_splits_are_stratified():
    # 4 strata (2 families x 2 field groups), each of 10 single-image groups: 2 per stratum per fold
    spec = [(fam, ph, grp) for fam in range(2) for grp in range(2) for ph in range(10)]
    records = _records(spec)
    for s in cv_splits(records, 5, 3, seed=7):
        counts = Counter(records[i].stratum for i in s.val_indices)
        assert counts == {"F0|G0": 2, "F0|G1": 2, "F1|G0": 2, "F1|G1": 2}


def test_splits_are_seeded_and_repeats_differ():
    records = _records([(n % 3, n, n % 2) for n in range(30)])
    a = cv_splits(records, 5, 3, seed=1)
    assert a == cv_splits(records, 5, 3, seed=1)
    assert a != cv_splits(records, 5, 3, seed=2)
    assert {s.val_indices for s in a if s.repeat == 0} != {s.val_indices for s in a if s.repeat == 1}


def test_split_errors():
    records = _records([(0, 0, 0), (0, 0, 0), (0, 1, 0)])
    with pytest.raises(ParameterError, match=r"3-fold cross-validation needs at least 3 groups .* has 2"):
        cv_splits(records, 3)
    with pytest.raises(ParameterError, match="folds must be an integer >= 2, got 1"):
        cv_splits(records, 1)
    with pytest.raises(ParameterError, match="repeats must be an integer >= 1, got 0"):
        cv_splits(records, 2, 0)


def test_protocol_defaults_are_the_published_ones():
    cfg = ProtocolConfig()
    assert len(cfg.configurations) == 24
    assert (cfg.repeats, cfg.folds, cfg.epochs) == (10, 5, 150)
    assert cfg.configurations[0].name == "f8_lr0.01_bs4"
    assert {c.initial_filters for c in cfg.configurations} == {8, 16}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"folds": 1}, "folds must be an integer >= 2, got 1"),
        ({"repeats": 0}, "repeats must be an integer >= 1"),
        ({"filters": ()}, "filters must be a non-empty list"),
        ({"learning_rates": (1e-3, -1.0)}, "learning_rates must be a non-empty list of values > 0"),
        ({"batch_sizes": (0,)}, "batch_sizes must be a non-empty list of integers >= 1"),
        ({"filters": (256,)}, "filters value 256 exceeds the U-Net's max_filters 128"),
        ({"dta_mm": 0.0}, "dta_mm must be > 0"),
        (
            {"preprocess": PreprocessConfig(working_shape=(40, 40))},
            r"working shape \(40, 40\) must be multiples of 16",
        ),
    ],
)
def test_protocol_config_errors(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        ProtocolConfig(**kwargs)


def test_run_protocol_writes_manifests_summary_and_ensemble(dicom_dataset, tmp_path):
    ds = load_dataset(dicom_dataset, split="train")
    cfg = ProtocolConfig(
        filters=(4,),
        learning_rates=(1e-3, 1e-2),
        batch_sizes=(4,),
        repeats=2,
        folds=2,
        epochs=1,
        seed=5,
        device="cpu",
        unet=UNetConfig(depth=3, initial_filters=4),
        preprocess=PreprocessConfig(working_shape=(16, 16)),
    )
    out = tmp_path / "run"
    result = run_protocol(ds, cfg, out, progress=False)
    assert result.runs == 8 and result.members == 2 and result.device == "cpu"
    for name in ("protocol.json", "summary.csv", "summary.md", "result.json"):
        assert (out / name).is_file()

    # one manifest per run, with the configuration, seeds, folds, losses, metrics and time
    manifests = sorted((out / "runs").glob("*/r*_f*.json"))
    assert len(manifests) == 8
    m = json.loads(manifests[0].read_text())
    assert set(m) >= {
        "configuration",
        "repeat",
        "fold",
        "seeds",
        "fold_membership",
        "history",
        "metrics",
        "seconds",
    }
    assert len(m["history"]["train_losses"]) == 1 and len(m["history"]["val_losses"]) == 1
    per_image = m["metrics"]["per_image"]
    assert len(per_image) == len(m["fold_membership"]["val"])
    assert all(0.0 <= r["gamma_pass_rate_percent"] <= 100.0 for r in per_image)
    # the same repeat / fold uses the same seed in every configuration (common random numbers)
    seeds = {(j["repeat"], j["fold"]): set() for j in (json.loads(p.read_text()) for p in manifests)}
    for p in manifests:
        j = json.loads(p.read_text())
        seeds[(j["repeat"], j["fold"])].add(j["seeds"]["run"])
    assert all(len(s) == 1 for s in seeds.values())

    # the summary ranks by mean pass rate (then loss)
    with (out / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["rank"]) for r in rows] == [1, 2]
    rates = [float(r["gamma_pass_rate_mean_percent"]) for r in rows]
    assert rates == sorted(rates, reverse=True)
    assert result.best.configuration.name == rows[0]["configuration"]
    assert "| rank | configuration |" in (out / "summary.md").read_text()

    # the ensemble: the best configuration, one member per repeat, each the best fold of its repeat
    doc = describe_model(result.ensemble_path)
    assert len(doc["members"]) == 2 and {mem["repeat"] for mem in doc["members"]} == {0, 1}
    assert all(mem["configuration"] == result.best.configuration.name for mem in doc["members"])
    for mem in doc["members"]:
        runs = [
            json.loads(p.read_text())
            for p in (out / "runs" / mem["configuration"]).glob(f"r{mem['repeat']:02d}_f*.json")
        ]
        best = max(r["metrics"]["gamma_pass_rate_mean_percent"] for r in runs)
        assert mem["val_gamma_pass_rate_mean_percent"] == pytest.approx(best)
    ens = load_model(result.ensemble_path)
    assert ens.members == 2
    dose = ens.predict(ds[0].epid)
    assert dose.shape == (64, 64) and np.all(np.isfinite(dose.array))
    summary = json.loads((out / "result.json").read_text())
    assert summary["best"]["configuration"] == result.best.configuration.name


def test_run_protocol_needs_a_dataset(tmp_path):
    with pytest.raises(ParameterError, match="dataset must be a PairDataset"):
        run_protocol([], ProtocolConfig(device="cpu"), tmp_path)  # type: ignore[arg-type]


def test_validation_on_the_detector_grid(dicom_dataset, tmp_path):
    ds = load_dataset(dicom_dataset, split="train")
    cfg = ProtocolConfig(
        filters=(4,),
        learning_rates=(1e-3,),
        batch_sizes=(4,),
        repeats=1,
        folds=2,
        epochs=1,
        device="cpu",
        unet=UNetConfig(depth=3, initial_filters=4),
        preprocess=PreprocessConfig(working_shape=(16, 16)),
        validation_grid=ValidationGrid.DETECTOR,
    )
    result = run_protocol(ds, cfg, tmp_path / "run", progress=False)
    m = json.loads(next((tmp_path / "run" / "runs").glob("*/r00_f0.json")).read_text())
    assert m["metrics"]["validation_grid"] == "detector" and result.members == 1
    assert all(0.0 <= r["gamma_pass_rate_percent"] <= 100.0 for r in m["metrics"]["per_image"])
    with pytest.raises(ParameterError, match="validation_grid must be a ValidationGrid"):
        ProtocolConfig(validation_grid="working")  # type: ignore[arg-type]
