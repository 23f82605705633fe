"""GPU figures of issue 12 in one run: gamma (numba on all cores vs cuda vs torch), batched 2D gamma, stacked
training, batched 2D / 3D inference and model loading, as a Markdown table and JSON.

On a GPU machine (``pip install -e '.[ml,cuda]'``; about 10 minutes on one H200)::

    python3 benchmarks/bench_gpu.py --out gpu.json --markdown gpu.md

On the CPU, ``--dry-run`` runs every section at toy sizes in seconds (the smoke test does this, with numba's
CUDA simulator standing in for the GPU: its timings mean nothing, its pass-rate equality does). Sections:

- ``gamma``: the ``case_2d`` EPID case of ``bench_gamma.py`` (1024², 0.4 mm) and the 3D cases (268 × 145 × 79
  at 2 mm; 115 × 110 × 80 at 1 mm, 1 M points), 3 %/2 mm global, 10 % cut-off: seconds per backend (best of
  3 after a warm-up; numba on every core of the machine, ``NUMBA_NUM_THREADS``), pass rates and whether they
  are equal, and the speed-up of cuda over numba (the issue asks for ≥ 10 ×).
- ``gamma_batch``: ``--batch`` 1024² EPID images (the case with per-image output and noise) — numba one
  after the other vs one :func:`intrepid.analysis.gamma_batch` CUDA launch.
- ``training``: ``benchmarks/bench_scale.py``'s stacked vs one-at-a-time training of the published 16-filter
  U-Net (images per second, protocol hours at that rate).
- ``inference_2d``: loading the shipped 2D model, and predicting ``--images`` 1024² EPID images as one batch.
- ``inference_3d``: loading the shipped 3D in-vivo model, and refining ``--volumes`` dose volumes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

CRITERIA = {"dd_percent": 3.0, "dta_mm": 2.0, "cutoff_percent": 10.0, "max_gamma": 2.0}


def _best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls after one warm-up call (compilation, CUDA context), and the
    last result."""
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _crop(volume: Any, n: int) -> Any:
    """The central ``n``-voxel box of a 2D or 3D volume, on its own grid."""
    from intrepid.geometry import Grid, Volume

    a = volume.array
    starts = [max(0, (s - n) // 2) for s in a.shape]
    box = tuple(slice(s, s + min(n, size)) for s, size in zip(starts, a.shape, strict=True))
    sub = a[box]
    g = volume.grid
    shift = starts[::-1] + [0] * (3 - a.ndim)
    origin = tuple(float(o + s * h) for o, s, h in zip(g.origin_mm, shift, g.spacing_mm, strict=True))
    return Volume(np.ascontiguousarray(sub), Grid(sub.shape, origin_mm=origin, spacing_mm=g.spacing_mm))


def _gamma_backends(wanted: set[str]) -> list[str]:
    """The gamma back ends among ``wanted`` that this machine can run (numba always)."""
    from intrepid.analysis._gamma_cuda import cuda_available

    backends = ["numba"]
    if "cuda" in wanted and cuda_available():
        backends.append("cuda")
    try:
        import torch  # noqa: F401

        if "torch" in wanted:
            backends.append("torch")
    except ImportError:
        pass
    return backends


def bench_gamma(device: str, dry: bool, repeats: int, wanted: set[str]) -> list[dict[str, Any]]:
    from bench_gamma import case_2d, case_3d
    from intrepid.analysis import gamma

    epid = case_2d(np.random.default_rng(0))
    if dry:
        toy = case_3d(2.0, (6, 7, 8), "3d-2mm-toy")
        cases = [
            ("2d-epid cropped to 16²", _crop(epid.reference, 16), _crop(epid.evaluated, 16)),
            ("3d 2 mm, toy 8 × 7 × 6", toy.reference, toy.evaluated),
        ]
    else:
        c2, c1 = case_3d(2.0, (79, 145, 268), "3d-2mm"), case_3d(1.0, (80, 110, 115), "3d-1mm")
        cases = [
            ("2d-epid 1024², 0.4 mm", epid.reference, epid.evaluated),
            ("3d 268 × 145 × 79, 2 mm", c2.reference, c2.evaluated),
            ("3d 115 × 110 × 80, 1 mm (1 M points)", c1.reference, c1.evaluated),
        ]
    rows = []
    for name, ref, ev in cases:
        row: dict[str, Any] = {"case": name, "points": int(ref.array.size)}
        for backend in _gamma_backends(wanted):
            extra = {"device": device} if backend == "torch" else {}
            seconds, res = _best_of(
                lambda r=ref, v=ev, b=backend, e=extra: gamma(r, v, backend=b, **e, **CRITERIA), repeats
            )
            row[f"{backend}_s"] = seconds
            row[f"{backend}_pass_rate_percent"] = res.pass_rate_percent
            row[f"{backend}_passed"] = res.passed
        for backend in ("cuda", "torch"):
            if f"{backend}_s" in row:
                row[f"{backend}_same_decisions"] = bool(
                    np.array_equal(row["numba_passed"], row[f"{backend}_passed"])
                )
                row[f"{backend}_speed_up_over_numba"] = row["numba_s"] / row[f"{backend}_s"]
        for key in [k for k in row if k.endswith("_passed")]:
            del row[key]
        rows.append(row)
        print("gamma:", json.dumps(row))
    return rows


def bench_gamma_batch(batch: int, dry: bool, repeats: int) -> dict[str, Any]:
    from bench_gamma import case_2d
    from intrepid.analysis import gamma, gamma_batch
    from intrepid.analysis._gamma_cuda import cuda_available

    refs, evs = [], []
    for b in range(batch):
        case = case_2d(np.random.default_rng(0 if dry else b))  # dry: one toy case, outputs differ
        ref, ev = (
            (_crop(case.reference, 16), _crop(case.evaluated, 16))
            if dry
            else (case.reference, case.evaluated)
        )
        refs.append(ref)
        evs.append(ev.with_array(ev.array * (1.0 + 0.005 * b)))  # a different output error per image
    out: dict[str, Any] = {"images": batch, "shape": list(refs[0].shape)}
    t_numba, seq = _best_of(
        lambda: [gamma(r, e, **CRITERIA) for r, e in zip(refs, evs, strict=True)], repeats
    )
    out["numba_loop_s"] = t_numba
    out["pass_rates_percent"] = [r.pass_rate_percent for r in seq]
    if cuda_available():
        t_cuda, bat = _best_of(lambda: gamma_batch(refs, evs, backend="cuda", **CRITERIA), repeats)
        out["cuda_batch_s"] = t_cuda
        out["cuda_speed_up_over_numba"] = t_numba / t_cuda
        out["cuda_same_decisions"] = all(
            np.array_equal(a.passed, b.passed) for a, b in zip(seq, bat, strict=True)
        )
    print("gamma_batch:", json.dumps(out))
    return out


def bench_inference_2d(device: str, images: int, size: int) -> dict[str, Any]:
    from intrepid.geometry import Grid, Quantity, Volume
    from intrepid.transit import load_default_model

    t = time.perf_counter()
    load_default_model(device=device)  # first load in this process (imports, CUDA context, file cache)
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    model = load_default_model(device=device)
    t_load = time.perf_counter() - t
    h = 0.405 * 1024 / size
    grid = Grid(
        (size, size), origin_mm=(-(size - 1) * h / 2, -(size - 1) * h / 2, 0.0), spacing_mm=(h, h, 1.0)
    )
    rng = np.random.default_rng(1)
    epids = [
        Volume(rng.uniform(0.2, 1.0, (size, size)).astype(np.float32) * 1000, grid, Quantity.EPID_SIGNAL, "")
        for _ in range(images)
    ]
    t_pred, _ = _best_of(lambda: model.predict_volumes(epids), 1)
    out = {
        "device": device,
        "first_load_s": t_first,
        "load_s": t_load,
        "images": images,
        "size": size,
        "predict_s": t_pred,
        "per_image_s": t_pred / images,
    }
    print("inference_2d:", json.dumps(out))
    return out


def bench_inference_3d(device: str, volumes: int, shape: tuple[int, int, int]) -> dict[str, Any] | None:
    from intrepid.invivo._network import default_invivo_model_path, load_invivo_model

    if default_invivo_model_path() is None:
        return None
    t = time.perf_counter()
    load_invivo_model()
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    net = load_invivo_model()
    t_load = time.perf_counter() - t
    rng = np.random.default_rng(2)
    xs = [rng.uniform(0, 1, (4, *shape)).astype(np.float32) for _ in range(volumes)]
    items = [(x, x[0]) for x in xs]
    net.ensemble.predict_batch(items[:1], device=device)  # move the members, warm up
    t_pred, _ = _best_of(lambda: net.ensemble.predict_batch(items, device=device), 1)
    out = {
        "device": device,
        "first_load_s": t_first,
        "load_s": t_load,
        "volumes": volumes,
        "shape": list(shape),
        "predict_s": t_pred,
        "per_volume_s": t_pred / volumes,
    }
    print("inference_3d:", json.dumps(out))
    return out


def markdown(results: dict[str, Any]) -> str:
    """The measurements as Markdown tables."""
    lines = [
        f"GPU benchmark, {results['date']}: {results['machine']}; device {results['device']}"
        + (f" ({results['gpu']})" if results.get("gpu") else "")
        + (" — DRY RUN (toy sizes; timings are not figures)" if results["dry_run"] else ""),
        "",
    ]
    if results.get("gamma"):
        lines += [
            "| gamma 3%/2 mm | numba (all cores) | cuda | torch | same pass/fail | cuda / numba speed-up |",
            "|---|---|---|---|---|---|",
        ]
        for r in results["gamma"]:
            checks = [r[f"{b}_same_decisions"] for b in ("cuda", "torch") if f"{b}_same_decisions" in r]
            cells = [f"{r[f'{b}_s']:.3f} s" if f"{b}_s" in r else "—" for b in ("numba", "cuda", "torch")]
            speed = f"{r['cuda_speed_up_over_numba']:.1f} ×" if "cuda_speed_up_over_numba" in r else "—"
            same = ("yes" if all(checks) else "NO") if checks else "—"
            lines.append(f"| {r['case']} | {' | '.join(cells)} | {same} | {speed} |")
        lines.append("")
    b = results.get("gamma_batch")
    if b:
        cuda = (
            f"{b['cuda_batch_s']:.3f} s ({b['cuda_speed_up_over_numba']:.1f} ×)"
            if "cuda_batch_s" in b
            else "—"
        )
        same = {True: "yes", False: "NO"}.get(b.get("cuda_same_decisions"), "—")  # type: ignore[call-overload]
        lines += [
            "| batched 2D gamma | numba, one after the other | cuda, one launch | same pass/fail |",
            "|---|---|---|---|",
            f"| {b['images']} × {b['shape'][0]}² | {b['numba_loop_s']:.3f} s | {cuda} | {same} |",
            "",
        ]
    t = results.get("training")
    if t:
        lines += [
            "| training (16-filter U-Net) | one at a time | stacked | speed-up | protocol at that rate |",
            "|---|---|---|---|---|",
            f"| {t['runs']} runs × {t['images_per_run']} images × {t['epochs']} epochs, {t['working_size']}² "
            f"| {t['sequential_images_per_s']:.1f} img/s | {t['stacked_images_per_s']:.1f} img/s | "
            f"{t['speed_up']:.2f} × | {t['protocol_hours_stacked']:.1f} h (sequential "
            f"{t['protocol_hours_sequential']:.1f} h) |",
            "",
        ]
    i2, i3 = results.get("inference_2d"), results.get("inference_3d")
    if i2 or i3:
        lines += [
            "| inference | device | model load (first / again) | batch | per item |",
            "|---|---|---|---|---|",
        ]
        if i2:
            lines.append(
                f"| 2D, {i2['images']} × {i2['size']}² | {i2['device']} | "
                f"{i2['first_load_s']:.2f} / {i2['load_s']:.2f} s | "
                f"{i2['predict_s']:.2f} s | {i2['per_image_s']:.3f} s |"
            )
        if i3:
            lines.append(
                f"| 3D, {i3['volumes']} × {'×'.join(map(str, i3['shape']))} | {i3['device']} | "
                f"{i3['first_load_s']:.2f} / {i3['load_s']:.2f} s | {i3['predict_s']:.2f} s | "
                f"{i3['per_volume_s']:.3f} s |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="torch device: cuda (default when present) or cpu")
    ap.add_argument("--dry-run", action="store_true", help="toy sizes on any machine (seconds): a smoke test")
    ap.add_argument("--batch", type=int, default=32, help="images of the batched 2D gamma (default 32)")
    ap.add_argument("--images", type=int, default=23, help="EPID images of the 2D inference (default 23)")
    ap.add_argument("--volumes", type=int, default=8, help="volumes of the 3D inference (default 8)")
    ap.add_argument("--runs", type=int, default=32, help="runs trained at once (default 32)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip")
    ap.add_argument(
        "--backends", default="numba,cuda,torch", help="gamma back ends to time (default numba,cuda,torch)"
    )
    ap.add_argument("--out", type=Path, help="write the measurements as JSON")
    ap.add_argument("--markdown", type=Path, help="write the tables as Markdown")
    args = ap.parse_args(argv)
    device = args.device
    if device is None:
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            device = "cpu"
    dry = args.dry_run
    repeats = 1 if dry else 3
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "device": device,
        "dry_run": dry,
        "command": " ".join(
            ["python3", "benchmarks/bench_gpu.py", *(argv if argv is not None else sys.argv[1:])]
        ),
    }
    import numba

    results["numba_threads"] = numba.get_num_threads()
    if device.startswith("cuda"):
        import torch

        results["gpu"] = torch.cuda.get_device_name(0)
    if "gamma" not in skip:
        results["gamma"] = bench_gamma(device, dry, repeats, set(args.backends.split(",")))
    if "gamma_batch" not in skip:
        results["gamma_batch"] = bench_gamma_batch(2 if dry else args.batch, dry, repeats)
    if "training" not in skip:
        from bench_scale import bench_training

        runs, images, epochs, size = (2, 4, 1, 32) if dry else (args.runs, 152, 3, 256)
        results["training"] = bench_training(device, runs, images, epochs, size)
        print("training:", json.dumps(results["training"]))
    if "inference_2d" not in skip:
        results["inference_2d"] = bench_inference_2d(device, 2 if dry else args.images, 64 if dry else 1024)
    if "inference_3d" not in skip:
        results["inference_3d"] = bench_inference_3d(
            device,
            1 if dry else args.volumes, (16, 16, 16) if dry else (64, 96, 128)
        )
    table = markdown(results)
    print()
    print(table)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
