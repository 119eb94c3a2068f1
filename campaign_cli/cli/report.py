"""`campaign report ID`: a campaign's results as tables, one JSON document, or a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from campaign_cli import report as service
from campaign_cli.cli import complete
from campaign_cli.cli.context import engine_of
from campaign_cli.cli.output import JsonOption, emit_json, say, table
from campaign_cli.errors import InvalidInput


def register(app: typer.Typer) -> None:
    """Add `report` to the root app."""
    app.command("report")(report)


def report(
    ctx: typer.Context,
    campaign_id: Annotated[str, typer.Argument(metavar="ID", help="Campaign id.", autocompletion=complete.campaign_ids)],
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML page with a chart to this file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Report a campaign's results: counts, skipped and failed by reason, messages over time (--html, --json)."""
    if html is not None:
        _check_writable(html)
        service.require_chart_library()
    data = service.campaign_report(engine_of(ctx), campaign_id)
    if html is not None:
        page = service.render_html(data)
        try:
            html.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"--html: cannot write {html}: {exc.strerror}") from None
        say(f"wrote the report of campaign {campaign_id} to {html}")
    if as_json:
        emit_json(data)
    elif html is None:
        _print_tables(data)


def _check_writable(path: Path) -> None:
    if path.is_dir():
        raise InvalidInput(f"--html: {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise InvalidInput(f"--html: folder {path.parent} does not exist")


def _print_tables(data: dict) -> None:
    counts = data["counts"]
    table(["count", "value"], [(name.replace("_", " "), f"{value:,}" if isinstance(value, int) else value)
                               for name, value in counts.items() if value is not None],
          title=f"campaign {data['campaign']['id']} ({data['campaign']['status']})")
    for title, by_reason in (("skipped", data["skipped"]), ("failed", data["failed"])):
        if by_reason:
            table(["reason", "targets"], ((reason, f"{n:,}") for reason, n in by_reason.items()), title=title)
    say(f"{len(data['messages_over_time'])} points of messages over time: --json lists them, --html FILE draws them")
