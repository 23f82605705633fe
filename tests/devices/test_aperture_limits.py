"""Physical ranges of the aperture settings: absurd values are refused at construction, naming the field."""

from __future__ import annotations

import pytest

from intrepid.devices import ApertureSettings
from intrepid.errors import ParameterError


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mill_radius_mm", 1e9, "mill_radius_mm must be <= 50"),
        ("target_margin_mm", 1e9, "target_margin_mm must be <= 100"),
        ("downstream_edge_mm", 1e9, "downstream_edge_mm must be <= 5000"),
        ("smoothing_iterations", 100_000_000, "smoothing_iterations must be <= 100"),
    ],
)
def test_absurd_settings_are_refused(field: str, value: float, message: str) -> None:
    kwargs = {"downstream_edge_mm": 100.0, "target_margin_mm": 5.0, "mill_radius_mm": 2.0, field: value}
    with pytest.raises(ParameterError, match=message):
        ApertureSettings(**kwargs)  # type: ignore[arg-type]


def test_clinical_settings_pass() -> None:
    s = ApertureSettings(
        downstream_edge_mm=300.0, target_margin_mm=5.0, mill_radius_mm=2.0, smoothing_iterations=3
    )
    assert s.smoothing_iterations == 3
