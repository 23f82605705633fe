"""Tests of read_rtdose: pydicom's rtdose files in every encoding, both offset conventions, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factories import rtdose_dataset, save
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from intrepid.dicom import GridOffsetConvention, read_rtdose
from intrepid.errors import DicomError, GeometryError
from intrepid.geometry import Quantity

# pydicom's rtdose files carry a malformed UID; the warning is pydicom's, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")

ENCODINGS = ["rtdose.dcm", "rtdose_rle.dcm", "rtdose_expb.dcm"]
ONE_FRAME = ["rtdose_1frame.dcm", "rtdose_rle_1frame.dcm", "rtdose_expb_1frame.dcm"]


@pytest.mark.parametrize("name", ENCODINGS)
def test_pydicom_multiframe_every_encoding(pydicom_file, name: str) -> None:
    path = pydicom_file(name)
    ds = pydicom.dcmread(path)
    dose = read_rtdose(path)
    v = dose.volume
    assert v.shape == (15, 10, 10)
    assert v.quantity is Quantity.DOSE and v.units == "relative"
    # Closed form: stored integers times Dose Grid Scaling (exact in float64 up to one rounding).
    np.testing.assert_allclose(v.array, ds.pixel_array * float(ds.DoseGridScaling), rtol=1e-15)
    assert v.grid.origin_mm == pytest.approx([189.43125, 199.43125, -761.87])
    assert v.grid.spacing_mm == pytest.approx([10.0, 10.0, 5.0])
    assert dose.grid_frame_offset_convention is GridOffsetConvention.RELATIVE
    assert dose.summation_type == "BEAM" and dose.dose_type == "PHYSICAL"
    assert dose.dose_units == "RELATIVE"
    assert v.metadata["grid_frame_offset_convention"] == "relative"


@pytest.mark.parametrize("name", ONE_FRAME)
def test_pydicom_single_frame_every_encoding(pydicom_file, name: str) -> None:
    one = read_rtdose(pydicom_file(name))
    multi = read_rtdose(pydicom_file("rtdose.dcm"))
    assert one.volume.shape == (1, 10, 10)
    np.testing.assert_array_equal(one.volume.array[0], multi.volume.array[0])
    assert one.volume.grid.origin_mm == multi.volume.grid.origin_mm


def _rewrite_absolute(src: Path, dst: Path) -> None:
    ds = pydicom.dcmread(src)
    z0 = float(ds.ImagePositionPatient[2])
    ds.GridFrameOffsetVector = [z0 + float(o) for o in ds.GridFrameOffsetVector]
    ds.save_as(dst)


def test_absolute_offsets_give_identical_geometry(pydicom_file, tmp_path: Path) -> None:
    src = pydicom_file("rtdose.dcm")
    dst = tmp_path / "absolute.dcm"
    _rewrite_absolute(src, dst)
    rel, ab = read_rtdose(src), read_rtdose(dst)
    assert ab.grid_frame_offset_convention is GridOffsetConvention.ABSOLUTE
    assert ab.volume.metadata["grid_frame_offset_convention"] == "absolute"
    assert ab.volume.grid == rel.volume.grid
    np.testing.assert_array_equal(ab.volume.array, rel.volume.array)


def test_decreasing_offsets_are_reversed(tmp_path: Path) -> None:
    dose = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    path = save(rtdose_dataset(dose, offsets_mm=[0.0, -3.0, -6.0], scaling=1e-3), tmp_path / "d.dcm")
    out = read_rtdose(path)
    assert out.volume.metadata["frames_reversed"] is True
    # Frame f of the file sits at z = -40 - 3 f; after reversal k = 2 - f, with k along +z.
    for f in range(3):
        k = 2 - f
        assert out.volume.grid.index_to_world([0, 0, k])[2] == pytest.approx(-40.0 - 3.0 * f)
        np.testing.assert_allclose(out.volume.array[k], dose[f], atol=1e-3 / 2)


def test_non_square_pixels(tmp_path: Path) -> None:
    """Pixel Spacing [row 2.0, column 2.5]: i (columns) steps 2.5 mm, j (rows) 2.0 mm."""
    dose = np.zeros((2, 3, 4))
    dose[1, 2, 3] = 5.0
    path = save(rtdose_dataset(dose, pixel_spacing_mm=(2.0, 2.5)), tmp_path / "d.dcm")
    out = read_rtdose(path)
    assert out.volume.grid.spacing_mm == (2.5, 2.0, 3.0)
    k, j, i = np.unravel_index(np.argmax(out.volume.array), out.volume.shape)
    assert (i, j, k) == (3, 2, 1)
    assert out.volume.grid.index_to_world([i, j, k]) == pytest.approx(
        [-20 + 3 * 2.5, -30 + 2 * 2.0, -40 + 3.0]
    )


def test_sixteen_bit_and_gy_units(tmp_path: Path) -> None:
    dose = np.linspace(0, 2, 2 * 3 * 3).reshape(2, 3, 3)
    path = save(rtdose_dataset(dose, bits=16, scaling=1e-4), tmp_path / "d.dcm")
    out = read_rtdose(path)
    assert out.volume.units == "Gy"
    np.testing.assert_allclose(out.volume.array, dose, atol=1e-4 / 2 + 1e-12)  # half a quantisation step


def test_references_kept(tmp_path: Path) -> None:
    ds = rtdose_dataset(np.ones((2, 2, 2)))
    ds.DoseSummationType = "BEAM"
    item, fg, beam = Dataset(), Dataset(), Dataset()
    beam.ReferencedBeamNumber = 3
    fg.ReferencedFractionGroupNumber = 1
    fg.ReferencedBeamSequence = DicomSequence([beam])
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    item.ReferencedFractionGroupSequence = DicomSequence([fg])
    ds.ReferencedRTPlanSequence = DicomSequence([item])
    out = read_rtdose(save(ds, tmp_path / "d.dcm"))
    assert out.referenced_plan_uid == "1.2.3.4"
    assert out.referenced_fraction_group_number == 1
    assert out.referenced_beam_numbers == (3,)
    assert out.summation_type == "BEAM"


# ------------------------------------------------------------------------------------------ bad inputs
def test_non_uniform_offsets(tmp_path: Path) -> None:
    path = save(rtdose_dataset(np.ones((3, 2, 2)), offsets_mm=[0.0, 3.0, 7.0]), tmp_path / "d.dcm")
    with pytest.raises(GeometryError, match=r"non-uniform \(3004,000C\) GridFrameOffsetVector"):
        read_rtdose(path)


def test_non_monotonic_offsets(tmp_path: Path) -> None:
    path = save(rtdose_dataset(np.ones((3, 2, 2)), offsets_mm=[0.0, 3.0, 3.0]), tmp_path / "d.dcm")
    with pytest.raises(GeometryError, match="not strictly monotonic"):
        read_rtdose(path)


def test_offsets_neither_convention(tmp_path: Path) -> None:
    path = save(rtdose_dataset(np.ones((2, 2, 2)), offsets_mm=[5.0, 8.0]), tmp_path / "d.dcm")
    with pytest.raises(DicomError, match=r"first value of \(3004,000C\).*is 5\.0, which is neither 0"):
        read_rtdose(path)


def test_absolute_offsets_on_oblique_grid(tmp_path: Path) -> None:
    ds = rtdose_dataset(np.ones((2, 2, 2)), absolute_offsets=True)
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
    with pytest.raises(GeometryError, match="only defined for axial grids"):
        read_rtdose(save(ds, tmp_path / "d.dcm"))


def test_missing_dose_grid_scaling(tmp_path: Path) -> None:
    ds = rtdose_dataset(np.ones((2, 2, 2)))
    del ds.DoseGridScaling
    with pytest.raises(DicomError, match=r"d\.dcm: missing required tag \(3004,000E\) DoseGridScaling"):
        read_rtdose(save(ds, tmp_path / "d.dcm"))


def test_missing_offsets_multiframe(tmp_path: Path) -> None:
    ds = rtdose_dataset(np.ones((2, 2, 2)))
    del ds.GridFrameOffsetVector
    with pytest.raises(DicomError, match=r"missing required tag \(3004,000C\).*2 frames"):
        read_rtdose(save(ds, tmp_path / "d.dcm"))


def test_missing_pixel_spacing(tmp_path: Path) -> None:
    ds = rtdose_dataset(np.ones((2, 2, 2)))
    del ds.PixelSpacing
    with pytest.raises(DicomError, match=r"missing required tag \(0028,0030\) PixelSpacing"):
        read_rtdose(save(ds, tmp_path / "d.dcm"))


def test_unknown_dose_units(tmp_path: Path) -> None:
    path = save(rtdose_dataset(np.ones((2, 2, 2)), dose_units="MU"), tmp_path / "d.dcm")
    with pytest.raises(DicomError, match=r"\(3004,0002\) DoseUnits is 'MU', expected 'GY' or 'RELATIVE'"):
        read_rtdose(path)


def test_wrong_modality(pydicom_file) -> None:
    with pytest.raises(DicomError, match=r"CT_small\.dcm: \(0008,0060\) Modality is 'CT', expected RTDOSE"):
        read_rtdose(pydicom_file("CT_small.dcm"))


def test_truncated_file(pydicom_file, tmp_path: Path) -> None:
    data = pydicom_file("rtdose.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 500])
    with pytest.raises(DicomError, match=r"cut\.dcm: .*(truncated|pixel data)"):
        read_rtdose(cut)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DicomError, match="no such file"):
        read_rtdose(tmp_path / "nope.dcm")


# ------------------------------------------------------------------------------------------ real data
@pytest.mark.external
def test_dicompyler_example(external_data: Path, tmp_path: Path) -> None:
    path = external_data / "dicompyler-example" / "rtdose.dcm"
    dose = read_rtdose(path)
    v = dose.volume
    assert v.shape == (98, 129, 194)
    assert v.units == "Gy" and dose.summation_type == "PLAN"
    assert v.grid.spacing_mm == pytest.approx([2.5, 2.5, 3.0])
    # README: maximum about 14.68 Gy; the stored max times 1.4e-5 Gy is 14.680764 Gy.
    assert dose.max_dose == pytest.approx(14.68, abs=0.01)
    assert dose.referenced_plan_uid
    # Rewritten with absolute offsets: identical geometry and values (dicompyler-core misreads this).
    dst = tmp_path / "absolute.dcm"
    _rewrite_absolute(path, dst)
    ab = read_rtdose(dst)
    assert ab.grid_frame_offset_convention is GridOffsetConvention.ABSOLUTE
    assert ab.volume.grid == v.grid
    np.testing.assert_array_equal(ab.volume.array, v.array)
