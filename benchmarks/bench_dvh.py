"""DVH benchmark: InTrEPID vs dicompyler-core vs plastimatch vs the Eclipse DVHs, on the dicompyler example.

Run: ``python3 benchmarks/bench_dvh.py`` (from the project root). Needs the external data
(``INTREPID_EXTERNAL_DATA`` or ``../shared/data``). The peers run where they are installed:

* dicompyler-core needs pydicom 2: a separate venv whose python is ``$DICOMPYLER_PYTHON``
  (default ``benchmarks/_data/venv-dicompyler/bin/python``, else ``/work/venvs/dicompyler/bin/python``;
  ``python3 -m venv benchmarks/_data/venv-dicompyler && benchmarks/_data/venv-dicompyler/bin/pip install
  dicompyler-core "pydicom<3"``); it is timed inside its own process (interpreter start-up excluded).
* plastimatch (Debian ``apt-get install plastimatch``, or the pip package): ``$PLASTIMATCH`` (default:
  ``plastimatch`` on PATH, then ``/work/venvs/plastimatch/bin/plastimatch``); ``plastimatch dvh`` is timed as
  a whole process, file reading included (it has no other mode).

Prints markdown tables (timings, then per-ROI statistics). Generated files go under benchmarks/_data/.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from intrepid.analysis import DVH, compute_dvhs  # noqa: E402
from intrepid.dicom._rtdose import read_rtdose  # noqa: E402
from intrepid.dicom._rtstruct import read_rtstruct  # noqa: E402

DATA = Path(os.environ.get("INTREPID_EXTERNAL_DATA", ROOT.parent / "shared" / "data")) / "dicompyler-example"
WORK = ROOT / "benchmarks" / "_data" / "dvh"
REPEATS = 5
#: Eclipse writes DVH Minimum / Maximum / Mean Dose of this file in percent of the 14 Gy prescription
#: (Target Prescription Dose of the plan), although Dose Units says GY; the DVH Data bins are in Gy.
ECLIPSE_PERCENT_OF_GY = 14.0

DICOMPYLER_SCRIPT = r"""
import json, sys, time
from dicompylercore import dicomparser, dvhcalc
ss, rd = sys.argv[1], sys.argv[2]
rois = dicomparser.DicomParser(ss).GetStructures()
out = {}
t0 = time.perf_counter()
for num, s in rois.items():
    try:
        d = dvhcalc.get_dvh(ss, rd, num)
        if d.volume == 0:
            out[s["name"]] = None
            continue
        out[s["name"]] = {"volume_cc": float(d.volume), "min_gy": float(d.min), "max_gy": float(d.max),
                          "mean_gy": float(d.mean), "d95_gy": float(d.D95.value),
                          "d50_gy": float(d.D50.value),
                          "d2_gy": float(d.D2.value)}
    except Exception as exc:  # report, do not hide
        out[s["name"]] = {"error": repr(exc)}
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "rois": out}))
"""


def _ours() -> tuple[dict[str, DVH], float, float, float]:
    t0 = time.perf_counter()
    dose = read_rtdose(DATA / "rtdose.dcm").volume
    ss = read_rtstruct(DATA / "rtss.dcm")
    read_s = time.perf_counter() - t0
    compute_dvhs(dose, ss)  # warm-up (imports)
    times, cpu = [], []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        c0 = time.process_time()
        dvhs = compute_dvhs(dose, ss)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return dvhs, statistics.median(times), read_s, statistics.median(cpu)


def _eclipse() -> dict[str, DVH]:
    ds = pydicom.dcmread(DATA / "rtdose.dcm")
    ss = pydicom.dcmread(DATA / "rtss.dcm")
    names = {int(r.ROINumber): str(r.ROIName) for r in ss.StructureSetROISequence}
    out = {}
    for item in ds.DVHSequence:
        num = int(item.DVHReferencedROISequence[0].ReferencedROINumber)
        data = np.asarray(item.DVHData, dtype=float).reshape(-1, 2)
        edges = np.concatenate([[0.0], np.cumsum(data[:, 0])])[:-1]
        out[names[num]] = DVH.from_cumulative(
            names[num],
            edges,
            data[:, 1],
            min_gy=float(item.DVHMinimumDose) * ECLIPSE_PERCENT_OF_GY / 100,
            max_gy=float(item.DVHMaximumDose) * ECLIPSE_PERCENT_OF_GY / 100,
            mean_gy=float(item.DVHMeanDose) * ECLIPSE_PERCENT_OF_GY / 100,
            roi_number=num,
        )
    return out


def _dicompyler() -> tuple[dict[str, dict[str, float] | None], float] | None:
    local = ROOT / "benchmarks/_data/venv-dicompyler/bin/python"
    fallback = Path("/work/venvs/dicompyler/bin/python")
    py = os.environ.get("DICOMPYLER_PYTHON") or str(local if local.exists() else fallback)
    if not Path(py).exists():
        print(f"dicompyler-core: {py} not found, skipped", file=sys.stderr)
        return None
    times, rois = [], {}
    for _ in range(3):
        res = subprocess.run(
            [py, "-c", DICOMPYLER_SCRIPT, str(DATA / "rtss.dcm"), str(DATA / "rtdose.dcm")],
            capture_output=True,
            text=True,
            check=True,
        )
        out = json.loads(res.stdout.strip().splitlines()[-1])
        times.append(out["seconds"])
        rois = out["rois"]
    return rois, statistics.median(times)


def _plastimatch() -> tuple[dict[str, DVH], float] | None:
    exe = (
        os.environ.get("PLASTIMATCH")
        or shutil.which("plastimatch")
        or "/work/venvs/plastimatch/bin/plastimatch"
    )
    if not Path(exe).exists():
        print("plastimatch: not found, skipped", file=sys.stderr)
        return None
    inp = WORK / "plastimatch_input"
    inp.mkdir(parents=True, exist_ok=True)
    for name in ("rtdose.dcm", "rtss.dcm"):
        shutil.copyfile(DATA / name, inp / name)
    out_csv = WORK / "plastimatch_dvh.csv"
    times, text = [], ""
    for _ in range(3):
        t0 = time.perf_counter()
        res = subprocess.run(
            [
                exe,
                "dvh",
                "--input",
                str(inp),
                "--output-csv",
                str(out_csv),
                "--bin-width",
                "0.01",
                "--num-bins",
                "1500",
                "--normalization",
                "vox",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.perf_counter() - t0)
        text = res.stdout + res.stderr
    m = re.search(r"checking voxel size\.\.\.\s*\n\s*([\d.]+) ([\d.]+) ([\d.]+)", text)
    if m is None:
        print("plastimatch: voxel size not found in its output", file=sys.stderr)
        return None
    voxel_cc = float(m.group(1)) * float(m.group(2)) * float(m.group(3)) / 1000.0
    with open(out_csv, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], np.asarray(rows[1:], dtype=float)
    dvhs = {}
    for c, name in enumerate(header[1:], start=1):
        if body[0, c] > 0:
            dvhs[name] = DVH.from_cumulative(name, body[:, 0], body[:, c] * voxel_cc)
    return dvhs, statistics.median(times)


def _fmt(x: float | None, nd: int = 3) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def main() -> int:
    if not DATA.is_dir():
        print(f"external data not found at {DATA}", file=sys.stderr)
        return 1
    WORK.mkdir(parents=True, exist_ok=True)
    ours, ours_s, read_s, ours_cpu = _ours()
    ecl = _eclipse()
    dcp = _dicompyler()
    plm = _plastimatch()

    print("## DVH timing: all 10 ROIs of the dicompyler example (194 × 129 × 98 dose, 2 cores)\n")
    print("| tool | seconds | ratio to InTrEPID | note |")
    print("|---|---:|---:|---|")
    print(f"| InTrEPID compute_dvhs | {ours_s:.3f} | 1.0 | median of {REPEATS}, files already read; "
          f"process CPU time {ours_cpu:.3f} s |")
    print(f"\nLoad average while running: {os.getloadavg()[0]:.1f} (2 cores)\n")
    print(f"| InTrEPID read RTDOSE + RTSTRUCT | {read_s:.3f} | — | once |")
    if dcp is not None:
        print(
            f"| dicompyler-core get_dvh × 10 | {dcp[1]:.3f} | {dcp[1] / ours_s:.1f} | median of 3, "
            "reads inside get_dvh |"
        )
    if plm is not None:
        print(
            f"| plastimatch dvh (process) | {plm[1]:.3f} | {plm[1] / ours_s:.1f} | median of 3, whole "
            "process incl. reading |"
        )
    print()
    print(
        "## Per-ROI statistics (Gy, cm³): Eclipse (stored in the RTDOSE) / InTrEPID / dicompyler-core / "
        "plastimatch\n"
    )
    print("| ROI | quantity | Eclipse | InTrEPID | dicompyler-core | plastimatch |")
    print("|---|---|---:|---:|---:|---:|")
    for name, o in ours.items():
        if o.is_empty:
            continue
        e = ecl.get(name)
        d = (dcp[0].get(name) if dcp else None) or {}
        p = plm[0].get(name) if plm else None
        for key, label in (
            ("volume_cc", "volume"),
            ("mean_gy", "Dmean"),
            ("min_gy", "Dmin"),
            ("max_gy", "Dmax"),
            ("d95_gy", "D95"),
            ("d50_gy", "D50"),
            ("d2_gy", "D2"),
        ):
            od = o.to_dict(curve=False)
            ev = e.to_dict(curve=False)[key] if e is not None else None
            pv = p.to_dict(curve=False)[key] if p is not None else None
            print(
                f"| {name} (×{o.supersample}) | {label} | {_fmt(ev)} | {_fmt(od[key])} | "
                f"{_fmt(d.get(key))} | "
                f"{_fmt(pv)} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
