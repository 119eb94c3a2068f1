"""Campaign commands on the root: create, get, status, update, delete, list, validate."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from sqlalchemy import Engine

from campaign_cli import campaigns as service
from campaign_cli import delivery, lifecycle, monitor
from campaign_cli.cli import complete
from campaign_cli.cli.context import app_context, engine_of, engine_or_new_of
from campaign_cli.cli.output import (FilterOption, JsonOption, LimitOption, NextOption, PrevOption, emit_json, plural, say,
                                     say_cursors, stdout, table)
from campaign_cli.errors import CampaignStopped, InvalidInput, InvalidInputs, NoDatabase, UsageError
from campaign_cli.filters import parse_filter_text
from campaign_cli.settings import DEFAULT_DB, db_url_from
from campaign_cli.target_users import DEFAULT_USERS_LIMIT, MAX_USERS_LIMIT
from campaign_cli.timeutil import parse_time, to_local

# readable=False on file parameters: the loaders report an unreadable file themselves, as invalid input (exit 3).
FileOption = Annotated[Path | None, typer.Option("--file", "-f", readable=False, help="YAML definition file.")]
IdArgument = Annotated[str, typer.Argument(metavar="ID", help="Campaign id.", autocompletion=complete.campaign_ids)]


def register(app: typer.Typer) -> None:
    """Add the campaign commands to the root app."""
    for command in (create, get, status, update, delete, list_, validate):
        app.command(command.__name__.rstrip("_"))(command)


def create(
    ctx: typer.Context,
    file: FileOption = None,
    campaign_id: Annotated[str | None, typer.Option("--id", help="Campaign id (default: generated).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Campaign name.")] = None,
    sender: Annotated[str | None, typer.Option("--sender", help="sender_id: the user the messages come from.")] = None,
    segments: Annotated[list[str] | None, typer.Option("--segment", help="A segment id (repeatable).", autocompletion=complete.segment_ids)] = None,
    users: Annotated[list[str] | None, typer.Option("--user", help="A user id (repeatable).")] = None,
    text: Annotated[str | None, typer.Option("--text", help="message_template.text (a template).")] = None,
    create_channels: Annotated[bool, typer.Option("--create-channels", help="Create missing channels.")] = False,
    channel_type: Annotated[str | None, typer.Option("--channel-type", help="channel_template.type.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create draft campaigns from a YAML file (-f), or one from flags.

    --json prints {"campaign": {...}, "users": {...}}, or {"campaigns": [...]} for a file with a `campaigns:` list.
    """
    flags = _spec_from_flags(campaign_id, name, sender, segments, users, text, create_channels, channel_type)
    if file is not None and flags:
        raise UsageError("give either -f FILE or field flags (--sender, --text, …), not both")
    if file is None and not flags:
        raise UsageError("give -f FILE or field flags (--sender, --text, --segment or --user, …)")
    specs, listed = service.load_campaign_file(file) if file is not None else ([("command line", flags)], False)
    documents = service.create_campaigns(engine_or_new_of(ctx), specs)
    if as_json:
        emit_json({"campaigns": [d["campaign"] for d in documents]} if listed else documents[0])
        return
    for campaign in (d["campaign"] for d in documents):
        print(campaign["id"])
        say(f"created campaign {campaign['id']!r} ({campaign['name'] or 'no name'}) as a draft")


def _spec_from_flags(campaign_id: str | None, name: str | None, sender: str | None, segments: list[str] | None,
                     users: list[str] | None, text: str | None, create_channels: bool,
                     channel_type: str | None) -> dict[str, Any]:
    """A definition holding only the fields given as flags."""
    spec: dict[str, Any] = {"id": campaign_id, "name": name, "sender_id": sender,
                            "segment_ids": segments or None, "user_ids": users or None,
                            "create_channels": create_channels or None}
    if text is not None:
        spec["message_template"] = {"text": text}
    if channel_type is not None:
        spec["channel_template"] = {"type": channel_type}
    return {key: value for key, value in spec.items() if value is not None}


def get(
    ctx: typer.Context,
    campaign_id: IdArgument,
    users_limit: Annotated[int, typer.Option(
        "--users-limit", help=f"Target users in `users`, at most {MAX_USERS_LIMIT}.")] = DEFAULT_USERS_LIMIT,
    users_next: Annotated[str | None, typer.Option("--users-next", help="Cursor users.next: the next users.")] = None,
    users_prev: Annotated[str | None, typer.Option("--users-prev", help="Cursor users.prev: the users before.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a campaign: every field, its stats, segments, sender and a page of its users."""
    emit_json(service.get_campaign(engine_of(ctx), campaign_id, users_limit, users_next, users_prev))


def status(
    ctx: typer.Context,
    campaign_id: IdArgument,
    watch: Annotated[bool, typer.Option("--watch", help="Follow it live until it completes or stops (exit 0, or 6 when stopped).")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.05, max=3600, help="Seconds between refreshes with --watch.")] = 1.0,
    as_json: JsonOption = False,
    refresh_reads: Annotated[bool, typer.Option(
        "--refresh-reads", help="First fetch the receivers' read receipts from the delivery backend.")] = False,
) -> None:
    """Show a campaign's status, progress, rate and senders; --watch follows it live."""
    engine = engine_of(ctx)
    if refresh_reads:
        delivery.refresh_reads(engine, app_context(ctx).settings, campaign_id)
    if not watch:
        print_status(engine, campaign_id, as_json, monitor.campaign_status(engine, campaign_id))
        return
    document = watch_campaign(engine, campaign_id, interval, show=not as_json)
    if as_json:
        emit_json(document)
    if document["campaign"]["status"] == lifecycle.STOPPED:
        raise CampaignStopped(f"campaign {campaign_id!r} ended stopped")


def watch_campaign(engine: Engine, campaign_id: str, interval: float, show: bool) -> dict[str, Any]:
    """Refresh the status view every `interval` seconds until the campaign ends; returns its last state.

    A draft has nothing to follow: it is shown once.
    """
    document = monitor.campaign_status(engine, campaign_id)
    with Live(status_view(document), console=stdout, auto_refresh=False, transient=False) if show else nullcontext() as live:
        while document["campaign"]["status"] != lifecycle.DRAFT and not monitor.has_ended(document):
            time.sleep(interval)
            document = monitor.campaign_status(engine, campaign_id)
            if live is not None:
                live.update(status_view(document), refresh=True)
    return document


def print_status(engine: Engine, campaign_id: str, as_json: bool, document: dict[str, Any] | None = None) -> None:
    """The campaign document (read now unless given) as JSON, or the compact view with its webhook and push deliveries."""
    document = document or service.get_campaign(engine, campaign_id)
    if as_json:
        emit_json(document)
        return
    from campaign_cli.sending.sinks import outbox_stats  # not at the top: it brings the HTTP client

    with engine.connect() as conn:
        deliveries = outbox_stats(conn, campaign_id)
    stdout.print(status_view(document, deliveries))


def status_view(document: dict[str, Any], deliveries: dict[str, dict[str, int]] | None = None) -> Table:
    """The compact view of `status` from a campaign document: progress bar, counts, rate, ETA, senders and times."""
    campaign = document["campaign"]
    stats = campaign["stats"]
    view = Table.grid(padding=(0, 2))
    view.add_column(style="bold", no_wrap=True)
    view.add_column(overflow="fold")
    view.add_row("campaign", f"{campaign['id']}" + (f"  {campaign['name']}" if campaign["name"] else ""))
    view.add_row("status", campaign["status"])
    bar = Table.grid(padding=(0, 1))
    done = stats["stats_messages_sent"] + sum(stats["stats_skipped"].values()) + stats["stats_failed"]
    bar.add_row(ProgressBar(total=1.0, completed=stats["progress"], width=40),
                f"{stats['progress']:.0%} ({done:,}/{stats['stats_targets']:,})")
    view.add_row("progress", bar)
    view.add_row("counts", f"targets {stats['stats_targets']:,} · sent {stats['stats_messages_sent']:,} · "
                           f"skipped {sum(stats['stats_skipped'].values()):,} · failed {stats['stats_failed']:,} · "
                           f"read {stats['stats_users_read']:,}")
    view.add_row("channels", f"created {stats['stats_channels_created']:,} · users sent {stats['stats_users_sent']:,}")
    if stats["stats_skipped"]:
        view.add_row("skipped", " · ".join(f"{reason} {n:,}" for reason, n in sorted(stats["stats_skipped"].items())))
    if stats.get("stats_failed_reasons"):
        view.add_row("failed", " · ".join(f"{reason} {n:,}" for reason, n in sorted(stats["stats_failed_reasons"].items())))
    if "rate" in document:
        _add_live_rows(view, document)
    for sink, counts in (deliveries or {}).items():
        if any(counts.values()):
            view.add_row(f"{sink} calls", " · ".join(f"{status} {n:,}" for status, n in counts.items()))
    for label, value in (("scheduled for", campaign.get("scheduled_for")), ("stop at", campaign.get("stop_at")),
                         ("started", stats["stats_started_at"]), ("completed", stats["stats_completed_at"]),
                         ("created", campaign["created_at"]), ("updated", campaign["updated_at"])):
        view.add_row(label, _local(value))
    return view


def sender_line(sender: dict[str, Any]) -> str:
    """One sender of a campaign: who, what it wrote, when it was last seen, and whether it is still sending."""
    state = "live" if sender["live"] else "lease expired" if sender["lease_expires_at"] else "left"
    return (f"{sender['owner']} · {sender['batches']:,} batches · {sender['targets']:,} targets · "
            f"last seen {_local(sender['last_seen'])} · {state}")


def _add_live_rows(view: Table, document: dict[str, Any]) -> None:
    """Rate, ETA, elapsed time and the senders (from `monitor.campaign_status`)."""
    campaign = document["campaign"]
    if document["rate"] is not None:
        eta = document["eta_seconds"]
        view.add_row("rate", f"{document['rate']:,.1f} messages/s over the last minute · ETA "
                             + ("-" if eta is None else _duration(eta)))
    if document["elapsed_seconds"] is not None:
        view.add_row("elapsed", _duration(document["elapsed_seconds"]))
    for sender in document["senders"]:
        view.add_row("sender", sender_line(sender))
    if monitor.sender_died(document):
        view.add_row("note", f"its sender died (lease expired): `campaign resume {campaign['id']}` continues")
    elif campaign["status"] == lifecycle.IN_PROGRESS and not any(s["live"] for s in document["senders"]):
        view.add_row("note", f"no sender is working on it: `campaign run {campaign['id']}` sends it")


def _duration(seconds: float) -> str:
    """12.3s, 4m05s, 2h03m."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _local(value: str | None) -> str:
    return to_local(parse_time(value, "time")) if value else "-"


def update(ctx: typer.Context, campaign_id: IdArgument,
           file: Annotated[Path, typer.Option("--file", "-f", readable=False, help="YAML with the fields to change.")],
           as_json: JsonOption = False) -> None:
    """Change a draft or scheduled campaign: the file's fields replace the stored ones."""
    where, spec = service.load_one_campaign(file)
    document = service.update_campaign(engine_of(ctx), campaign_id, spec, where)
    if as_json:
        emit_json(document)
    else:
        say(f"updated campaign {campaign_id!r}")


def delete(ctx: typer.Context, campaign_id: IdArgument, as_json: JsonOption = False) -> None:
    """Delete a campaign that is not in progress."""
    service.delete_campaign(engine_of(ctx), campaign_id)
    if as_json:
        emit_json({"deleted": campaign_id})
    else:
        say(f"deleted campaign {campaign_id!r}")


def list_(
    ctx: typer.Context,
    filter_: FilterOption = None,
    sort: Annotated[list[str] | None, typer.Option("--sort", help="field or -field, repeatable [default: -created_at].")] = None,
    limit: LimitOption = 100,
    next_: NextOption = None,
    prev: PrevOption = None,
    as_json: JsonOption = False,
) -> None:
    """List campaigns: --filter on id, name, sender_id, status, created_at, updated_at, segments."""
    page = service.list_campaigns(engine_of(ctx), parse_filter_text(filter_), sort or ["-created_at"], limit,
                                  next_, prev)
    if as_json:
        emit_json(page.envelope("campaigns"))
        return
    if not page.items and not page.cursors():
        say("no campaigns match")
        return
    table(["id", "name", "status", "sender_id", "targets", "progress", "created_at"],
          ([c["id"], c["name"], c["status"], c["sender_id"], _targets(c), f"{c['stats']['progress']:.0%}",
            _local(c["created_at"])] for c in page.items))
    say_cursors(page)


def _targets(campaign: dict[str, Any]) -> str:
    if campaign["segment_ids"]:
        return "segments " + ", ".join(campaign["segment_ids"])
    return plural(len(campaign["user_ids"]), "user id")


def validate(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", readable=False, help="Campaign or segment definition YAML files.")],
    offline: Annotated[bool, typer.Option("--offline", help="Check schema and templates only, not references.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Check campaign and segment definitions, templates and references; write nothing (exit 0 or 3)."""
    from campaign_cli import validation

    engine, unchecked = (None, "--offline") if offline else _database_to_check(ctx)
    report = validation.validate_files(engine, files)
    if as_json:
        emit_json(report.json())
    if not report.ok:
        if as_json:
            raise InvalidInput(f"{plural(len(report.problems), 'problem')} in {plural(report.files, 'file')}")
        raise InvalidInputs([p.text for p in report.problems])
    kinds = [plural(n, f"{kind} definition") for kind, n in report.counts.items() if n]
    total = sum(report.counts.values())
    say(f"ok: {' and '.join(kinds) or 'no definitions'} in {plural(report.files, 'file')} "
        f"{'is' if total == 1 else 'are'} valid")
    if unchecked:
        say(f"references (segments, sender) were not checked ({unchecked})")


def _database_to_check(ctx: typer.Context) -> tuple[Engine | None, str | None]:
    """The database to check references against. Without one at the default place, references are not
    checked; a database named with --db, CAMPAIGN_DB or the config that does not exist is exit 4."""
    state = app_context(ctx)
    try:
        return state.engine, None
    except NoDatabase as exc:
        if state.settings.db_url != db_url_from(DEFAULT_DB):
            raise
        return None, str(exc)
