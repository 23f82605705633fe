"""``intrepid predict EPID.dcm... --out DIR``: portal dose (Gy) from EPID images with a trained model.

JSON (``--json``) keys: ``model``, ``model_members``, ``model_convention`` (``"CU/MU"`` or ``"legacy"``),
``out``, ``outputs`` (one object per input: ``source``, ``rtimage``, ``npz``, ``max_dose_gy``,
``central_dose_gy``, ``max_uncertainty_gy``, ``ood`` (bool), ``ood_reasons`` (list of str), ``input``
(vendor, pixel units, conversion, MU, SID, acquisition mode, signal level, field size), ``seconds``),
``load_seconds``, ``predict_seconds``, ``failed`` (list of ``{"source", "error"}``; empty without ``--ray``).
An input the model refuses stops the command before anything is written, with one line
``intrepid predict: error: <file>: <reason>`` and exit status 1.

With ``--ray [ADDRESS]`` every input is a Ray task (the model is loaded once per Ray worker and reused): an
input that fails is listed in ``failed`` and named on stderr (``intrepid predict: error: <file>: <reason>``)
without stopping the others, whose outputs are written; the exit status is then 1. ``load_seconds`` is the
workers' model loading summed.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from dataclasses import dataclass
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
    p.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="predict the inputs as Ray tasks (extra intrepid-rt[ray]), one per input, a failing input "
        "reported without stopping the others: without ADDRESS on a local Ray instance, 'auto' or HOST:PORT "
        "on a running cluster (inputs and --out visible to every node; Ray costs ~5 s to start, ~1 s a task)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress messages (shown on stderr at a terminal: model loading, images)",
    )
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
    if args.ray is not None:
        return _run_on_ray(args, model_dir)
    # progress lines at a terminal only: piped / captured stderr keeps exactly one line per error
    progress = not args.no_progress and sys.stderr.isatty()
    if progress:
        sys.stderr.write(f"loading the model {model_dir.name} ...\n")
    model = load_transit_model(model_dir, device=args.device)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    if progress:
        sys.stderr.write(f"predicting {len(args.epid)} image(s) ...\n")
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
        "failed": [],
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


@dataclass(frozen=True)
class _Options:
    """What every Ray task of one ``intrepid predict --ray`` call shares."""

    model_dir: Path
    out: Path
    npz: bool
    mu: float | None
    device: str


@functools.lru_cache(maxsize=2)
def _cached_model(model_dir: Path, device: str) -> tuple[Any, float]:
    """The model, loaded once per process (a Ray worker reuses it for its next inputs), and the seconds."""
    from intrepid.transit import load_transit_model

    t0 = time.perf_counter()
    model = load_transit_model(model_dir, device=device)
    return model, time.perf_counter() - t0


def _predict_task(path: Path, options: _Options) -> dict[str, Any]:
    """Body of one Ray task (module level, so that workers import it by name): one input; never raises for a
    bad input (the error's first line is returned instead)."""
    from intrepid.errors import IntrepidError
    from intrepid.transit import predict_files

    entry: dict[str, Any] = {"source": str(path), "output": None, "error": None, "load_seconds": 0.0}
    try:
        cached = _cached_model.cache_info().currsize > 0
        model, load_s = _cached_model(options.model_dir, options.device)
        entry["load_seconds"] = 0.0 if cached else load_s
        entry["members"], entry["legacy"] = model.members, model.legacy
        out = predict_files([path], options.out, model=model, npz=options.npz, mu=options.mu)[0]
        entry["output"] = out.to_dict()
    except (IntrepidError, OSError, ValueError) as exc:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else type(exc).__name__
        entry["error"] = text if str(path) in text else f"{path}: {text}"  # the line names the input
    return entry


def _run_on_ray(args: argparse.Namespace, model_dir: Path) -> int:
    """``intrepid predict --ray``: one task per input, failures listed without stopping the others."""
    from intrepid.cli._common import write_json
    from intrepid.errors import ParameterError
    from intrepid.learn import RayOptions, ray_map

    stems: dict[str, Path] = {}
    for f in args.epid:
        if f.stem in stems:
            raise ParameterError(
                f"two inputs share the file stem {f.stem!r} ({stems[f.stem]} and {f}); outputs are named "
                "after the stem"
            )
        stems[f.stem] = f
    options = _Options(model_dir, args.out, args.npz, args.mu, args.device)
    t1 = time.perf_counter()
    entries = ray_map(
        _predict_task, list(args.epid), RayOptions(address=None if args.ray == "local" else args.ray),
        shared=options, describe=lambda p: str(p), progress=False, desc="inputs (ray)",
    )  # fmt: skip
    total_s = time.perf_counter() - t1
    done = [e for e in entries if e["error"] is None]
    failed = [{"source": e["source"], "error": e["error"]} for e in entries if e["error"] is not None]
    members = next((e["members"] for e in entries if "members" in e), None)
    legacy = next((e["legacy"] for e in entries if "legacy" in e), None)
    doc = {
        "model": str(model_dir),
        "model_members": members,
        "model_convention": None if legacy is None else ("legacy" if legacy else "CU/MU"),
        "out": str(args.out),
        "outputs": [e["output"] for e in done],
        "load_seconds": sum(e["load_seconds"] for e in entries),
        "predict_seconds": total_s,
        "failed": failed,
    }
    if args.json:
        write_json(doc)
    else:
        for e in done:
            o = e["output"]
            sys.stdout.write(f"{o['source']} -> {o['rtimage']}  (central {o['central_dose_gy']:.4f} Gy)\n")
        sys.stdout.write(f"{len(done)} of {len(entries)} image(s) in {total_s:.2f} s on Ray\n")
    for f in failed:
        sys.stderr.write(f"intrepid predict: error: {f['error']}\n")  # names the input
    return 1 if failed else 0
