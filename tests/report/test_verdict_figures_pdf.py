"""Action-level verdicts, the zoom window and dose units of the figures, and the PDF print."""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.report import (
    DEFAULT_ACTION_LEVELS,
    ActionLevels,
    comparison_figure,
    dose_scale,
    field_window_mm,
    find_chromium,
    image_verdict,
    judge,
    render_html,
    write_pdf,
    write_report,
)
from intrepid.transit import Evaluation, evaluate_pairs

N = 64


def test_defaults_are_softdiso_and_every_fired_level_is_named() -> None:
    lv = DEFAULT_ACTION_LEVELS
    assert (lv.min_pass_rate_percent, lv.max_mean_gamma, lv.iso_ratio_low, lv.iso_ratio_high) == (
        90.0, 0.5, 0.95, 1.05,
    )
    assert "10.1177/1533033818779201" in lv.source
    assert judge(97.0, 0.3, 1.0).passed
    v = judge(85.0, 0.7, 1.08)
    assert not v.passed and len(v.fired) == 3
    assert "85.0 % < 90 %" in v.fired[0] and "0.70 > 0.5" in v.fired[1] and "1.080 outside" in v.fired[2]
    # A missing number never passes silently; a blocked isocentre (None) skips only that level.
    assert not judge(float("nan"), 0.2, 1.0).passed
    assert judge(95.0, 0.2, None).passed
    # Boundaries are inclusive.
    assert judge(90.0, 0.5, 0.95).passed and judge(90.0, 0.5, 1.05).passed


def test_action_levels_are_validated_and_round_trip() -> None:
    lv = ActionLevels(min_pass_rate_percent=95.0, iso_ratio_low=0.97, iso_ratio_high=1.03)
    assert ActionLevels.from_dict(lv.to_dict()) == lv
    with pytest.raises(ParameterError, match=r"iso_ratio_low .* must be below iso_ratio_high"):
        ActionLevels(iso_ratio_low=1.1)
    with pytest.raises(ParameterError, match=r"min_pass_rate_percent must be in \[0, 100\], got 120"):
        ActionLevels(min_pass_rate_percent=120)
    with pytest.raises(ParameterError, match="unknown action-level keys \\['gamma_pct'\\]"):
        ActionLevels.from_dict({"gamma_pct": 3})


def test_field_window_zooms_to_the_irradiated_area() -> None:
    a = np.zeros((400, 400))
    a[190:210, 190:210] = 0.2  # a 20 x 20 mm field on a 400 mm panel at 1 mm
    x0, x1, y0, y1 = field_window_mm(a, (1.0, 1.0), margin_mm=15.0, min_half_width_mm=5.0)
    assert x1 - x0 == pytest.approx(19 + 30, abs=1e-9) and y1 - y0 == pytest.approx(49, abs=1e-9)
    assert (x0 + x1) / 2 == pytest.approx(0.0) and (y0 + y1) / 2 == pytest.approx(0.0)
    # An empty image shows the whole panel.
    assert field_window_mm(np.zeros((10, 10)), (2.0, 2.0)) == (-9.0, 9.0, -9.0, 9.0)


def test_small_doses_in_mgy() -> None:
    assert dose_scale(0.19).unit == "mGy" and dose_scale(0.19).factor == 1000.0
    assert dose_scale(2.0).unit == "Gy"


def test_comparison_figure_is_a_png_with_zoom_and_uncertainty() -> None:
    a = np.zeros((N, N))
    a[28:36, 28:36] = 0.2
    ref = gaussian_filter(a, 1.0)
    png = comparison_figure(
        epid=ref * 1000, reference=ref, evaluated={"predicted": ref * 1.02},
        gamma={"predicted": ref * 0 + 0.4}, spacing_mm=(2.0, 2.0), uncertainty_gy=ref * 0.01, title="t",
    )
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    with pytest.raises(ParameterError, match="evaluated must hold at least one dose map"):
        comparison_figure(epid=None, reference=ref, evaluated={}, gamma={}, spacing_mm=(1.0, 1.0))


def _pair(name: str, scale: float) -> SimpleNamespace:
    g = Grid((N, N), (-63.0, -63.0, 0.0), (2.0, 2.0, 1.0))
    a = np.zeros((N, N))
    a[22:42, 22:42] = 0.2
    dose = Volume(gaussian_filter(a, 2.0), g, Quantity.PORTAL_DOSE, "Gy")
    epid = dose.with_array(np.asarray(dose.array) * 1000.0 * scale, quantity=Quantity.EPID_SIGNAL, units="CU")
    rec = SimpleNamespace(name=name, family="OMG", field_group="10x10", field="10x10")
    return SimpleNamespace(epid=epid, portal_dose=dose, record=rec)


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    def net(v: Volume) -> Volume:
        return v.with_array(np.asarray(v.array) / 1000.0, quantity=Quantity.PORTAL_DOSE, units="Gy")

    return evaluate_pairs([_pair("good", 1.0), _pair("mu_error", 1.08)], {"network": net}, keep_maps=True)


def test_report_verdicts_units_and_mean_gamma(evaluation: Evaluation) -> None:
    good, bad = evaluation.images
    assert image_verdict(good, "network", DEFAULT_ACTION_LEVELS).passed
    v = image_verdict(bad, "network", DEFAULT_ACTION_LEVELS)
    assert v is not None and not v.passed and any("isocentre ratio 1.08" in f for f in v.fired)
    text = render_html(evaluation)
    assert 'id="verdicts"' in text and 'id="action-levels"' in text
    assert "MAE (mGy)" in text and "MAE (Gy)" not in text and "mean γ" in text and "γ1%" in text
    assert "SOFTDISO" in text and "intrepid 0." in text
    assert re.search(r"isocentre ratio 1\.0[78]\d outside \[0\.95, 1\.05\]", text)
    assert "@media print" in text and "break-before:page" in text


def _pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf))


def test_pdf_has_one_page_per_image(evaluation: Evaluation, tmp_path: Path) -> None:
    if find_chromium() is None:
        pytest.skip("the PDF needs Chromium (Debian: apt-get install chromium)")
    html = write_report(evaluation, tmp_path / "r.html")
    pdf = write_pdf(html, tmp_path / "out" / "r.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    pages = _pdf_pages(pdf)
    if pages == 0:  # page objects inside compressed object streams
        pages = sum(_pdf_pages(zlib.decompress(m)) for m in _streams(pdf))
    # tables first (one or more pages), then one page per image figure
    assert pages >= 1 + len(evaluation.images)
    with pytest.raises(ParameterError, match="no such HTML file"):
        write_pdf(tmp_path / "missing.html", tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()


def _streams(pdf: bytes) -> list[bytes]:
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            zlib.decompress(m.group(1))
            out.append(m.group(1))
        except zlib.error:
            continue
    return out
