"""Ablation of the detector and transit effects: where the kernel baseline and the network lose.

For each condition (no effect, one group of effects — spectral, glare, off-axis softening, calibration
artefacts, acquisition, geometry (arm backscatter, couch, panel shift) — and every effect) the script
simulates a small random data set (Varian aS1000 geometry, 30 % MLC fields, ``--detector-pixels``
columns), refits the field-size- and level-dependent kernel baseline on that condition's training pairs
(the classical method is commissioned on the physics it meets), and evaluates on the condition's test
pairs: the refitted baseline, the stationary kernel (``features="none"``) and the given network model
(trained once, on every effect; not retrained per condition). Global gamma at 3 %/3 mm, 2 %/2 mm and
1 %/1 mm and local 2 %/2 mm (10 % cut-off), MAE.

    python3 benchmarks/bench_transit_ablation.py --model src/intrepid/transit/models/default

Writes ``benchmarks/results/transit_ablation.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CONDITIONS: tuple[tuple[str, str], ...] = (
    ("none", "none"),
    ("spectral (energy response, scatter spectrum, heterogeneity position)",
     "energy_response,spectral_scatter,heterogeneity_position"),
    ("glare (field-size dependent)", "glare"),
    ("calibration artefacts (flood, dark, drift, dead lines)",
     "flood_field,dark_field,gain_drift,dead_lines"),
    ("acquisition (frames, ghosting, dose rate, saturation)",
     "frame_averaging,ghosting,dose_rate,saturation"),
    ("off-axis spectral softening", "off_axis_softening"),
    ("geometry (arm backscatter, couch, panel shift)", "arm_backscatter,couch,panel_shift"),
    ("all", "all"),
)  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="network model (default: the shipped one)")
    p.add_argument("--n", type=int, default=40, help="pairs per condition (default 40, 25 %% test)")
    p.add_argument("--detector-pixels", type=int, default=128, help="panel columns (default 128)")
    p.add_argument("--seed", type=int, default=11, help="simulation seed (default 11)")
    p.add_argument("--data-root", type=Path, default=ROOT / "benchmarks/_data/t9_ablation")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/transit_ablation.json")
    p.add_argument("--simulate-only", action="store_true", help="only simulate the data sets")
    p.add_argument("--no-network", action="store_true", help="only the kernel models (no network model)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--only", action="append", default=None, metavar="TEXT",
        help="run only the conditions whose label contains TEXT (repeatable); their rows replace those of "
        "the same condition in --out, the others are kept",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from intrepid.learn import load_dataset
    from intrepid.simulate import generate_pairs, random_composition
    from intrepid.transit import (
        CALIBRATED_UNITS_PER_MU,
        Criterion,
        TransitModel,
        canonical_pairs,
        evaluate_pairs,
        fit_baseline,
        load_transit_model,
        training_ranges,
    )

    conditions = [
        (label, effects) for label, effects in CONDITIONS
        if not args.only or any(t in label for t in args.only)
    ]
    folders = {}
    for label, effects in conditions:
        folder = args.data_root / effects.replace(",", "+")
        if not (folder / "manifest.csv").exists():
            t = time.perf_counter()
            specs = random_composition(args.n, seed=args.seed, test_fraction=0.25, mlc_fraction=0.3)
            generate_pairs(specs, folder, seed=args.seed, vendor="varian", workers=args.workers,
                           detector_pixels=args.detector_pixels, effects=effects, progress=False)
            print(f"simulated {label}: {time.perf_counter() - t:.0f} s", flush=True)
        folders[label] = folder
    if args.simulate_only:
        return 0
    network = None if args.no_network else load_transit_model(args.model)
    crit = (Criterion(3.0, 3.0), Criterion(2.0, 2.0), Criterion(1.0, 1.0), Criterion(2.0, 2.0, local=True))
    rows: list[dict[str, Any]] = []
    for label, _ in conditions:
        train = list(load_dataset(folders[label], split="train"))
        test = list(load_dataset(folders[label], split="test"))
        for pair in test:
            pair.epid.metadata["mu"] = pair.record.mu
        per_mu, infos = canonical_pairs(train)
        kernel = fit_baseline(per_mu, input_units=CALIBRATED_UNITS_PER_MU)
        flat = fit_baseline(per_mu, features="none", input_units=CALIBRATED_UNITS_PER_MU)
        ranges = training_ranges(infos) if network is None else network.ranges
        methods: dict[str, Any] = {} if network is None else {"network (all-effects model)": network}
        methods["kernel baseline (refit)"] = TransitModel(kernel, ranges)
        methods["stationary kernel (refit)"] = TransitModel(flat, ranges)
        ev = evaluate_pairs(test, methods, criteria=crit)
        row: dict[str, Any] = {"condition": label, "n_train": len(train), "n_test": len(test)}
        for m in ev.methods:
            row[m] = {k: ev.statistics(m, k).mean for k in ev.metric_names}
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.only and args.out.exists():
        done = {r["condition"] for r in rows}
        kept = [r for r in json.loads(args.out.read_text())["conditions"] if r["condition"] not in done]
        order = [label for label, _ in CONDITIONS]
        rows = sorted(
            kept + rows, key=lambda r: order.index(r["condition"]) if r["condition"] in order else 99
        )
    doc = {"conditions": rows, "settings": vars(args)}
    args.out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    names = list(methods)
    print("\n| condition | " + " | ".join(f"{m} γ2/2 · γ1/1 · MAE mGy" for m in names) + " |")
    print("|---|" + "---:|" * len(names))
    for row in rows:
        cells = [
            f"{row[m]['pass_rate_2mm2pct_percent']:.2f} · {row[m]['pass_rate_1mm1pct_percent']:.2f} · "
            f"{1000 * row[m]['mae_gy']:.2f}"
            for m in names
        ]
        print(f"| {row['condition']} (n = {row['n_test']}) | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
