"""Alembic's environment: runs the revisions on the connection schema.py hands over (it
holds the schema lock on it), in that connection's transaction."""

from __future__ import annotations

from alembic import context

from sangsaeng.server.db.migrations import render_item
from sangsaeng.server.db.tables import Base

if context.is_offline_mode():
    raise RuntimeError("the store's migrations run on a live connection (schema.py); "
                       "offline SQL scripts are not supported")
context.configure(connection=context.config.attributes["connection"],
                  target_metadata=Base.metadata, render_as_batch=True,
                  render_item=render_item)
with context.begin_transaction():
    context.run_migrations()
