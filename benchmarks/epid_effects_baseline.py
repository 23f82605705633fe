"""How well does the refitted 6-parameter kernel baseline convert simulated EPID images, effect by effect?

Simulates a training and a fresh test set with the detector and transit effects of
``intrepid.physics.EffectFlags`` (drawn per image within their published ranges), fits
``intrepid.physics.fit_baseline`` on the training pairs and reports the global gamma pass rates
(3 %/3 mm, 2 %/2 mm, 10 % cut-off) of its predictions on the test pairs.

Usage (a few minutes on 2 cores)::

    python benchmarks/epid_effects_baseline.py --train 40 --test 16 --effects legacy all
    python benchmarks/epid_effects_baseline.py --effects all-glare all-spectral_scatter-energy_response
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _rates(test, baseline) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    from intrepid.analysis import Normalisation, gamma

    out: dict[str, list[float]] = {"3%/3mm": [], "2%/2mm": []}
    for pair in test:
        pred = baseline.predict(pair.epid)
        uid = pair.portal_dose.frame_of_reference_uid
        pred = pred.with_array(np.asarray(pred.array), frame_of_reference_uid=uid)
        for key, dd, dta in (("3%/3mm", 3.0, 3.0), ("2%/2mm", 2.0, 2.0)):
            res = gamma(pair.portal_dose, pred, dd_percent=dd, dta_mm=dta, cutoff_percent=10.0,
                        normalisation=Normalisation.GLOBAL)
            out[key].append(float(res.pass_rate_percent))
    return out


def main() -> None:
    from intrepid.learn import load_dataset
    from intrepid.physics import fit_baseline
    from intrepid.simulate import generate_pairs, random_composition

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=40)
    ap.add_argument("--test", type=int, default=16)
    ap.add_argument("--vendor", default="elekta")
    ap.add_argument("--mlc-fraction", type=float, default=0.25)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--detector-pixels", type=int, default=None)
    ap.add_argument("--panel", choices=["image", "dataset"], default="image",
                    help="panel values drawn per image, or once per data set (train and test share a panel)")
    ap.add_argument("--effects", nargs="+", default=["legacy", "all"],
                    help="'legacy' (effects=None) or EffectFlags.parse text, one run each")
    args = ap.parse_args()
    train_specs = random_composition(args.train, 101, test_fraction=0.0, mlc_fraction=args.mlc_fraction)
    test_specs = random_composition(args.test, 202, test_fraction=0.0, mlc_fraction=args.mlc_fraction)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.effects:
            effects = None if spec == "legacy" else spec
            t0 = time.perf_counter()
            dirs = []
            for name, specs, seed in (("train", train_specs, 11), ("test", test_specs, 22)):
                d = Path(tmp) / f"{spec}_{name}"
                generate_pairs(specs, d, vendor=args.vendor, seed=seed if args.panel == "image" else 11,
                               progress=False, workers=args.workers, detector_pixels=args.detector_pixels,
                               effects=effects, panel=args.panel)
                dirs.append(d)
            sim_s = time.perf_counter() - t0
            baseline = fit_baseline(load_dataset(dirs[0]))
            rates = _rates(load_dataset(dirs[1]), baseline)
            results[spec] = {
                k: {"mean": round(float(np.mean(v)), 2), "min": round(float(np.min(v)), 2)}
                for k, v in rates.items()
            }
            results[spec]["simulation_s_per_pair"] = round(sim_s / (args.train + args.test) * args.workers, 2)
            print(spec, json.dumps(results[spec]), flush=True)
    print(json.dumps({"train": args.train, "test": args.test, "vendor": args.vendor, "panel": args.panel,
                      "mlc_fraction": args.mlc_fraction, "results": results}, indent=1))


if __name__ == "__main__":
    main()
