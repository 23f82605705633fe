"""RT Ion Plan device export (round trip through read_rtplan and pydicom), milling CSV and closed STL."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
import shapely

from intrepid.devices import (
    BeamGeometry,
    CompensatorSettings,
    compensator_surface_mesh,
    design_compensator,
    write_compensator_csv,
    write_compensator_stl,
    write_ion_plan_devices,
)
from intrepid.dicom import read_rtplan
from intrepid.errors import DicomError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume


@pytest.fixture(scope="module")
def compensator() -> object:
    g = Grid((41, 61, 41), origin_mm=(-20, -30, -20), spacing_mm=(1, 1, 1))
    ax = [g.origin_mm[a] + g.axis_coordinates_mm(a) for a in range(3)]
    z, y, x = np.meshgrid(ax[2], ax[1], ax[0], indexing="ij")
    rsp = Volume(np.where(y >= -25.5, 1.0, 0.0).astype(np.float32), g, Quantity.RELATIVE_STOPPING_POWER)
    target = Volume(x**2 + y**2 + z**2 <= 12.0**2, g, Quantity.MASK)
    geo = BeamGeometry(sad_mm=(1800.0, 2000.0), gantry_deg=0.0, isocenter_mm=(0.0, 0.0, 0.0))
    return design_compensator(
        rsp, target, geo, CompensatorSettings(min_thickness_mm=2.0, milling_tool_diameter_mm=3.0)
    )


def test_round_trip_through_read_rtplan(tmp_path: Path, compensator: object) -> None:
    comp = compensator
    ap = shapely.Point(0, 0).buffer(15, quad_segs=8)
    out = write_ion_plan_devices(
        tmp_path / "devices.dcm",
        geometry=comp.geometry,
        aperture=ap,  # type: ignore
        compensator=comp,
        aperture_distance_mm=150.0,
        nominal_energy_mev=120.0,
    )
    plan = read_rtplan(out)
    assert plan.is_ion
    beam = plan.beams[0]
    assert beam.sad_mm == (1800.0, 2000.0)
    assert beam.nominal_energy == 120.0
    rc = beam.range_compensators[0]
    # thickness written with 3 decimals (DS): 0.0005 mm
    np.testing.assert_allclose(rc.thickness_mm, comp.thickness_mm, atol=6e-4)  # type: ignore[attr-defined]
    assert rc.pixel_spacing_mm == pytest.approx(comp.pixel_spacing_iso_mm)  # type: ignore[attr-defined]
    x0, y0 = comp.first_pixel_iso_mm  # type: ignore[attr-defined]
    sr, sc = comp.pixel_spacing_iso_mm  # type: ignore[attr-defined]
    assert rc.position_mm == pytest.approx((x0 - sc / 2, y0 + sr / 2), abs=1e-6)
    assert rc.relative_stopping_power == pytest.approx(1.165)
    assert rc.milling_tool_diameter_mm == pytest.approx(3.0)
    assert rc.isocenter_to_compensator_tray_mm == pytest.approx(200.0)
    np.testing.assert_allclose(rc.isocenter_to_compensator_distances_mm, 200.0 + rc.thickness_mm, atol=1e-3)
    block = beam.blocks[0]
    assert block.block_type.value == "APERTURE" and block.isocenter_to_block_tray_mm == 150.0
    assert shapely.Polygon(block.points_mm).area == pytest.approx(ap.area, rel=1e-6)


def test_plain_pydicom_reads_it(tmp_path: Path, compensator: object) -> None:
    out = write_ion_plan_devices(
        tmp_path / "rc.dcm",
        geometry=compensator.geometry,  # type: ignore[attr-defined]
        compensator=compensator,
    )
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == pydicom.uid.RTIonPlanStorage
    item = ds.IonBeamSequence[0].IonRangeCompensatorSequence[0]
    assert int(item.CompensatorRows) * int(item.CompensatorColumns) == len(item.CompensatorThicknessData)
    assert ds.IonBeamSequence[0].NumberOfCompensators == 1 and ds.IonBeamSequence[0].NumberOfBlocks == 0


def test_reference_plan_gives_patient_and_frame(tmp_path: Path, compensator: object) -> None:
    first = write_ion_plan_devices(
        tmp_path / "a.dcm",
        geometry=compensator.geometry,  # type: ignore[attr-defined]
        compensator=compensator,
        patient_id="P123",
        patient_name="Test^Patient",
        nominal_energy_mev=150.0,
    )
    second = write_ion_plan_devices(
        tmp_path / "b.dcm",
        geometry=compensator.geometry,  # type: ignore
        compensator=compensator,
        reference_plan=first,
    )
    a, b = pydicom.dcmread(first), pydicom.dcmread(second)
    assert b.PatientID == "P123" and b.StudyInstanceUID == a.StudyInstanceUID
    assert b.FrameOfReferenceUID == a.FrameOfReferenceUID
    assert float(b.IonBeamSequence[0].IonControlPointSequence[0].NominalBeamEnergy) == 150.0


def test_milling_csv(tmp_path: Path, compensator: object) -> None:
    path = write_compensator_csv(tmp_path / "rc.csv", compensator)  # type: ignore[arg-type]
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#") and lines[1] == "row,column,x_mm,y_mm,thickness_mm"
    data = np.loadtxt(lines[2:], delimiter=",")
    rows, cols = compensator.shape  # type: ignore[attr-defined]
    assert data.shape == (rows * cols, 5)
    np.testing.assert_allclose(data[:, 4].reshape(rows, cols), compensator.thickness_mm, atol=5e-4)  # type: ignore


def test_surface_mesh_is_closed_and_outward(compensator: object) -> None:
    verts, faces = compensator_surface_mesh(compensator)  # type: ignore[arg-type]
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)  # every edge shared by exactly two triangles: watertight
    # divergence theorem: the signed volume equals the integral of the thickness (trapezoids over the cells)
    tri = verts[faces]
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
    t = compensator.thickness_mm  # type: ignore[attr-defined]
    s = compensator.pixel_spacing_mm[0]  # type: ignore[attr-defined]
    cells = (t[:-1, :-1] + t[:-1, 1:] + t[1:, :-1] + t[1:, 1:]) / 4.0
    # the top surface splits each cell into two triangles: the cell-corner mean is exact to second order
    assert volume == pytest.approx(float(cells.sum()) * s * s, rel=0.01)


@pytest.mark.parametrize("binary", [True, False])
def test_stl_files(tmp_path: Path, compensator: object, binary: bool) -> None:
    path = write_compensator_stl(tmp_path / "rc.stl", compensator, binary=binary)  # type: ignore[arg-type]
    _, faces = compensator_surface_mesh(compensator)  # type: ignore[arg-type]
    raw = path.read_bytes()
    if binary:
        (n,) = struct.unpack("<I", raw[80:84])
        assert n == len(faces) and len(raw) == 84 + 50 * n
    else:
        text = raw.decode()
        assert text.startswith("solid") and text.count("facet normal") == len(faces)


def test_export_errors(tmp_path: Path, compensator: object) -> None:
    geo = compensator.geometry  # type: ignore[attr-defined]
    with pytest.raises(ParameterError, match="give an aperture, a compensator or both"):
        write_ion_plan_devices(tmp_path / "x.dcm", geometry=geo)
    with pytest.raises(ParameterError, match="aperture_distance_mm is required"):
        write_ion_plan_devices(tmp_path / "x.dcm", geometry=geo, aperture=shapely.box(0, 0, 1, 1))
    with pytest.raises(DicomError, match="no such file"):
        write_ion_plan_devices(
            tmp_path / "x.dcm",
            geometry=geo,
            compensator=compensator,  # type: ignore[arg-type]
            reference_plan=tmp_path / "missing.dcm",
        )
    assert not (tmp_path / "x.dcm").exists()
