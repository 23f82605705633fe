"""Tests of the RT Structure Set reader and of ROI masks and meshes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from intrepid.dicom import (
    ContourType,
    RoiNotFoundError,
    read_rtstruct,
    roi_fractional_mask,
    roi_mask,
    roi_mesh,
)
from intrepid.errors import DicomError, FrameOfReferenceError, IntrepidError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume

FOR_UID = "1.2.826.0.1.3680043.8.498.1"
RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


def _square(half: float, z: float, cx: float = 0.0) -> list[float]:
    pts = [[cx - half, -half, z], [cx + half, -half, z], [cx + half, half, z], [cx - half, half, z]]
    return [float(v) for p in pts for v in p]


def _write_rtstruct(
    path: Path, rois: Sequence[tuple[int, str, str, list[tuple[str, list[float]]]]], *,
    extra_contour_roi: int | None = None, modality: str = "RTSTRUCT",
) -> Path:
    """Minimal RTSTRUCT: rois = [(number, name, type, [(geometric type, contour data)])]."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = RTSTRUCT_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.StructureSetLabel = "TEST"
    ref = Dataset()
    ref.FrameOfReferenceUID = FOR_UID
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([ref])
    ss_rois, contours, observations = [], [], []
    for number, name, roi_type, items in rois:
        r = Dataset()
        r.ROINumber = number
        r.ReferencedFrameOfReferenceUID = FOR_UID
        r.ROIName = name
        ss_rois.append(r)
        o = Dataset()
        o.ObservationNumber = number
        o.ReferencedROINumber = number
        o.RTROIInterpretedType = roi_type
        observations.append(o)
        c = Dataset()
        c.ReferencedROINumber = number
        c.ROIDisplayColor = [255, 0, number]
        seq = []
        for n, (gtype, data) in enumerate(items):
            ci = Dataset()
            ci.ContourGeometricType = gtype
            ci.NumberOfContourPoints = len(data) // 3
            ci.ContourNumber = n + 1
            ci.ContourData = data
            seq.append(ci)
        if seq:
            c.ContourSequence = DicomSequence(seq)
        contours.append(c)
    if extra_contour_roi is not None:
        c = Dataset()
        c.ReferencedROINumber = extra_contour_roi
        contours.append(c)
    ds.StructureSetROISequence = DicomSequence(ss_rois)
    ds.ROIContourSequence = DicomSequence(contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    ring = [("CLOSED_PLANAR", _square(10, z)) for z in (0.0, 2.0, 4.0)]
    ring += [("CLOSED_PLANAR", _square(5, z)) for z in (0.0, 2.0, 4.0)]  # holes
    two = [("CLOSED_PLANAR", _square(2, 0.0, cx=-20)), ("CLOSED_PLANAR", _square(2, 0.0, cx=20))]
    return _write_rtstruct(tmp_path / "rs.dcm", [
        (1, "Ring", "ORGAN", ring),
        (2, "Iso", "ISOCENTER", [("POINT", [1.0, 2.0, 3.0])]),
        (3, "Empty", "AVOIDANCE", []),
        (4, "Two Blobs", "PTV", two),
        (5, "Line", "MARKER", [("OPEN_PLANAR", [0, 0, 0, 5, 5, 0, 9, 0, 0])]),
    ])


def test_pydicom_rtstruct() -> None:
    ss = read_rtstruct(get_testdata_file("rtstruct.dcm"))
    assert ss.names == ("patient", "Isocenter 1", "Isocenter 2")
    assert ss.frame_of_reference_uid == "1.2.826.0.1.3680043.8.498.2010020400001.2"
    patient = ss.roi("PATIENT ")
    assert (patient.number, patient.roi_type, patient.color) == (1, "EXTERNAL", (220, 160, 120))
    assert len(patient.contours) == 3 and patient.contours[0].points_mm.shape == (5, 3)
    assert patient.z_planes_mm.tolist() == [-200.0, -190.0, -180.0]
    iso = ss.roi(2)
    assert iso.is_point and iso.roi_type == "ISOCENTER" and iso.points_mm.tolist() == [[0.0, 0.0, 0.0]]
    summary = ss.summary()
    assert summary["rois"][0] == {
        "number": 1, "name": "patient", "type": "EXTERNAL", "color": [220, 160, 120],
        "contours": 3, "planes": 3, "empty": False, "point": False,
    }


def test_roi_lookup_error_lists_names() -> None:
    ss = read_rtstruct(get_testdata_file("rtstruct.dcm"))
    with pytest.raises(RoiNotFoundError, match=r"no ROI 'Heart'.*available: patient, Isocenter 1, Isoc"):
        ss.roi("Heart")
    with pytest.raises(IntrepidError):
        ss.roi(99)
    with pytest.raises(KeyError):  # RoiNotFoundError is also a KeyError
        ss.roi("nope")


def test_wrong_modality_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DicomError, match=r"Modality is 'RTPLAN', expected RTSTRUCT"):
        read_rtstruct(get_testdata_file("rtplan.dcm"))
    with pytest.raises(DicomError, match="no such file"):
        read_rtstruct(tmp_path / "missing.dcm")


def test_synthetic_structure_kinds(synthetic: Path) -> None:
    ss = read_rtstruct(synthetic)
    ring, iso, empty, blobs, line = ss.rois
    assert ring.roi_type == "ORGAN" and len(ring.contours) == 6 and ring.z_planes_mm.tolist() == [0, 2, 4]
    assert iso.is_point and not iso.is_empty and iso.points_mm.tolist() == [[1, 2, 3]]
    assert empty.is_empty and not empty.is_point and empty.contours == ()
    assert line.contours[0].geometric_type is ContourType.OPEN_PLANAR and line.area_contours == ()
    assert blobs.color == (255, 0, 4)
    with pytest.raises(ValueError):  # contour arrays are read-only
        ring.contours[0].points_mm[0, 0] = 1.0


def test_masks_with_holes_and_end_caps(synthetic: Path) -> None:
    ss = read_rtstruct(synthetic)
    grid = Grid((10, 30, 30), origin_mm=(-14.5, -14.5, -3.0), spacing_mm=(1, 1, 1))
    ring = ss.roi("ring")
    frac = roi_fractional_mask(ring, grid)
    # Annulus (20² − 10²) mm² on three planes 2 mm apart: slabs cover [-1, 5], 6 mm.
    assert float(frac.array.sum(dtype=np.float64)) * grid.voxel_volume_mm3 == pytest.approx(300 * 6, rel=1e-6)
    assert frac.quantity is Quantity.MASK and frac.array.dtype == np.float32
    assert frac.frame_of_reference_uid == FOR_UID and frac.metadata["roi_name"] == "Ring"
    mask = roi_mask(ring, grid)
    assert mask.array.dtype == bool and not mask.array[3, 15, 15] and mask.array[3, 15, 7]
    # Slices at z = -1 (slab edge, included), 0 ... 4 → 6 slices × 300 voxels.
    assert int(mask.array.sum()) == 6 * 300


def test_empty_point_and_open_rois_give_zero_masks(synthetic: Path) -> None:
    ss = read_rtstruct(synthetic)
    grid = Grid((4, 10, 10), origin_mm=(-4.5, -4.5, 0), spacing_mm=(1, 1, 1))
    for name in ("Empty", "Iso", "Line"):
        roi = ss.roi(name)
        assert not roi_mask(roi, grid).array.any()
        assert float(roi_fractional_mask(roi, grid).array.sum()) == 0.0
        assert roi_mesh(roi).is_empty


def test_single_plane_roi_gets_one_voxel_thick_slab(synthetic: Path) -> None:
    blobs = read_rtstruct(synthetic).roi("Two Blobs")
    grid = Grid((3, 20, 120), origin_mm=(-29.75, -4.75, -2.5), spacing_mm=(0.5, 0.5, 2.5))
    occ = roi_fractional_mask(blobs, grid)
    # Two 4 × 4 mm squares on one plane, slab = grid z spacing 2.5 mm.
    assert float(occ.array.sum(dtype=np.float64)) * grid.voxel_volume_mm3 == pytest.approx(2 * 16 * 2.5)


def test_frame_of_reference_mismatch_and_bad_target(synthetic: Path) -> None:
    ring = read_rtstruct(synthetic).roi("Ring")
    grid = Grid((2, 4, 4), (0, 0, 0), (1, 1, 1))
    other = Volume(np.zeros(grid.shape), grid, frame_of_reference_uid="9.9.9")
    with pytest.raises(FrameOfReferenceError, match=rf"{FOR_UID}.*9\.9\.9"):
        roi_mask(ring, other)
    with pytest.raises(FrameOfReferenceError, match=r"9\.9\.9"):
        roi_fractional_mask(ring, other)
    same = Volume(np.zeros(grid.shape), grid, frame_of_reference_uid=FOR_UID)
    assert roi_mask(ring, same).frame_of_reference_uid == FOR_UID
    with pytest.raises(ParameterError, match="must be a Grid or a Volume"):
        roi_mask(ring, np.zeros((2, 2, 2)))  # type: ignore[arg-type]


def test_roi_mesh_closed_with_model_volume(synthetic: Path) -> None:
    ring = read_rtstruct(synthetic).roi("Ring")
    mesh = roi_mesh(ring, spacing_mm=0.25)
    assert mesh.is_closed()
    # Annulus 300 mm² × 6 mm. The 0.5 iso-surface of the exact occupancy lies on the flat walls, but marching
    # cubes bevels the box edges (loss ∝ spacing × edge length: 1.6 % at 0.5 mm, 0.4 % at 0.25 mm).
    assert mesh.volume_mm3() == pytest.approx(1800, rel=0.01)
    coarse = roi_mesh(ring, spacing_mm=1.0)
    assert coarse.is_closed() and coarse.volume_mm3() < mesh.volume_mm3() < 1800
    lo, hi = mesh.bounds
    np.testing.assert_allclose(lo, [-10, -10, -1], atol=0.3)
    np.testing.assert_allclose(hi, [10, 10, 5], atol=0.3)
    with pytest.raises(ParameterError, match="spacing_mm must be one or three values > 0"):
        roi_mesh(ring, spacing_mm=-1.0)


def test_sphere_roi_mesh_volume(tmp_path: Path) -> None:
    r = 10.0
    items = []
    for z in np.arange(-9.0, 9.01, 1.0):
        t = np.linspace(0, 2 * np.pi, 180, endpoint=False)
        rr = math.sqrt(r * r - z * z)
        items.append(("CLOSED_PLANAR", np.column_stack([rr * np.cos(t), rr * np.sin(t), np.full(180, z)])
                       .reshape(-1).tolist()))
    roi = read_rtstruct(_write_rtstruct(tmp_path / "s.dcm", [(1, "S", "PTV", items)])).roi("S")
    mesh = roi_mesh(roi, spacing_mm=0.5)
    model = sum(math.pi * (r * r - z * z) for z in np.arange(-9.0, 9.01, 1.0))  # 1 mm slabs
    assert mesh.is_closed()
    assert mesh.volume_mm3() == pytest.approx(model, rel=0.01)  # 0.5 mm marching cubes: < 1 %
    assert mesh.volume_mm3() == pytest.approx(4 / 3 * math.pi * r**3, rel=0.02)


def test_malformed_files(tmp_path: Path) -> None:
    bad = _write_rtstruct(tmp_path / "bad.dcm", [(1, "A", "ORGAN", [("CLOSED_PLANAR", [0.0, 1.0])])])
    with pytest.raises(DicomError, match=r"bad.dcm: .*\(3006,0050\) ContourData has 2 value\(s\)"):
        read_rtstruct(bad)
    orphan = _write_rtstruct(tmp_path / "orphan.dcm", [(1, "A", "ORGAN", [])], extra_contour_roi=7)
    with pytest.raises(DicomError, match=r"references ROI Number\(s\) \[7\]"):
        read_rtstruct(orphan)
    gtype = _write_rtstruct(tmp_path / "gtype.dcm", [(1, "A", "ORGAN", [("CURVE", [0.0, 0.0, 0.0])])])
    with pytest.raises(DicomError, match="ContourGeometricType is 'CURVE'"):
        read_rtstruct(gtype)


# ----------------------------------------------------------------------------------------------- real data
@pytest.mark.external
def test_dicompyler_structure_set(external_data: Path) -> None:
    ss = read_rtstruct(external_data / "dicompyler-example" / "rtss.dcm")
    assert len(ss) == 10
    body = ss.roi("body")
    assert len(body.contours) == 141 and body.z_planes_mm.size == 98 and body.roi_type == "EXTERNAL"
    assert ss.roi("Areola").is_empty
    grid = Grid((98, 129, 194), origin_mm=(-228.6541915, -419.2444776, -122.4407), spacing_mm=(2.5, 2.5, 3.0))
    volumes_cc = {}
    for roi in ss:
        frac = roi_fractional_mask(roi, grid, crop=True)
        binary = roi_mask(roi, grid)
        v_frac = float(frac.array.sum(dtype=np.float64)) * grid.voxel_volume_mm3 / 1000
        v_bin = float(binary.array.sum()) * grid.voxel_volume_mm3 / 1000
        volumes_cc[roi.name] = v_frac
        if v_frac > 100:  # large ROIs: voxel-centre and exact volumes agree to 0.5 %
            assert v_bin == pytest.approx(v_frac, rel=0.005)
    assert volumes_cc["Areola"] == 0.0
    # Eclipse's DVH volumes in the RTDOSE: large organs agree within 2 % (different end-cap conventions
    # matter only for small ROIs).
    assert volumes_cc["Heart"] == pytest.approx(437.46, rel=0.02)
    assert volumes_cc["Lt Lung"] == pytest.approx(2008.95, rel=0.02)
    assert volumes_cc["Breast"] == pytest.approx(396.23, rel=0.02)


@pytest.mark.external
def test_dicompyler_meshes_closed(external_data: Path) -> None:
    ss = read_rtstruct(external_data / "dicompyler-example" / "rtss.dcm")
    for name in ("Heart", "Scar", "Tumor Bed", "Nodes", "Borders"):
        mesh = roi_mesh(ss.roi(name), spacing_mm=1.0)
        assert mesh.is_closed(), name
        occ = roi_fractional_mask(ss.roi(name), Grid((1, 1, 1), (0, 0, 0), (1, 1, 1)))
        assert occ.array.shape == (1, 1, 1)
