"""``intrepid serve --demo``: a data folder populated with a simulated course, ingested once."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["populate_demo"]

_log = logging.getLogger(__name__)


def populate_demo(config: Any, *, n_fractions: int = 4, fields: tuple[str, ...] = ("10x10", "5x5")) -> int:
    """Simulate a course into ``<data>/demo-course`` and ingest it, unless that was done before.

    Returns the number of fractions in the database afterwards.
    """
    from sqlalchemy import func, select

    from intrepid.app import open_ingestor
    from intrepid.app._course import simulate_course
    from intrepid.app._db import Fraction

    ingestor = open_ingestor(
        config.data_dir, config.db_url, levels=config.levels, predictor_kind=config.predictor_kind
    )
    course_dir = config.data_dir / "demo-course"
    if not course_dir.exists():
        _log.warning("simulating the demo course (8 EPID images, a few minutes on 2 cores)…")
        simulate_course(course_dir, n_fractions=n_fractions, fields=fields)
    ingestor.ingest_paths([course_dir])
    with ingestor.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Fraction)) or 0)
