"""Either vendor's EPID signal -> CU per MU, and the one-line refusals (uncalibrated, negative, units, MU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intrepid.geometry import Grid, Quantity, Volume
from intrepid.physics import DetectorModel
from intrepid.transit import CALIBRATED_UNITS_PER_MU, InputRefused, canonical_signal, canonical_volume

N = 64


def _field(level: float = 1.0, offset: float = 0.0) -> np.ndarray:
    a = np.full((N, N), offset)
    a[16:48, 16:48] += level
    return a


def _vol(array: np.ndarray, units: str, vendor: str, **meta: object) -> Volume:
    grid = Grid((N, N), (0.0, 0.0, 0.0), (2.0, 2.0, 1.0))
    return Volume(
        array, grid, Quantity.EPID_SIGNAL, units, metadata={"vendor": vendor, "source": "x.dcm", **meta}
    )


def test_varian_cu_is_divided_by_the_mu() -> None:
    c = canonical_volume(_vol(_field(50.0), "CU", "varian"), mu=100.0)
    assert c.signal.units == CALIBRATED_UNITS_PER_MU
    assert float(c.signal.array.max()) == pytest.approx(0.5)
    assert c.level_cu_per_mu == pytest.approx(0.5)
    assert c.field_size_mm == pytest.approx(64.0)  # 32 pixels of 2 mm
    assert c.mu == 100.0 and c.vendor == "varian"


def test_elekta_counts_use_the_iview_preset_calibration() -> None:
    det = DetectorModel.elekta_iview()
    cu = _field(2.0)
    counts = (65535.0 - det.raw_offset) + det.raw_counts_per_cu * cu  # what read_rtimage gives (inverted)
    c = canonical_volume(_vol(counts, "raw", "elekta", mu=50.0))
    np.testing.assert_allclose(c.signal.array, cu / 50.0, atol=1e-12)
    assert c.acquisition_mode == "integrated"


def test_mu_comes_from_the_metadata_or_is_refused() -> None:
    assert canonical_volume(_vol(_field(), "CU", "varian", meterset=20.0)).mu == 20.0
    with pytest.raises(InputRefused, match=r"^x\.dcm: no meterset"):
        canonical_volume(_vol(_field(), "CU", "varian"))


@pytest.mark.parametrize(
    ("units", "vendor", "reason"),
    [
        ("US", "varian", "uncalibrated image"),
        ("raw", "generic", "uncalibrated image"),
        ("OD", "varian", "unknown pixel units 'OD'"),
    ],
)
def test_units_it_cannot_convert_are_refused_in_one_line(units: str, vendor: str, reason: str) -> None:
    with pytest.raises(InputRefused, match=reason) as info:
        canonical_volume(_vol(_field(), units, vendor), mu=100.0)
    assert "\n" not in str(info.value) and str(info.value).startswith("x.dcm: ")


def test_negative_and_empty_signals_are_refused() -> None:
    with pytest.raises(InputRefused, match="negative signal"):
        canonical_volume(_vol(_field(10.0, offset=-3.0), "CU", "varian"), mu=100.0)
    with pytest.raises(InputRefused, match="no positive signal"):
        canonical_volume(_vol(np.zeros((N, N)), "CU", "varian"), mu=100.0)
    dose = Volume(_field(), Grid((N, N), (0, 0, 0), (2, 2, 1)), Quantity.PORTAL_DOSE, "Gy")
    with pytest.raises(InputRefused, match="already a portal-dose image"):
        canonical_volume(dose, mu=100.0)


@pytest.mark.external
def test_real_varian_files(external_data: Path) -> None:
    c = canonical_signal(external_data / "varian-epid" / "RI_test_linearity.dcm")
    # 100 MU, 10 x 10 cm, no phantom, SID 1000 mm: about 1 CU per MU by the definition of the CU
    assert 0.9 < c.level_cu_per_mu < 1.15
    assert c.field_size_iso_cm() == pytest.approx(10.0, abs=0.3)
    assert c.acquisition_mode == "integrated" and c.sid_mm == 1000.0
    with pytest.raises(InputRefused, match=r"RI0\.dcm: uncalibrated image \(pixel units 'US'"):
        canonical_signal(external_data / "varian-epid" / "RI0.dcm")
