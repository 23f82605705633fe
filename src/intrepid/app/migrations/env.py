"""Alembic environment of the review application: runs on the connection handed in by
:func:`intrepid.app._db.migrate` (no alembic.ini, no URL in a file)."""

from __future__ import annotations

from alembic import context

from intrepid.app._db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable from the alembic command line
    raise RuntimeError("run the migrations through intrepid.app._db.migrate(engine)")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
