"""Alembic environment: runs on the connection handed in by viis.core.db.Database.migrate,
or on the URL in the alembic config (for `alembic revision --autogenerate`)."""

from alembic import context
from sqlalchemy import create_engine

from viis.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


conn = config.attributes.get("connection")
if conn is not None:
    _run(conn)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as c:
        _run(c)
