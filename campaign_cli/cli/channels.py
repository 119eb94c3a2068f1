"""`campaign channels …`: import, list, get."""

from __future__ import annotations

from typing import Annotated

import typer

from campaign_cli import channels as service
from campaign_cli.cli.context import engine_of, engine_or_new_of
from campaign_cli.cli.output import FilterOption, JsonOption, LimitOption, NextOption, PrevOption, byte_progress, emit_json, print_page, table
from campaign_cli.cli.users import FormatOption, report_import, sources_of
from campaign_cli.filters import parse_filter_text

app = typer.Typer(no_args_is_help=True)


@app.command("import")
def import_(
    ctx: typer.Context,
    files: Annotated[list[str], typer.Argument(help="JSONL, JSON array or CSV files; - reads stdin.")],
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Upsert channels and their members from files, all-or-nothing."""
    sources = sources_of(files, fmt)
    engine = engine_or_new_of(ctx)
    with byte_progress("importing channels", sum(s.size for s in sources)) as update:
        result = service.import_channels(engine, sources, on_progress=update)
    report_import(result.__dict__, "channels", as_json)


@app.command("list")
def list_(
    ctx: typer.Context,
    filter_: FilterOption = None,
    limit: LimitOption = 100,
    next_: NextOption = None,
    prev: PrevOption = None,
    as_json: JsonOption = False,
) -> None:
    """List channels matching a filter."""
    page = service.list_channels(engine_of(ctx), parse_filter_text(filter_), limit, next_, prev)
    print_page(page, "channels", as_json, ["cid", "team", "created_by_id", "member_count", "last_message_at"])


@app.command("get")
def get(ctx: typer.Context, cid: Annotated[str, typer.Argument(metavar="CID")], as_json: JsonOption = False) -> None:
    """Show one channel with its members (--json: {"channel": {...}, "members": [...]})."""
    channel = service.get_channel(engine_of(ctx), cid)
    members = channel.pop("members")
    if as_json:
        emit_json({"channel": channel, "members": members})
        return
    emit_json(channel)
    table(["user_id", "channel_role", "hidden", "archived", "last_read_at"],
          ([m["user_id"], m["channel_role"], m["hidden"], m["archived"], m["last_read_at"]] for m in members))
