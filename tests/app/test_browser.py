"""End to end in a real browser (Playwright driving Debian's Chromium): a simulated course is ingested with
the shipped network, the work list and a fraction are opened, the fraction is approved, the database row is
checked, and the screenshots must show non-empty figures. Runs on SQLite and, where a server can start, on
PostgreSQL. ``INTREPID_SCREENSHOTS=DIR`` keeps the screenshots (the docs' images are made that way)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from intrepid.app import AppConfig, create_app, simulate_course
from intrepid.app._db import Approval, Fraction

from .conftest import CHROMIUM_ARGS, LiveServer


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Three fractions of one 10 x 10 cm beam through the CIRS-like phantom; fraction 3 has +8 % MU."""
    return simulate_course(
        tmp_path_factory.mktemp("course"), n_fractions=3, fields=("10x10",), error_fraction=3
    )


@pytest.fixture(scope="module")
def network() -> Any:
    from intrepid.app._pipeline import default_predictor

    return default_predictor("network")  # the shipped per-MU network, as `intrepid serve` uses it


def _non_empty_png(png: bytes, min_std: float = 0.02) -> None:
    import matplotlib.image as mpimg

    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    pixels = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
    assert float(np.std(pixels)) > min_std  # not a blank page


def _keep(name: str, png: bytes) -> None:
    folder = os.environ.get("INTREPID_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(png)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_ingest_review_and_approve_in_chromium(
    backend: str,
    course: Any,
    network: Any,
    chromium_path: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    from playwright.sync_api import sync_playwright

    db_url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    app = create_app(AppConfig(data_dir=tmp_path / "data", db_url=db_url), predictor=network)
    state = app.state.intrepid
    outcomes = state.ingestor.ingest_paths([course.folder])
    assert [o.status for o in outcomes] == ["ingested"] * 3
    with LiveServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(server.url + "/")
            rows = page.locator("#worklist tr.alert")
            assert rows.count() == 1  # the MU-error fraction, listed first
            assert page.locator("#worklist tr").nth(1).get_attribute("class") == "alert"
            shot = page.screenshot(full_page=True)
            _non_empty_png(shot)
            _keep("app-worklist.png", shot)
            page.locator("#worklist tr").nth(1).get_by_role("link", name="review").click()
            page.wait_for_selector("img.fig")
            assert "fraction 3" in page.locator("h1").inner_text()
            assert "isocentre ratio" in page.locator("#beams").inner_text()
            loaded = page.eval_on_selector("img.fig", "i => i.complete && i.naturalWidth")
            assert loaded and int(loaded) > 500
            shot = page.screenshot(full_page=True)
            _non_empty_png(shot)
            _keep("app-fraction.png", shot)
            page.fill("textarea[name=text]", "checked with the linac log")
            page.click("#approve")
            page.wait_for_selector("#status")
            assert page.locator("#status").inner_text() == "approved"
            assert "checked with the linac log" in page.locator("#history").inner_text()
            page.goto(server.url + "/plans/1")
            page.wait_for_selector("#trend")
            assert page.eval_on_selector("#trend", "i => i.naturalWidth") > 500
            _keep("app-trend.png", page.screenshot(full_page=True))
        finally:
            browser.close()
    with state.sessions() as s:
        fraction = s.scalars(select(Fraction).where(Fraction.number == 3)).one()
        approval = s.scalars(select(Approval).where(Approval.fraction_id == fraction.id)).one()
    assert fraction.status == "approved" and approval.action == "approve"
    assert approval.username == state.local_user and len(approval.signature) == 64


#: WebGL 2 for NiiVue without a GPU: Chromium's software rasteriser (SwiftShader through ANGLE).
WEBGL_ARGS = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"] + [
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
]


def test_3d_viewer_in_chromium(invivo_study: Any, chromium_path: str, tmp_path: Path) -> None:
    """A simulated in-vivo fraction (coarse 8 mm grid) is ingested; its fraction page links the 3D view, where
    NiiVue draws the CT with the dose overlay and isodoses (the canvas must not be blank) and the DVH figure
    loads."""
    from playwright.sync_api import sync_playwright

    config = AppConfig(data_dir=tmp_path / "data", figure_processes=0)
    app = create_app(config, predictor=invivo_study.predictor)
    outcomes = app.state.intrepid.ingestor.ingest_paths([invivo_study.folder])
    assert {o.status for o in outcomes} == {"ingested", "kept"}
    with LiveServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=WEBGL_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(server.url + "/fractions/1")
            assert "3D in-vivo check" in page.content()
            page.click("#open3d")
            page.wait_for_selector("#viewer3d[data-ready]", timeout=30_000)
            assert page.get_attribute("#viewer3d", "data-ready") == "1", page.inner_text("#viewer-status")
            page.wait_for_timeout(500)  # one more frame after the last volume
            canvas = page.locator("#viewer3d").screenshot()
            _non_empty_png(canvas, min_std=0.03)
            assert page.eval_on_selector("#dvhfig", "i => i.complete && i.naturalWidth") > 300
            assert "PTV" in page.inner_text("#dvh")
            page.click("button[data-overlay=gamma]")
            page.wait_for_timeout(300)
            _keep("app-3d.png", page.screenshot(full_page=True))
            assert not [e for e in errors if "Content Security Policy" in e], errors
        finally:
            browser.close()
