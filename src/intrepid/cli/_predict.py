"""``intrepid predict EPID.dcm... --out DIR``: portal dose (Gy) from EPID images with a trained model."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``predict`` to the ``intrepid`` parser."""
    p = subparsers.add_parser(
        "predict",
        help="EPID image(s) -> portal dose (Gy) as DICOM RT Image with a trained U-Net ensemble",
        description=(
            "Convert EPID RT Image files to portal dose (dose to water at the detector plane, Gy) with a "
            "trained ensemble (default: the model shipped with intrepid). Writes DIR/<input stem>.dcm (RT "
            "Image, Rescale Type GY, the input's detector geometry: pixel spacing in mm at the detector, "
            "SID/SAD in mm) and with --npz DIR/<input stem>.npz. A batch reuses the loaded model."
        ),
    )
    p.add_argument("epid", nargs="+", type=Path, metavar="EPID.dcm", help="EPID RT Image file(s)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model folder (model.json + model.safetensors) or training run folder; default: the "
        "shipped default model",
    )
    p.add_argument("--npz", action="store_true", help="also write <stem>.npz (array in Gy + grid in mm)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``intrepid predict``."""
    from intrepid.cli._common import write_json
    from intrepid.transit import load_predictor, predict_files, resolve_model_path

    t0 = time.perf_counter()
    model_dir = resolve_model_path(args.model)
    model = load_predictor(model_dir, device=args.device)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    outputs = predict_files(args.epid, args.out, model=model, npz=args.npz)
    total_s = time.perf_counter() - t1
    doc = {
        "model": str(model_dir),
        "model_members": model.members,
        "out": str(args.out),
        "outputs": [o.to_dict() for o in outputs],
        "load_seconds": load_s,
        "predict_seconds": total_s,
    }
    if args.json:
        write_json(doc)
    else:
        for o in outputs:
            extra = f" + {o.npz.name}" if o.npz else ""
            sys.stdout.write(f"{o.source} -> {o.rtimage}{extra}  (max {o.max_dose_gy:.4f} Gy)\n")
        sys.stdout.write(
            f"{len(outputs)} image(s) in {total_s:.2f} s (model loaded in {load_s:.2f} s, "
            f"{model.members} member(s))\n"
        )
    return 0
