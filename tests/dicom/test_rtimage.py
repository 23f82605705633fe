"""Tests of read_rtimage: vendor conventions (Elekta iView, Varian aS), geometry, bad inputs, real files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factories import rtimage_dataset, save, write_ct_series_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from intrepid.dicom import SignalConvention, Vendor, read_rtimage
from intrepid.errors import DicomError
from intrepid.geometry import Quantity


def _field(shape: tuple[int, int] = (8, 10)) -> np.ndarray:
    raw = np.full(shape, 60000, dtype=np.uint16)  # iView background: high values
    raw[2:6, 3:7] = 20000  # irradiated field: low stored values
    return raw


def test_elekta_inverted_without_file_meta(tmp_path: Path) -> None:
    """iView: Manufacturer ELEKTA, no gantry angle, no file meta / transfer syntax: signal = 65535 - raw."""
    raw = _field()
    path = save(
        rtimage_dataset(raw, manufacturer="ELEKTA", gantry_deg=None, image_plane_spacing_mm=(0.405, 0.405)),
        tmp_path / "iview.dcm",
        file_meta=False,
    )
    assert path.read_bytes()[128:132] != b"DICM"  # really no preamble / meta
    img = read_rtimage(path)
    assert img.vendor is Vendor.ELEKTA
    assert img.signal_convention is SignalConvention.INVERTED
    np.testing.assert_array_equal(img.signal, 65535.0 - raw)
    np.testing.assert_array_equal(img.raw, raw)
    assert img.signal[4, 5] > img.signal[0, 0]  # more dose = more signal
    assert img.gantry_deg is None
    assert img.pixel_units == "raw"
    assert img.image.quantity is Quantity.EPID_SIGNAL
    assert img.sid_mm == 1600.0 and img.sad_mm == 1000.0
    assert img.pixel_spacing_mm == (0.405, 0.405)
    # Isocentre spacing = detector spacing × SAD / SID = 0.405 × 1000 / 1600.
    assert img.pixel_spacing_iso_mm == pytest.approx((0.253125, 0.253125))


def test_elekta_heuristic_without_manufacturer(tmp_path: Path) -> None:
    raw = np.full((1024, 1024), 65000, dtype=np.uint16)
    path = save(
        rtimage_dataset(raw, image_plane_spacing_mm=(0.405, 0.405), sid_mm=1600.0, gantry_deg=None),
        tmp_path / "iview.dcm",
        file_meta=False,
    )
    img = read_rtimage(path)
    assert img.vendor is Vendor.ELEKTA
    assert img.signal.max() == 535.0


def test_generic_not_mistaken_for_elekta(tmp_path: Path) -> None:
    path = save(rtimage_dataset(_field(), sid_mm=1500.0), tmp_path / "g.dcm")
    img = read_rtimage(path)
    assert img.vendor is Vendor.GENERIC
    assert img.signal_convention is SignalConvention.RAW
    np.testing.assert_array_equal(img.signal, _field())


def test_varian_negative_slope(tmp_path: Path) -> None:
    raw = _field()
    slope, intercept = -0.015583806, 255.325077504  # values of a real aS1000 dosimetry image
    ds = rtimage_dataset(
        raw,
        manufacturer="Varian Medical Systems",
        image_plane_spacing_mm=(0.392, 0.392),
        sid_mm=1000.0,
        slope=slope,
        intercept=intercept,
        rescale_type="CU",
    )
    img = read_rtimage(save(ds, tmp_path / "v.dcm"))
    assert img.vendor is Vendor.VARIAN
    assert img.signal_convention is SignalConvention.RESCALED
    assert img.pixel_units == "CU"
    np.testing.assert_allclose(img.signal, raw * slope + intercept, rtol=1e-12)
    assert img.signal[4, 5] > img.signal[0, 0]
    assert img.pixel_spacing_iso_mm == pytest.approx((0.392, 0.392))  # SID = SAD


def test_portal_dose_in_cgy_converted_to_gy(tmp_path: Path) -> None:
    raw = _field()
    ds = rtimage_dataset(raw, slope=0.01, intercept=0.0, rescale_type="CGY", sid_mm=1500.0)
    img = read_rtimage(save(ds, tmp_path / "pd.dcm"))
    assert img.image.quantity is Quantity.PORTAL_DOSE
    assert img.pixel_units == "Gy"
    np.testing.assert_allclose(img.signal, raw * 0.01 * 0.01)


def test_geometry_centred_and_non_square(tmp_path: Path) -> None:
    """No RT Image Position: centred on the beam axis; i along +x, j along -y; [row, column] spacing."""
    raw = np.zeros((5, 7), dtype=np.uint16)
    path = save(rtimage_dataset(raw, image_plane_spacing_mm=(0.5, 0.25), sid_mm=1500.0), tmp_path / "g.dcm")
    img = read_rtimage(path)
    g = img.image.grid
    assert g.spacing_mm[:2] == (0.25, 0.5)
    centre = g.index_to_world([3, 2])  # central pixel (column 3, row 2)
    assert centre == pytest.approx([0.0, 0.0, 0.0])
    assert g.index_to_world([4, 2])[0] == pytest.approx(0.25)  # next column: +x
    assert g.index_to_world([3, 3])[1] == pytest.approx(-0.5)  # next row: -y
    assert img.pixel_spacing_iso_mm == pytest.approx((0.5 / 1.5, 0.25 / 1.5))
    assert img.image.frame_of_reference_uid is None  # receptor plane, not the patient frame
    assert img.image.metadata["coordinate_frame"] == "IEC_IMAGE_RECEPTOR"


def test_rt_image_position_used(tmp_path: Path) -> None:
    path = save(rtimage_dataset(np.zeros((4, 4), np.uint16), position_mm=(-10.0, 20.0)), tmp_path / "g.dcm")
    assert read_rtimage(path).image.grid.origin_mm == (-10.0, 20.0, 0.0)


def test_angles_from_exposure_sequence_and_meterset(tmp_path: Path) -> None:
    ds = rtimage_dataset(np.zeros((4, 4), np.uint16), gantry_deg=None)
    item = Dataset()
    item.GantryAngle = 270.0
    item.BeamLimitingDeviceAngle = 15.0
    item.MetersetExposure = 42.5
    item.ExposureTime = 1200
    ds.ExposureSequence = DicomSequence([item])
    img = read_rtimage(save(ds, tmp_path / "e.dcm"))
    assert img.gantry_deg == 270.0 and img.collimator_deg == 15.0 and img.couch_deg is None
    assert img.meterset == 42.5 and img.exposure_time_ms == 1200.0


def test_pixel_spacing_fallback_and_default_sad(tmp_path: Path) -> None:
    ds = rtimage_dataset(np.zeros((4, 4), np.uint16), image_plane_spacing_mm=None, sad_mm=None)
    ds.PixelSpacing = [0.3, 0.3]
    # A handler on the module's own logger: independent of how the CLI configured the "intrepid" logger.
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("intrepid.dicom._rtimage")
    logger.addHandler(handler)
    try:
        img = read_rtimage(save(ds, tmp_path / "p.dcm"))
    finally:
        logger.removeHandler(handler)
    assert img.pixel_spacing_mm == (0.3, 0.3)
    assert img.sad_mm == 1000.0
    assert any("RadiationMachineSAD" in r.getMessage() for r in records)


def test_describe_has_cli_keys(tmp_path: Path) -> None:
    img = read_rtimage(save(rtimage_dataset(_field()), tmp_path / "g.dcm"))
    d = img.describe()
    for key in (
        "rows",
        "columns",
        "pixel_spacing_mm",
        "pixel_spacing_iso_mm",
        "sid_mm",
        "sad_mm",
        "gantry_deg",
        "vendor",
        "pixel_units",
    ):
        assert key in d


# ------------------------------------------------------------------------------------------ bad inputs
def test_missing_spacing(tmp_path: Path) -> None:
    path = save(rtimage_dataset(np.zeros((4, 4), np.uint16), image_plane_spacing_mm=None), tmp_path / "n.dcm")
    with pytest.raises(
        DicomError, match=r"n\.dcm: missing required tag \(3002,0011\) ImagePlanePixelSpacing"
    ):
        read_rtimage(path)


def test_missing_sid_non_elekta(tmp_path: Path) -> None:
    path = save(rtimage_dataset(np.zeros((4, 4), np.uint16), sid_mm=None), tmp_path / "n.dcm")
    with pytest.raises(DicomError, match=r"missing required tag \(3002,0026\) RTImageSID"):
        read_rtimage(path)


def test_missing_sid_elekta_assumes_1600(tmp_path: Path) -> None:
    path = save(
        rtimage_dataset(np.zeros((4, 4), np.uint16), sid_mm=None, manufacturer="Elekta"), tmp_path / "n.dcm"
    )
    assert read_rtimage(path).sid_mm == 1600.0


def test_wrong_modality(tmp_path: Path) -> None:
    files = write_ct_series_files(tmp_path / "ct", np.zeros((1, 2, 2), np.int16))
    with pytest.raises(DicomError, match=r"Modality is 'CT', expected RTIMAGE"):
        read_rtimage(files[0])


def test_multiframe_refused(tmp_path: Path) -> None:
    ds = rtimage_dataset(np.zeros((4, 4), np.uint16))
    ds.NumberOfFrames = 2
    with pytest.raises(DicomError, match=r"\(0028,0008\) NumberOfFrames is 2"):
        read_rtimage(save(ds, tmp_path / "m.dcm"))


def test_truncated(tmp_path: Path) -> None:
    path = save(rtimage_dataset(np.zeros((64, 64), np.uint16)), tmp_path / "t.dcm")
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(DicomError, match=r"t\.dcm: truncated"):
        read_rtimage(path)


# ------------------------------------------------------------------------------------------ real data
@pytest.mark.external
def test_varian_real_linearity(external_data: Path) -> None:
    path = external_data / "varian-epid" / "RI_test_linearity.dcm"
    ds = pydicom.dcmread(path)
    img = read_rtimage(path)
    assert img.vendor is Vendor.VARIAN
    assert (img.rows, img.columns) == (768, 1024)
    assert img.pixel_spacing_mm == (0.392, 0.392)
    assert img.sid_mm == 1000.0 and img.sad_mm == 1000.0
    assert img.pixel_spacing_iso_mm == pytest.approx((0.392, 0.392))
    assert img.gantry_deg == 0.0
    assert img.pixel_units == "CU"
    assert float(ds.RescaleSlope) < 0
    # README: 10 x 10 field, 100 MU, about 100 CU at the centre (a 5 x 5 pixel mean; 3 % tolerance covers the
    # detector's calibration and the 100.06 MU delivered).
    centre = img.signal[384 - 2 : 384 + 3, 512 - 2 : 512 + 3].mean()
    assert centre == pytest.approx(100.0, rel=0.03)
    assert img.meterset == pytest.approx(100.06)
    # Geometry: RT Image Position is the first pixel; the image centre lies near the beam axis.
    assert img.image.grid.origin_mm[:2] == pytest.approx((-200.508, 150.332))
    assert img.image.grid.index_to_world([511.5, 383.5])[:2] == pytest.approx((0.0, 0.0), abs=1e-6)


@pytest.mark.external
def test_varian_real_sid_1000(external_data: Path) -> None:
    img = read_rtimage(external_data / "varian-epid" / "RI0.dcm")
    assert img.sid_mm == 1000.0
    assert img.vendor is Vendor.VARIAN
