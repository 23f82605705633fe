"""Tests of read_ct_series / inspect_ct_series on pydicom's CT_small.dcm and synthetic series."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factories import ct_slice_dataset, rtdose_dataset, save, write_ct_series_files
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.pixels import apply_rescale

from intrepid.dicom import inspect_ct_series, read_ct_series
from intrepid.errors import DicomError, GeometryError
from intrepid.geometry import Quantity


def _raw(shape: tuple[int, int, int] = (6, 4, 5)) -> np.ndarray:
    return (np.arange(np.prod(shape)).reshape(shape) * 7 % 3000).astype(np.int16)


def test_ct_small_single_file(pydicom_file) -> None:
    path = pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    ct = read_ct_series(path)
    assert ct.shape == (1, 128, 128)
    assert ct.quantity is Quantity.CT_NUMBER and ct.units == "HU"
    assert ct.array.dtype == np.float32
    # Peer: pydicom's own modality LUT; exact because slope 1 / integer intercept are exact in float32.
    np.testing.assert_array_equal(ct.array[0], apply_rescale(ds.pixel_array, ds).astype(np.float32))
    assert ct.grid.origin_mm == pytest.approx([float(v) for v in ds.ImagePositionPatient])
    assert ct.grid.spacing_mm[:2] == pytest.approx([float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])])
    assert ct.grid.spacing_mm[2] == pytest.approx(float(ds.SliceThickness))
    assert ct.frame_of_reference_uid == ds.FrameOfReferenceUID
    assert ct.metadata["series_instance_uid"] == ds.SeriesInstanceUID
    assert ct.metadata["modality"] == "CT"


def test_folder_sorted_by_position_not_instance_number(tmp_path: Path) -> None:
    raw = _raw()
    write_ct_series_files(tmp_path / "s", raw, slope=2.0, intercept=-1000.0)
    ct = read_ct_series(tmp_path / "s")
    # Files are shuffled and Instance Numbers reversed: only sorting by position gives back raw order.
    np.testing.assert_array_equal(ct.array, raw.astype(np.float32) * 2 - 1000)
    assert ct.grid.origin_mm == (-10.0, -20.0, -30.0)
    assert ct.grid.spacing_mm == (1.0, 1.0, 2.0)
    assert ct.metadata["number_of_slices"] == 6


def test_list_of_files_and_non_square_pixels(tmp_path: Path) -> None:
    raw = _raw((3, 4, 5))
    files = write_ct_series_files(tmp_path / "s", raw, pixel_spacing_mm=(0.5, 0.8))
    ct = read_ct_series(files)
    # Pixel Spacing is [row spacing, column spacing]: i (columns) gets 0.8, j (rows) 0.5.
    assert ct.grid.spacing_mm[:2] == (0.8, 0.5)
    np.testing.assert_array_equal(ct.array, raw - 1024.0)


def test_per_slice_rescale(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    raw = _raw((2, 3, 3))
    for k, (slope, intercept) in enumerate([(1.0, -1024.0), (0.5, -100.0)]):
        save(
            ct_slice_dataset(raw[k], position_mm=(0, 0, 3.0 * k), slope=slope, intercept=intercept),
            folder / f"{k}.dcm",
        )
    ct = read_ct_series(folder)
    np.testing.assert_array_equal(ct.array[0], raw[0] - 1024.0)
    np.testing.assert_array_equal(ct.array[1], raw[1] * 0.5 - 100.0)


def test_folder_skips_other_objects(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    write_ct_series_files(folder, _raw((3, 2, 2)))
    save(rtdose_dataset(np.ones((2, 2, 2))), folder / "rtdose.dcm")
    (folder / "notes.txt").write_text("not dicom")
    ct = read_ct_series(folder)
    assert ct.shape == (3, 2, 2)
    report = inspect_ct_series(folder)
    assert report.ok
    assert any("rtdose.dcm" in f for f in report.skipped_files)


def test_decreasing_orientation_axis(tmp_path: Path) -> None:
    """Feet-first / flipped orientation: k still follows increasing position along the normal."""
    folder = tmp_path / "s"
    folder.mkdir()
    raw = _raw((3, 2, 2))
    orientation = (-1, 0, 0, 0, 1, 0)  # normal = (0, 0, -1)
    for k in range(3):
        save(
            ct_slice_dataset(raw[k], position_mm=(0, 0, -2.0 * k), orientation=orientation),
            folder / f"{k}.dcm",
        )
    ct = read_ct_series(folder)
    np.testing.assert_array_equal(ct.array, raw - 1024.0)
    assert ct.grid.direction_matrix[:, 2] == pytest.approx([0, 0, -1])
    assert ct.grid.spacing_mm[2] == pytest.approx(2.0)
    # World position of the last slice's first voxel is the file's Image Position.
    assert ct.grid.index_to_world([0, 0, 2]) == pytest.approx([0, 0, -4.0])


@settings(max_examples=15, deadline=None)
@given(
    spacing=st.floats(0.5, 5.0),
    z0=st.floats(-500, 500),
    n=st.integers(2, 6),
)
def test_geometry_property(
    tmp_path_factory: pytest.TempPathFactory, spacing: float, z0: float, n: int
) -> None:
    """The grid reproduces every file's Image Position (within the DS rounding of pydicom, 1e-4 mm)."""
    folder = tmp_path_factory.mktemp("prop")
    raw = _raw((n, 2, 3))
    z = [z0 + k * spacing for k in range(n)]
    write_ct_series_files(folder, raw, z_positions_mm=z)
    ct = read_ct_series(folder)
    for k in range(n):
        assert ct.grid.index_to_world([0, 0, k]) == pytest.approx([-10.0, -20.0, z[k]], abs=1e-4)


# --------------------------------------------------------------------------------------------- problems
def test_mixed_series_lists_uids(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    write_ct_series_files(folder, _raw((2, 2, 2)), series_uid="1.2.3.1")
    write_ct_series_files(tmp_path / "t", _raw((3, 2, 2)), series_uid="1.2.3.2")
    for f in (tmp_path / "t").iterdir():
        shutil.copy(f, folder / ("t_" + f.name))
    with pytest.raises(
        DicomError,
        match=r"mixed CT series.*1\.2\.3\.1 \(2 slices\).*1\.2\.3\.2 \(3 slices\).*series_instance_uid",
    ):
        read_ct_series(folder)
    ct = read_ct_series(folder, series_instance_uid="1.2.3.2")
    assert ct.shape == (3, 2, 2)
    with pytest.raises(DicomError, match=r"no CT slices of series 9\.9.*1\.2\.3\.1"):
        read_ct_series(folder, series_instance_uid="9.9")
    report = inspect_ct_series(folder)
    assert not report.ok
    assert {s.series_instance_uid for s in report.series} == {"1.2.3.1", "1.2.3.2"}
    assert report.number_of_slices == 3  # the largest series is described


def test_duplicate_positions_name_files(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    write_ct_series_files(folder, _raw((3, 2, 2)), z_positions_mm=[0.0, 2.0, 2.0], shuffle_seed=None)
    with pytest.raises(
        DicomError, match=r"duplicate slice position 2\.000 mm.*slice_001\.dcm, slice_002\.dcm"
    ):
        read_ct_series(folder)
    report = inspect_ct_series(folder)
    assert len(report.duplicates) == 1 and len(report.duplicates[0].files) == 2


def test_missing_slice_reports_positions(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    write_ct_series_files(folder, _raw((4, 2, 2)), z_positions_mm=[0.0, 2.0, 6.0, 8.0])
    with pytest.raises(
        DicomError, match=r"1 missing slice\(s\) between 2\.000 and 6\.000 mm \(gap 4\.000 mm"
    ):
        read_ct_series(folder)
    report = inspect_ct_series(folder)
    assert report.gaps[0].missing_slices == 1
    assert report.slice_spacing_max_mm == pytest.approx(4.0)
    assert report.slice_spacing_median_mm == pytest.approx(2.0)


def test_non_uniform_spacing(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    write_ct_series_files(folder, _raw((4, 2, 2)), z_positions_mm=[0.0, 2.0, 4.0, 7.0])
    with pytest.raises(
        DicomError, match=r"non-uniform slice spacing, step of 3\.000 mm between 4\.000 and 7\.000"
    ):
        read_ct_series(folder)
    assert inspect_ct_series(folder).gaps[0].missing_slices == 0


def test_mixed_orientation(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    save(ct_slice_dataset(np.zeros((2, 2)), position_mm=(0, 0, 0)), folder / "a.dcm")
    save(
        ct_slice_dataset(np.zeros((2, 2)), position_mm=(0, 0, 2), orientation=(0, 1, 0, 1, 0, 0)),
        folder / "b.dcm",
    )
    with pytest.raises(DicomError, match=r"mixed orientations.*\(0020,0037\)"):
        read_ct_series(folder)


def test_sheared_stack_refused(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    for k in range(3):
        save(ct_slice_dataset(np.zeros((2, 2)), position_mm=(0, 0.5 * k, 2.0 * k)), folder / f"{k}.dcm")
    with pytest.raises(GeometryError, match=r"sheared \(gantry tilt\?\)"):
        read_ct_series(folder)


def test_wrong_modality_single_file(tmp_path: Path) -> None:
    path = save(rtdose_dataset(np.ones((2, 2, 2))), tmp_path / "dose.dcm")
    with pytest.raises(DicomError, match=r"dose\.dcm: \(0008,0060\) Modality is 'RTDOSE', expected 'CT'"):
        read_ct_series(path)


def test_folder_without_ct(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    save(rtdose_dataset(np.ones((2, 2, 2))), folder / "dose.dcm")
    with pytest.raises(DicomError, match=r"no CT slices found.*RTDOSE"):
        read_ct_series(folder)
    assert not inspect_ct_series(folder).ok


def test_empty_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DicomError, match="holds no files"):
        read_ct_series(tmp_path / "empty")
    with pytest.raises(DicomError, match="no such file or folder"):
        read_ct_series(tmp_path / "nope")
    with pytest.raises(DicomError, match="empty list"):
        read_ct_series([])


def test_truncated_slice(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    files = write_ct_series_files(folder, _raw((3, 8, 8)), shuffle_seed=None)
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) - 40])
    with pytest.raises(DicomError, match=r"slice_001\.dcm: truncated pixel data"):
        read_ct_series(folder)
    # Cut inside the header: the file is refused, never silently dropped (which would hide a missing slice).
    files[1].write_bytes(data[:200])
    with pytest.raises(DicomError, match=r"slice_001\.dcm: not a DICOM file"):
        read_ct_series(folder)
    report = inspect_ct_series(folder)
    assert not report.ok and any("slice_001.dcm" in p for p in report.problems)


def test_missing_position_tag(tmp_path: Path) -> None:
    ds = ct_slice_dataset(np.zeros((2, 2)))
    del ds.ImagePositionPatient
    path = save(ds, tmp_path / "a.dcm")
    with pytest.raises(DicomError, match=r"a\.dcm: missing or malformed \(0020,0037\).*\(0020,0032\)"):
        read_ct_series(path)


def test_report_to_dict_is_json_ready(tmp_path: Path) -> None:
    import json

    folder = tmp_path / "s"
    write_ct_series_files(folder, _raw((3, 2, 2)))
    d = inspect_ct_series(folder).to_dict()
    assert d["ok"] is True and d["number_of_slices"] == 3
    json.dumps(d)
