"""Benchmark: the cost of the input checks of issue 15 (``intrepid.dicom._validate``) on real reads.

Times each reader with the dataset check and with it switched off (same files, same run): the Eclipse
structure set and plan of ``../shared/data/dicompyler-example`` and a synthetic 160-slice 512 x 512 CT
series (``benchmarks/_data/ct_read``, made by ``bench_ct_read.py``). Prints a markdown table.

    INTREPID_EXTERNAL_DATA=../shared/data python3 benchmarks/bench_validation.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import intrepid.dicom._common as common
from intrepid.dicom import read_ct_series, read_rtplan, read_rtstruct


def _best(fn: Callable[[Any], Any], arg: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases: list[tuple[str, Callable[[Any], Any], Path]] = []
    external = os.environ.get("INTREPID_EXTERNAL_DATA")
    if external:
        d = Path(external) / "dicompyler-example"
        cases += [("RTSTRUCT, 10 ROIs, 1.3 MB", read_rtstruct, d / "rtss.dcm"),
                  ("RTPLAN, 4 beams, 384 control points", read_rtplan, d / "rtplan.dcm")]
    ct = Path(__file__).resolve().parent / "_data" / "ct_read"
    if ct.is_dir():
        cases.append(("CT series, 160 x 512 x 512", read_ct_series, ct))
    print("| read | with checks (s) | checks off (s) | overhead |\n|---|---:|---:|---:|")
    check = common.check_dataset
    for name, fn, path in cases:
        fn(path)  # warm caches
        with_checks = _best(fn, path, args.repeats)
        common.check_dataset = lambda ds, p: None  # type: ignore[assignment]
        try:
            without = _best(fn, path, args.repeats)
        finally:
            common.check_dataset = check
        print(f"| {name} | {with_checks:.3f} | {without:.3f} | {with_checks / without:.2f}x |")
    print(f"\nload average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
