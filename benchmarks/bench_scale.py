"""Scale benchmark: every figure of the GPU / concurrency issue in one run, on whatever machine runs it.

Run as ``python3 benchmarks/bench_scale.py`` (CPU figures; ``--quick`` for a short run) or, on a GPU machine,
``python3 benchmarks/bench_scale.py --device cuda --out scale.json``. Prints a markdown table and, with
``--out``, writes the measurements as JSON. Sections:

- ``training``: N runs of the published 16-filter U-Net on synthetic 256² pairs (``--images`` per run),
  one at a time (:func:`intrepid.learn.train_model`) and stacked as one grouped network
  (:func:`intrepid.learn.train_stacked`); images per second and the time the published protocol
  (24 configurations × 10 repeats × 5 folds × 150 epochs on ~152 training images per run) would take at
  the measured throughput. The stacked run's losses are compared with the sequential ones.
- ``gamma``: :func:`intrepid.analysis.gamma` on the 3D cases of ``bench_gamma.py`` with the numba backend
  (all cores) and the torch backend on ``--device``, with the pass rates (they must agree).
- ``inference``: loading the shipped 2D model, and predicting a batch of 1024² EPID images on ``--device``.
- ``ray``: start-up of a local Ray instance and the overhead per (empty) task, when Ray is installed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _synthetic_arrays(n: int, size: int, seed: int) -> Any:
    """``n`` smooth field-like pairs on a ``size``² working grid (signal → dose with a blur and a gain)."""
    from scipy.ndimage import gaussian_filter

    from intrepid.geometry import Grid
    from intrepid.learn import WorkingArrays

    rng = np.random.default_rng(seed)
    epid = np.zeros((n, size, size), np.float32)
    dose = np.zeros((n, size, size), np.float32)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    for k in range(n):
        a, b = rng.uniform(0.05, 0.4, 2)
        field = ((np.abs(xx) < a) & (np.abs(yy) < b)).astype(np.float64)
        sig = gaussian_filter(field, 1.5) * rng.uniform(0.5, 1.5)
        epid[k] = sig
        dose[k] = gaussian_filter(sig, 3.0) * 0.9 + 0.05 * gaussian_filter(sig, 12.0)
    grid = Grid((size, size), origin_mm=(-200.0, -200.0, 0.0), spacing_mm=(400.0 / size, 400.0 / size, 1.0))
    return WorkingArrays(
        epid=epid,
        dose_gy=dose,
        grids=tuple(grid for _ in range(n)),
        detector_spacing_mm=(400.0 / size, 400.0 / size),
        detector_shape=(size, size),
    )


def bench_training(device: str, runs: int, images: int, epochs: int, size: int) -> dict[str, Any]:
    import torch

    from intrepid.learn import PreprocessConfig, TrainConfig, UNetConfig, train_model, train_stacked
    from intrepid.learn._stacked import StackedJob

    unet = UNetConfig(initial_filters=16)
    pre = PreprocessConfig(working_shape=(size, size))
    arrays = _synthetic_arrays(images + 8, size, 0)
    jobs = [
        StackedJob(
            arrays.take(range(0, images)),
            arrays.take(range(images, images + 8)),
            TrainConfig(epochs=epochs, batch_size=8, seed=k, learning_rate=1e-3, device=device),
        )
        for k in range(runs)
    ]
    # warm-up of both paths (first-call costs of PyTorch and of the CUDA context are not throughput)
    warm = [StackedJob(arrays.take(range(4)), arrays.take([4, 5]), TrainConfig(epochs=1, batch_size=2,
                                                                               device=device))] * 2
    train_model(warm[0].train, warm[0].val, warm[0].config, unet=unet, preprocess=pre, progress=False)
    train_stacked(warm, unet=unet, preprocess=pre, device=device, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    seq = [train_model(j.train, j.val, j.config, unet=unet, preprocess=pre, progress=False) for j in jobs]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t_seq = time.perf_counter() - t
    t = time.perf_counter()
    stk = train_stacked(jobs, unet=unet, preprocess=pre, device=device, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t_stk = time.perf_counter() - t
    diff = max(
        float(np.max(np.abs(np.array(a.val_losses) - np.array(b.val_losses)) / np.array(a.val_losses)))
        for a, b in zip(seq, stk, strict=True)
    )
    work = runs * images * epochs
    protocol_images = 24 * 10 * 5 * 150 * 152
    return {
        "runs": runs,
        "images_per_run": images,
        "epochs": epochs,
        "working_size": size,
        "sequential_s": t_seq,
        "stacked_s": t_stk,
        "sequential_images_per_s": work / t_seq,
        "stacked_images_per_s": work / t_stk,
        "speed_up": t_seq / t_stk,
        "max_relative_val_loss_difference": diff,
        "protocol_hours_sequential": protocol_images / (work / t_seq) / 3600,
        "protocol_hours_stacked": protocol_images / (work / t_stk) / 3600,
    }


def bench_gamma(device: str, quick: bool) -> list[dict[str, Any]]:
    from bench_gamma import case_3d
    from intrepid.analysis import gamma

    cases = [case_3d(2.0, (79, 145, 268), "3d-2mm")]
    if not quick:
        cases.append(case_3d(1.0, (80, 110, 115), "3d-1mm"))
    kwargs = dict(dd_percent=3.0, dta_mm=2.0, cutoff_percent=10.0, max_gamma=2.0)
    out = []
    for case in cases:
        row: dict[str, Any] = {"case": case.name}
        for backend in ("numba", "torch"):
            extra = {"device": device} if backend == "torch" else {}
            gamma(case.reference, case.evaluated, backend=backend, **extra, **kwargs)  # warm-up
            times = []
            for _ in range(3):
                t = time.perf_counter()
                res = gamma(case.reference, case.evaluated, backend=backend, **extra, **kwargs)
                times.append(time.perf_counter() - t)
            row[f"{backend}_s"] = min(times)
            row[f"{backend}_pass_rate_percent"] = res.pass_rate_percent
        row["torch_over_numba"] = row["torch_s"] / row["numba_s"]
        out.append(row)
    return out


def bench_inference(device: str, images: int) -> dict[str, Any]:
    from intrepid.geometry import Grid, Quantity, Volume
    from intrepid.transit import load_default_model

    t = time.perf_counter()
    model = load_default_model(device=device)
    t_load = time.perf_counter() - t
    rng = np.random.default_rng(1)
    grid = Grid((1024, 1024), origin_mm=(-207.0, -207.0, 0.0), spacing_mm=(0.405, 0.405, 1.0))
    epids = [
        Volume(rng.uniform(0.2, 1.0, (1024, 1024)).astype(np.float32) * 1000, grid, Quantity.EPID_SIGNAL, "")
        for _ in range(images)
    ]
    model.predict_volumes(epids[:1])  # warm-up
    t = time.perf_counter()
    model.predict_volumes(epids)
    t_pred = time.perf_counter() - t
    return {"load_s": t_load, "images": images, "predict_s": t_pred, "per_image_s": t_pred / images}


def bench_ray(tasks: int) -> dict[str, Any] | None:
    try:
        import ray
    except ImportError:
        return None
    t = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    t_start = time.perf_counter() - t

    @ray.remote(num_cpus=1)
    def nothing() -> int:
        return 1

    ray.get(nothing.remote())
    t = time.perf_counter()
    ray.get([nothing.remote() for _ in range(tasks)])
    t_tasks = time.perf_counter() - t
    ray.shutdown()
    return {"start_s": t_start, "tasks": tasks, "per_task_s": t_tasks / tasks}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a minute on 2 CPU cores)")
    ap.add_argument("--runs", type=int, default=None, help="runs trained at once (default 8, GPU 32)")
    ap.add_argument("--out", type=Path, help="write the measurements as JSON")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip")
    args = ap.parse_args()
    gpu = args.device.startswith("cuda")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    runs = args.runs or (32 if gpu else (4 if args.quick else 8))
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "device": args.device,
        "load_average": os.getloadavg()[0],
    }
    if gpu:
        import torch

        results["gpu"] = torch.cuda.get_device_name(0)
    if "training" not in skip:
        size = 64 if args.quick else 256
        images = 16 if args.quick else (152 if gpu else 32)
        epochs = 1 if args.quick else (3 if gpu else 1)
        results["training"] = bench_training(args.device, runs, images, epochs, size)
        print("training:", json.dumps(results["training"], indent=1))
    if "gamma" not in skip:
        results["gamma"] = bench_gamma(args.device, args.quick)
        print("gamma:", json.dumps(results["gamma"], indent=1))
    if "inference" not in skip:
        results["inference"] = bench_inference(args.device, 4 if args.quick else 23)
        print("inference:", json.dumps(results["inference"], indent=1))
    if "ray" not in skip:
        results["ray"] = bench_ray(8 if args.quick else 32)
        print("ray:", json.dumps(results["ray"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tr = results.get("training")
    if tr:
        print(
            f"\n| training {tr['runs']} runs × {tr['images_per_run']} images × {tr['epochs']} epochs at "
            f"{tr['working_size']}² | one at a time {tr['sequential_s']:.1f} s | stacked "
            f"{tr['stacked_s']:.1f} s "
            f"| {tr['speed_up']:.2f}× | protocol ≈ {tr['protocol_hours_stacked']:.1f} h stacked vs "
            f"{tr['protocol_hours_sequential']:.1f} h |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
