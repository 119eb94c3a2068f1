"""Alembic's environment: migrates the connection `campaign db upgrade` hands over, or, from the
`alembic` command line (contributors making a revision), the database of `-x db=URL`."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine

from campaign_cli.store.models import UTCDateTime, with_postgresql_options


def render_item(kind: str, item: Any, _autogen_context: Any) -> str | bool:
    """Revisions spell types in plain SQLAlchemy, so that they do not change when the models' code does."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime()"
    return False


def run(connection: Connection) -> None:
    # Batch operations let ALTERs that SQLite lacks (drop or change a column) run as a table copy.
    context.configure(connection=connection, target_metadata=with_postgresql_options(), render_as_batch=True,
                      compare_type=True, render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()


def run_from_command_line() -> None:
    url = context.get_x_argument(as_dictionary=True).get("db") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database to migrate: alembic -x db=URL …")
    with create_engine(url).begin() as connection:
        run(connection)


if context.config.attributes.get("connection") is not None:
    run(context.config.attributes["connection"])
else:
    run_from_command_line()
