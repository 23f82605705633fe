"""read_volume / write_volume: dispatch by DICOM modality and by extension, with clear refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from intrepid.dicom import (
    VolumeFormat,
    read_rtdose,
    read_rtimage,
    read_volume,
    volume_format,
    write_rtimage,
    write_volume,
)
from intrepid.errors import DicomError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume


def test_formats_by_extension(tmp_path: Path) -> None:
    assert volume_format(tmp_path) is VolumeFormat.DICOM_FOLDER
    assert volume_format("a.nii.gz") is VolumeFormat.NIFTI
    assert volume_format("a.NRRD") is VolumeFormat.NRRD
    assert volume_format("a.npz") is VolumeFormat.NPZ
    assert volume_format("a.dcm") is VolumeFormat.DICOM
    assert volume_format("CT000123") is VolumeFormat.DICOM  # DICOM files often have no extension


def test_dicom_dispatch_by_modality() -> None:
    dose = read_volume(get_testdata_file("rtdose.dcm"))
    assert dose.quantity is Quantity.DOSE
    np.testing.assert_array_equal(dose.array, read_rtdose(get_testdata_file("rtdose.dcm")).volume.array)
    ct = read_volume(get_testdata_file("CT_small.dcm"))
    assert ct.quantity is Quantity.CT_NUMBER and ct.shape == (1, 128, 128)
    with pytest.raises(DicomError, match=r"rtplan\.dcm: \(0008,0060\) Modality 'RTPLAN' is not a volume"):
        read_volume(get_testdata_file("rtplan.dcm"))


def test_dose_written_as_dicom_is_rtdose_and_reads_back(tmp_path: Path) -> None:
    grid = Grid((3, 4, 5), (-2.0, -3.0, 7.5), (1.5, 2.0, 2.5))
    dose = Volume(np.linspace(0.0, 2.0, 60).reshape(grid.shape), grid, Quantity.DOSE, "Gy", "1.2.3.4")
    path = write_volume(dose, tmp_path / "dose.dcm")
    back = read_rtdose(path).volume
    assert back.grid.is_close(grid)
    # 32-bit storage: 2 Gy / (2^32 - 1) quantisation.
    np.testing.assert_allclose(back.array, dose.array, atol=1e-8)


def test_portal_dose_written_as_dicom_keeps_the_receptor_geometry(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    src = write_rtimage(tmp_path / "src.dcm", rng.random((6, 8)), pixel_spacing_mm=(0.4, 0.5),
                        sid_mm=1500.0, sad_mm=1000.0, gantry_deg=90.0, image_position_mm=(-10.0, 20.0))
    image = read_rtimage(src).image
    out = read_rtimage(write_volume(image, tmp_path / "copy.dcm"))
    assert out.sid_mm == 1500.0 and out.gantry_deg == 90.0
    assert out.image.grid.is_close(image.grid)
    np.testing.assert_allclose(out.image.array, image.array, atol=2e-5)


def test_ct_is_not_written_as_dicom(tmp_path: Path) -> None:
    grid = Grid((2, 2, 2), (0, 0, 0), (1, 1, 1))
    ct = Volume(np.zeros(grid.shape), grid, Quantity.CT_NUMBER, "HU")
    with pytest.raises(ParameterError, match="CT volumes are not written as DICOM"):
        write_volume(ct, tmp_path / "ct.dcm")
    assert not (tmp_path / "ct.dcm").exists()
