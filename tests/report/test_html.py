"""The HTML report: self-contained, with its tables and figures, and it renders in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.report import distribution_figure, image_figure, render_html, write_report
from intrepid.transit import Evaluation, evaluate_pairs

N = 48
CHROMIUM = Path("/usr/bin/chromium")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pair(name: str, family: str, width: int) -> SimpleNamespace:
    g = Grid((N, N), (-47.0, -47.0, 0.0), (2.0, 2.0, 1.0))
    a = np.zeros((N, N))
    a[N // 2 - width // 2 : N // 2 + width // 2, N // 2 - width // 2 : N // 2 + width // 2] = 1.0
    dose = Volume(gaussian_filter(a, 2.0), g, Quantity.PORTAL_DOSE, "Gy")
    epid = dose.with_array(np.asarray(dose.array) * 1000.0, quantity=Quantity.EPID_SIGNAL, units="CU")
    rec = SimpleNamespace(name=name, family=family, field_group=f"{width}px", field=f"{width}px")
    return SimpleNamespace(epid=epid, portal_dose=dose, record=rec)


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    def net(v: Volume) -> Volume:
        return v.with_array(np.asarray(v.array) / 1000.0, quantity=Quantity.PORTAL_DOSE, units="Gy")

    def base(v: Volume) -> Volume:
        return v.with_array(np.asarray(v.array) / 1000.0 * 1.04, quantity=Quantity.PORTAL_DOSE, units="Gy")

    pairs = [_pair("slab_10x10", "OMG", 20), _pair("cirs_5x5", "CIRS", 10)]
    return evaluate_pairs(pairs, {"network": net, "baseline": base}, keep_maps=True, settings={"model": "x"})


def test_figures_are_png(evaluation: Evaluation) -> None:
    assert image_figure(evaluation.images[0]).startswith(PNG_MAGIC)
    assert distribution_figure(evaluation).startswith(PNG_MAGIC)
    bare = evaluation.images[0]
    with pytest.raises(ParameterError, match="has no maps; evaluate with keep_maps=True"):
        image_figure(type(bare)(bare.name, bare.family, bare.field_group, bare.field, 1.0, bare.metrics))


def test_report_is_self_contained_with_tables_figures_and_settings(
    evaluation: Evaluation, tmp_path: Path
) -> None:
    path = write_report(evaluation, tmp_path / "sub" / "report.html", settings={"note": "unit test"})
    text = path.read_text(encoding="utf-8")
    for table_id in ("summary", "by-family", "by-family-field", "per-image", "settings"):
        assert f'id="{table_id}"' in text
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 1 + 2  # the distributions and one figure per image
    assert all(base64.b64decode(b).startswith(PNG_MAGIC) for b in images)
    # Nothing is fetched from elsewhere: no external source, link or script.
    assert not re.search(r'(src|href)="(?!data:)', text) and "<script" not in text
    for fact in (
        "3%/3mm",
        "5%/5mm",
        "2%/2mm",
        "10 % of the reference maximum",
        "global",
        "intrepid 0.",
        "unit test",
        "slab_10x10",
        "cirs_5x5",
    ):
        assert fact in text
    assert "100.00 ± 0.00" in text  # the network's summary at 3%/3mm (identical doses)
    limited = render_html(evaluation, max_image_figures=0)
    assert limited.count("data:image/png") == 1


def test_bad_inputs(evaluation: Evaluation) -> None:
    with pytest.raises(ParameterError, match="max_image_figures must be >= 0, got -1"):
        render_html(evaluation, max_image_figures=-1)
    empty = Evaluation((), ("network",))
    with pytest.raises(ParameterError, match="evaluation has no images"):
        render_html(empty)


def test_report_renders_in_headless_chromium(evaluation: Evaluation, tmp_path: Path) -> None:
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip("headless render test needs /usr/bin/chromium (Debian: apt-get install chromium)")
    path = write_report(evaluation, tmp_path / "report.html")
    base = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'p'}"]
    dom = subprocess.run(
        [*base, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    # The browser parsed the document: its DOM holds every table and every embedded figure.
    assert dom.count("<table") == 6  # summary, verdicts, two group tables, per image, settings
    assert dom.count('<img src="data:image/png;base64,') == 3
    assert "Pass-rate distributions" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,1600", path.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    png = shot.read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 20_000  # a rendered page, not a blank one


def test_image_figure_draws_the_ensemble_spread(evaluation: Evaluation) -> None:
    """The members' spread that the evaluation keeps (``maps.uncertainty``) is drawn as an extra panel."""
    import io
    from dataclasses import replace

    from PIL import Image

    im = evaluation.images[0]
    assert im.maps is not None
    first = next(iter(im.maps.predictions))
    spread = np.full_like(im.maps.reference, 0.002, dtype=np.float32)
    with_spread = replace(im, maps=replace(im.maps, uncertainty={first: spread}))
    without = replace(im, maps=replace(im.maps, uncertainty={}))
    a = np.asarray(Image.open(io.BytesIO(image_figure(with_spread))).convert("L"), dtype=float)
    b = np.asarray(Image.open(io.BytesIO(image_figure(without))).convert("L"), dtype=float)
    # one more panel: a different picture (same grid of 3 columns, so possibly the same size)
    assert a.shape != b.shape or np.abs(a - b).mean() > 1.0
