"""Tests of write_rtdose: round trips, the structure 3D Slicer needs, references, atomicity, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factories import rtdose_dataset, save
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, RTDoseStorage

from intrepid.dicom import read_rtdose, write_rtdose
from intrepid.errors import FrameOfReferenceError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume


def _dose(shape: tuple[int, ...] = (4, 5, 6), scale: float = 3.0, seed: int = 0, **grid_kw: object) -> Volume:
    rng = np.random.default_rng(seed)
    kw: dict[str, object] = {"origin_mm": (1.0, -2.0, 3.5), "spacing_mm": (2.5, 2.0, 3.0)}
    kw.update(grid_kw)
    return Volume(rng.random(shape) * scale, Grid(shape, **kw), Quantity.DOSE, "Gy")  # type: ignore[arg-type]


def _step(volume: Volume, bits: int) -> float:
    """Quantisation step of the writer: max / (2**bits - 2), up to the DS rounding (1e-10 relative)."""
    return float(volume.array.max()) / (2**bits - 2) * (1 + 1e-9)


@pytest.mark.parametrize("bits", [16, 32])
def test_round_trip_3d(tmp_path: Path, bits: int) -> None:
    vol = _dose()
    out = read_rtdose(write_rtdose(vol, tmp_path / "d.dcm", bits=bits))
    assert out.volume.grid.is_close(vol.grid, tolerance_mm=1e-9)
    # Rounding to the nearest stored integer: error <= half a step.
    assert np.max(np.abs(out.volume.array - vol.array)) <= _step(vol, bits) / 2
    assert out.volume.units == "Gy" and out.dose_units == "GY"


def test_round_trip_2d_one_frame(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    plane = Volume(
        rng.random((6, 7)) * 2, Grid((6, 7), (-5.0, 4.0, 10.0), (1.0, 1.5, 1.0)), Quantity.DOSE, "Gy"
    )
    path = write_rtdose(plane, tmp_path / "p.dcm")
    ds = pydicom.dcmread(path)
    assert int(ds.NumberOfFrames) == 1 and float(ds.GridFrameOffsetVector) == 0.0
    out = read_rtdose(path)
    assert out.volume.shape == (1, 6, 7)
    assert out.volume.grid.origin_mm == pytest.approx(plane.grid.origin_mm)
    assert np.max(np.abs(out.volume.array[0] - plane.array)) <= _step(plane, 32) / 2


def test_slicer_structure(tmp_path: Path) -> None:
    """What 3D Slicer's DICOM RT plugin needs: Part 10 file, RT Dose Storage, consistent UIDs, names."""
    vol = _dose(spacing_mm=(2.5, 2.0, 3.0))
    path = write_rtdose(vol, tmp_path / "d.dcm", description="test dose")
    raw = path.read_bytes()
    assert raw[128:132] == b"DICM"
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPClassUID == RTDoseStorage == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert str(ds.PatientName) and ds.PatientID
    for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID, ds.SOPInstanceUID):
        assert pydicom.uid.UID(uid).is_valid
    assert ds.Modality == "RTDOSE"
    assert ds.FrameIncrementPointer == pydicom.tag.Tag("GridFrameOffsetVector")
    assert [float(v) for v in ds.GridFrameOffsetVector] == [0.0, 3.0, 6.0, 9.0]
    # Pixel Spacing is [row spacing, column spacing] = [j, i] = [2.0, 2.5].
    assert [float(v) for v in ds.PixelSpacing] == [2.0, 2.5]
    assert [float(v) for v in ds.ImagePositionPatient] == [1.0, -2.0, 3.5]
    assert ds.SeriesDescription == "test dose"
    # Scaling uses the 32-bit range: the maximum is stored within 2 counts of the top.
    assert int(ds.pixel_array.max()) >= 2**32 - 3
    assert ds.DoseSummationType == "PLAN" and ds.DoseType == "PHYSICAL"


def test_reference_joins_patient_study_and_frame(tmp_path: Path) -> None:
    ref_ds = rtdose_dataset(np.ones((2, 3, 3)))
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.99"
    ref_ds.ReferencedRTPlanSequence = DicomSequence([item])
    ref = read_rtdose(save(ref_ds, tmp_path / "ref.dcm"))
    vol = ref.volume.with_array(ref.volume.array * 2)
    out_path = write_rtdose(vol, tmp_path / "new.dcm", reference=ref)
    ds = pydicom.dcmread(out_path)
    assert ds.PatientID == "FACTORY" and str(ds.PatientName) == "Test^Factory"
    assert ds.StudyInstanceUID == ref.study_instance_uid
    assert ds.FrameOfReferenceUID == ref.frame_of_reference_uid
    assert ds.SeriesInstanceUID != ref.series_instance_uid
    assert ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == "1.2.3.99"
    np.testing.assert_allclose(read_rtdose(out_path).max_dose, 2.0, rtol=1e-9)


def test_frame_of_reference_conflict(tmp_path: Path) -> None:
    vol = _dose()
    vol = Volume(vol.array, vol.grid, Quantity.DOSE, "Gy", frame_of_reference_uid="1.2.3")
    with pytest.raises(FrameOfReferenceError, match=r"frame_of_reference_uid 1\.2\.4 differs from volume"):
        write_rtdose(vol, tmp_path / "d.dcm", frame_of_reference_uid="1.2.4")
    assert not list(tmp_path.iterdir())
    path = write_rtdose(vol, tmp_path / "d.dcm")
    assert pydicom.dcmread(path).FrameOfReferenceUID == "1.2.3"


def test_slice_axis_against_normal(tmp_path: Path) -> None:
    """k = -normal: relative offsets run negative; reading gives back the same world samples."""
    direction = (1, 0, 0, 0, 1, 0, 0, 0, -1)
    vol = _dose(direction=direction)
    path = write_rtdose(vol, tmp_path / "d.dcm")
    assert [float(v) for v in pydicom.dcmread(path).GridFrameOffsetVector] == [0.0, -3.0, -6.0, -9.0]
    out = read_rtdose(path).volume
    for k in range(4):
        z = vol.grid.index_to_world([0, 0, k])
        kk = round(out.grid.world_to_index(z)[2])
        np.testing.assert_allclose(out.array[kk], vol.array[k], atol=_step(vol, 32) / 2)


def test_cgy_converted_and_other_quantities_relative(tmp_path: Path) -> None:
    vol = _dose()
    cgy = Volume(vol.array * 100, vol.grid, Quantity.DOSE, "cGy")
    out = read_rtdose(write_rtdose(cgy, tmp_path / "c.dcm"))
    assert out.volume.units == "Gy"
    np.testing.assert_allclose(out.volume.array, vol.array, atol=_step(vol, 32))
    gamma = Volume(vol.array, vol.grid, Quantity.GAMMA, "")
    assert read_rtdose(write_rtdose(gamma, tmp_path / "g.dcm")).dose_units == "RELATIVE"


def test_zero_dose(tmp_path: Path) -> None:
    vol = _dose(scale=0.0)
    out = read_rtdose(write_rtdose(vol, tmp_path / "z.dcm"))
    assert out.max_dose == 0.0


@settings(max_examples=20, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
    scale=st.floats(1e-3, 1e3),
    origin=st.tuples(*[st.floats(-500, 500)] * 3),
    spacing=st.tuples(*[st.floats(0.1, 10)] * 3),
)
def test_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory,
    shape: tuple[int, int, int],
    scale: float,
    origin: tuple[float, float, float],
    spacing: tuple[float, float, float],
) -> None:
    vol = _dose(shape, scale=scale, origin_mm=origin, spacing_mm=spacing)
    out = read_rtdose(write_rtdose(vol, tmp_path_factory.mktemp("rt") / "d.dcm")).volume
    # DS strings keep 10+ significant digits: positions within 1e-6 mm of the requested ones.
    assert out.grid.is_close(vol.grid, tolerance_mm=1e-6)
    assert np.max(np.abs(out.array - vol.array)) <= _step(vol, 32) / 2


# ------------------------------------------------------------------------------------------ bad inputs
def test_negative_dose_refused(tmp_path: Path) -> None:
    vol = _dose()
    bad = vol.with_array(vol.array - 1.0)
    with pytest.raises(ParameterError, match=r"dose must be >= 0 everywhere, got a minimum of -"):
        write_rtdose(bad, tmp_path / "d.dcm")
    assert not list(tmp_path.iterdir())


def test_nan_refused(tmp_path: Path) -> None:
    vol = _dose()
    arr = vol.array.copy()
    arr[0, 0, 0] = np.nan
    with pytest.raises(ParameterError, match=r"contains 1 NaN or infinite"):
        write_rtdose(vol.with_array(arr), tmp_path / "d.dcm")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bits": 8}, r"bits must be 16 or 32, got 8"),
        ({"summation_type": "TOTAL"}, r"summation_type must be one of PLAN.*got 'TOTAL'"),
        ({"dose_type": "ERROR"}, r"dose_type must be PHYSICAL or EFFECTIVE, got 'ERROR'"),
        ({"patient_id": ""}, r"patient_id must be non-empty"),
        ({"patient_name": " "}, r"patient_name must be non-empty"),
        ({"study_instance_uid": "abc"}, r"study_instance_uid must be a valid DICOM UID"),
    ],
)
def test_bad_parameters(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        write_rtdose(_dose(), tmp_path / "d.dcm", **kwargs)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_bad_units_and_type(tmp_path: Path) -> None:
    vol = _dose()
    with pytest.raises(ParameterError, match=r"volume\.units must be 'Gy', 'cGy' or 'relative'.*'mm'"):
        write_rtdose(Volume(vol.array, vol.grid, Quantity.DOSE, "mm"), tmp_path / "d.dcm")
    with pytest.raises(ParameterError, match="volume must be an intrepid Volume, got ndarray"):
        write_rtdose(vol.array, tmp_path / "d.dcm")  # type: ignore[arg-type]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="output folder does not exist"):
        write_rtdose(_dose(), tmp_path / "nope" / "d.dcm")


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import intrepid.dicom._patient as patient

    def broken(path: Path, ds: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(patient.pydicom, "dcmwrite", broken)
    with pytest.raises(OSError, match="disk full"):
        write_rtdose(_dose(), tmp_path / "d.dcm")
    assert not list(tmp_path.iterdir())


@pytest.mark.peer
def test_gdcm_reads_same_geometry(tmp_path: Path) -> None:
    """An independent parser (GDCM through SimpleITK) finds the same grid; it returns the stored integers
    (no Dose Grid Scaling), so values are compared after scaling, to half a quantisation step."""
    sitk = pytest.importorskip("SimpleITK")
    vol = _dose()
    path = write_rtdose(vol, tmp_path / "d.dcm")
    image = sitk.ReadImage(str(path))
    assert image.GetOrigin() == pytest.approx(vol.grid.origin_mm)
    assert image.GetSpacing() == pytest.approx(vol.grid.spacing_mm)
    assert image.GetDirection() == pytest.approx(vol.grid.direction)
    stored = sitk.GetArrayFromImage(image)
    scaled = stored * float(pydicom.dcmread(path).DoseGridScaling)
    assert np.max(np.abs(scaled - vol.array)) <= _step(vol, 32) / 2
