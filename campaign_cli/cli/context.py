"""What every command gets from the root callback: the resolved settings and a lazily opened database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # imported when a command opens the database, not at start-up
    from sqlalchemy import Engine

    from campaign_cli.settings import Settings


@dataclass
class AppContext:
    """Settings resolved once per run, and the engine opened on first use.

    Most commands use `engine`: it never creates a database (a missing one is exit 4, `no database
    at PATH`), so a mistyped --db cannot pass for an empty one. Only the commands that bring data
    into a new database (imports, create, send, run) use `engine_or_new`, which creates it.
    """

    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        """The existing database: never created here."""
        return self._open(create=False)

    @property
    def engine_or_new(self) -> Engine:
        """The database, created (with its schema) when it does not exist yet."""
        return self._open(create=True)

    def _open(self, create: bool) -> Engine:
        if self._engine is None:
            from campaign_cli.store.engine import open_engine

            self._engine = open_engine(self.settings.db_url, create=create)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def app_context(ctx: typer.Context) -> AppContext:
    """The AppContext of this run (set by the root callback)."""
    root = ctx.find_root()
    assert isinstance(root.obj, AppContext)
    return root.obj


def db_url_of(ctx: typer.Context) -> str:
    """The database URL of this run, for `store.lookup` (which opens it without SQLAlchemy)."""
    return app_context(ctx).settings.db_url


def engine_of(ctx: typer.Context) -> Engine:
    """The existing database of this run (never created: a missing one is exit 4)."""
    return app_context(ctx).engine


def engine_or_new_of(ctx: typer.Context) -> Engine:
    """The database of this run, created when it does not exist yet (imports, create, send, run)."""
    return app_context(ctx).engine_or_new
