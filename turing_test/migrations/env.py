"""Alembic environment: the store passes its live connection in `config.attributes`.

No alembic.ini is needed: `turing_test.storage.alembic_config` builds the config in code, so the
migrations run wherever the package is installed.
"""
from alembic import context

from turing_test.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through turing_test.storage.upgrade(), which passes a connection")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
