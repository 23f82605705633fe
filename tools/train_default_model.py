"""Reproduce the default InTrEPID-2D model shipped in ``src/intrepid/transit/models/default/``.

The command::

    python3 tools/train_default_model.py

1. simulates the seed's paper composition (213 pairs, Elekta iView GT 1024 x 1024, ``--seed 0``) into
   ``benchmarks/_data/default_model_paper_seed0`` (reused when its ``manifest.csv`` exists);
2. trains, on the 190 training pairs only (the 23 test images are never seen), a **reduced protocol** that
   fits in CPU time: 1 repeat x ``--folds`` (4) grouped / stratified folds (:func:`intrepid.learn.cv_splits`)
   of one configuration (8 initial filters, depth 5, Adam learning rate ``--lr`` 1e-3, batch
   ``--batch-size`` 4), ``--epochs`` (20) epochs on a ``--working-size`` (128 x 128) working grid, MAE loss,
   default augmentation; each fold keeps its epoch with the lowest validation loss (``--members N`` trains
   only the first N folds);
3. fits the physics baseline (:func:`intrepid.transit.fit_baseline`) on the same training pairs and writes
   ``baseline.json``;
4. writes the ensemble of the fold models (``model.json`` + ``model.safetensors``) and
   ``training_manifest.json`` (the command, data seed, composition, splits, per-fold losses, timings,
   software versions) into ``--out``.

Every fold model is also checkpointed under ``--work`` so that an interrupted run resumes where it stopped
(``--resume``). Same seed, same data, same CPU kernels -> same weights.

**Hybrid (physics-informed residual) model, the default since the second release** (``--plain`` restores
the pure network): the kernel baseline's basis images (:func:`intrepid.transit.kernel_basis`, full detector
resolution) are computed once per pair and resampled to the working grid; for every fold the baseline is
fitted on that fold's training pairs only (:func:`intrepid.transit.fit_baseline_design`), its prediction on
the working grid is the fold's ``base_gy`` and the U-Net learns the correction ``dose - base``. The shipped
ensemble's base is the mean of the fold baselines (the model is linear in its parameters, so the mean of the
members' outputs is exactly the mean base plus the mean correction, before clipping), stored inside
``model.json``.
``--exclude-family FAM`` drops a phantom family from the training pairs (leave-one-family-out models).

The published protocol (24 configurations x 10 x 5-fold CV x 150 epochs) is ``intrepid train``; it needs a
GPU.
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


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data",
        type=Path,
        default=ROOT / "benchmarks/_data/default_model_paper_seed0",
        help="data-set folder (simulated here when it has no manifest.csv)",
    )
    p.add_argument("--seed", type=int, default=0, help="simulation and training seed (default 0)")
    p.add_argument("--folds", type=int, default=4, help="k of the k-fold CV = ensemble members (default 4)")
    p.add_argument(
        "--members",
        type=int,
        default=None,
        help="train only the first N folds of the k-fold split (default: all k)",
    )
    p.add_argument("--epochs", type=int, default=20, help="epochs per fold (default 20)")
    p.add_argument("--working-size", type=int, default=128, help="working grid N x N (default 128)")
    p.add_argument("--filters", type=int, default=8, help="initial U-Net filters (default 8)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--batch-size", type=int, default=4, help="mini-batch size (default 4)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--workers", type=int, default=2, help="simulation worker processes (default 2)")
    p.add_argument(
        "--out", type=Path, default=ROOT / "src/intrepid/transit/models/default", help="model folder to write"
    )
    p.add_argument(
        "--work",
        type=Path,
        default=ROOT / "benchmarks/_data/default_model_work",
        help="checkpoints of the fold models",
    )
    p.add_argument("--resume", action="store_true", help="reuse fold checkpoints found in --work")
    p.add_argument("--plain", action="store_true", help="train the pure network (no kernel base)")
    p.add_argument(
        "--exclude-family", default=None, help="leave this phantom family out of the training pairs"
    )
    p.add_argument(
        "--baseline-only",
        action="store_true",
        help="only fit the kernel baseline on the training pairs and write OUT/baseline.json",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    log = logging.getLogger("train_default_model")

    import numpy as np
    import torch

    import intrepid
    from intrepid.learn import (
        Ensemble,
        PreprocessConfig,
        TrainConfig,
        UNetConfig,
        cv_splits,
        load_dataset,
        load_model,
        prepare_working_arrays,
        train_model,
    )
    from intrepid.simulate import composition_counts, generate_pairs, paper_composition

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    manifest = args.data / "manifest.csv"
    if not manifest.exists():
        log.info("simulating the paper composition (seed %d) into %s", args.seed, args.data)
        generate_pairs(
            paper_composition(seed=args.seed), args.data, seed=args.seed, workers=args.workers, progress=False
        )
    t_sim = time.perf_counter() - t0
    ds = load_dataset(args.data, split="train", cache=False)
    if args.exclude_family:
        keep = [i for i, r in enumerate(ds.records) if r.family != args.exclude_family]
        if len(keep) == len(ds):
            raise SystemExit(f"--exclude-family {args.exclude_family!r}: no such family in {args.data}")
        ds = ds.subset(keep)
    log.info("%d training pairs", len(ds))
    from intrepid.transit import KernelBaseline, fit_baseline

    args.out.mkdir(parents=True, exist_ok=True)
    shape = (args.working_size, args.working_size)
    unet = UNetConfig(initial_filters=args.filters)
    pre = PreprocessConfig(working_shape=shape)
    if args.plain:
        baseline = fit_baseline(ds, seed=args.seed)
        arrays = prepare_working_arrays(list(ds), shape)
        design = None
    else:
        arrays, basis_wg, design = _hybrid_inputs(ds, shape, args, log)
        from intrepid.transit import fit_baseline_design

        baseline = fit_baseline_design(design)
    baseline.save(args.out / "baseline.json")
    log.info("kernel baseline written to %s", args.out / "baseline.json")
    if args.baseline_only:
        return 0
    splits = cv_splits(ds.records, args.folds, repeats=1, seed=args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    states, infos, pres = [], [], []
    folds_doc: list[dict[str, Any]] = []
    if args.members is not None:
        splits = splits[: args.members]
    fold_bases: list[KernelBaseline] = []
    for split in splits:
        ckpt = args.work / f"fold{split.fold}"
        fold_arrays = arrays
        if design is not None:
            from intrepid.transit import fit_baseline_design

            fold_base = fit_baseline_design(design, split.train_indices)
            fold_bases.append(fold_base)
            fold_arrays = arrays.with_base(fold_base.from_basis(np.moveaxis(basis_wg, 1, 0)))
        seed = int(np.random.SeedSequence([args.seed, 0, split.fold]).generate_state(1)[0] % (2**31))
        tcfg = TrainConfig(
            learning_rate=args.lr, batch_size=args.batch_size, epochs=args.epochs, seed=seed, device="cpu"
        )
        if args.resume and (ckpt / "model.json").exists() and (ckpt / "fold.json").exists():
            member = load_model(ckpt)
            fold_doc = json.loads((ckpt / "fold.json").read_text())
            log.info("fold %d: reusing checkpoint %s", split.fold, ckpt)
            states.append(member._states[0])
            pres.append(member.preprocess)
        else:
            t = time.perf_counter()
            model = train_model(
                fold_arrays.take(split.train_indices),
                fold_arrays.take(split.val_indices),
                tcfg,
                unet=unet,
                preprocess=pre,
                progress=False,
            )
            if design is not None:
                model.save(ckpt, base=fold_bases[-1])
            else:
                model.save(ckpt)
            fold_doc = {
                "fold": split.fold,
                "seed": seed,
                "train": [ds.records[i].name for i in split.train_indices],
                "val": [ds.records[i].name for i in split.val_indices],
                "history": model.history(),
                "seconds": time.perf_counter() - t,
            }
            (ckpt / "fold.json").write_text(json.dumps(fold_doc, indent=1))
            log.info(
                "fold %d: best epoch %d, val loss %.4g, %.0f s",
                split.fold,
                model.best_epoch,
                model.best_val_loss,
                fold_doc["seconds"],
            )
            states.append(model.state)
            pres.append(model.preprocess)
        folds_doc.append(fold_doc)
        infos.append(
            {
                "repeat": 0,
                "fold": split.fold,
                "seed": seed,
                "best_epoch": fold_doc["history"]["best_epoch"],
                "val_loss": fold_doc["history"]["best_val_loss"],
                **({"fold_baseline": fold_bases[-1].to_dict()} if design is not None else {}),
            }
        )
    command = "python3 tools/train_default_model.py " + " ".join(sys.argv[1:] if argv is None else argv)
    training = {
        "command": command.strip(),
        "protocol": f"reduced: 1 repeat x {args.folds}-fold CV of one configuration, ensemble of "
        f"{len(splits)} fold models"
        + (
            "; hybrid residual: networks learn dose - kernel baseline (fitted per training fold); "
            "base = mean of the fold baselines"
            if design is not None
            else ""
        ),
        "excluded_family": args.exclude_family,
        "data": {
            "composition": "paper",
            "simulation_seed": args.seed,
            "vendor": "elekta",
            "training_pairs": len(ds),
            "summary": ds.summary(),
        },
        "configuration": {
            "initial_filters": args.filters,
            "learning_rate": args.lr,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "loss": "mae",
            "working_shape": list(shape),
        },
    }
    base = None
    if design is not None:
        base = KernelBaseline(
            fold_bases[0].sigmas_mm,
            tuple(float(v) for v in np.mean([b.weights for b in fold_bases], axis=0)),
            float(np.mean([b.offset_gy for b in fold_bases])),
            {"mean_of_fold_baselines": len(fold_bases), "training_pairs": len(ds)},
        )
    ens = Ensemble(
        unet, pres[0], states, member_info=infos, member_preprocess=pres, training=training, base=base
    )
    args.out.mkdir(parents=True, exist_ok=True)
    ens.save(args.out)
    test_names = [s.name for s in paper_composition(seed=args.seed) if s.split.value == "test"]
    doc = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command.strip(),
        "arguments": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k not in ("data", "out", "work")
        },
        "data": {
            "composition": "paper (intrepid.simulate.paper_composition)",
            "simulation_seed": args.seed,
            "counts": composition_counts(paper_composition(seed=args.seed)),
            "training_pairs": len(ds),
            "held_out_test_images": test_names,
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
    return 0


def _hybrid_inputs(
    ds: Any, shape: tuple[int, int], args: argparse.Namespace, log: Any
) -> tuple[Any, Any, Any]:
    """Working arrays, kernel basis on the working grid ``(N, K + 1, rows, cols)`` and the baseline design,
    all in one pass over the pairs (cached in ``--work/hybrid_inputs_<size>.npz`` keyed by the pair names)."""
    import numpy as np

    from intrepid.learn import WorkingArrays, to_working_grid
    from intrepid.transit import BaselineDesign, baseline_design, kernel_basis

    names = [r.name for r in ds.records]
    cache = args.work / f"hybrid_inputs_{shape[0]}x{shape[1]}_seed{args.seed}.npz"
    args.work.mkdir(parents=True, exist_ok=True)
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        all_names = [str(n) for n in z["names"]]
        if set(names) <= set(all_names):
            pos = [all_names.index(n) for n in names]
            log.info("reusing %s", cache)
            grids: tuple[Any, ...] = ()
            arrays = WorkingArrays(
                z["epid"][pos], z["dose"][pos], tuple(int(v) for v in z["det_shape"]),
                (float(z["det_spacing"][0]), float(z["det_spacing"][1])), grids,
            )
            n_rows = z["n_rows"]
            starts = np.concatenate([[0], np.cumsum(n_rows)])
            xs = tuple(z["x"][starts[i] : starts[i + 1]] for i in pos)
            ys = tuple(z["y"][starts[i] : starts[i + 1]] for i in pos)
            sigmas = tuple(float(v) for v in z["sigmas"])
            design = BaselineDesign(sigmas, xs, ys, json.loads(str(z["settings"])))
            return arrays, z["basis"][pos], design
    epids, doses, bases, xs, ys = [], [], [], [], []
    t = time.perf_counter()
    sp = None
    for n in range(len(ds)):
        pair = ds[n]
        spacing = (float(pair.epid.grid.spacing_mm[1]), float(pair.epid.grid.spacing_mm[0]))
        sp = spacing
        epids.append(to_working_grid(pair.epid.array, shape))
        doses.append(to_working_grid(pair.portal_dose.array, shape))
        basis = kernel_basis(np.asarray(pair.epid.array), spacing)
        bases.append(np.stack([to_working_grid(b, shape) for b in basis]))
        d = baseline_design([pair], seed=int(np.random.SeedSequence([args.seed, n]).generate_state(1)[0]))
        xs.append(d.x[0])
        ys.append(d.y[0])
        if n % 20 == 0:
            log.info("hybrid inputs: %d / %d pairs, %.0f s", n, len(ds), time.perf_counter() - t)
    det_shape = tuple(int(v) for v in ds[0].epid.shape)
    settings = {**d.settings, "seed": f"SeedSequence([{args.seed}, image index])"}
    np.savez(
        cache, names=np.array(names), epid=np.stack(epids), dose=np.stack(doses), basis=np.stack(bases),
        x=np.concatenate(xs), y=np.concatenate(ys), n_rows=np.array([len(v) for v in ys]),
        sigmas=np.array(d.sigmas_mm), settings=json.dumps(settings), det_shape=np.array(det_shape),
        det_spacing=np.array(sp),
    )
    arrays = WorkingArrays(np.stack(epids), np.stack(doses), (det_shape[0], det_shape[1]), sp)
    return arrays, np.stack(bases), BaselineDesign(d.sigmas_mm, tuple(xs), tuple(ys), settings)


if __name__ == "__main__":
    raise SystemExit(main())
