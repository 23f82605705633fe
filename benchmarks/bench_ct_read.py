"""Benchmark: read a 160-slice 512 x 512 CT series (synthetic files in benchmarks/_data/ct_read/).

Times :func:`intrepid.dicom.read_ct_series` against two peers on the same files in the same run:
SimpleITK's ImageSeriesReader (GDCM, C++) and a plain pydicom loop (read every file, sort by position,
stack ``pixel_array`` with the rescale applied). Prints a markdown table. Target: <= 2 s on 2 cores.

    python3 benchmarks/bench_ct_read.py [--slices 160] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from intrepid.dicom import read_ct_series

DATA = Path(__file__).resolve().parent / "_data" / "ct_read"


def make_series(folder: Path, slices: int, size: int = 512) -> list[Path]:
    """Write a synthetic CT series (shuffled file names, reversed Instance Numbers) once; reuse it after."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.dcm"))
    if len(existing) == slices:
        return existing
    for f in existing:
        f.unlink()
    rng = np.random.default_rng(0)
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    yy, xx = np.mgrid[:size, :size]
    body = ((xx - size / 2) ** 2 / (0.4 * size) ** 2 + (yy - size / 2) ** 2 / (0.3 * size) ** 2) < 1
    order = rng.permutation(slices)
    for name_index, k in enumerate(order):
        pixels = np.where(body, 1024 + 40, 24).astype(np.int16) + rng.integers(0, 20, (size, size)).astype(
            np.int16
        )
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.PatientName, ds.PatientID = "Bench^CT", "BENCH"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.InstanceNumber = slices - int(k)
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelSpacing = [0.977, 0.977]
        ds.SliceThickness = 2.5
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-250.0, -250.0, -200.0 + 2.5 * int(k)]
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"IMG{name_index:04d}.dcm", enforce_file_format=True)
    return sorted(folder.glob("*.dcm"))


def pydicom_loop(folder: Path) -> np.ndarray:
    """The usual script: read all, sort by z, stack the rescaled pixel arrays."""
    datasets = [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]
    datasets.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    return np.stack(
        [
            d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept)
            for d in datasets
        ]
    )


def simpleitk_read(folder: Path) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = DATA / f"ct_{args.slices}"
    make_series(folder, args.slices)
    # Warm the file cache once so that every reader sees the same (cached) files.
    for f in folder.glob("*.dcm"):
        f.read_bytes()
    t_ours, vol = best_of(lambda: read_ct_series(folder), args.repeats)
    ours = vol.array  # type: ignore[attr-defined]
    rows = [("InTrEPID read_ct_series", t_ours, ours)]
    rows.append(
        ("pydicom loop (dcmread + pixel_array)", *best_of(lambda: pydicom_loop(folder), args.repeats))
    )
    try:
        rows.append(
            ("SimpleITK ImageSeriesReader (GDCM)", *best_of(lambda: simpleitk_read(folder), args.repeats))
        )
    except ImportError:
        pass
    print(
        f"CT series {args.slices} x 512 x 512, int16 uncompressed; best of {args.repeats}; "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    print()
    print("| reader | time (s) | same values as ours |")
    print("|---|---:|---|")
    for name, seconds, arr in rows:
        same = bool(np.array_equal(np.asarray(arr, dtype=np.float32), ours))
        print(f"| {name} | {seconds:.3f} | {same} |")
    verdict = "PASS" if t_ours <= 2.0 else "FAIL"
    print(f"\ntarget <= 2 s for 160 slices: {verdict} ({t_ours:.3f} s)")


if __name__ == "__main__":
    main()
