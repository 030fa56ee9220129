"""Alembic environment: runs on the connection fleet.db.engine.migrate passes in."""

from alembic import context

from fleet.db.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through fleet.db.engine.migrate (outpost fleet migrate)")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
