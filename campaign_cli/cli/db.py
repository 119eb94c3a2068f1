"""`campaign db upgrade` and `campaign db status`: the database schema's revision."""

from __future__ import annotations

import typer

from campaign_cli.cli.context import app_context
from campaign_cli.cli.output import JsonOption, emit_json, say

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Bring the database to this campaign's schema revision (a new database is created at it)."""
    from campaign_cli.store import schema

    db_url = app_context(ctx).settings.db_url
    revision = schema.upgrade_database(db_url)
    if revision.current is None:
        say(f"created the database at revision {revision.latest}")
    elif revision.is_latest:
        say(f"the database is already at the latest revision, {revision.latest}")
    else:
        say(f"upgraded the database from revision {revision.current} to {revision.latest}")


@app.command("status")
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Print the database's schema revision and the latest one this campaign knows; changes nothing."""
    from campaign_cli.store import schema

    revision = schema.database_revision(app_context(ctx).settings.db_url)
    if as_json:
        emit_json({"current": revision.current, "latest": revision.latest, "up_to_date": revision.is_latest})
        return
    typer.echo(f"current revision: {revision.current or 'none (no database yet)'}")
    typer.echo(f"latest revision: {revision.latest}")
