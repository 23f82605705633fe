"""The review application's HTTP layer (FastAPI): pages, JSON, file access, review actions, folder watch.

A thin layer: queries through SQLAlchemy, computation through :class:`~intrepid.app._ingest.Ingestor` (which
calls the library), HTML from :mod:`intrepid.app._pages`. Security rules (see :mod:`intrepid.app._security`):
loopback-only without accounts; any other bind address requires sign-in; every POST checks the CSRF token and,
when the browser sends one, the Origin; files are served only from the data folder.
"""

from __future__ import annotations

import getpass
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select

from intrepid.app._db import (
    Approval,
    Beam,
    Comment,
    Dose3DResult,
    Fraction,
    Patient,
    Plan,
    Quarantined,
    Result,
    User,
    make_engine,
    migrate,
    session_factory,
)
from intrepid.app._ingest import Ingestor
from intrepid.app._security import csrf_token, is_loopback, load_secret, login_cookie, read_login_cookie, sign
from intrepid.report import DEFAULT_ACTION_LEVELS, ActionLevels

__all__ = ["AppConfig", "AppState", "create_app", "fraction_signature"]

_log = logging.getLogger(__name__)

SID_COOKIE = "intrepid_sid"
LOGIN_COOKIE = "intrepid_login"


@dataclass(frozen=True)
class AppConfig:
    """Settings of one server.

    Attributes
    ----------
    data_dir : Path
        Data folder (database file by default, stored files, figures, quarantine, secret).
    db_url : str or None
        SQLAlchemy URL (default: SQLite ``<data_dir>/intrepid.sqlite``).
    host : str
        Bind address; anything but loopback turns authentication on.
    require_auth : bool or None
        Force authentication on (True) even on loopback; None: on exactly when the host is not loopback.
        Off is refused for a non-loopback host.
    levels : ActionLevels
    predictor_kind : str
        ``"network"`` (the shipped model) or ``"baseline"``.
    watch_dir : Path or None
        Folder polled for new files every ``poll_s`` seconds.
    poll_s : float
    ingest_workers : int
        Files processed at once by the watcher and uploads.
    figure_processes : int
        Worker processes drawing the figures (0: in the ingest threads).
    """

    data_dir: Path
    db_url: str | None = None
    host: str = "127.0.0.1"
    require_auth: bool | None = None
    levels: ActionLevels = DEFAULT_ACTION_LEVELS
    predictor_kind: str = "network"
    watch_dir: Path | None = None
    poll_s: float = 2.0
    ingest_workers: int = 2
    figure_processes: int = 1

    @property
    def url(self) -> str:
        """The database URL in use."""
        return self.db_url or f"sqlite:///{(Path(self.data_dir) / 'intrepid.sqlite').resolve()}"

    @property
    def auth(self) -> bool:
        """Whether sign-in is required."""
        if not is_loopback(self.host):
            if self.require_auth is False:
                raise ValueError(f"--host {self.host} is not loopback: authentication cannot be turned off")
            return True
        return bool(self.require_auth)


@dataclass(eq=False)
class AppState:
    """What the routes share: config, database sessions, ingestor, secret."""

    config: AppConfig
    sessions: Any
    ingestor: Ingestor
    secret: bytes
    local_user: str
    stop: threading.Event = field(default_factory=threading.Event)


def fraction_signature(
    secret: bytes, fraction_id: int, action: str, username: str, when: str, results: list[dict[str, Any]]
) -> str:
    """HMAC-SHA256 over the fraction, action, user, time and the results being approved."""
    body = json.dumps(results, sort_keys=True, default=str)
    return sign(secret, f"approval|{fraction_id}|{action}|{username}|{when}|{body}")


def _watch(state: AppState) -> None:
    """Poll the watch folder; a file is ingested once its size and mtime are unchanged over one period."""
    from concurrent.futures import ThreadPoolExecutor

    assert state.config.watch_dir is not None
    folder = state.config.watch_dir
    seen: dict[Path, tuple[int, float]] = {}
    done: set[tuple[Path, int, float]] = set()
    submitted: list[Any] = []
    with ThreadPoolExecutor(max_workers=max(1, state.config.ingest_workers)) as pool:
        while not state.stop.wait(state.config.poll_s):
            try:
                files = [f for f in folder.rglob("*") if f.is_file() and not f.name.startswith(".")]
            except OSError:
                continue
            for f in files:
                try:
                    st = f.stat()
                except OSError:
                    continue
                sig = (st.st_size, st.st_mtime)
                if seen.get(f) == sig and (f, *sig) not in done:
                    done.add((f, *sig))
                    submitted.append(pool.submit(state.ingestor.ingest_file, f))
                seen[f] = sig
            if submitted:  # the round's files are in: make the 3D checks that became possible
                for fut in submitted:
                    fut.result()
                submitted.clear()
                state.ingestor.plan_references_pending()
                state.ingestor.reconstruct_pending()


def create_app(config: AppConfig, *, predictor: Any = None) -> Any:
    """The FastAPI application for ``config`` (the database is migrated to the newest schema first).

    Parameters
    ----------
    config : AppConfig
    predictor : callable, optional
        EPID Volume -> portal dose Volume, replacing the shipped model (tests, other models).
    """
    from intrepid.app import _pages as pages

    data_dir = Path(config.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    auth = config.auth
    engine = make_engine(config.url)
    migrate(engine)
    sessions = session_factory(engine)
    ingestor = Ingestor(
        data_dir,
        sessions,
        predictor=predictor,
        levels=config.levels,
        predictor_kind=config.predictor_kind,
        figure_processes=config.figure_processes,
    )
    state = AppState(config, sessions, ingestor, load_secret(data_dir), getpass.getuser())

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        thread = None
        if config.watch_dir is not None:
            thread = threading.Thread(target=_watch, args=(state,), name="intrepid-watch", daemon=True)
            thread.start()
        yield
        state.stop.set()
        if thread is not None:
            thread.join(timeout=5)
        ingestor.close()
        engine.dispose()

    app = FastAPI(title="InTrEPID review", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.intrepid = state
    from fastapi.staticfiles import StaticFiles

    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static")

    @app.middleware("http")
    async def session_and_headers(request: Request, call_next: Any) -> Any:
        sid = request.cookies.get(SID_COOKIE, "")
        new = not (len(sid) == 43 and sid.replace("-", "").replace("_", "").isalnum())
        if new:
            sid = secrets.token_urlsafe(32)
        request.state.sid = sid
        request.state.user = (
            read_login_cookie(state.secret, sid, request.cookies.get(LOGIN_COOKIE))
            if auth
            else state.local_user
        )
        response = await call_next(request)
        if new:
            response.set_cookie(SID_COOKIE, sid, httponly=True, samesite="strict")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'"
        )
        return response

    def csrf(request: Request) -> str:
        return csrf_token(state.secret, request.state.sid)

    def check_post(request: Request, token: str) -> None:
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, "cross-origin request refused")
        if not secrets.compare_digest(token or "", csrf(request)):
            raise HTTPException(403, "missing or wrong CSRF token")

    def page(request: Request, title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(
            pages.layout(title, body, user=request.state.user, csrf=csrf(request), auth=auth),
            status_code=status,
        )

    def need_user(request: Request) -> str:
        user = request.state.user
        if user is None:
            raise HTTPException(401, "sign in first")
        return str(user)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and request.method == "GET" and not request.url.path.startswith("/api/"):
            return RedirectResponse("/login", status_code=303)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return page(request, "error", f'<p class="fail">{exc.status_code}: {exc.detail}</p>', exc.status_code)

    # -- sign in -------------------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return page(request, "sign in", pages.login_page(csrf(request)))

    @app.post("/login")
    def login(
        request: Request, username: str = Form(""), password: str = Form(""), csrf_token: str = Form("")
    ) -> Response:
        from intrepid.app._security import verify_password

        check_post(request, csrf_token)
        with sessions() as s:
            user = s.scalar(select(User).where(User.username == username))
            ok = user is not None and verify_password(password, user.password_hash)
        if not ok:
            _log.warning("failed sign-in")
            return page(request, "sign in", pages.login_page(csrf(request), "wrong user or password"), 401)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(
            LOGIN_COOKIE,
            login_cookie(state.secret, request.state.sid, username),
            httponly=True,
            samesite="strict",
        )
        return resp

    @app.post("/logout")
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        check_post(request, csrf_token)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(LOGIN_COOKIE)
        return resp

    # -- queries -------------------------------------------------------------------------------------------
    def worklist_rows() -> list[dict[str, Any]]:
        with sessions() as s:
            q = (
                select(Fraction, Plan, Patient)
                .join(Plan, Fraction.plan_id == Plan.id)
                .join(Patient, Plan.patient_id == Patient.id)
            )
            fractions = s.execute(q).all()
            results = s.execute(
                select(
                    Result.fraction_id,
                    Result.gamma_pass_percent,
                    Result.mean_gamma,
                    Result.iso_ratio,
                    Result.passed,
                )
            ).all()
        by_fraction: dict[int, list[Any]] = {}
        for r in results:
            by_fraction.setdefault(r.fraction_id, []).append(r)
        rows = []
        for fr, plan, patient in fractions:
            rs = by_fraction.get(fr.id, [])
            verdicts = [r.passed for r in rs if r.passed is not None]
            passes = [r.gamma_pass_percent for r in rs if r.gamma_pass_percent is not None]
            means = [r.mean_gamma for r in rs if r.mean_gamma is not None]
            rows.append(
                {
                    "id": fr.id,
                    "number": fr.number,
                    "status": fr.status,
                    "delivered_on": fr.delivered_on,
                    "plan_id": plan.id,
                    "plan_label": plan.label,
                    "patient_key": patient.patient_key,
                    "patient_name": patient.name,
                    "n_beams": len(rs),
                    "passed": (all(verdicts) if verdicts else None),
                    "min_pass": min(passes) if passes else None,
                    "max_mean_gamma": max(means) if means else None,
                    "iso_ratios": [r.iso_ratio for r in rs],
                    "created_at": fr.created_at,
                }
            )
        status_rank = {"new": 0, "escalated": 1, "approved": 2}
        verdict_rank = {False: 0, None: 1, True: 2}
        rows.sort(
            key=lambda r: (
                status_rank.get(r["status"], 3),
                verdict_rank[r["passed"]],
                -r["created_at"].timestamp(),
                -r["number"],
            )
        )
        return rows

    def dose3d_dict(d3: Dose3DResult) -> dict[str, Any]:
        return {
            "status": d3.status,
            "verdict": d3.verdict,
            "reasons": json.loads(d3.reasons),
            "gamma_3pct2mm_percent": d3.gamma_3pct2mm_percent,
            "gamma_2pct2mm_percent": d3.gamma_2pct2mm_percent,
            "mean_gamma_3pct2mm": d3.mean_gamma_3pct2mm,
            "isocenter_ratio": d3.isocenter_ratio,
            "prescription_gy": d3.prescription_gy,
            "dvh": json.loads(d3.dvh),
            "method": d3.method,
            "seconds": d3.seconds,
        }

    def fraction_data(fraction_id: int) -> dict[str, Any]:
        with sessions() as s:
            fr = s.get(Fraction, fraction_id)
            if fr is None:
                raise HTTPException(404, f"no fraction {fraction_id}")
            plan = s.get(Plan, fr.plan_id)
            assert plan is not None
            patient = s.get(Patient, plan.patient_id)
            assert patient is not None
            res = s.execute(
                select(Result, Beam)
                .join(Beam, Result.beam_id == Beam.id)
                .where(Result.fraction_id == fraction_id)
                .order_by(Beam.number)
            ).all()
            approvals = s.scalars(
                select(Approval).where(Approval.fraction_id == fraction_id).order_by(Approval.id)
            ).all()
            comments = s.scalars(
                select(Comment).where(Comment.fraction_id == fraction_id).order_by(Comment.id)
            ).all()
            d3 = s.scalar(select(Dose3DResult).where(Dose3DResult.fraction_id == fraction_id))
        return {
            "dose3d": None if d3 is None else dose3d_dict(d3),
            "id": fr.id,
            "number": fr.number,
            "status": fr.status,
            "delivered_on": fr.delivered_on,
            "plan_id": plan.id,
            "plan_label": plan.label,
            "patient_key": patient.patient_key,
            "patient_name": patient.name,
            "beams": [
                {
                    "beam": b.name or f"beam {b.number}",
                    "beam_number": b.number,
                    "reference_kind": r.reference_kind,
                    "gamma_pass_percent": r.gamma_pass_percent,
                    "mean_gamma": r.mean_gamma,
                    "gamma_1percent": r.gamma_1percent,
                    "iso_ratio": r.iso_ratio,
                    "max_dose_gy": r.max_dose_gy,
                    "passed": r.passed,
                    "fired": json.loads(r.fired),
                    "settings": json.loads(r.settings),
                    "figure_path": r.figure_path,
                }
                for r, b in res
            ],
            "approvals": [
                {
                    "username": a.username,
                    "action": a.action,
                    "signature": a.signature,
                    "created_at": a.created_at.isoformat(timespec="seconds"),
                }
                for a in approvals
            ],
            "comments": [
                {
                    "username": c.username,
                    "text": c.text,
                    "created_at": c.created_at.isoformat(timespec="seconds"),
                }
                for c in comments
            ],
        }

    def plan_data(plan_id: int) -> dict[str, Any]:
        with sessions() as s:
            plan = s.get(Plan, plan_id)
            if plan is None:
                raise HTTPException(404, f"no plan {plan_id}")
            patient = s.get(Patient, plan.patient_id)
            assert patient is not None
            res = s.execute(
                select(Result, Beam, Fraction)
                .join(Beam, Result.beam_id == Beam.id)
                .join(Fraction, Result.fraction_id == Fraction.id)
                .where(Fraction.plan_id == plan_id)
                .order_by(Fraction.number, Beam.number)
            ).all()
        return {
            "plan_id": plan.id,
            "plan_label": plan.label,
            "patient_key": patient.patient_key,
            "rows": [
                {
                    "fraction_id": f.id,
                    "fraction": f.number,
                    "beam": b.name or f"beam {b.number}",
                    "gamma_pass_percent": r.gamma_pass_percent,
                    "mean_gamma": r.mean_gamma,
                    "iso_ratio": r.iso_ratio,
                    "passed": r.passed,
                }
                for r, b, f in res
            ],
        }

    # -- pages ---------------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def worklist(request: Request) -> HTMLResponse:
        need_user(request)
        with sessions() as s:
            n_q = s.scalar(select(func.count()).select_from(Quarantined)) or 0
        return page(request, "work list", pages.worklist_page(worklist_rows(), n_q, csrf(request)))

    @app.get("/fractions/{fraction_id}", response_class=HTMLResponse)
    def fraction(request: Request, fraction_id: int) -> HTMLResponse:
        need_user(request)
        f = fraction_data(fraction_id)
        return page(
            request,
            f"fraction {f['number']}",
            pages.fraction_page(f, csrf(request), config.levels.describe(), config.levels.source),
        )

    @app.get("/fractions/{fraction_id}/3d", response_class=HTMLResponse)
    def fraction_3d(request: Request, fraction_id: int) -> HTMLResponse:
        need_user(request)
        f = fraction_data(fraction_id)
        if f["dose3d"] is None:
            raise HTTPException(404, f"no 3D check for fraction {fraction_id}")
        return page(request, f"fraction {f['number']} 3D", pages.dose3d_page(f))

    @app.get("/volumes/{fraction_id}/{name}")
    def volumes(request: Request, fraction_id: int, name: str) -> FileResponse:
        need_user(request)
        from intrepid.app._three_d import VOLUME_FILES

        if name not in VOLUME_FILES:  # a fixed list: nothing else under the data folder is reachable
            raise HTTPException(404, "not found")
        target = data_dir / "volumes" / f"fraction-{fraction_id}" / name
        if not target.is_file():
            raise HTTPException(404, "not found")
        media = {"png": "image/png", "json": "application/json"}.get(name.rsplit(".", 1)[-1])
        return FileResponse(target, media_type=media or "application/octet-stream")

    @app.post("/fractions/{fraction_id}/review")
    def review(
        request: Request,
        fraction_id: int,
        action: str = Form(...),
        text: str = Form(""),
        csrf_token: str = Form(""),
    ) -> Response:
        user = need_user(request)
        check_post(request, csrf_token)
        if action not in ("approve", "escalate", "comment"):
            raise HTTPException(400, f"action must be approve, escalate or comment, got {action!r}")
        f = fraction_data(fraction_id)
        with ingestor.write_lock, sessions() as s:  # one writer at a time beside the ingest workers
            fr = s.get(Fraction, fraction_id)
            assert fr is not None
            if text.strip():
                s.add(Comment(fraction_id=fraction_id, username=user, text=text.strip()[:4000]))
            if action != "comment":
                from intrepid.app._db import utcnow

                when = utcnow()
                signature = fraction_signature(
                    state.secret, fraction_id, action, user, when.isoformat(), f["beams"]
                )
                s.add(
                    Approval(
                        fraction_id=fraction_id,
                        username=user,
                        action=action,
                        signature=signature,
                        created_at=when,
                    )
                )
                fr.status = "approved" if action == "approve" else "escalated"
            s.commit()
        _log.info("fraction %d: %s by user id hash %s", fraction_id, action, sign(state.secret, user)[:8])
        return RedirectResponse(f"/fractions/{fraction_id}", status_code=303)

    @app.get("/plans/{plan_id}", response_class=HTMLResponse)
    def plan(request: Request, plan_id: int) -> HTMLResponse:
        need_user(request)
        return page(request, "trend", pages.trend_page(plan_data(plan_id), config.levels.describe()))

    @app.get("/plans/{plan_id}/trend.png")
    def trend_png(request: Request, plan_id: int) -> Response:
        need_user(request)
        from intrepid.app._trend import trend_figure

        return Response(
            trend_figure(plan_data(plan_id)["rows"], config.levels),
            media_type="image/png",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/quarantine", response_class=HTMLResponse)
    def quarantine(request: Request) -> HTMLResponse:
        need_user(request)
        with sessions() as s:
            rows = [
                {
                    "created_at": q.created_at.isoformat(timespec="seconds"),
                    "original_name": q.original_name,
                    "sha256": q.sha256,
                    "reason": q.reason,
                }
                for q in s.scalars(select(Quarantined).order_by(Quarantined.id.desc()))
            ]
        return page(request, "quarantine", pages.quarantine_page(rows))

    @app.get("/files/{path:path}")
    def files(request: Request, path: str) -> FileResponse:
        need_user(request)
        target = (data_dir / path).resolve()
        if not target.is_relative_to(data_dir) or target.parts[len(data_dir.parts)] not in ("figures",):
            raise HTTPException(404, "not found")
        if not target.is_file():
            raise HTTPException(404, "not found")
        return FileResponse(target)

    @app.post("/upload")
    async def upload(
        request: Request, file: UploadFile, csrf_token: str = Form(""), redirect: str = Form("")
    ) -> Response:
        need_user(request)
        check_post(request, csrf_token)
        incoming = data_dir / "incoming"
        incoming.mkdir(exist_ok=True)
        dest = incoming / f"upload-{secrets.token_hex(8)}.dcm"
        dest.write_bytes(await file.read())
        import anyio

        outcome = await anyio.to_thread.run_sync(ingestor.ingest_file, dest)
        await anyio.to_thread.run_sync(ingestor.plan_references_pending)
        await anyio.to_thread.run_sync(ingestor.reconstruct_pending)
        if redirect:  # the work list's form
            target = "/quarantine" if outcome.status == "quarantined" else "/"
            return RedirectResponse(target, status_code=303)
        return JSONResponse(outcome.to_dict())

    # -- JSON ----------------------------------------------------------------------------------------------
    @app.get("/api/worklist")
    def api_worklist(request: Request) -> JSONResponse:
        need_user(request)
        rows = worklist_rows()
        for r in rows:
            r["created_at"] = r["created_at"].isoformat(timespec="seconds")
        return JSONResponse(rows)

    @app.get("/api/fractions/{fraction_id}")
    def api_fraction(request: Request, fraction_id: int) -> JSONResponse:
        need_user(request)
        return JSONResponse(fraction_data(fraction_id))

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "time": time.time()}

    return app
