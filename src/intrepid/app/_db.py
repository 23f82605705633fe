"""The review application's database: SQLAlchemy models, engine and migrations (Alembic).

One schema serves SQLite (the default, a file in the data folder, no set-up) and PostgreSQL (a department's
server, ``postgresql://user@host/db``); the tables are created and upgraded by the Alembic migrations shipped
in ``intrepid/app/migrations`` (never by ``create_all``), so a department's database follows the releases.

What is stored: patients, studies, plans, beams, fractions, images (every ingested file, content-addressed),
references (per beam), results (per fraction and beam), comments, approvals (who, when, signature),
quarantined files (with the reason) and user accounts (hashed passwords).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

__all__ = [
    "Approval",
    "Base",
    "Beam",
    "BeamReference",
    "Comment",
    "Dose3DResult",
    "Fraction",
    "Image",
    "Patient",
    "Plan",
    "Quarantined",
    "Result",
    "Study",
    "User",
    "make_engine",
    "migrate",
    "normalise_url",
    "utcnow",
]

_log = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    """Now, UTC, without tzinfo (stored naive-UTC in both databases)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class User(Base):
    """An account: name and scrypt password hash (see :mod:`intrepid.app._security`)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Patient(Base):
    """A patient, keyed by DICOM Patient ID; the name is shown in pages, never logged."""

    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    plans: Mapped[list[Plan]] = relationship(back_populates="patient")


class Study(Base):
    """A DICOM study (Study Instance UID) of a patient."""

    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)


class Plan(Base):
    """A treatment plan: the referenced RT Plan UID (or ``study:<UID>`` when images name no plan)."""

    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), nullable=True)
    plan_uid: Mapped[str] = mapped_column(String(80), unique=True)
    label: Mapped[str] = mapped_column(String(80), default="")
    patient: Mapped[Patient] = relationship(back_populates="plans")
    beams: Mapped[list[Beam]] = relationship(back_populates="plan", order_by="Beam.number")
    fractions: Mapped[list[Fraction]] = relationship(back_populates="plan", order_by="Fraction.number")


class Beam(Base):
    """A beam of a plan (Referenced Beam Number)."""

    __tablename__ = "beams"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(80), default="")
    plan: Mapped[Plan] = relationship(back_populates="beams")


class Fraction(Base):
    """A delivered fraction of a plan; ``status`` is ``new``, ``approved`` or ``escalated``."""

    __tablename__ = "fractions"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    number: Mapped[int] = mapped_column(Integer)
    delivered_on: Mapped[str] = mapped_column(String(16), default="")
    status: Mapped[str] = mapped_column(String(16), default="new")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    plan: Mapped[Plan] = relationship(back_populates="fractions")
    results: Mapped[list[Result]] = relationship(back_populates="fraction")


class Image(Base):
    """An ingested file, stored content-addressed (``stored_path`` relative to the data folder).

    ``kind``: ``epid`` (a fraction's EPID image), ``reference`` (an uploaded portal-dose reference) or the
    DICOM modality of a file kept for later use (``CT``, ``RTPLAN``, ``RTSTRUCT``, ``RTDOSE``).
    """

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    sop_uid: Mapped[str] = mapped_column(String(80), default="")
    kind: Mapped[str] = mapped_column(String(16))
    stored_path: Mapped[str] = mapped_column(String(300))
    original_name: Mapped[str] = mapped_column(String(300), default="")
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    beam_id: Mapped[int | None] = mapped_column(ForeignKey("beams.id"), nullable=True)
    fraction_id: Mapped[int | None] = mapped_column(ForeignKey("fractions.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class BeamReference(Base):
    """The reference portal dose of a beam: ``kind`` ``upload``, ``plan`` or ``first_fraction``.

    ``dose_path`` is the reference dose (``.npz``, Gy, with its grid) relative to the data folder.
    """

    __tablename__ = "beam_references"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    beam_id: Mapped[int] = mapped_column(ForeignKey("beams.id"))
    kind: Mapped[str] = mapped_column(String(16))
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"), nullable=True)
    fraction_id: Mapped[int | None] = mapped_column(ForeignKey("fractions.id"), nullable=True)
    dose_path: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Result(Base):
    """The comparison of one fraction's beam with its reference, and its verdict.

    ``passed`` is None for a fraction that *is* the first-fraction baseline (nothing to compare with).
    ``fired`` and ``settings`` are JSON text.
    """

    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("fraction_id", "beam_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fraction_id: Mapped[int] = mapped_column(ForeignKey("fractions.id"))
    beam_id: Mapped[int] = mapped_column(ForeignKey("beams.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    reference_kind: Mapped[str] = mapped_column(String(16))
    gamma_pass_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    mean_gamma: Mapped[float | None] = mapped_column(Float, nullable=True)
    gamma_1percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    iso_ratio: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_dose_gy: Mapped[float] = mapped_column(Float, default=0.0)
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    fired: Mapped[str] = mapped_column(Text, default="[]")
    settings: Mapped[str] = mapped_column(Text, default="{}")
    dose_path: Mapped[str] = mapped_column(String(300), default="")
    figure_path: Mapped[str] = mapped_column(String(300), default="")
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    fraction: Mapped[Fraction] = relationship(back_populates="results")
    beam: Mapped[Beam] = relationship()


class Dose3DResult(Base):
    """The in-vivo 3D check of a fraction (:func:`intrepid.app._pipeline.reconstruct_3d`).

    ``status`` is ``done`` or ``failed`` (``reasons`` then holds the error); ``verdict`` is ``pass`` or
    ``alert`` (the in-vivo action levels of :class:`intrepid.invivo.ActionLevels`); ``dvh`` is JSON (per ROI
    the DVH differences, % of the prescription); ``folder`` (relative to the data folder) holds the NIfTI
    volumes shown by the 3D viewer and the DVH figure.
    """

    __tablename__ = "dose3d_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fraction_id: Mapped[int] = mapped_column(ForeignKey("fractions.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="done")
    verdict: Mapped[str] = mapped_column(String(16), default="")
    reasons: Mapped[str] = mapped_column(Text, default="[]")
    gamma_3pct2mm_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    gamma_2pct2mm_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    mean_gamma_3pct2mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    isocenter_ratio: Mapped[float | None] = mapped_column(Float, nullable=True)
    prescription_gy: Mapped[float | None] = mapped_column(Float, nullable=True)
    dvh: Mapped[str] = mapped_column(Text, default="{}")
    method: Mapped[str] = mapped_column(String(32), default="")
    folder: Mapped[str] = mapped_column(String(300), default="")
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Comment(Base):
    """A reviewer's comment on a fraction."""

    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fraction_id: Mapped[int] = mapped_column(ForeignKey("fractions.id"))
    username: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Approval(Base):
    """An approval or escalation of a fraction: who, when, and an HMAC signature over both and the results."""

    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fraction_id: Mapped[int] = mapped_column(ForeignKey("fractions.id"))
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Quarantined(Base):
    """A file that could not be ingested, kept (``stored_path``) with the reason shown in the app."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    original_name: Mapped[str] = mapped_column(String(300))
    stored_path: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


def normalise_url(url: str) -> str:
    """``postgresql://`` (and ``postgres://``) -> the psycopg 3 driver; anything else unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL journaling and a 30 s busy timeout (concurrent readers and
    one writer at a time, as the ingest workers and the web pages need)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema with the shipped Alembic migrations."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    _log.info("database schema up to date")


def session_factory(engine: Engine) -> sessionmaker[Any]:
    """Sessions bound to ``engine`` that keep loaded attributes after commit."""
    return sessionmaker(engine, expire_on_commit=False)
