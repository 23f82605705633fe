"""``intrepid evaluate RUN_OR_MODEL DATA``: gamma pass rates, MAE and maximum error of a model and the
physics baseline on the test images of a data set, as in the seed's tables.

JSON (``--json``) keys: ``settings`` (criteria, cut-off, normalisation, model, baseline, split),
``methods`` (``["network", "baseline"]``), ``n_images``, ``images`` (one object per image: ``name``,
``family``, ``field_group``, ``field``, ``max_dose_gy`` and per method an object with
``pass_rate_3mm3pct_percent``, ``pass_rate_5mm5pct_percent``, ``pass_rate_2mm2pct_percent``,
``pass_rate_1mm1pct_percent``, ``pass_rate_2mm2pct_local_percent`` (local dose difference, same 10 %
cut-off), ``mean_gamma_<criterion>``, ``mae_gy``, ``max_error_gy``, ``mae_percent``, ``seconds``),
``summary`` (method -> metric -> ``mean``, ``std``, ``median``, ``min``, ``max``, ``n``), ``by_family`` and
``by_family_field`` (group -> the same as ``summary``), ``comparisons`` (network - baseline per metric:
``mean_difference``, ``ci95_low``, ``ci95_high`` (bootstrap), ``wilcoxon_p``, ``a_better``, ``n``) and,
with ``--leave-one-family-out``, ``leave_one_family_out`` (one object per held-out family with ``summary``
and ``images``).

Models trained per MU (``model.json`` ``training.input``) get every EPID image converted to CU/MU (MU from
the manifest's ``mu`` column) and predict Gy; their ``baseline.json`` works the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from intrepid.errors import ParameterError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``evaluate`` to the ``intrepid`` parser."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a model and the physics baseline on test pairs (gamma %%/mm, MAE Gy)",
        description=(
            "Predict the portal dose of each test pair of DATA with the model (a model folder or a training "
            "run folder) and with the physics baseline, and compare both with the true portal dose: global "
            "gamma pass rates at 3%/3mm, 5%/5mm, 2%/2mm and 1%/1mm and local 2%/2mm (10% cut-off of "
            "the reference maximum, "
            "distances in mm at the detector), MAE and maximum error in Gy; summaries (mean, std, median) "
            "overall, per phantom family and per family x field group. The baseline is the model folder's "
            "baseline.json, else one fitted on DATA's training split, else the default model's."
        ),
    )
    p.add_argument("model", type=Path, metavar="RUN_OR_MODEL", help="model folder or training run folder")
    p.add_argument("data", type=Path, metavar="DATA", help="data-set folder holding manifest.csv")
    p.add_argument(
        "--split",
        default="test",
        help="split of DATA to evaluate: test (default; all pairs when the manifest has no test "
        "rows), train or all",
    )
    p.add_argument(
        "--cutoff-percent",
        type=float,
        default=10.0,
        help="low-dose cut-off in %% of the reference maximum (default 10)",
    )
    p.add_argument("--baseline", type=Path, default=None, help="baseline.json to use instead")
    p.add_argument("--report", type=Path, default=None, help="also write a self-contained HTML report here")
    p.add_argument(
        "--leave-one-family-out",
        action="store_true",
        help="also train one network per phantom family on DATA's other families (training "
        "split) and test it on that family's test images (slow: uses --lofo-epochs)",
    )
    p.add_argument(
        "--lofo-epochs",
        type=int,
        default=10,
        help="epochs per leave-one-family-out network (default 10; learning rate 1e-3, batch 4)",
    )
    p.add_argument(
        "--lofo-families",
        default=None,
        help="comma-separated families to hold out (default: every family of DATA)",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    p.set_defaults(func=run)


def _table(doc: dict[str, Any]) -> str:
    crit = doc["settings"]["criteria"]
    head = (
        "| method | "
        + " | ".join(
            f"γ {c['dd_percent']:g}%/{c['dta_mm']:g}mm{' local' if c.get('normalisation') == 'local' else ''}"
            " mean ± σ (median) %"
            for c in crit
        )
        + " | MAE Gy |"
    )
    lines = [head, "|---|" + "---:|" * (len(crit) + 1)]
    for m in doc["methods"]:
        s = doc["summary"][m]
        cells = []
        for c in crit:
            st = s[f"pass_rate_{c['key']}_percent"]
            cells.append(f"{_f(st['mean'])} ± {_f(st['std'])} ({_f(st['median'])})")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {_f(s['mae_gy']['mean'], 4)} |")
    return "\n".join(lines) + "\n"


def _f(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    """Run ``intrepid evaluate``."""
    from intrepid.cli._common import write_json
    from intrepid.learn import load_dataset
    from intrepid.transit import (
        evaluate_pairs,
        fit_baseline,
        leave_one_family_out,
        load_baseline,
        load_default_baseline,
        resolve_model_path,
    )
    from intrepid.transit._evaluation import json_ready

    if args.split not in ("test", "train", "all"):
        raise ParameterError(f"--split must be test, train or all, got {args.split!r}")
    from intrepid.transit import CALIBRATED_UNITS_PER_MU, TransitModel, canonical_pairs, load_transit_model

    model_dir = resolve_model_path(args.model)
    wrapped = load_transit_model(model_dir, device=args.device)
    network = wrapped.predictor
    if args.leave_one_family_out and not hasattr(network, "unet"):
        raise ParameterError(f"--leave-one-family-out needs a network model; {model_dir} is a kernel model")
    everything = load_dataset(args.data)
    splits = {r.split for r in everything.records}
    if args.split == "all" or (args.split == "test" and "test" not in splits):
        test = everything
        used_split = "all"
    else:
        test = load_dataset(args.data, split=args.split)
        used_split = args.split
    if args.baseline is not None:
        baseline = load_baseline(args.baseline)
        baseline_from = str(args.baseline)
    elif (model_dir / "baseline.json").is_file():
        baseline = load_baseline(model_dir / "baseline.json")
        baseline_from = str(model_dir / "baseline.json")
    elif "train" in splits and used_split == "test":
        train = list(load_dataset(args.data, split="train"))
        if wrapped.legacy:
            baseline = fit_baseline(train)
        else:
            baseline = fit_baseline(canonical_pairs(train)[0], input_units=CALIBRATED_UNITS_PER_MU)
        baseline_from = f"fitted on the training split of {args.data}"
    else:
        baseline = load_default_baseline()
        baseline_from = "the default model's baseline.json"
    per_mu_baseline = baseline.input_units == CALIBRATED_UNITS_PER_MU
    if per_mu_baseline and wrapped.ranges is None:
        raise ParameterError(
            f"the baseline ({baseline_from}) works per MU but the model {model_dir} is a legacy model; pass "
            "--baseline with a baseline fitted on the signal as read"
        )
    predictors: dict[str, Any] = {
        "network": wrapped,
        "baseline": TransitModel(baseline, wrapped.ranges, "baseline") if per_mu_baseline else baseline,
    }
    for pair in test:
        pair.epid.metadata.setdefault("mu", pair.record.mu)
    settings = {
        "model": str(model_dir),
        "model_members": wrapped.members,
        "data": str(args.data),
        "split": used_split,
        "baseline": baseline_from,
    }
    ev = evaluate_pairs(
        test,
        predictors,
        cutoff_percent=args.cutoff_percent,
        keep_maps=args.report is not None,
        settings=settings,
        progress=not args.no_progress,
    )
    doc = ev.to_dict()
    if args.leave_one_family_out:
        from dataclasses import replace

        from intrepid.learn import TrainConfig

        tcfg = TrainConfig(epochs=args.lofo_epochs, device=args.device, learning_rate=1e-3, batch_size=4)
        pre = replace(network.preprocess, fitted=False)
        fams = None if args.lofo_families is None else [f for f in args.lofo_families.split(",") if f]
        folds = leave_one_family_out(
            everything,
            train_config=tcfg,
            unet=network.unet,
            preprocess=pre,
            families=fams,
            cutoff_percent=args.cutoff_percent,
            progress=not args.no_progress,
        )
        doc["leave_one_family_out"] = [f.to_dict() for f in folds]
    if args.report is not None:
        from intrepid.report import write_report

        write_report(ev, args.report)
    if args.json:
        write_json(json_ready(doc))
    else:
        sys.stdout.write(
            f"{len(ev.images)} images of {args.data} ({used_split}); baseline: {baseline_from}\n\n"
        )
        sys.stdout.write(_table(doc))
        for f in doc.get("leave_one_family_out", []):
            s = f["summary"]
            sys.stdout.write(
                f"held out {f['family']}: network γ3%/3mm "
                f"{_f(s['network']['pass_rate_3mm3pct_percent']['mean'])} %, baseline "
                f"{_f(s['baseline']['pass_rate_3mm3pct_percent']['mean'])} % ({f['n_test']} images)\n"
            )
        if args.report is not None:
            sys.stdout.write(f"\nreport: {args.report}\n")
    return 0
