"""``intrepid train DATA --out RUN``: grid search, repeated cross-validation and the ensemble (2D U-Net)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from intrepid.cli._common import bounded
from intrepid.errors import ParameterError

__all__ = ["register", "run"]


def _list(kind: type, name: str) -> Any:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            values = tuple(kind(v) for v in text.replace(" ", "").split(",") if v)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"{name} must be comma-separated {kind.__name__}s, got {text!r}"
            ) from exc
        if not values:
            raise argparse.ArgumentTypeError(f"{name} must list at least one value, got {text!r}")
        return values

    return parse


def register(subparsers: Any) -> None:
    """Add ``train`` to the ``intrepid`` parser."""
    p = subparsers.add_parser(
        "train",
        help="train the 2D U-Net (EPID -> portal dose): grid search, repeated k-fold CV, ensemble",
        description=(
            "Train the 2D U-Net that maps EPID images to portal dose (Gy) on a folder of pairs (manifest.csv "
            "with DICOM RT Image or NumPy files, as written by 'intrepid simulate pairs'). Runs the "
            "published "
            "protocol: grid search over initial filters x learning rate x batch size, repeated k-fold "
            "cross-validation grouped by phantom and field group and stratified by phantom family and field "
            "group, validation gamma pass rate (global 3%/3mm, 10% cut-off) and loss per run, and an "
            "ensemble of the best configuration that averages the best model of each repeat. Writes "
            "RUN/protocol.json, RUN/runs/<configuration>/r<R>_f<F>.json, RUN/summary.csv, RUN/summary.md, "
            "RUN/ensemble/model.json + model.safetensors and RUN/result.json. Defaults are the published "
            "protocol (24 configurations x 10 x 5 runs of 150 epochs: use a GPU); scale down with --epochs, "
            "--repeats, --folds, --filters, --lr, --batch-size."
        ),
    )
    p.add_argument(
        "data", type=Path, metavar="DATA", nargs="?", help="data-set folder holding manifest.csv"
    )
    p.add_argument("--out", type=Path, help="run folder to create (must be empty or absent)")
    p.add_argument(
        "--resume",
        type=Path,
        metavar="RUN",
        help="continue the interrupted protocol of the run folder RUN (its settings and pairs are read from "
        "RUN/protocol.json; finished runs are kept, interrupted ones continue from their last epoch)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="execute the runs as Ray tasks (extra intrepid-rt[ray]): without ADDRESS a local Ray instance "
        "is started; 'auto' or HOST:PORT joins a running cluster. About 5 s of start-up and ~1 s per run: "
        "worth it with several GPUs or nodes",
    )
    p.add_argument(
        "--stack",
        type=int,
        default=1,
        metavar="N",
        help="train up to N runs of one architecture at once as one grouped network (same results within "
        "float32 round-off; fills a GPU that one small U-Net leaves idle, e.g. 16-50 on a GPU; default 1: "
        "one "
        "at a time, with per-epoch checkpoints)",
    )
    p.add_argument(
        "--cpus-per-run", type=float, default=1.0, help="with --ray: CPUs reserved by each run (default 1)"
    )
    p.add_argument(
        "--gpus-per-run",
        type=float,
        default=None,
        help="with --ray: GPUs reserved by each run, fractions share a GPU (default 0, or 0.125 when the "
        "device is CUDA: eight concurrent runs per GPU)",
    )
    p.add_argument("--epochs", type=int, default=150, help="epochs per run (default 150)")
    p.add_argument("--repeats", type=int, default=10, help="repetitions of the k-fold CV (default 10)")
    p.add_argument("--folds", type=int, default=5, help="k of the k-fold CV (>= 2, default 5)")
    p.add_argument(
        "--filters",
        type=_list(int, "--filters"),
        default=(8, 16),
        help="initial U-Net filters to try, comma-separated (default 8,16)",
    )
    p.add_argument(
        "--lr",
        type=_list(float, "--lr"),
        default=(1e-2, 1e-3, 1e-4),
        help="Adam learning rates to try, comma-separated (default 1e-2,1e-3,1e-4)",
    )
    p.add_argument(
        "--batch-size",
        type=_list(int, "--batch-size"),
        default=(4, 8, 16, 32),
        help="batch sizes to try, comma-separated (default 4,8,16,32)",
    )
    p.add_argument("--loss", choices=("mae", "mse"), default="mae", help="training loss (default mae)")
    p.add_argument(
        "--working-size",
        type=bounded(16, 1024, integer=True),
        default=256,
        help="working grid of the network in pixels per side, a multiple of 16 (default 256)",
    )
    p.add_argument(
        "--scaling",
        choices=("linear", "log"),
        default="linear",
        help="normalisation of signal and dose (default linear)",
    )
    p.add_argument(
        "--split",
        default=None,
        help="manifest split to train on (default: 'train' when the manifest has such rows, else "
        "every row; 'all' for every row)",
    )
    p.add_argument(
        "--augment",
        default="flip-columns",
        help="comma-separated augmentations: flip-columns (left-right, valid with the EPID arm "
        "backscatter), flip-rows, rotate-90, none (default flip-columns)",
    )
    p.add_argument(
        "--noise-percent",
        type=float,
        default=0.0,
        help="Gaussian noise on the EPID input, percent of the image maximum (default 0)",
    )
    p.add_argument("--dd-percent", type=float, default=3.0, help="gamma dose difference, %% (default 3)")
    p.add_argument("--dta-mm", type=float, default=3.0, help="gamma distance to agreement, mm (default 3)")
    p.add_argument(
        "--validation-grid",
        choices=("working", "detector"),
        default="working",
        help="grid of the validation gamma and MAE: the network's working grid (fast, default) or the "
        "detector grid (prediction resampled back)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the splits and the runs (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default auto)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of PyTorch (default: PyTorch's choice, one per core)",
    )
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(
        func=run,
        param_flags={"learning_rates": "--lr", "initial_filters": "--filters", "batch_sizes": "--batch-size"},
    )


def _augmentation(text: str, noise_percent: float) -> Any:
    from intrepid.learn import AugmentConfig

    names = {v.strip().lower() for v in text.split(",") if v.strip()}
    known = {"flip-columns", "flip-rows", "rotate-90", "none"}
    unknown = sorted(names - known)
    if unknown:
        raise ParameterError(f"--augment must list {', '.join(sorted(known))}, got {', '.join(unknown)}")
    return AugmentConfig(
        flip_columns="flip-columns" in names,
        flip_rows="flip-rows" in names,
        rotate_90="rotate-90" in names,
        noise_percent=noise_percent,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``intrepid train``."""
    from intrepid.learn import (
        Loss,
        PreprocessConfig,
        ProtocolConfig,
        Scaling,
        ValidationGrid,
        load_dataset,
        run_protocol,
    )

    ray = _ray_options(args)
    if not 1 <= args.stack <= 1200:
        raise ParameterError(f"--stack must be in [1, 1200], got {args.stack}")
    if args.resume is not None:
        return _resume(args, ray)
    if args.data is None or args.out is None:
        raise ParameterError("train needs DATA and --out (or --resume RUN to continue a protocol)")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise ParameterError(f"--out {out} is not empty; pass --overwrite to write into it")
    if args.working_size < 1:
        raise ParameterError(f"--working-size must be >= 1, got {args.working_size}")
    if args.threads is not None:
        if args.threads < 1:
            raise ParameterError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    if args.split is None:
        full = load_dataset(args.data)
        has_train = any(r.split == "train" for r in full.records)
        dataset = full.split("train") if has_train else full
        split = "train" if has_train else "all"
    elif args.split == "all":
        dataset, split = load_dataset(args.data), "all"
    else:
        dataset, split = load_dataset(args.data, split=args.split), args.split
    config = ProtocolConfig(
        filters=args.filters,
        learning_rates=args.lr,
        batch_sizes=args.batch_size,
        repeats=args.repeats,
        folds=args.folds,
        epochs=args.epochs,
        loss=Loss(args.loss),
        seed=args.seed,
        device=args.device,
        preprocess=PreprocessConfig(
            working_shape=(args.working_size, args.working_size), scaling=Scaling(args.scaling)
        ),
        augmentation=_augmentation(args.augment, args.noise_percent),
        dd_percent=args.dd_percent,
        dta_mm=args.dta_mm,
        validation_grid=ValidationGrid(args.validation_grid),
    )
    result = run_protocol(dataset, config, out, progress=not args.no_progress, ray=ray, stack=args.stack)
    return _report(args, result, config, split, len(dataset), out)


def _ray_options(args: argparse.Namespace) -> Any:
    """The --ray settings, or None for local execution."""
    if args.ray is None:
        if args.gpus_per_run is not None or args.cpus_per_run != 1.0:
            raise ParameterError("--cpus-per-run and --gpus-per-run need --ray")
        return None
    from intrepid.learn import RayOptions

    if not args.cpus_per_run > 0:
        raise ParameterError(f"--cpus-per-run must be > 0, got {args.cpus_per_run}")
    if args.gpus_per_run is not None and not 0 <= args.gpus_per_run <= 64:
        raise ParameterError(f"--gpus-per-run must be in [0, 64], got {args.gpus_per_run}")
    gpus = args.gpus_per_run
    if gpus is None:
        gpus = 0.125 if str(args.device).startswith("cuda") else 0.0
    return RayOptions(
        address=None if args.ray == "local" else args.ray,
        cpus_per_run=args.cpus_per_run,
        gpus_per_run=gpus,
    )


def _resume(args: argparse.Namespace, ray: Any) -> int:
    import json

    from intrepid.learn import ProtocolConfig, resume_protocol

    run_dir: Path = args.resume
    if args.data is not None or args.out is not None:
        raise ParameterError("--resume RUN takes its data set and run folder from RUN; drop DATA and --out")
    if not run_dir.is_dir():
        raise ParameterError(f"--resume {run_dir}: no such run folder")
    device = None if args.device == "auto" else args.device
    result = resume_protocol(
        run_dir, progress=not args.no_progress, ray=ray, device=device, stack=args.stack
    )
    config = ProtocolConfig.from_dict(json.loads((run_dir / "protocol.json").read_text("utf-8"))["protocol"])
    return _report(args, result, config, "as recorded", None, run_dir)


def _report(
    args: argparse.Namespace, result: Any, config: Any, split: str, pairs: int | None, out: Path
) -> int:
    from intrepid.cli._common import write_json

    summary = result.to_dict()
    summary["split"] = split
    if pairs is not None:
        summary["pairs"] = pairs
    if args.json:
        write_json(summary)
        return 0
    best = result.best
    on = f"on {pairs} pairs ({split}) " if pairs is not None else ""
    print(
        f"{result.runs} runs ({len(result.summaries)} configurations x {config.repeats} x {config.folds} "
        f"folds) {on}in {result.seconds:.1f} s on {result.device}"
    )
    print(
        f"best: {best.configuration.name}: gamma {config.dd_percent:g}%/{config.dta_mm:g}mm pass rate "
        f"{best.gamma_pass_rate_mean_percent:.2f} +/- {best.gamma_pass_rate_std_percent:.2f} %, val loss "
        f"{best.val_loss_mean:.4g}"
    )
    print(f"ensemble: {result.ensemble_path} ({result.members} members)")
    print(f"summary: {out / 'summary.md'}")
    return 0
