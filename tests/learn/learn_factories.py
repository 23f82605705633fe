"""Builders of tiny EPID / portal-dose data sets for the tests of ``intrepid.learn`` (no simulator needed)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from intrepid.dicom import Vendor, write_npz, write_rtimage
from intrepid.geometry import Grid, Quantity, Volume

#: Detector of the tiny data sets: 64 x 64 pixels of 6.48 mm (an Elekta panel, 16 x coarser).
SIZE = 64
SPACING_MM = 6.48
DARK = 500.0  # dark level of the synthetic EPID signal (counts)


def synthetic_pair(k: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """EPID signal (counts) and portal dose (Gy) of a square field, blurred differently, scaled by ``k``."""
    yy, xx = np.mgrid[0:size, 0:size]
    half = (size // 6) if k % 4 < 2 else (size // 3)
    c = size // 2 + (k % 3) - 1
    field = ((np.abs(xx - c) < half) & (np.abs(yy - c) < half)).astype(float)
    mu = 1.0 + 0.25 * (k % 5)
    dose = gaussian_filter(field, 1.5) * 0.4 * mu + 0.002
    epid = gaussian_filter(field, 3.0) * 20000 * mu + gaussian_filter(field, 0.8) * 4000 * mu + DARK
    return epid, dose


def _rows(n: int) -> list[dict[str, str]]:
    rows = []
    for k in range(n):
        family = ("OMG", "CIRS")[k % 2]
        group = ("5x5", "10x10")[(k // 2) % 2]
        rows.append(
            {
                "name": f"pair{k}",
                "phantom": f"{family}_{k // 4}",
                "family": family,
                "field": group,
                "field_group": group,
                "rotation_deg": "0",
                "mu": "100",
                "seed": str(k),
                "split": "test" if k == n - 1 else "train",
                "vendor": "elekta",
            }
        )
    return rows


def _write_manifest(folder: Path, rows: list[dict[str, str]]) -> Path:
    path = folder / "manifest.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def make_dicom_dataset(folder: Path, n: int = 9) -> Path:
    """``n`` DICOM pairs (Elekta-encoded EPID, portal dose in Gy) and manifest.csv in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "epid").mkdir(exist_ok=True)
    (folder / "portal_dose").mkdir(exist_ok=True)
    rows = _rows(n)
    for k, row in enumerate(rows):
        epid, dose = synthetic_pair(k)
        write_rtimage(
            folder / "epid" / f"{k}.dcm",
            epid,
            pixel_spacing_mm=SPACING_MM,
            vendor=Vendor.ELEKTA,
            quantity=Quantity.EPID_SIGNAL,
            frame_of_reference_uid="1.2.3",
        )
        write_rtimage(
            folder / "portal_dose" / f"{k}.dcm",
            dose,
            pixel_spacing_mm=SPACING_MM,
            frame_of_reference_uid="1.2.3",
        )
        row.update(epid_file=f"epid/{k}.dcm", portal_dose_file=f"portal_dose/{k}.dcm")
    _write_manifest(folder, rows)
    return folder


def make_numpy_dataset(folder: Path, n: int = 4, fmt: str = "npz") -> Path:
    """``n`` NumPy pairs (``.npz`` in the write_npz format, or bare ``.npy``) and manifest.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = _rows(n)
    grid = Grid((SIZE, SIZE), origin_mm=(-204.12, -204.12, 0.0), spacing_mm=(SPACING_MM, SPACING_MM, 1.0))
    for k, row in enumerate(rows):
        epid, dose = synthetic_pair(k)
        if fmt == "npz":
            write_npz(Volume(epid, grid, Quantity.EPID_SIGNAL, "raw"), folder / f"e{k}.npz")
            write_npz(Volume(dose, grid, Quantity.PORTAL_DOSE, "Gy"), folder / f"d{k}.npz")
        else:
            np.save(folder / f"e{k}.npy", epid)
            np.save(folder / f"d{k}.npy", dose)
            row["pixel_spacing_mm"] = str(SPACING_MM)
        row.update(epid_file=f"e{k}.{fmt}", portal_dose_file=f"d{k}.{fmt}")
    _write_manifest(folder, rows)
    return folder
