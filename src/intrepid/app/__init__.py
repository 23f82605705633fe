"""intrepid.app: the review web application (``intrepid serve``); needs the ``app`` extra.

Fractions in (DICOM ingest from a folder or the command line), verdicts out (work list, per-fraction review
with zoomed maps, trends, approvals), in a browser. FastAPI and SQLAlchemy are imported by the functions
that need them, so ``import intrepid.app`` stays light.

>>> from intrepid.app import AppConfig, create_app  # doctest: +SKIP
>>> app = create_app(AppConfig(data_dir=Path("intrepid-data")))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "AppConfig",
    "IngestOutcome",
    "Ingestor",
    "SimulatedCourse",
    "create_app",
    "open_ingestor",
    "simulate_course",
]

if TYPE_CHECKING:
    from intrepid.app._course import SimulatedCourse, simulate_course
    from intrepid.app._ingest import Ingestor, IngestOutcome
    from intrepid.app._server import AppConfig, create_app

_LAZY = {
    "AppConfig": "intrepid.app._server",
    "create_app": "intrepid.app._server",
    "IngestOutcome": "intrepid.app._ingest",
    "Ingestor": "intrepid.app._ingest",
    "SimulatedCourse": "intrepid.app._course",
    "simulate_course": "intrepid.app._course",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "open_ingestor":
        return open_ingestor
    raise AttributeError(f"module 'intrepid.app' has no attribute {name!r}")


def open_ingestor(data_dir: Any, db_url: str | None = None, **kwargs: Any) -> Any:
    """An :class:`Ingestor` on ``data_dir`` and its database (migrated to the newest schema first)."""
    from pathlib import Path

    from intrepid.app._db import make_engine, migrate, session_factory
    from intrepid.app._ingest import Ingestor

    url = db_url or f"sqlite:///{(Path(data_dir) / 'intrepid.sqlite').resolve()}"
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    migrate(engine)
    return Ingestor(Path(data_dir), session_factory(engine), **kwargs)
