"""Rendering: one JSON document on stdout with --json; Rich tables on stdout otherwise; messages on stderr."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, Callable

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from campaign_cli.timeutil import parse_time, to_local

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
LimitOption = Annotated[int, typer.Option("--limit", help="Items per page.")]
NextOption = Annotated[str | None, typer.Option("--next", help="Cursor printed by the previous page.")]
FilterOption = Annotated[str | None, typer.Option("--filter", help="Query filter as JSON.")]

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def emit_json(data: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`1 file`, `2 files`, `16,669 targets`: a count with thousands separators and its noun agreeing."""
    return f"{count:,} {noun if count == 1 else plural_form or noun + 's'}"


def say(message: str) -> None:
    """A message for the human, on stderr."""
    stderr.print(message, highlight=False, markup=False)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """Print a Rich table on stdout."""
    t = Table(*columns, title=title, show_lines=False)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    stdout.print(t)


def print_page(items: list[dict], nxt: str | None, key: str, as_json: bool, columns: Sequence[str]) -> None:
    """One page of a listing: JSON `{key: [...], "next": ...}` or a table and the next cursor."""
    if as_json:
        emit_json({key: items, "next": nxt})
        return
    if not items and not nxt:
        say(f"no {key} match")
        return
    table(columns, ([_cell(item.get(c)) for c in columns] for item in items))
    if nxt:
        say(f"next: {nxt}")


_JSON_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _cell(value: Any) -> Any:
    """A JSON value as a table cell: counts with thousands separators, times in the local zone,
    lists and objects as JSON."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and _JSON_TIME.match(value):
        return to_local(parse_time(value, "time"))
    return value


@contextmanager
def byte_progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar over bytes on a terminal (nothing otherwise); yields `update(done)`."""
    if not stderr.is_terminal or total <= 0:
        yield lambda done: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeRemainingColumn(), console=stderr, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.update(task, completed=done)


def count_progress_columns() -> list[Any]:
    """Columns for a done/total progress bar with rate and ETA."""
    return [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
