"""Fit the InTrEPID-3D physics baseline and train the 3D network on simulated cases; write the shipped models.

    python benchmarks/invivo/make_cases.py train /tmp/ivdata/train --seeds 2
    python benchmarks/invivo/train_invivo.py /tmp/ivdata/train --out src/intrepid/invivo/models \
        [--epochs 12 --repeats 1 --folds 3 --filters 8 --depth 3]

Reduced CPU setting (the shipped model): see docs/invivo.md for the exact command (1 × 2-fold CV, a few
epochs of one 32³ patch per beam, 3-level U-Net with 8 initial filters). Full setting for a GPU
(documented, not run here): ``--repeats 10 --folds 5 --epochs 150 --filters 16 --depth 4 --patch 64
--patches 4``.

Writes ``OUT/baseline.json`` (fitted k, σ, λ) and ``OUT/invivo3d/`` (model.safetensors + model.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from intrepid.geometry import Grid, Quantity, Volume
from intrepid.invivo import InvivoBaseline, PortalImage, apply_baseline, beam_inputs, fit_baseline
from intrepid.invivo._network import beam_features
from intrepid.learn._unet3d import UNet3DConfig
from intrepid.learn._volume_ensemble import VolumeSample, VolumeTrainConfig, train_volume_ensemble


def load_case(path: Path) -> dict:  # type: ignore[type-arg]
    """CT, frames and delivered beam doses of a training ``.npz``."""
    d = np.load(path)
    g = Grid(d["ct"].shape, tuple(d["origin_mm"]), tuple(d["spacing_mm"]))
    ct = Volume(d["ct"], g, Quantity.CT_NUMBER, "HU", "1.2.826.0.1")
    iso = tuple(float(v) for v in d["isocenter_mm"])
    frames = [
        PortalImage(
            d["portal_dose"][i].astype(np.float64),
            (float(d["pixel_mm"][i]),) * 2,
            float(d["gantry_deg"][i]),
            float(d["sid_mm"][i]),
            float(d["sad_mm"][i]),
            iso,
            int(d["beam_number"][i]),
        )
        for i in range(len(d["beam_number"]))
    ]
    doses = {int(n): d["delivered_beam_doses"][i] for i, n in enumerate(d["delivered_beam_numbers"])}
    return {
        "name": path.stem,
        "ct": ct,
        "frames": frames,
        "doses": doses,
        "body": d["body"],
        "info": json.loads(str(d["info"])),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--filters", type=int, default=8)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--patches", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-val", type=int, default=None, help="validate on at most N held-out beams")
    ap.add_argument("--baseline", type=Path, default=None, help="use this baseline.json instead of fitting")
    ap.add_argument("--baseline-only", action="store_true")
    ap.add_argument("--broad-scatter", action="store_true", help="fit the two-Gaussian baseline")
    ap.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    cases = [load_case(p) for p in sorted(args.data.glob("*.npz"))]
    print(f"{len(cases)} cases", flush=True)
    unit = InvivoBaseline(1.0, 0.0, 0.0, "unit")
    fitting = []
    per_case = []
    for c in cases:
        inputs = beam_inputs(c["frames"], c["ct"], baseline=unit)
        per_case.append(inputs)
        counts: dict[int, int] = {}
        for b in inputs:
            counts[b.image.beam_number] = counts.get(b.image.beam_number, 0) + 1
        for b in inputs:
            n = b.image.beam_number
            if counts[n] == 1:  # static / step-and-shoot beams: one image = one beam dose
                fitting.append(
                    (b.fod, b.entrance_mm, c["ct"].with_array(c["doses"][n], quantity=Quantity.DOSE))
                )
    print(
        f"back-projected in {time.perf_counter() - t0:.0f} s; fitting the baseline on {len(fitting)} beams",
        flush=True,
    )
    if args.baseline is not None:
        from intrepid.invivo import load_baseline

        bl = load_baseline(args.baseline)
    else:
        bl = fit_baseline(
            fitting,
            training=f"{len(cases)} cases of {args.data.name}, {len(fitting)} static beams",
            broad_scatter=args.broad_scatter,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    bl.save(args.out / "baseline.json")
    print(f"baseline: {bl}", flush=True)
    if args.baseline_only:
        return 0
    samples = []
    for c, inputs in zip(cases, per_case, strict=True):
        refit = [
            type(b)(b.image, b.fod, b.entrance_mm, b.red, apply_baseline(b.fod, b.entrance_mm, bl))
            for b in inputs
        ]
        for n, (x, base, s) in beam_features(refit).items():
            target = (c["doses"][n] / s).astype(np.float32)
            weight = (c["body"] & ((target > 0.05) | (base > 0.05))).astype(np.float32)
            samples.append(VolumeSample(x, base, target, weight, c["name"]))
    arch = UNet3DConfig(depth=args.depth, initial_filters=args.filters, in_channels=4)
    cfg = VolumeTrainConfig(
        repeats=args.repeats,
        folds=args.folds,
        epochs=args.epochs,
        patch=args.patch,
        patches_per_sample=args.patches,
        seed=args.seed,
        max_val_samples=args.max_val,
        lr_schedule=args.lr_schedule,
    )
    print(f"training on {len(samples)} beam samples", flush=True)
    ens = train_volume_ensemble(
        samples,
        arch,
        cfg,
        preprocessing={
            "channels": [
                "baseline_over_scale",
                "fod_over_scale",
                "relative_electron_density",
                "entrance_depth_over_200mm",
            ],
            "scale": "99.9th percentile of the beam baseline",
            "baseline": {k: v for k, v in bl.__dict__.items() if k != "training"},
            "command": " ".join(sys.argv),
        },
    )
    ens.save(args.out / "invivo3d")
    for r in ens.runs:
        print(
            f"fold {r['fold']}: best epoch {r['best_epoch']}, val {r['val_loss']:.5f} "
            f"(untrained {r['val_loss_untrained']:.5f})",
            flush=True,
        )
    print(f"done in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
