"""Tests of write_rtimage: every vendor encoding round-trips through read_rtimage, geometry, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import RTImageStorage

from intrepid.dicom import SignalConvention, Vendor, read_dataset, read_rtimage, write_rtimage
from intrepid.errors import ParameterError
from intrepid.geometry import Quantity


def _portal(shape: tuple[int, int] = (30, 40), seed: int = 0, peak: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.random(shape) * 0.05
    img[shape[0] // 4 : 3 * shape[0] // 4, shape[1] // 4 : 3 * shape[1] // 4] += peak
    return img


def _half_step(values: np.ndarray) -> float:
    """Half the 16-bit quantisation step of the linear encodings (span / 65534), plus DS rounding slack."""
    span = max(float(values.max()), 0.0) - min(float(values.min()), 0.0)
    return span / 65534 / 2 * (1 + 1e-6) + 1e-12


def test_portal_dose_round_trip(tmp_path: Path) -> None:
    pd = _portal()
    path = write_rtimage(
        tmp_path / "pd.dcm",
        pd,
        pixel_spacing_mm=(0.4, 0.5),
        sid_mm=1500.0,
        sad_mm=1000.0,
        gantry_deg=90.0,
        collimator_deg=10.0,
        couch_deg=5.0,
        meterset=100.0,
        exposure_time_ms=12000.0,
        referenced_plan_uid="1.2.3.4",
        referenced_beam_number=2,
        description="beam 2 portal dose",
    )
    img = read_rtimage(path)
    assert img.image.quantity is Quantity.PORTAL_DOSE and img.pixel_units == "Gy"
    assert np.max(np.abs(img.signal - pd)) <= _half_step(pd)
    assert img.pixel_spacing_mm == (0.4, 0.5)
    assert img.pixel_spacing_iso_mm == pytest.approx((0.4 / 1.5, 0.5 / 1.5))
    assert (img.sid_mm, img.sad_mm) == (1500.0, 1000.0)
    assert (img.gantry_deg, img.collimator_deg, img.couch_deg) == (90.0, 10.0, 5.0)
    assert img.meterset == 100.0 and img.exposure_time_ms == 12000.0
    assert img.referenced_plan_uid == "1.2.3.4" and img.referenced_beam_number == 2
    # Centred on the beam axis by default: the middle of the image is at (0, 0).
    assert img.image.grid.index_to_world([19.5, 14.5])[:2] == pytest.approx((0.0, 0.0))
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == RTImageStorage and ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert float(ds.RescaleSlope) > 0 and ds.RescaleType == "Gy"
    assert ds.RTImageLabel == "beam 2 portal do"  # first 16 characters of the description


def test_elekta_epid_signal_like_iview(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    signal = rng.integers(0, 65536, (1024, 1024)).astype(float)
    path = write_rtimage(
        tmp_path / "iview.dcm",
        signal,
        pixel_spacing_mm=0.405,
        sid_mm=1600.0,
        gantry_deg=None,
        vendor=Vendor.ELEKTA,
        quantity=Quantity.EPID_SIGNAL,
        write_file_meta=False,
    )
    data = path.read_bytes()
    assert data[128:132] != b"DICM"  # no preamble, no file meta, like iView exports
    ds = read_dataset(path)  # assumes Implicit VR Little Endian, as for iView files
    assert "GantryAngle" not in ds and "RescaleSlope" not in ds
    np.testing.assert_array_equal(ds.pixel_array, 65535 - signal)  # inverted 16-bit counts
    img = read_rtimage(path)
    assert img.vendor is Vendor.ELEKTA and img.signal_convention is SignalConvention.INVERTED
    np.testing.assert_array_equal(img.signal, signal)  # integer counts: exact
    assert img.gantry_deg is None
    assert img.pixel_spacing_mm == (0.405, 0.405) and img.sid_mm == 1600.0
    assert img.pixel_spacing_iso_mm == pytest.approx((0.405 * 1000 / 1600,) * 2)


def test_elekta_with_file_meta_rounds_counts(tmp_path: Path) -> None:
    signal = np.array([[0.2, 100.6], [65535.0, 30000.49]])
    img = read_rtimage(
        write_rtimage(
            tmp_path / "e.dcm",
            signal,
            pixel_spacing_mm=0.405,
            vendor=Vendor.ELEKTA,
            quantity=Quantity.EPID_SIGNAL,
        )
    )
    np.testing.assert_array_equal(img.signal, np.rint(signal))


def test_varian_calibrated_units_negative_slope(tmp_path: Path) -> None:
    cu = _portal((48, 64), peak=100.0)
    path = write_rtimage(
        tmp_path / "v.dcm",
        cu,
        pixel_spacing_mm=0.392,
        sid_mm=1000.0,
        vendor=Vendor.VARIAN,
        quantity=Quantity.EPID_SIGNAL,
    )
    ds = pydicom.dcmread(path)
    assert float(ds.RescaleSlope) < 0 and ds.RescaleType == "CU"
    assert ds.Manufacturer.startswith("Varian") and ds.ImageType[3] == "ACQUIRED_DOSE"
    img = read_rtimage(path)
    assert img.vendor is Vendor.VARIAN and img.pixel_units == "CU"
    assert img.image.quantity is Quantity.EPID_SIGNAL
    assert np.max(np.abs(img.signal - cu)) <= _half_step(cu)


def test_generic_signal_and_image_position(tmp_path: Path) -> None:
    sig = _portal((10, 12), peak=7.0)
    path = write_rtimage(
        tmp_path / "g.dcm",
        sig,
        pixel_spacing_mm=(0.25, 0.5),
        quantity=Quantity.EPID_SIGNAL,
        image_position_mm=(-3.0, 2.0),
        units="counts",
    )
    img = read_rtimage(path)
    assert img.vendor is Vendor.GENERIC and img.pixel_units == "counts"
    assert img.image.grid.origin_mm == (-3.0, 2.0, 0.0)
    assert img.image.grid.spacing_mm[:2] == (0.5, 0.25)
    assert np.max(np.abs(img.signal - sig)) <= _half_step(sig)


def test_negative_and_constant_values(tmp_path: Path) -> None:
    diff = np.linspace(-0.3, 0.2, 20).reshape(4, 5)
    img = read_rtimage(write_rtimage(tmp_path / "d.dcm", diff, pixel_spacing_mm=1.0, units="Gy"))
    assert np.max(np.abs(img.signal - diff)) <= _half_step(diff)
    zeros = read_rtimage(write_rtimage(tmp_path / "z.dcm", np.zeros((3, 3)), pixel_spacing_mm=1.0))
    np.testing.assert_array_equal(zeros.signal, 0.0)


@settings(max_examples=20, deadline=None)
@given(
    lo=st.floats(-100, 100),
    span=st.floats(1e-3, 1e4),
    vendor=st.sampled_from([Vendor.GENERIC, Vendor.VARIAN]),
    quantity=st.sampled_from([Quantity.PORTAL_DOSE, Quantity.EPID_SIGNAL]),
    seed=st.integers(0, 1000),
)
def test_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory,
    lo: float,
    span: float,
    vendor: Vendor,
    quantity: Quantity,
    seed: int,
) -> None:
    values = lo + span * np.random.default_rng(seed).random((6, 9))
    path = write_rtimage(
        tmp_path_factory.mktemp("ri") / "r.dcm",
        values,
        pixel_spacing_mm=0.4,
        vendor=vendor,
        quantity=quantity,
    )
    img = read_rtimage(path)
    assert img.image.quantity is quantity
    assert np.max(np.abs(img.signal - values)) <= _half_step(values)


# ------------------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    ("array", "kwargs", "message"),
    [
        (np.full((2, 2), np.nan), {}, r"array contains 4 NaN or infinite values"),
        (np.zeros((2, 2, 2)), {}, r"array must be 2D \[row, column\], got shape \(2, 2, 2\)"),
        (np.zeros((2, 2)), {"pixel_spacing_mm": 0.0}, r"pixel_spacing_mm must be > 0"),
        (np.zeros((2, 2)), {"sid_mm": -1.0}, r"sid_mm must be > 0, got -1\.0"),
        (np.zeros((2, 2)), {"sad_mm": 0.0}, r"sad_mm must be > 0, got 0\.0"),
        (np.zeros((2, 2)), {"gantry_deg": float("inf")}, r"gantry_deg must be finite"),
        (np.zeros((2, 2)), {"quantity": Quantity.DOSE}, r"quantity must be Quantity\.PORTAL_DOSE or"),
        (np.zeros((2, 2)), {"meterset": -5.0}, r"meterset must be >= 0 MU, got -5\.0"),
        (np.zeros((2, 2)), {"image_position_mm": (1.0,)}, r"image_position_mm must be 2 finite values"),
        (np.zeros((2, 2)), {"patient_id": ""}, r"patient_id must be non-empty"),
        (
            np.full((2, 2), 70000.0),
            {"vendor": Vendor.ELEKTA, "quantity": Quantity.EPID_SIGNAL},
            r"Elekta EPID signal must lie in \[0, 65535\]",
        ),
        (
            np.zeros((2, 2)),
            {"vendor": Vendor.ELEKTA, "quantity": Quantity.EPID_SIGNAL, "units": "CU"},
            r"units must be None or 'raw' for an Elekta",
        ),
    ],
)
def test_bad_inputs_write_nothing(
    tmp_path: Path, array: np.ndarray, kwargs: dict[str, object], message: str
) -> None:
    params: dict[str, object] = {"pixel_spacing_mm": 0.4}
    params.update(kwargs)
    with pytest.raises(ParameterError, match=message):
        write_rtimage(tmp_path / "x.dcm", array, **params)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())
