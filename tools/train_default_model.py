"""Reproduce the default InTrEPID-2D model shipped in ``src/intrepid/transit/models/default/``.

The command (the one that made the shipped model is in its ``training_manifest.json``)::

    python3 tools/train_default_model.py --evaluate benchmarks/results/transit_2d.json

1. simulates the seed's paper composition (213 pairs, ``--seed 0``) **for both vendors** (Elekta iView GT,
   SID 1600 mm, inverted counts; Varian aS1000, SID 1500 mm, calibrated units) on a ``--detector-pixels``
   (512) column panel of the real physical size, into ``benchmarks/_data/t9_paper_<vendor>_<N>`` (reused
   when its ``manifest.csv`` exists), plus open-field images (no phantom; Varian panel at SID 1000, 1250 and
   1500 mm, Elekta at 1600 mm; 5-30 cm fields; 50-200 MU): the calibration geometry of a clinic's
   dosimetry images, which puts SID 1000 mm inside the training range;
2. converts every pair to **signal per MU** (CU/MU, :func:`intrepid.transit.canonical_pairs`) and portal dose
   per MU, and records the training ranges (vendors, SID, field size, MU, signal level, acquisition modes)
   in ``model.json`` ``training.input``, which the predictor uses for its out-of-distribution flags;
3. fits the kernel baseline with field-size- and level-dependent weights
   (:func:`intrepid.transit.fit_baseline`, ``features="field_level"``) on all training pairs
   (``baseline.json``) and on each fold's training pairs (the hybrid bases);
4. trains ``--folds`` (4) grouped folds of a hybrid U-Net (8 filters, ``--working-size`` 128, MAE, Adam
   ``--lr`` 1e-3, batch 4, ``--epochs`` epochs, best validation epoch kept): each network learns
   ``dose - kernel baseline``; the ensemble's base is the mean of the fold baselines;
5. with ``--plain-members N``, also trains N pure U-Nets (no base) on the same folds, for the benchmark;
6. with ``--evaluate FILE``, evaluates the hybrid ensemble, the pure U-Nets and the baseline on both vendors'
   held-out test images (23 + 23, never seen in training) and writes the evaluation (``intrepid evaluate``
   keys, plus paired Wilcoxon tests and bootstrap CIs) as JSON and a Markdown table beside it.

Same seed, same data, same CPU kernels -> same weights. ``--resume`` reuses fold checkpoints in ``--work``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENDORS = ("elekta", "varian")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=ROOT / "benchmarks/_data", help="simulated data sets")
    p.add_argument("--seed", type=int, default=0, help="simulation and training seed (default 0)")
    p.add_argument(
        "--random", type=int, default=100, help="N random pairs per vendor beside the paper composition (100)"
    )
    p.add_argument("--mlc-fraction", type=float, default=0.3, help="MLC fields among the random pairs (0.3)")
    p.add_argument("--no-paper", action="store_true", help="no paper composition (quick trials)")
    p.add_argument("--effects", default="all", help="detector and transit effects (default all)")
    p.add_argument(
        "--lofo-epochs", type=int, default=0, help="leave-one-family-out: epochs per fold (0: off)"
    )
    p.add_argument("--detector-pixels", type=int, default=256, help="panel columns simulated (default 256)")
    p.add_argument("--folds", type=int, default=4, help="k of the k-fold CV = ensemble members (default 4)")
    p.add_argument("--members", type=int, default=None, help="train only the first N folds")
    p.add_argument("--plain-members", type=int, default=0, help="also train N pure U-Nets (benchmark)")
    p.add_argument("--epochs", type=int, default=20, help="epochs per fold (default 20)")
    p.add_argument("--working-size", type=int, default=128, help="working grid N x N (default 128)")
    p.add_argument("--filters", type=int, default=8, help="initial U-Net filters (default 8)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="constant, or cosine decay to 5 %% of --lr over the epochs (default constant)",
    )
    p.add_argument("--batch-size", type=int, default=4, help="mini-batch size (default 4)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--workers", type=int, default=2, help="simulation worker processes (default 2)")
    p.add_argument("--no-open-fields", action="store_true", help="no open-field calibration images")
    p.add_argument(
        "--out", type=Path, default=ROOT / "src/intrepid/transit/models/default", help="model folder to write"
    )
    p.add_argument("--work", type=Path, default=ROOT / "benchmarks/_data/t9_work", help="checkpoints")
    p.add_argument("--resume", action="store_true", help="reuse fold checkpoints found in --work")
    p.add_argument("--baseline-only", action="store_true", help="only fit and write OUT/baseline.json")
    p.add_argument("--evaluate", type=Path, default=None, help="write the test-set evaluation JSON here")
    p.add_argument(
        "--plain-epochs", type=int, default=None, help="epochs of the pure U-Nets (default: --epochs)"
    )
    p.add_argument(
        "--assemble",
        action="store_true",
        help="build the ensemble from the hybrid fold checkpoints in --work (no kernel-basis pass, no LOFO); "
        "implies --resume",
    )
    p.add_argument(
        "--kernel-model",
        type=Path,
        default=None,
        help="write a model folder whose predictor is OUT/baseline.json alone (no network) here",
    )
    p.add_argument(
        "--plain-only", action="store_true", help="only train the --plain-members pure U-Nets into --work"
    )
    p.add_argument(
        "--evaluate-only",
        action="store_true",
        help="no training: evaluate the model in --out (and --work/plain_ensemble when present)",
    )
    return p.parse_args(argv)


def _data_sets(args: argparse.Namespace, log: Any) -> dict[str, list[Path]]:
    """vendor -> data-set folders (the paper composition and, with ``--random N``, N random pairs with MLC
    fields), simulated with ``--effects`` when missing."""
    from intrepid.simulate import generate_pairs, paper_composition, random_composition

    tag = args.effects.replace(",", "+").replace("-", "_minus_")
    out: dict[str, list[Path]] = {}
    for vendor in VENDORS:
        kinds: list[tuple[str, Any]] = []
        if not args.no_paper:
            kinds.append(("paper", lambda: paper_composition(seed=args.seed)))
        if args.random:
            kinds.append(
                (
                    f"random{args.random}",
                    lambda: random_composition(
                        args.random, seed=args.seed + 1, mlc_fraction=args.mlc_fraction
                    ),
                )
            )
        for kind, make in kinds:
            folder = args.data_root / f"t9_{kind}_{tag}_{vendor}_{args.detector_pixels}"
            if not (folder / "manifest.csv").exists():
                log.info("simulating the %s composition for %s into %s", kind, vendor, folder)
                generate_pairs(
                    make(),
                    folder,
                    seed=args.seed if kind == "paper" else args.seed + 1,
                    vendor=vendor,
                    workers=args.workers,
                    detector_pixels=args.detector_pixels,
                    effects=args.effects,
                    progress=False,
                )
            out.setdefault(vendor, []).append(folder)
    return out


def open_field_pairs(detector_pixels: int, seed: int) -> list[Any]:
    """Open-field (no phantom) pairs: the calibration geometry, both panels, several SIDs, fields and MU."""
    import numpy as np

    from intrepid.geometry import Volume
    from intrepid.learn import Pair, PairRecord
    from intrepid.physics import DetectorModel, Field, simulate_transit

    rng = np.random.default_rng([seed, 17])
    setups = [("varian", sid) for sid in (1000.0, 1250.0, 1500.0)] + [("elekta", 1600.0)]
    out = []
    for vendor, sid in setups:
        det = DetectorModel.varian_as1000(sid_mm=sid) if vendor == "varian" else DetectorModel.elekta_iview()
        n = detector_pixels
        rows = max(4, 4 * round(det.rows * n / det.columns / 4))
        from dataclasses import replace

        det = replace(det, rows=rows, columns=n, pixel_mm=det.pixel_mm * det.columns / n)
        for size in (5.0, 10.0, 20.0, 30.0):
            mu = float(rng.choice([50.0, 100.0, 200.0]))
            k = len(out)
            img = simulate_transit(None, Field.square(size), detector=det, mu=mu, seed=int(1000 * seed + k))
            name = f"open_{vendor}_sid{sid:g}_{size:g}x{size:g}"
            rec = PairRecord(
                index=10000 + k,
                name=name,
                epid_file=Path(name),
                portal_dose_file=Path(name),
                phantom=f"OPEN_{vendor}",
                family="OPEN",
                field=f"{size:g}x{size:g}",
                field_group=f"{size:g}x{size:g}",
                mu=mu,
                split="train",
                vendor=vendor,
            )
            meta = {"source": name, "vendor": vendor, "sid_mm": sid, "sad_mm": 1000.0}
            if vendor == "elekta":
                counts = 65535.0 - np.asarray(img.raw, dtype=np.float64)
                epid = Volume(counts, img.epid.grid, img.epid.quantity, "raw", None, meta)
            else:
                epid = Volume(np.asarray(img.epid.array), img.epid.grid, img.epid.quantity, "CU", None, meta)
            out.append(Pair(rec, epid, img.portal_dose))
    return out


def _inputs(pairs: list[Any], shape: tuple[int, int], seed: int, log: Any) -> tuple[Any, Any, Any, Any]:
    """Working arrays, basis on the working grid, baseline design and features of per-MU pairs."""
    import numpy as np

    from intrepid.learn import WorkingArrays, to_working_grid
    from intrepid.transit import BaselineDesign, baseline_design, kernel_basis

    epids, doses, bases, xs, ys, feats = [], [], [], [], [], []
    t = time.perf_counter()
    d = None
    for n, pair in enumerate(pairs):
        spacing = (float(pair.epid.grid.spacing_mm[1]), float(pair.epid.grid.spacing_mm[0]))
        epids.append(to_working_grid(pair.epid.array, shape))
        doses.append(to_working_grid(pair.portal_dose.array, shape))
        basis = kernel_basis(np.asarray(pair.epid.array), spacing)
        bases.append(np.stack([to_working_grid(b, shape) for b in basis]))
        d = baseline_design([pair], seed=int(np.random.SeedSequence([seed, n]).generate_state(1)[0]))
        xs.append(d.x[0])
        ys.append(d.y[0])
        feats.append(d.features[0])
        if n % 50 == 0:
            log.info("inputs: %d / %d pairs, %.0f s", n, len(pairs), time.perf_counter() - t)
    assert d is not None
    settings = {**d.settings, "seed": f"SeedSequence([{seed}, image index])"}
    arrays = WorkingArrays(np.stack(epids), np.stack(doses), None, None)
    design = BaselineDesign(d.sigmas_mm, tuple(xs), tuple(ys), settings, tuple(feats))
    return arrays, np.stack(bases), design, feats


def _train_members(
    args: argparse.Namespace,
    splits: list[Any],
    arrays: Any,
    basis_wg: Any,
    design: Any,
    feats: Any,
    records: Any,
    hybrid: bool,
    log: Any,
) -> tuple[list[Any], list[Any], list[Any], list[Any], list[dict[str, Any]]]:
    import numpy as np

    from intrepid.learn import PreprocessConfig, TrainConfig, UNetConfig, load_model, train_model
    from intrepid.transit import CALIBRATED_UNITS_PER_MU, fit_baseline_design

    shape = (args.working_size, args.working_size)
    unet = UNetConfig(initial_filters=args.filters)
    pre = PreprocessConfig(working_shape=shape)
    states, pres, infos, bases, docs = [], [], [], [], []
    tag = "hybrid" if hybrid else "plain"
    epochs = args.epochs if hybrid or args.plain_epochs is None else args.plain_epochs
    for split in splits:
        ckpt = args.work / f"{tag}_fold{split.fold}"
        fold_arrays = arrays
        fold_base = None
        seed = int(np.random.SeedSequence([args.seed, 0, split.fold]).generate_state(1)[0] % (2**31))
        tcfg = TrainConfig(
            learning_rate=args.lr,
            batch_size=args.batch_size,
            epochs=epochs,
            seed=seed,
            device="cpu",
            lr_schedule=args.lr_schedule,
        )
        if args.resume and (ckpt / "model.json").exists() and (ckpt / "fold.json").exists():
            member = load_model(ckpt)
            doc = json.loads((ckpt / "fold.json").read_text())
            states.append(member.member_states[0])
            pres.append(member.preprocess)
            if hybrid:
                bases.append(member.base)
        else:
            if hybrid:
                if design is None:
                    raise SystemExit(f"{ckpt}: no checkpoint to assemble (train it without --assemble)")
                fold_base = fit_baseline_design(
                    design, split.train_indices, input_units=CALIBRATED_UNITS_PER_MU
                )
                bases.append(fold_base)
                base_wg = np.stack([fold_base.from_basis(b, f) for b, f in zip(basis_wg, feats, strict=True)])
                fold_arrays = arrays.with_base(base_wg)
            t = time.perf_counter()
            model = train_model(
                fold_arrays.take(split.train_indices),
                fold_arrays.take(split.val_indices),
                tcfg,
                unet=unet,
                preprocess=pre,
                progress=False,
            )
            model.save(ckpt, base=fold_base) if hybrid else model.save(ckpt)
            doc = {
                "fold": split.fold,
                "seed": seed,
                "val": [records[i].name for i in split.val_indices],
                "history": model.history(),
                "seconds": time.perf_counter() - t,
            }
            (ckpt / "fold.json").write_text(json.dumps(doc, indent=1))
            log.info(
                "%s fold %d: best epoch %d, val loss %.4g, %.0f s",
                tag,
                split.fold,
                model.best_epoch,
                model.best_val_loss,
                doc["seconds"],
            )
            states.append(model.state)
            pres.append(model.preprocess)
        docs.append(doc)
        infos.append(
            {
                "repeat": 0,
                "fold": split.fold,
                "seed": seed,
                "best_epoch": doc["history"]["best_epoch"],
                "val_loss": doc["history"]["best_val_loss"],
                **({"fold_baseline": bases[-1].to_dict()} if hybrid else {}),
            }
        )
    return states, pres, infos, bases, docs


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    log = logging.getLogger("train_default_model")
    logging.getLogger("intrepid.analysis").setLevel(logging.WARNING)

    import numpy as np
    import torch

    import intrepid
    from intrepid.learn import Ensemble, PreprocessConfig, UNetConfig, cv_splits, load_dataset
    from intrepid.simulate import composition_counts, paper_composition
    from intrepid.transit import (
        CALIBRATED_UNITS_PER_MU,
        KernelBaseline,
        canonical_pairs,
        fit_baseline_design,
        training_ranges,
    )

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    folders = _data_sets(args, log)
    if args.evaluate_only:
        from intrepid.learn import load_model
        from intrepid.transit import load_baseline

        plain_dir = args.work / "plain_ensemble"
        result = _evaluate(
            args,
            folders,
            load_model(args.out),
            load_model(plain_dir) if (plain_dir / "model.json").exists() else None,
            load_baseline(args.out / "baseline.json"),
            log,
        )
        _write_evaluation(args, result, log)
        return 0
    t_sim = time.perf_counter() - t0
    raw_train: list[Any] = []
    for vendor in VENDORS:
        for folder in folders[vendor]:
            raw_train += list(load_dataset(folder, split="train", cache=False))
    if not args.no_open_fields:
        raw_train += open_field_pairs(args.detector_pixels, args.seed)
    train, infos_in = canonical_pairs(raw_train)
    ranges = training_ranges(infos_in)
    log.info("%d training pairs; ranges %s", len(train), ranges.to_dict())
    shape = (args.working_size, args.working_size)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.kernel_model is not None:
        from intrepid.transit import load_baseline
        from intrepid.transit._model import save_kernel_model

        cmd = "python3 tools/train_default_model.py " + " ".join(sys.argv[1:] if argv is None else argv)
        save_kernel_model(
            load_baseline(args.out / "baseline.json"),
            ranges,
            args.kernel_model,
            {
                "command": cmd.strip(),
                "kind": "kernel baseline alone (no network)",
                "training_pairs": len(train),
            },
        )
        log.info("kernel-baseline model written to %s", args.kernel_model)
        return 0
    if args.plain_only:
        from intrepid.learn import prepare_working_arrays

        records = [p.record for p in train]
        splits = cv_splits(records, args.folds, repeats=1, seed=args.seed)[: args.plain_members]
        args.work.mkdir(parents=True, exist_ok=True)
        arrays = prepare_working_arrays(train, shape)
        p_states, p_pres, p_infos, _, _ = _train_members(
            args, splits, arrays, None, None, None, records, False, log
        )
        unet = UNetConfig(initial_filters=args.filters)
        Ensemble(unet, p_pres[0], p_states, member_info=p_infos, member_preprocess=p_pres).save(
            args.work / "plain_ensemble"
        )
        return 0
    if args.assemble:
        from intrepid.learn import prepare_working_arrays
        from intrepid.transit import load_baseline

        args.resume = True
        arrays, basis_wg, design, feats = prepare_working_arrays(train, shape), None, None, None
        baseline = load_baseline(args.out / "baseline.json")
    else:
        arrays, basis_wg, design, feats = _inputs(train, shape, args.seed, log)
        baseline = fit_baseline_design(design, input_units=CALIBRATED_UNITS_PER_MU)
        baseline.save(args.out / "baseline.json")
    if args.baseline_only:
        return 0
    records = [p.record for p in train]
    splits = cv_splits(records, args.folds, repeats=1, seed=args.seed)
    if args.members is not None:
        splits = splits[: args.members]
    args.work.mkdir(parents=True, exist_ok=True)
    states, pres, infos, fold_bases, folds_doc = _train_members(
        args, splits, arrays, basis_wg, design, feats, records, True, log
    )
    command = "python3 tools/train_default_model.py " + " ".join(sys.argv[1:] if argv is None else argv)
    training = {
        "command": command.strip(),
        "protocol": (
            f"reduced: 1 repeat x {args.folds}-fold CV of one configuration, ensemble of {len(splits)} fold "
            "models; hybrid residual: networks learn dose - kernel baseline (field-size and level dependent, "
            "fitted per training fold); base = mean of the fold baselines; signal and dose per MU"
        ),
        "input": ranges.to_dict(),
        "data": {
            "composition": "paper, both vendors, + open fields",
            "simulation_seed": args.seed,
            "detector_pixels": args.detector_pixels,
            "training_pairs": len(train),
        },
        "configuration": {
            "initial_filters": args.filters,
            "learning_rate": args.lr,
            "lr_schedule": args.lr_schedule,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "loss": "mae",
            "working_shape": list(shape),
        },
    }
    base = KernelBaseline(
        fold_bases[0].sigmas_mm,
        tuple(float(v) for v in np.mean([b.weights for b in fold_bases], axis=0)),
        float(np.mean([b.offset_gy for b in fold_bases])),
        {"mean_of_fold_baselines": len(fold_bases), "training_pairs": len(train)},
        tuple(float(v) for v in np.mean([b.field_weights for b in fold_bases], axis=0)),
        tuple(float(v) for v in np.mean([b.level_weights for b in fold_bases], axis=0)),
        CALIBRATED_UNITS_PER_MU,
    )
    unet = UNetConfig(initial_filters=args.filters)
    ens = Ensemble(
        unet, pres[0], states, member_info=infos, member_preprocess=pres, training=training, base=base
    )
    ens.save(args.out)
    plain = None
    if args.plain_members > 0:
        p_states, p_pres, p_infos, _, _ = _train_members(
            args, splits[: args.plain_members], arrays, basis_wg, design, feats, records, False, log
        )
        plain = Ensemble(
            unet,
            PreprocessConfig(working_shape=shape) if not p_pres else p_pres[0],
            p_states,
            member_info=p_infos,
            member_preprocess=p_pres,
            training={**training, "plain": True},
        )
        plain.save(args.work / "plain_ensemble")
    doc = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command.strip(),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data": {
            "composition": "paper (intrepid.simulate.paper_composition), elekta + varian, + open fields",
            "simulation_seed": args.seed,
            "counts": composition_counts(paper_composition(seed=args.seed)),
            "training_pairs": len(train),
            "input_ranges": ranges.to_dict(),
        },
        "folds": folds_doc,
        "seconds": {"simulation": t_sim, "total": time.perf_counter() - t0},
        "software": {
            "intrepid": intrepid.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "threads": args.threads,
        },
    }
    (args.out / "training_manifest.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    log.info("wrote %s (%d members) in %.0f s", args.out, len(states), time.perf_counter() - t0)
    if args.evaluate is not None:
        result = _evaluate(args, folders, ens, plain, baseline, log)
        if args.lofo_epochs > 0 and design is not None:
            result["leave_one_family_out"] = _lofo(
                args, folders, arrays, basis_wg, design, feats, records, ranges, log
            )
        _write_evaluation(args, result, log)
    return 0


def _write_evaluation(args: argparse.Namespace, result: dict[str, Any], log: Any) -> None:
    if args.evaluate is None:
        raise SystemExit("--evaluate FILE is needed to write the evaluation")
    args.evaluate.parent.mkdir(parents=True, exist_ok=True)
    args.evaluate.write_text(json.dumps(result, indent=1) + "\n")
    log.info("evaluation written to %s", args.evaluate)


def _test_pairs(folders: list[Path], family: str | None = None) -> list[Any]:
    from intrepid.learn import load_dataset

    out = []
    for folder in folders:
        for p in load_dataset(folder, split="test", cache=False):
            if family is None or p.record.family == family:
                p.epid.metadata["mu"] = p.record.mu
                out.append(p)
    return out


def _evaluate(
    args: argparse.Namespace, folders: dict[str, list[Path]], ens: Any, plain: Any, baseline: Any, log: Any
) -> dict[str, Any]:
    from intrepid.transit import TransitModel, compare_methods, evaluate_pairs
    from intrepid.transit._evaluation import json_ready

    hybrid = TransitModel.from_ensemble(ens, "hybrid")
    ranges = hybrid.ranges
    methods: dict[str, Any] = {"hybrid": hybrid}
    if plain is not None:
        methods["unet"] = TransitModel(plain, ranges, "unet")
    methods["baseline"] = TransitModel(baseline, ranges, "baseline")
    result: dict[str, Any] = {"command": "python3 tools/train_default_model.py " + " ".join(sys.argv[1:])}
    every = [f for fs in folders.values() for f in fs]
    for vendor in [*folders, "both"]:
        test = _test_pairs(folders[vendor] if vendor != "both" else every)
        ev = evaluate_pairs(test, methods, settings={"data": [str(f) for f in folders.get(vendor, [])]})
        d = ev.to_dict()
        d.pop("images") if vendor == "both" else None
        pairs = [(m, "baseline") for m in ev.methods if m != "baseline"]
        if "unet" in ev.methods:
            pairs.append(("hybrid", "unet"))
        d["comparisons"] = [c.to_dict() for a, b in pairs for c in compare_methods(ev, a, b)]
        result[vendor] = d
        for m in ev.methods:
            log.info("%s %s: %s", vendor, m, {k: round(ev.statistics(m, k).mean, 3) for k in ev.metric_names})
    return json_ready(result)


def _lofo(
    args: argparse.Namespace,
    folders: dict[str, list[Path]],
    arrays: Any,
    basis_wg: Any,
    design: Any,
    feats: Any,
    records: list[Any],
    ranges: Any,
    log: Any,
) -> list[dict[str, Any]]:
    """Leave-one-family-out: a one-member hybrid and the kernel baseline trained without a family, tested on
    that family's test images of both vendors."""
    import numpy as np

    from intrepid.learn import Ensemble, PreprocessConfig, TrainConfig, UNetConfig, train_model
    from intrepid.transit import (
        CALIBRATED_UNITS_PER_MU,
        TransitModel,
        compare_methods,
        evaluate_pairs,
        fit_baseline_design,
    )
    from intrepid.transit._evaluation import json_ready

    all_folders = [f for fs in folders.values() for f in fs]
    families = sorted({r.family for r in records if r.family and r.family != "OPEN"})
    shape = (args.working_size, args.working_size)
    unet = UNetConfig(initial_filters=args.filters)
    out = []
    for fam in families:
        test = _test_pairs(all_folders, fam)
        train_idx = [i for i, r in enumerate(records) if r.family != fam]
        if not test or not train_idx:
            continue
        t = time.perf_counter()
        base = fit_baseline_design(design, train_idx, input_units=CALIBRATED_UNITS_PER_MU)
        base_wg = np.stack([base.from_basis(b, f) for b, f in zip(basis_wg, feats, strict=True)])
        seed = int(np.random.SeedSequence([args.seed, 1, len(out)]).generate_state(1)[0] % (2**31))
        cfg = TrainConfig(
            learning_rate=args.lr,
            batch_size=args.batch_size,
            epochs=args.lofo_epochs,
            seed=seed,
            device="cpu",
            lr_schedule=args.lr_schedule,
        )
        model = train_model(
            arrays.with_base(base_wg).take(train_idx),
            (),
            cfg,
            unet=unet,
            preprocess=PreprocessConfig(working_shape=shape),
            progress=False,
        )
        ens = Ensemble(unet, model.preprocess, [model.state], base=base)
        hybrid = TransitModel(ens, ranges, "hybrid")
        baseline = TransitModel(base, ranges, "baseline")
        ev = evaluate_pairs(test, {"hybrid": hybrid, "baseline": baseline})
        d = ev.to_dict()
        out.append(
            json_ready(
                {
                    "family": fam,
                    "n_train": len(train_idx),
                    "n_test": len(test),
                    "seconds": time.perf_counter() - t,
                    "summary": d["summary"],
                    "comparisons": [c.to_dict() for c in compare_methods(ev, "hybrid", "baseline")],
                }
            )
        )
        log.info(
            "LOFO %s: hybrid %.2f %%, baseline %.2f %% at 2%%/2mm (%d test images)",
            fam,
            ev.statistics("hybrid", "pass_rate_2mm2pct_percent").mean,
            ev.statistics("baseline", "pass_rate_2mm2pct_percent").mean,
            len(test),
        )
    return out


if __name__ == "__main__":
    raise SystemExit(main())
