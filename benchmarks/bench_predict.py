"""Benchmark: EPID -> portal dose on 1024 x 1024 images, the shipped ensemble vs the physics baseline.

    python3 benchmarks/bench_predict.py [--images N] [--threads 2]

Times, on the same Elekta 1024 x 1024 EPID images (the paper composition's test split, simulated into
benchmarks/_data/ when missing): the network's prediction per image (model loading excluded; the goal is
<= 0.2 s on 2 CPU cores), batched and one at a time, the kernel baseline's prediction, and the whole
``predict_files`` path (read DICOM, predict, write RT Image). There is no external peer for this conversion
(pymedphys and the other anchors have no EPID-to-portal-dose model), so the classical kernel method is the
reference point. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks/_data/default_model_paper_seed0"


def _median_time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=8, help="test images (default 8)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="repeats per timing, median taken (default 3)")
    args = p.parse_args()
    logging.disable(logging.WARNING)

    import torch

    from intrepid.learn import load_dataset
    from intrepid.simulate import generate_pairs, paper_composition
    from intrepid.transit import load_default_baseline, load_default_model, predict_files

    torch.set_num_threads(args.threads)
    if not (DATA / "manifest.csv").exists():
        generate_pairs(paper_composition(seed=0), DATA, seed=0, workers=2, progress=False)
    ds = load_dataset(DATA, split="test")
    pairs = [ds[i] for i in range(min(args.images, len(ds)))]
    epids = [p.epid for p in pairs]
    t = time.perf_counter()
    model = load_default_model()
    load_s = time.perf_counter() - t
    baseline = load_default_baseline()
    model.predict(epids[0])  # warm-up (oneDNN primitives)
    n = len(epids)
    batch = _median_time(lambda: model.predict_volumes(epids), args.repeats) / n
    single = _median_time(lambda: [model.predict(e) for e in epids], args.repeats) / n
    base = _median_time(lambda: [baseline.predict(e) for e in epids], 1) / n
    with tempfile.TemporaryDirectory() as tmp:
        files = [r.epid_file for r in ds.records[:n]]
        full = _median_time(lambda: predict_files(files, tmp, model=model), 1) / n
    shape = epids[0].shape
    print(
        f"{n} EPID images {shape[0]} x {shape[1]}, torch threads {args.threads}, model: {model.members} "
        f"members, working grid {model.preprocess.working_shape}; "
        f"model loading {load_s:.2f} s (excluded)\n"
    )
    print("| method | s per image | images / s |")
    print("|---|---:|---:|")
    for name, s in (
        ("network, batch (predict_volumes)", batch),
        ("network, one at a time", single),
        ("network, read DICOM + predict + write RT Image (predict_files)", full),
        ("physics baseline (kernel model, FFT)", base),
    ):
        print(f"| {name} | {s:.3f} | {1 / s:.1f} |")
    print(
        f"\ngoal <= 0.2 s per 1024 x 1024 image: {'met' if single <= 0.2 else 'NOT met'} "
        f"({single:.3f} s one at a time)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
