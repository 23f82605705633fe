"""``intrepid predict EPID.dcm... --out DIR``: portal dose (Gy) from EPID images with a trained model.

JSON (``--json``) keys: ``model``, ``model_members``, ``model_convention`` (``"CU/MU"`` or ``"legacy"``),
``out``, ``outputs`` (one object per input: ``source``, ``rtimage``, ``npz``, ``max_dose_gy``,
``central_dose_gy``, ``max_uncertainty_gy``, ``ood`` (bool), ``ood_reasons`` (list of str), ``input``
(vendor, pixel units, conversion, MU, SID, acquisition mode, signal level, field size), ``seconds``),
``load_seconds``, ``predict_seconds``. An input the model refuses stops the command before anything is
written, with one line ``intrepid predict: error: <file>: <reason>`` and exit status 1.
"""

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
    p.add_argument(
        "--npz",
        action="store_true",
        help="also write <stem>.npz (array in Gy + grid in mm, and uncertainty_gy: the ensemble spread)",
    )
    p.add_argument(
        "--mu", type=float, default=None, help="monitor units of every input (default: each file's meterset)"
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``intrepid predict``."""
    from intrepid.cli._common import write_json
    from intrepid.errors import ParameterError
    from intrepid.transit import load_transit_model, predict_files, resolve_model_path

    if args.mu is not None and not (args.mu > 0):
        raise ParameterError(f"--mu must be > 0, got {args.mu}")
    t0 = time.perf_counter()
    model_dir = resolve_model_path(args.model)
    model = load_transit_model(model_dir, device=args.device)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    outputs = predict_files(args.epid, args.out, model=model, npz=args.npz, mu=args.mu)
    total_s = time.perf_counter() - t1
    doc = {
        "model": str(model_dir),
        "model_members": model.members,
        "model_convention": "legacy" if model.legacy else "CU/MU",
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
            unc = "" if o.max_uncertainty_gy is None else f", spread up to {o.max_uncertainty_gy:.4f} Gy"
            sys.stdout.write(
                f"{o.source} -> {o.rtimage}{extra}  (central {o.central_dose_gy:.4f} Gy, max "
                f"{o.max_dose_gy:.4f} Gy{unc})\n"
            )
            for reason in o.ood_reasons:
                sys.stdout.write(f"  out of distribution: {reason}\n")
        sys.stdout.write(
            f"{len(outputs)} image(s) in {total_s:.2f} s (model loaded in {load_s:.2f} s, "
            f"{model.members} member(s))\n"
        )
    return 0
