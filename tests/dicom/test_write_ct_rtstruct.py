"""CT-series and RTSTRUCT writers: valid DICOM, consistent UIDs, exact geometry, atomic folders."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

from intrepid.dicom import (
    StructureDefinition,
    mask_to_contours,
    read_ct_series,
    read_rtstruct,
    write_ct_series,
    write_rtstruct,
)
from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume


def _ct(shape: tuple[int, int, int] = (6, 20, 24)) -> Volume:
    grid = Grid(shape, (-23.0, -19.0, -7.5), (2.0, 2.0, 3.0))
    hu = np.full(shape, -1000.0)
    pts = grid.world_points()
    inside = pts[..., 0] ** 2 + pts[..., 1] ** 2 <= 15.0**2
    hu[inside] = 0.0
    return Volume(hu, grid, Quantity.CT_NUMBER, "HU", "1.2.826.0.1.3680043.9.7")


def test_ct_series_round_trip(tmp_path: Path) -> None:
    ct = _ct()
    info = write_ct_series(ct, tmp_path / "ct", patient_id="P1")
    assert len(info.files) == ct.shape[0]
    ds = pydicom.dcmread(info.files[0])
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == info.sop_instance_uids[0]
    assert ds.PatientID == "P1" and str(ds.PatientName)
    assert ds.FrameOfReferenceUID == ct.frame_of_reference_uid
    back = read_ct_series(tmp_path / "ct")
    assert back.grid.is_close(ct.grid)
    np.testing.assert_array_equal(back.array, ct.array)
    assert back.frame_of_reference_uid == ct.frame_of_reference_uid


def test_ct_series_refuses_bad_inputs(tmp_path: Path) -> None:
    ct = _ct()
    with pytest.raises(ParameterError, match="CT_NUMBER"):
        write_ct_series(ct.with_array(ct.array, quantity=Quantity.DOSE), tmp_path / "a")
    bad = ct.array.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        write_ct_series(ct.with_array(bad), tmp_path / "b")
    assert not (tmp_path / "b").exists()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    with pytest.raises(ParameterError, match="not empty"):
        write_ct_series(ct, tmp_path / "c")


def test_rtstruct_from_mask_and_contours(tmp_path: Path) -> None:
    ct = _ct()
    info = write_ct_series(ct, tmp_path / "ct")
    body = Volume(ct.array > -500, ct.grid, Quantity.MASK, "1", ct.frame_of_reference_uid)
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    z_planes = ct.grid.origin_mm[2] + ct.grid.axis_coordinates_mm(2)
    circle = tuple(np.column_stack([5 * np.cos(t), 5 * np.sin(t), np.full_like(t, z)]) for z in z_planes)
    path = write_rtstruct(
        tmp_path / "rs.dcm",
        [
            StructureDefinition("BODY", mask=body, roi_type="EXTERNAL"),
            StructureDefinition("T", contours=circle),
        ],
        info,
    )
    ss = read_rtstruct(path)
    assert [r.name for r in ss.rois] == ["BODY", "T"]
    assert ss.frame_of_reference_uid == ct.frame_of_reference_uid
    body_roi = ss.roi("BODY")
    assert len(body_roi.contours) == ct.shape[0]
    # The traced BODY contour of a 15 mm disc encloses ~π 15² mm² (marching squares on a 2 mm grid).
    pts = body_roi.contours[0].points_mm
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert area == pytest.approx(math.pi * 15.0**2, rel=0.08)


def test_mask_to_contours_of_empty_mask_is_empty() -> None:
    grid = Grid((2, 4, 4), (0, 0, 0), (1, 1, 1))
    assert mask_to_contours(Volume(np.zeros(grid.shape, bool), grid, Quantity.MASK)) == []


def test_rtstruct_refuses_duplicate_names(tmp_path: Path) -> None:
    info = write_ct_series(_ct(), tmp_path / "ct")
    tri = (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float),)
    with pytest.raises(ParameterError, match="unique"):
        write_rtstruct(tmp_path / "rs.dcm", [StructureDefinition("A", contours=tri)] * 2, info)
    assert not (tmp_path / "rs.dcm").exists()
