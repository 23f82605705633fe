"""HTTP layer: pages, review actions with signatures, CSRF, authentication, file confinement, uploads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intrepid.app import AppConfig, create_app
from intrepid.app._db import Approval, Comment, Fraction, User
from intrepid.app._security import (
    csrf_token,
    hash_password,
    is_loopback,
    login_cookie,
    read_login_cookie,
    verify_password,
)
from intrepid.app._server import fraction_signature
from intrepid.geometry import Quantity

from .conftest import PATIENT_NAME, linear_predictor, write_epid

pytest.importorskip("httpx", reason="the HTTP tests need httpx (dev extra)")
from fastapi.testclient import TestClient


def _token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


@pytest.fixture()
def populated(tmp_path: Path) -> dict[str, Any]:
    drop = tmp_path / "drop"
    drop.mkdir()
    write_epid(drop / "f1.dcm", fraction=1)
    write_epid(drop / "f2.dcm", fraction=2, scale=1.09)
    cfg = AppConfig(data_dir=tmp_path / "data")
    app = create_app(cfg, predictor=linear_predictor)
    app.state.intrepid.ingestor.ingest_paths([drop])
    return {"app": app, "cfg": cfg, "tmp": tmp_path}


def test_worklist_fraction_trend_and_signed_approval(populated: dict[str, Any]) -> None:
    app = populated["app"]
    with TestClient(app) as c:
        page = c.get("/")
        assert page.status_code == 200
        rows = re.findall(r'<tr( class="alert")?><td><span class="badge', page.text)
        assert len(rows) == 2 and rows[0] == ' class="alert"'  # the failing fraction first
        assert PATIENT_NAME in page.text  # shown to the reviewer (never logged)
        frac = c.get("/fractions/2")
        assert frac.status_code == 200 and "FAIL" in frac.text and "isocentre ratio 1.09" in frac.text
        fig = re.search(r'src="(/files/figures/[^"]+)"', frac.text)
        assert fig and c.get(fig.group(1)).content.startswith(b"\x89PNG")
        assert c.get("/plans/1").status_code == 200
        assert c.get("/plans/1/trend.png").content.startswith(b"\x89PNG")
        assert c.get("/quarantine").status_code == 200
        token = _token(frac.text)
        r = c.post(
            "/fractions/2/review",
            data={"action": "approve", "text": "MU error explained", "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303
        api = c.get("/api/fractions/2").json()
    assert api["status"] == "approved"
    with app.state.intrepid.sessions() as s:
        appr = s.scalars(select(Approval)).one()
        comment = s.scalars(select(Comment)).one()
        assert s.get(Fraction, 2).status == "approved"
    assert appr.username == app.state.intrepid.local_user and comment.text == "MU error explained"
    expected = fraction_signature(
        app.state.intrepid.secret, 2, "approve", appr.username, appr.created_at.isoformat(), api["beams"]
    )
    assert appr.signature == expected
    assert (
        fraction_signature(
            app.state.intrepid.secret, 2, "approve", "mallory", appr.created_at.isoformat(), api["beams"]
        )
        != expected
    )


def test_csrf_and_cross_origin_posts_are_refused(populated: dict[str, Any]) -> None:
    with TestClient(populated["app"]) as c:
        token = _token(c.get("/fractions/2").text)
        assert c.post("/fractions/2/review", data={"action": "approve"}).status_code == 403
        assert (
            c.post("/fractions/2/review", data={"action": "approve", "csrf_token": "x" * 64}).status_code
            == 403
        )
        r = c.post(
            "/fractions/2/review",
            data={"action": "approve", "csrf_token": token},
            headers={"Origin": "http://evil.example"},
        )
        assert r.status_code == 403
        # Another browser (no session cookie) cannot reuse the token.
        with TestClient(populated["app"]) as other:
            assert (
                other.post("/fractions/2/review", data={"action": "approve", "csrf_token": token}).status_code
                == 403
            )
        with populated["app"].state.intrepid.sessions() as s:
            assert s.scalars(select(Approval)).all() == []


def test_file_endpoint_is_confined_to_the_figures_of_the_data_folder(populated: dict[str, Any]) -> None:
    data = populated["cfg"].data_dir
    (populated["tmp"] / "outside.txt").write_text("secret outside")
    with TestClient(populated["app"]) as c:
        for path in (
            "/files/secret.key",
            "/files/intrepid.sqlite",
            "/files/figures/../secret.key",
            "/files/figures/%2e%2e/secret.key",
            "/files/figures/%2e%2e/%2e%2e/outside.txt",
            "/files/figures/..%2f..%2foutside.txt",
            "/files/%2fetc%2fpasswd",
            "/files/store",
        ):
            r = c.get(path)
            assert r.status_code == 404, path
            assert b"secret outside" not in r.content and (data / "secret.key").read_bytes() not in r.content


def test_upload_of_a_reference_through_the_page(populated: dict[str, Any]) -> None:
    ref = write_epid(populated["tmp"] / "ref.dcm", fraction=None, quantity=Quantity.PORTAL_DOSE)
    with TestClient(populated["app"]) as c:
        token = _token(c.get("/").text)
        files = {"file": ("ref.dcm", ref.read_bytes(), "application/dicom")}
        assert c.post("/upload", files=files).status_code == 403
        r = c.post("/upload", files=files, data={"csrf_token": token})
        assert r.status_code == 200 and r.json()["status"] == "reference"
        beams = c.get("/api/fractions/1").json()["beams"]
        # The work list's form redirects; a bad file lands in the quarantine page.
        bad = {"file": ("bad.dcm", b"not dicom", "application/dicom")}
        r = c.post("/upload", files=bad, data={"csrf_token": token, "redirect": "1"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/quarantine"
        assert "not a DICOM file" in c.get("/quarantine").text
    assert beams[0]["reference_kind"] == "upload" and beams[0]["passed"] is True


def test_passwords_cookies_and_loopback() -> None:
    h = hash_password("correct horse")
    assert h.startswith("scrypt$") and verify_password("correct horse", h) and not verify_password("wrong", h)
    assert not verify_password("x", "garbage")
    secret = b"k" * 32
    cookie = login_cookie(secret, "sid1", "alice", now=1000.0)
    assert read_login_cookie(secret, "sid1", cookie, now=1001.0) == "alice"
    assert read_login_cookie(secret, "sid2", cookie, now=1001.0) is None  # bound to the session
    assert read_login_cookie(secret, "sid1", cookie.replace("alice", "admin"), now=1001.0) is None
    assert read_login_cookie(secret, "sid1", cookie, now=1000.0 + 13 * 3600) is None  # expired
    assert csrf_token(secret, "a") != csrf_token(secret, "b")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_non_loopback_requires_sign_in(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="authentication cannot be turned off"):
        _ = AppConfig(data_dir=tmp_path, host="0.0.0.0", require_auth=False).auth
    assert AppConfig(data_dir=tmp_path).auth is False
    cfg = AppConfig(data_dir=tmp_path / "data", host="0.0.0.0")
    assert cfg.auth is True
    app = create_app(cfg, predictor=linear_predictor)
    with app.state.intrepid.sessions() as s:
        s.add(User(username="alice", password_hash=hash_password("s3cret-pass")))
        s.commit()
    with TestClient(app) as c:
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert c.get("/api/worklist").status_code == 401
        assert c.get("/files/figures/x.png", follow_redirects=False).status_code == 303
        token = _token(c.get("/login").text)
        bad = c.post("/login", data={"username": "alice", "password": "nope", "csrf_token": token})
        assert bad.status_code == 401
        assert c.post("/login", data={"username": "alice", "password": "s3cret-pass"}).status_code == 403
        ok = c.post(
            "/login",
            data={"username": "alice", "password": "s3cret-pass", "csrf_token": token},
            follow_redirects=False,
        )
        assert ok.status_code == 303
        page = c.get("/")
        assert page.status_code == 200 and "signed in as <b>alice</b>" in page.text
        assert c.get("/api/worklist").status_code == 200


def test_watch_folder_ingests_dropped_files(tmp_path: Path) -> None:
    import time

    from .conftest import LiveServer

    watch = tmp_path / "linac"
    watch.mkdir()
    cfg = AppConfig(data_dir=tmp_path / "data", watch_dir=watch, poll_s=0.2)
    app = create_app(cfg, predictor=linear_predictor)
    with LiveServer(app):
        write_epid(watch / "f1.dcm", fraction=1)
        (watch / "broken.dcm").write_bytes(b"DICM" * 10)
        deadline = time.time() + 120
        while time.time() < deadline:
            with app.state.intrepid.sessions() as s:
                from intrepid.app._db import Quarantined, Result

                if s.scalars(select(Result)).first() and s.scalars(select(Quarantined)).first():
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the watched folder's files were not ingested within 120 s")
