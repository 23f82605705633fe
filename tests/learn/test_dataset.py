"""Tests of data sets of EPID / portal-dose pairs (``intrepid.learn._dataset``)."""

from __future__ import annotations

import csv
import logging
import pickle
import shutil

import numpy as np
import pytest
from learn_factories import DARK, SIZE, SPACING_MM, make_numpy_dataset, synthetic_pair

from intrepid.errors import DicomError, ParameterError
from intrepid.geometry import Quantity
from intrepid.learn import load_dataset, read_image


def _rewrite(folder, edit):
    path = folder / "manifest.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows = edit(rows)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_dicom_dataset_reads_signal_and_dose(dicom_dataset):
    ds = load_dataset(dicom_dataset)
    assert len(ds) == 9
    pair = ds[2]
    epid, dose = synthetic_pair(2)
    assert pair.record.name == "pair2" and pair.record.family == "OMG"
    assert pair.epid.quantity is Quantity.EPID_SIGNAL and pair.portal_dose.quantity is Quantity.PORTAL_DOSE
    assert pair.portal_dose.units == "Gy"
    assert pair.epid.shape == (SIZE, SIZE)
    np.testing.assert_allclose(pair.epid.grid.spacing_mm[:2], (SPACING_MM, SPACING_MM))
    # Elekta counts are integers after the inverted encoding (±0.5 count); the portal dose is 16-bit with a
    # slope of max / 65534, so within 1e-4 of its maximum
    np.testing.assert_allclose(pair.epid.array, epid, atol=0.51)
    np.testing.assert_allclose(pair.portal_dose.array, dose, atol=1e-4 * dose.max())
    assert pair.epid.metadata["vendor"] == "elekta"
    assert ds[2] is pair  # cached


def test_groups_strata_and_summary(dicom_dataset):
    ds = load_dataset(dicom_dataset)
    rec = ds.records[0]
    assert rec.group == "OMG_0|5x5" and rec.stratum == "OMG|5x5"
    s = ds.summary()
    assert s["pairs"] == 9 and s["by_family"] == {"OMG": 5, "CIRS": 4}
    assert s["by_split"] == {"train": 8, "test": 1}
    assert s["groups"] == len({r.group for r in ds.records})
    assert rec.describe()["stratum"] == "OMG|5x5"


def test_split_and_subset(dicom_dataset):
    train = load_dataset(dicom_dataset, split="train")
    assert len(train) == 8 and all(r.split == "train" for r in train.records)
    assert len(load_dataset(dicom_dataset).split("test")) == 1
    sub = train.subset([3, 1])
    assert [r.name for r in sub.records] == ["pair3", "pair1"]
    assert len(list(sub)) == 2
    with pytest.raises(ParameterError, match="pair index 8 out of range for 8 pairs"):
        train.subset([8])
    with pytest.raises(ParameterError, match="pair index 9 out of range"):
        train[9]
    with pytest.raises(ParameterError, match="no rows with split 'validation'"):
        load_dataset(dicom_dataset, split="validation")


def test_npz_dataset(npz_dataset):
    ds = load_dataset(npz_dataset / "manifest.csv")
    pair = ds[1]
    epid, dose = synthetic_pair(1)
    np.testing.assert_array_equal(pair.epid.array, epid)
    np.testing.assert_array_equal(pair.portal_dose.array, dose)
    assert pair.portal_dose.quantity is Quantity.PORTAL_DOSE


def test_npy_dataset_uses_the_spacing_column(tmp_path, caplog):
    folder = make_numpy_dataset(tmp_path / "npy", n=2, fmt="npy")
    pair = load_dataset(folder)[0]
    assert pair.epid.grid.spacing_mm[:2] == (SPACING_MM, SPACING_MM)
    # the image is centred on the beam axis
    np.testing.assert_allclose(
        pair.epid.grid.index_to_world([(SIZE - 1) / 2, (SIZE - 1) / 2]), 0.0, atol=1e-9
    )
    _rewrite(folder, lambda rows: [{k: v for k, v in r.items() if k != "pixel_spacing_mm"} for r in rows])
    with caplog.at_level(logging.WARNING):
        pair = load_dataset(folder)[0]
    assert pair.epid.grid.spacing_mm[:2] == (1.0, 1.0)
    assert "no pixel_spacing_mm" in caplog.text


def test_dark_and_flood_columns_are_applied(tmp_path):
    folder = make_numpy_dataset(tmp_path / "df", n=2, fmt="npy")
    np.save(folder / "dark.npy", np.full((SIZE, SIZE), DARK))
    np.save(folder / "flood.npy", np.full((SIZE, SIZE), DARK + 1000.0))

    def edit(rows):
        for r in rows:
            r["dark_file"], r["flood_file"] = "dark.npy", "flood.npy"
        return rows

    _rewrite(folder, edit)
    pair = load_dataset(folder)[0]
    epid, _ = synthetic_pair(0)
    # uniform gain: the correction is a dark subtraction
    np.testing.assert_allclose(pair.epid.array, epid - DARK, rtol=1e-12)


def test_manifest_errors(tmp_path, dicom_dataset):
    with pytest.raises(ParameterError, match="no such manifest"):
        load_dataset(tmp_path)
    folder = tmp_path / "copy"
    shutil.copytree(dicom_dataset, folder)
    _rewrite(folder, lambda rows: [{k: v for k, v in r.items() if k != "portal_dose_file"} for r in rows])
    with pytest.raises(ParameterError, match=r"manifest lacks the column.s. portal_dose_file"):
        load_dataset(folder)

    folder = tmp_path / "copy2"
    shutil.copytree(dicom_dataset, folder)
    (folder / "epid" / "3.dcm").unlink()
    with pytest.raises(ParameterError, match=r"row 4: epid_file .*3.dcm does not exist"):
        load_dataset(folder)

    folder = tmp_path / "copy3"
    shutil.copytree(dicom_dataset, folder)
    _rewrite(folder, lambda rows: [{**r, "seed": "x"} for r in rows])
    with pytest.raises(ParameterError, match="row 1: column seed must be an integer, got 'x'"):
        load_dataset(folder)

    folder = tmp_path / "copy4"
    shutil.copytree(dicom_dataset, folder)
    _rewrite(folder, lambda rows: [{**r, "mu": "lots"} for r in rows])
    with pytest.raises(ParameterError, match="column mu must be a number, got 'lots'"):
        load_dataset(folder)


def test_pair_errors(tmp_path):
    folder = make_numpy_dataset(tmp_path / "bad", n=2, fmt="npy")
    np.save(folder / "d0.npy", np.zeros((SIZE, SIZE + 1)))
    with pytest.raises(ParameterError, match=r"has shape .64, 64. but portal dose .* has .64, 65."):
        load_dataset(folder)[0]
    with (folder / "d1.npy").open("wb") as fh:
        pickle.dump({"evil": 1}, fh)
    with pytest.raises(ParameterError, match=r"not a readable \.npy array without pickles"):
        load_dataset(folder)[1]
    np.save(folder / "d1.npy", np.full((SIZE, SIZE), np.nan))
    with pytest.raises(ParameterError, match="contains 4096 NaN or infinite values"):
        load_dataset(folder)[1]
    with pytest.raises(ParameterError, match="PairDataset index must be an integer"):
        load_dataset(folder)["0"]  # type: ignore[index]


def test_portal_dose_must_be_a_dose_image(dicom_dataset, tmp_path):
    with pytest.raises(DicomError, match="portal_dose_file must be a portal-dose RT Image"):
        read_image(dicom_dataset / "epid" / "0.dcm", Quantity.PORTAL_DOSE)
    with pytest.raises(ParameterError, match="no such image file"):
        read_image(tmp_path / "nothing.dcm", Quantity.EPID_SIGNAL)
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    with pytest.raises(ParameterError, match="image must be 2D"):
        read_image(tmp_path / "cube.npy", Quantity.EPID_SIGNAL, (1.0, 1.0))
