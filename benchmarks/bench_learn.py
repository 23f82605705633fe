"""Benchmark: ensemble inference of the 2D U-Net (``intrepid.learn.Ensemble``) on 1024 x 1024 EPID images.

Target (issue 5): <= 0.2 s per 1024 x 1024 image on 2 CPU cores for the whole ensemble, model loading
excluded, measured with an 8-filter ensemble of 5 members at working size 256. The members have random
weights (timing does not depend on the values). Also timed, in the same run, on the same inputs: the same
networks run the plain way (no batch-norm folding, contiguous layout, one image at a time), as the baseline
that the predictor's design is compared with; and one training epoch on 16 pairs. No peer package predicts
portal dose from EPID images, so there is no peer column.

    python3 benchmarks/bench_learn.py [--members 5] [--images 8] [--threads 2] [--working-size 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--working-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    import torch

    load = os.getloadavg()
    torch.set_num_threads(args.threads)
    from intrepid.learn import Ensemble, PreprocessConfig, UNetConfig, build_unet

    unet = UNetConfig(initial_filters=8)
    pre = PreprocessConfig(
        working_shape=(args.working_size, args.working_size),
        input_offset=500.0,
        input_scale=30000.0,
        target_scale=0.5,
        fitted=True,
    )
    states = []
    for m in range(args.members):
        torch.manual_seed(m)
        net = build_unet(unet)
        states.append({k: v.numpy().copy() for k, v in net.state_dict().items()})
    t0 = time.perf_counter()
    ens = Ensemble(unet, pre, states, device="cpu", batch_size=args.batch_size)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    images = (rng.random((args.images, 1024, 1024)) * 30000 + 500).astype(np.float32)
    ens.predict_array(images[:1])  # warm-up (oneDNN primitive creation)

    times, cpu = [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        ens.predict_array(images)
        times.append((time.perf_counter() - t) / args.images)
        cpu.append((time.process_time() - c) / args.images)
    ours = min(times)
    ours_cpu = min(cpu)
    single = []
    for i in range(min(args.images, 4)):
        t = time.perf_counter()
        ens.predict_array(images[i])
        single.append(time.perf_counter() - t)

    # baseline: plain modules, no folding, contiguous layout, one image at a time
    plain = []
    for s in states:
        net = build_unet(unet)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in s.items()})
        plain.append(net.eval())

    def naive(img: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(img)[None, None]
            x = torch.nn.functional.interpolate(x, size=pre.working_shape, mode="area")
            x = (x - pre.input_offset) / pre.input_scale
            y = sum(n(x) for n in plain) / len(plain) * pre.target_scale
            y = torch.nn.functional.interpolate(y, size=img.shape, mode="bilinear", align_corners=False)
            return y[0, 0].numpy()

    naive(images[0])
    base = []
    for i in range(min(args.images, 4)):
        t = time.perf_counter()
        naive(images[i])
        base.append(time.perf_counter() - t)
    base_s = statistics.median(base)

    # one training epoch (16 pairs, batch 8) at the same working size
    from intrepid.learn import TrainConfig, WorkingArrays, train_model

    n_train = 16
    x = (rng.random((n_train, *pre.working_shape)) * 30000 + 500).astype(np.float32)
    arrays = WorkingArrays(x, (x - 500) / 60000, None, None)
    t = time.perf_counter()
    train_model(
        arrays,
        (),
        TrainConfig(epochs=1, batch_size=8, device="cpu"),
        unet=unet,
        preprocess=pre,
        progress=False,
    )
    epoch_s = time.perf_counter() - t

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
        f"torch threads {torch.get_num_threads()}, torch {torch.__version__}"
    )
    print()
    print(f"load average before the run: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min)")
    print()
    print("| what | s per 1024 x 1024 image | ratio to target 0.2 s |")
    print("|---|---:|---:|")
    print(
        f"| intrepid Ensemble, {args.members} members, batches of {args.batch_size} (min of {args.repeats}) "
        f"| {ours:.3f} | {ours / 0.2:.2f} |"
    )
    print(f"| same, CPU time of the process (all threads) | {ours_cpu:.3f} | {ours_cpu / 0.2:.2f} |")
    print(
        f"| intrepid Ensemble, one image per call (median) | {statistics.median(single):.3f} | "
        f"{statistics.median(single) / 0.2:.2f} |"
    )
    print(f"| plain PyTorch modules, one image per call (median) | {base_s:.3f} | {base_s / 0.2:.2f} |")
    print()
    print(
        f"model construction (5 members, not counted): {load_s:.2f} s; one training epoch of {n_train} pairs "
        f"at {args.working_size}^2, batch 8: {epoch_s:.2f} s"
    )


if __name__ == "__main__":
    main()
