"""Sending commands on the root (start, stop, resume, run, send, preview) and the `messages` / `events` listings."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress as RichProgress

from campaign_cli import delivery, history
from campaign_cli import preview as preview_service
from campaign_cli.campaigns import get_campaign_row, live_campaign_row
from campaign_cli.cli.campaigns import print_status
from campaign_cli.cli import complete
from campaign_cli.cli.context import app_context
from campaign_cli.cli.output import (JsonOption, LimitOption, NextOption, PrevOption, RunProgress,
                                     count_progress_columns, emit_json, print_page, say, stderr, table)
from campaign_cli.errors import CampaignStopped, Conflict, Interrupted, UsageError
from campaign_cli.lifecycle import SCHEDULED
from campaign_cli.sending import control
from campaign_cli.sending.loop import BUSY, INTERRUPTED, STOPPED, Sender, delivering_events
from campaign_cli.sending.send_file import send_file
from campaign_cli.store.engine import reading
from campaign_cli.timeutil import parse_time, to_local

ONE_SENDER_ON_SQLITE = ("SQLite has one writer, so one sender per campaign; "
                       "to send with several, use PostgreSQL (--db postgresql+psycopg://…)")
RateOption = Annotated[float | None, typer.Option("--rate", min=0.001, help="Messages per second at most [config sending.rate].")]
BatchOption = Annotated[int | None, typer.Option("--batch-size", min=1, max=100_000, help="Targets per transaction [config sending.batch_size].")]
DetachOption = Annotated[bool, typer.Option("--detach", help="Only change the status; `campaign run` sends.")]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="Campaign id.", autocompletion=complete.campaign_ids)]
StartIdArg = Annotated[str, typer.Argument(metavar="ID", help="Campaign id.", autocompletion=complete.startable_campaign_ids)]
StopIdArg = Annotated[str, typer.Argument(metavar="ID", help="Campaign id.", autocompletion=complete.stoppable_campaign_ids)]
ResumeIdArg = Annotated[str, typer.Argument(metavar="ID", help="Campaign id.", autocompletion=complete.resumable_campaign_ids)]

messages_app = typer.Typer(no_args_is_help=True)
events_app = typer.Typer(no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the sending commands to the root app."""
    app.command("start")(start)
    app.command("stop")(stop)
    app.command("resume")(resume)
    app.command("run")(run)
    app.command("send")(send)
    app.command("preview")(preview)
    app.add_typer(messages_app, name="messages", help="List messages the campaigns sent.")
    app.add_typer(events_app, name="events", help="List the events the campaigns emitted.")


def start(
    ctx: typer.Context,
    campaign_id: StartIdArg,
    at: Annotated[str | None, typer.Option("--at", help="Schedule for this RFC 3339 time (overrides the stored scheduled_for).")] = None,
    now_: Annotated[bool, typer.Option("--now", help="Send now, whatever scheduled_for is stored.")] = False,
    stop_at: Annotated[str | None, typer.Option("--stop-at", help="Stop sending at this RFC 3339 time (overrides the stored stop_at).")] = None,
    detach: DetachOption = False,
    rate: RateOption = None,
    batch_size: BatchOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a draft campaign: send it now in the foreground, or schedule it.

    A scheduled_for stored in the future schedules the campaign; --at schedules it for another
    time, and --now sends at once whatever is stored.
    """
    if now_ and at:
        raise UsageError("--now and --at exclude each other: give one of them")
    state = app_context(ctx)
    when = parse_time(at, "--at") if at else None
    until = parse_time(stop_at, "--stop-at") if stop_at else None
    if not detach and when is None:
        delivery.check_sender(state.engine, state.settings, campaign_id)
    started = control.start(state.engine, state.settings, campaign_id, when, until, immediately=now_)
    if started.status == SCHEDULED:
        say(scheduled_message(campaign_id, started))
        _print_campaign(ctx, campaign_id, as_json)
        return
    if detach:
        say(f"campaign {campaign_id} is in_progress; 'campaign run {campaign_id}' sends it")
        _print_campaign(ctx, campaign_id, as_json)
        return
    _send_in_foreground(ctx, [campaign_id], rate, batch_size, as_json, explicit=True)


def scheduled_message(campaign_id: str, started: control.Started) -> str:
    """What the operator is told when a campaign is scheduled rather than sent."""
    return (f"campaign {campaign_id} is scheduled for {to_local(started.scheduled_for)}; nothing is sent now. "
            f"'campaign run --watch' sends it when it is due ('campaign run' sends the campaigns due at that moment)")


def stop(ctx: typer.Context, campaign_id: StopIdArg, as_json: JsonOption = False) -> None:
    """Stop a scheduled or running campaign (a running sender stops within one batch)."""
    state = app_context(ctx)
    control.stop(state.engine, state.settings, campaign_id)
    say(f"campaign {campaign_id} stopped; 'campaign resume {campaign_id}' continues it")
    _print_campaign(ctx, campaign_id, as_json)


def resume(
    ctx: typer.Context,
    campaign_id: ResumeIdArg,
    detach: DetachOption = False,
    rate: RateOption = None,
    batch_size: BatchOption = None,
    as_json: JsonOption = False,
) -> None:
    """Continue a stopped campaign, or one left in progress by a sender that died, in the foreground."""
    state = app_context(ctx)
    if not detach:
        delivery.check_sender(state.engine, state.settings, campaign_id)
    control.resume(state.engine, state.settings, campaign_id)
    if detach:
        say(f"campaign {campaign_id} is in_progress; 'campaign run {campaign_id}' sends it")
        _print_campaign(ctx, campaign_id, as_json)
        return
    _send_in_foreground(ctx, [campaign_id], rate, batch_size, as_json, explicit=True)


def run(
    ctx: typer.Context,
    campaign_ids: Annotated[list[str] | None, typer.Argument(
        metavar="[ID]...", help="Campaigns to send (default: every due one).", autocompletion=complete.runnable_campaign_ids)] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Keep polling for due campaigns until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between polls with --watch.")] = 5.0,
    rate: RateOption = None,
    batch_size: BatchOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send the given campaigns, or every due one (scheduled time reached, or in progress with no live sender)."""
    state = app_context(ctx)
    engine = state.engine_or_new  # `run --watch` may start before anything was imported
    while True:
        due, problems = control.due_campaigns(engine, state.settings, campaign_ids or None)
        for problem in problems:
            say(f"error: {problem}")
        if campaign_ids:
            _refuse_busy(ctx, [c for c in campaign_ids if c not in due])
        if not due and not watch and not campaign_ids and not problems:
            say("no campaign is due")
        if due or not watch:
            _send_in_foreground(ctx, due, rate, batch_size, as_json and not watch, explicit=bool(campaign_ids),
                                watch=watch)
        if not watch:
            if problems:
                raise typer.Exit(problems[0].exit_code)
            return
        woken = threading.Event()
        with _interruptible(woken.set):
            if woken.wait(interval):
                raise Interrupted("interrupted while waiting for due campaigns; nothing was in hand")


def _refuse_busy(ctx: typer.Context, not_ready: list[str]) -> None:
    engine = app_context(ctx).engine
    for campaign_id in not_ready:
        with reading(engine) as conn:
            row = get_campaign_row(conn, campaign_id)
        holder = control.lease_holder(engine, campaign_id)
        if holder is not None:
            raise Conflict(f"{control.busy_message(campaign_id, holder)}; {ONE_SENDER_ON_SQLITE}")
        if row.status == SCHEDULED:
            say(f"campaign {campaign_id} is scheduled for {to_local(row.scheduled_for)}: not due yet")
        elif row.status == "stopped":
            raise Conflict(f"campaign {campaign_id!r} is stopped: 'campaign resume {campaign_id}' continues it")
        elif row.status == "draft":
            raise Conflict(f"campaign {campaign_id!r} is a draft: 'campaign start {campaign_id}' starts it")


def send(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("-f", "--file", readable=False, help="Campaign definition YAML.")],
    rate: RateOption = None,
    batch_size: BatchOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create, start and send a campaign in one step; once it has completed, running it again sends nothing.

    A definition whose scheduled_for lies in the future is scheduled instead.
    """
    state = app_context(ctx)
    campaign_id, started = send_file(state.engine_or_new, state.settings, file)
    if started.status == "completed":
        say(f"campaign {campaign_id} already completed; nothing to send")
        _print_campaign(ctx, campaign_id, as_json)
        return
    if started.status == SCHEDULED:
        say(scheduled_message(campaign_id, started))
        _print_campaign(ctx, campaign_id, as_json)
        return
    _send_in_foreground(ctx, [campaign_id], rate, batch_size, as_json, explicit=True)


def preview(
    ctx: typer.Context,
    campaign_id: IdArg,
    limit: Annotated[int, typer.Option("--limit", help="How many targets to render.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Render the first N targets' messages without writing anything."""
    state = app_context(ctx)
    items = preview_service.preview(state.engine, campaign_id, limit, state.settings.render_limits)
    if as_json:
        emit_json({"campaign_id": campaign_id, "targets": items})
        return
    table(["target", "kind", "channel", "action", "text", "missing"],
          ([i["target_id"], i["kind"], i["cid"], i["action"], i["text"], ", ".join(i["missing_fields"])] for i in items))


@messages_app.command("list")
def messages_list(
    ctx: typer.Context,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign's messages.")] = None,
    limit: LimitOption = 100,
    next_: NextOption = None,
    prev: PrevOption = None,
    as_json: JsonOption = False,
) -> None:
    """List messages, oldest first."""
    page = history.list_messages(app_context(ctx).engine, campaign, limit, next_, prev)
    print_page(page, "messages", as_json, ["id", "cid", "user_id", "text", "created_at"])


@events_app.command("list")
def events_list(
    ctx: typer.Context,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign's events.")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only events of this type, e.g. message.new.")] = None,
    limit: LimitOption = 100,
    next_: NextOption = None,
    prev: PrevOption = None,
    as_json: JsonOption = False,
) -> None:
    """List events in the order they were emitted."""
    page = history.list_events(app_context(ctx).engine, campaign, type_, limit, next_, prev)
    print_page(page, "events", as_json, ["type", "campaign_id", "cid", "message_id", "created_at"])


# ---------------------------------------------------------------- the foreground sender


@contextmanager
def _interruptible(on_signal: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C (and SIGTERM) call `on_signal` (finish the batch in hand) instead of killing the process."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: on_signal())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _send_in_foreground(ctx: typer.Context, campaign_ids: list[str], rate: float | None, batch_size: int | None,
                        as_json: bool, explicit: bool, watch: bool = False) -> None:
    """Send the campaigns; exit 130 when interrupted, 6 when one of them ended stopped (with --watch: say so)."""
    state = app_context(ctx)
    outcomes = []
    with _progress_bar() as bar:
        sender = Sender(state.engine, state.settings, rate=rate, batch_size=batch_size, on_progress=bar.update)
        with _interruptible(sender.interrupt), delivering_events(state.engine, state.settings):
            for campaign_id in campaign_ids:
                bar.begin(campaign_id)
                outcomes.append((campaign_id, sender.send(campaign_id)))
                bar.end(campaign_id)
    if stderr.is_terminal:
        for line in bar.summaries():
            say(line)
    stopped = []
    for campaign_id, outcome in outcomes:
        if outcome == BUSY and explicit:
            holder = control.lease_holder(state.engine, campaign_id)
            busy = (control.busy_message(campaign_id, holder) if holder
                    else f"campaign {campaign_id!r} is being sent by another process")
            raise Conflict(f"{busy}; {ONE_SENDER_ON_SQLITE}")
        _print_campaign(ctx, campaign_id, as_json)
        if outcome == STOPPED:
            stopped.extend(_stopped_line(state.engine, campaign_id))
    interrupted = [campaign_id for campaign_id, outcome in outcomes if outcome == INTERRUPTED]
    if interrupted:
        raise Interrupted(f"interrupted: the batch in hand was saved; 'campaign resume {interrupted[0]}' continues")
    if stopped and not watch:
        raise CampaignStopped("\n".join(stopped))
    for line in stopped:
        say(line)


def _stopped_line(engine: Any, campaign_id: str) -> list[str]:
    """`stopped at 13,000 of 16,669 targets; …` for a campaign that ended stopped (nothing if another sender has it)."""
    with reading(engine) as conn:
        row = live_campaign_row(conn, campaign_id)
    if row.status != "stopped":
        return []
    return [f"campaign {campaign_id} stopped at {row.stats_done:,} of {row.stats_targets:,} targets; "
            f"'campaign resume {campaign_id}' continues"]


@contextmanager
def _progress_bar() -> Iterator[RunProgress]:
    """This run's progress: a Rich progress bar on a terminal (nothing otherwise), and the summary lines."""
    if not stderr.is_terminal:
        yield RunProgress(None)
        return
    with RichProgress(*count_progress_columns(), console=stderr) as bar:
        yield RunProgress(bar)


def _print_campaign(ctx: typer.Context, campaign_id: str, as_json: bool) -> None:
    print_status(app_context(ctx).engine, campaign_id, as_json)
