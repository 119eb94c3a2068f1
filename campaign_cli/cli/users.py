"""`campaign users …`: import, list, get, delete."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from campaign_cli.cli.context import app_context, db_url_of, engine_of, engine_or_new_of
from campaign_cli.cli.output import (FilterOption, JsonOption, LimitOption, NextOption, PrevOption, byte_progress, emit_json,
                                     plural, print_page, say)
from campaign_cli.errors import InvalidInput, UsageError
from campaign_cli.records import FORMATS, RecordSource
from campaign_cli.startup import lazy_module
from campaign_cli.store import lookup

# Loaded (with SQLAlchemy) by the first command that uses them: `list` and `get` may answer without.
service = lazy_module("campaign_cli.users")
filters = lazy_module("campaign_cli.filters")

app = typer.Typer(no_args_is_help=True)

FormatOption = Annotated[str | None, typer.Option("--format", help="jsonl, json or csv (default: from the extension).")]


def sources_of(files: list[str], fmt: str | None) -> list[RecordSource]:
    """Record sources for the files given on the command line."""
    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput(f"--format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return [RecordSource(name, fmt) for name in files]


@app.command("import")
def import_(
    ctx: typer.Context,
    files: Annotated[list[str] | None, typer.Argument(help="JSONL, JSON array or CSV files; - reads stdin.")] = None,
    fmt: FormatOption = None,
    from_matrix: Annotated[bool, typer.Option(
        "--from-matrix", help="Read the accounts of the Matrix homeserver (config delivery.matrix.admin_token).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Upsert users from files, or from a Matrix homeserver's directory; all-or-nothing."""
    if bool(files) == from_matrix:
        raise UsageError("users import: give FILE arguments or --from-matrix (one of them)")
    if from_matrix:
        # Imported here: the HTTP client is not worth loading for every `users` command.
        from campaign_cli.delivery.matrix_directory import MatrixDirectory

        sources: list[Any] = [MatrixDirectory(app_context(ctx).settings.delivery.matrix)]
    else:
        sources = sources_of(files or [], fmt)
    engine = engine_or_new_of(ctx)
    with byte_progress("importing users", sum(s.size for s in sources)) as update:
        result = service.import_users(engine, sources, on_progress=update)
    report_import(result.__dict__, "users", as_json)


def report_import(result: dict, noun: str, as_json: bool) -> None:
    """The summary of an import: a JSON object, or a line on stderr."""
    if as_json:
        emit_json(result)
        return
    line = (f"imported {plural(result['records'], noun[:-1], noun)}: {result['inserted']:,} inserted, "
            f"{result['updated']:,} updated")
    if result.get("duplicates"):
        line += f"; {plural(result['duplicates'], 'duplicate id')} in the input (the last record of each won)"
    say(line)


@app.command("list")
def list_(
    ctx: typer.Context,
    filter_: FilterOption = None,
    limit: LimitOption = 100,
    next_: NextOption = None,
    prev: PrevOption = None,
    count: Annotated[bool, typer.Option("--count", help="Print only how many users match.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List users matching a filter."""
    filter_obj = filters.parse_filter_text(filter_) if filter_ else None
    if count:
        total = service.count_users(engine_of(ctx), filter_obj)
        emit_json({"count": total}) if as_json else print(total)
        return
    page = lookup.list_users(db_url_of(ctx), limit, next_, prev) if filter_obj is None else None
    if page is None:
        page = service.list_users(engine_of(ctx), filter_obj, limit, next_, prev)
    print_page(page, "users", as_json, ["id", "name", "role", "teams", "language", "banned", "created_at"])


@app.command("get")
def get(ctx: typer.Context, user_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False) -> None:
    """Show one user."""
    user = lookup.get_user(db_url_of(ctx), user_id)
    emit_json(user if user is not None else service.get_user(engine_of(ctx), user_id))


@app.command("delete")
def delete(ctx: typer.Context, user_ids: Annotated[list[str], typer.Argument(metavar="ID...")], as_json: JsonOption = False) -> None:
    """Delete users (and their channel memberships)."""
    deleted = service.delete_users(engine_of(ctx), user_ids)
    emit_json({"deleted": deleted}) if as_json else say(f"deleted {plural(deleted, 'user')}")
