"""Rendering: one JSON document on stdout with --json; Rich tables on stdout otherwise; messages on stderr."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Callable

import typer

from campaign_cli.timeutil import parse_time, to_local

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from campaign_cli.paging import Page

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
LimitOption = Annotated[int, typer.Option("--limit", help="Items per page.")]
NextOption = Annotated[str | None, typer.Option("--next", help="Cursor `next` printed by a page: the page after it.")]
PrevOption = Annotated[str | None, typer.Option("--prev", help="Cursor `prev` printed by a page: the page before it.")]
FilterOption = Annotated[str | None, typer.Option("--filter", help="Query filter as JSON.")]


def __getattr__(name: str) -> Console:
    """`stdout` and `stderr`: the Rich consoles, made (and Rich imported) by the first table or progress bar
    rather than by every command."""
    if name not in ("stdout", "stderr"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    # Data is printed as written: a name such as `[/]` or `:smile:` is neither markup nor an emoji code.
    console = Console(stderr=name == "stderr", soft_wrap=True, markup=False, emoji=False)
    globals()[name] = console
    return console


def _console(name: str) -> Console:
    return globals()[name] if name in globals() else __getattr__(name)


def emit_json(data: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`1 file`, `2 files`, `16,669 targets`: a count with thousands separators and its noun agreeing."""
    return f"{count:,} {noun if count == 1 else plural_form or noun + 's'}"


def say(message: str) -> None:
    """A message for the human, on stderr, as written (the control characters a terminal would act on removed)."""
    sys.stderr.write(message.translate(_TERMINAL_CONTROLS) + "\n")
    sys.stderr.flush()


# Bell, backspace, vertical tab, form feed, carriage return: what Rich leaves out of printed text.
_TERMINAL_CONTROLS = dict.fromkeys((7, 8, 11, 12, 13))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """Print a Rich table on stdout."""
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for column in columns:
        # Long ids and cids wrap onto the next line rather than being cut with an ellipsis.
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    _console("stdout").print(t)


def print_page(page: Page, key: str, as_json: bool, columns: Sequence[str]) -> None:
    """One page of a listing: JSON `{key: [...], "next": …, "prev": …}` or a table and the cursors."""
    if as_json:
        emit_json(page.envelope(key))
        return
    if not page.items and not page.cursors():
        say(f"no {key} match")
        return
    table(columns, ([_cell(item.get(c)) for c in columns] for item in page.items))
    say_cursors(page)


def say_cursors(page: Page) -> None:
    """The cursors of a page shown as a table, on stderr."""
    for name, cursor in page.cursors().items():
        say(f"{name}: {cursor}")


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
    if not _console("stderr").is_terminal or total <= 0:
        yield lambda done: None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), TaskProgressColumn(),
                  TimeRemainingColumn(), console=_console("stderr"), transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.update(task, completed=done)


def count_progress_columns() -> list[Any]:
    """Columns for a done/total progress bar with this run's rate and the ETA, within 80 columns.

    The campaign id is printed on its own line when sending begins, so no column has to cut it.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
    from rich.table import Column

    return [BarColumn(bar_width=20), MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=15)),
            TaskProgressColumn(), TextColumn("{task.fields[rate]}", table_column=Column(ratio=1, no_wrap=True)),
            TimeRemainingColumn()]


@dataclass
class _RunCount:
    """One campaign in this run: messages before it began and when it began."""

    task: Any
    began: float
    messages: int = 0
    seen: bool = False
    ended: float | None = None


class RunProgress:
    """This run's progress per campaign: the campaign's done/total, and this process's own messages over
    its own time (neither what earlier runs sent nor what other senders send beside it), shown in `bar`
    when there is one, and summed up when sending ends."""

    def __init__(self, bar: Progress | None):
        self.bar = bar
        self.runs: dict[str, _RunCount] = {}

    def begin(self, campaign_id: str) -> None:
        """The sender starts on `campaign_id`."""
        task = None
        if self.bar is not None:
            self.bar.console.print(f"sending {campaign_id}", highlight=False, markup=False)
            task = self.bar.add_task(campaign_id, total=None, rate="")
        self.runs[campaign_id] = _RunCount(task, time.monotonic())

    def update(self, p: Any) -> None:
        """A batch was written (a `sending.loop.Progress`)."""
        run = self.runs.get(p.campaign_id)
        if run is None:
            return
        run.messages, run.seen = p.sent_here, True
        if self.bar is not None:
            rate = f"{self.rate(run):,.0f} msg/s" + (f" · {p.skipped:,} skip" if p.skipped else "") + \
                   (f" · {p.failed:,} fail" if p.failed else "")
            self.bar.update(run.task, completed=p.done, total=p.total or 1, rate=rate)

    def end(self, campaign_id: str) -> None:
        """The sender is done with `campaign_id` (completed, stopped, interrupted or busy)."""
        self.runs[campaign_id].ended = time.monotonic()

    @staticmethod
    def rate(run: _RunCount) -> float:
        return run.messages / max((run.ended or time.monotonic()) - run.began, 1e-6)

    def summaries(self) -> list[str]:
        """One line per campaign this run sent: its messages, the elapsed time and the average rate."""
        return [f"{campaign_id}: {run.messages:,} messages in {(run.ended or run.began) - run.began:.1f}s "
                f"({self.rate(run):,.0f} msg/s on average)"
                for campaign_id, run in self.runs.items() if run.seen]
