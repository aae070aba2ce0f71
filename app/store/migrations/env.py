"""Alembic environment: migrations run on the connection Clarion hands over."""

from alembic import context

from app.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only for `alembic` run by hand
    raise RuntimeError("run migrations through app.store.db.migrate()")

context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
