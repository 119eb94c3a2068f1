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
    """Settings resolved once per run, and the engine opened on first use."""

    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from campaign_cli.store.engine import open_engine

            self._engine = open_engine(self.settings.db_url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def app_context(ctx: typer.Context) -> AppContext:
    """The AppContext of this run (set by the root callback)."""
    root = ctx.find_root()
    assert isinstance(root.obj, AppContext)
    return root.obj


def engine_of(ctx: typer.Context) -> Engine:
    """The database engine of this run."""
    return app_context(ctx).engine
