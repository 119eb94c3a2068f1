"""Shell completion of campaign and segment ids, read from the database named by --db / CAMPAIGN_DB.

Completion runs on every <TAB>: it never creates a database, never prints an error (a shell
would show it in the middle of the command line), and offers at most `MAX_CHOICES` ids.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

MAX_CHOICES = 100


def _engine(ctx: typer.Context) -> Any:
    """The database of the command line being completed, or None when there is none yet."""
    from sqlalchemy.engine import make_url

    from campaign_cli.settings import resolve
    from campaign_cli.store.engine import open_engine

    root = ctx.find_root().params
    settings = resolve(db=root.get("db"), config=root.get("config"))
    url = make_url(settings.db_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
        return None
    return open_engine(settings.db_url, create=False)


def _choices(ctx: typer.Context, lister: Callable[[Any], list[tuple[str, str]]]) -> list[tuple[str, str]]:
    try:
        engine = _engine(ctx)
        if engine is None:
            return []
        try:
            return lister(engine)
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - a completion that fails offers nothing rather than an error
        return []


def _campaigns(statuses: tuple[str, ...] | None) -> Callable[[typer.Context, str], list[tuple[str, str]]]:
    """A completion of the ids of campaigns in one of `statuses` (any status when None), with their name and status."""

    def complete(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
        from campaign_cli.campaigns import list_campaigns

        query: dict[str, Any] = {"id": {"$autocomplete": incomplete}} if incomplete else {}
        if statuses is not None:
            query["status"] = {"$in": list(statuses)}

        def lister(engine: Any) -> list[tuple[str, str]]:
            items = list_campaigns(engine, query or None, ["id"], MAX_CHOICES, None).items
            return [(c["id"], f"{c['status']}" + (f" · {c['name']}" if c["name"] else "")) for c in items]

        return _choices(ctx, lister)

    return complete


def segment_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Completion of the ids of live segments, with their type and name."""
    from campaign_cli.segments import list_segments

    def lister(engine: Any) -> list[tuple[str, str]]:
        query = {"id": {"$autocomplete": incomplete}} if incomplete else None
        items = list_segments(engine, query, ["id"], MAX_CHOICES, None).items
        return [(s["id"], f"{s['type']} segment" + (f" · {s['name']}" if s["name"] else "")) for s in items]

    return _choices(ctx, lister)


campaign_ids = _campaigns(None)
startable_campaign_ids = _campaigns(("draft",))
stoppable_campaign_ids = _campaigns(("scheduled", "in_progress"))
resumable_campaign_ids = _campaigns(("stopped", "in_progress"))
runnable_campaign_ids = _campaigns(("scheduled", "in_progress"))
