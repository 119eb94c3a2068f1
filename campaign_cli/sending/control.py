"""Starting, scheduling, stopping and resuming campaigns: lifecycle transitions with their side effects.

Beginning to send (start now, a schedule coming due, or resuming a campaign that never began)
freezes the audience, checks the sender and the monthly quota, and records `campaign.started`,
all in one transaction: a refusal leaves the campaign exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, func, or_, select, update

from campaign_cli import lifecycle
from campaign_cli.campaigns import campaign_document
from campaign_cli.errors import CampaignError, Conflict, InvalidInput, NotFound
from campaign_cli.sending import claims
from campaign_cli.sending.events import CAMPAIGN_STARTED, CAMPAIGN_STOPPED, Outbox, event_row
from campaign_cli.sending.freeze import freeze_targets
from campaign_cli.settings import Settings
from campaign_cli.store.engine import writing
from campaign_cli.store.models import CAMPAIGNS, EVENTS, MESSAGES, OUTBOX
from campaign_cli.timeutil import now, to_json
from campaign_cli.users import USERS

# Freezing sorts the whole audience: let SQLite spill that sort to a temporary file beyond a
# small cache instead of holding it in memory, so memory does not grow with the audience.
FREEZE_PRAGMAS = {"temp_store": 1, "cache_size": -8_192}


def check_times(at: datetime | None, stop_at: datetime | None, current: datetime) -> None:
    """`--at` in the past, or `--stop-at` not after the start, is exit 3."""
    if at is not None and at <= current:
        raise InvalidInput(f"--at: {at.isoformat()} is in the past")
    if stop_at is not None and stop_at <= (at or current):
        raise InvalidInput("--stop-at: must be after the start time" + (" (--at)" if at else ""))


@dataclass(frozen=True)
class Started:
    """What `start` did: the new status, and the time a scheduled campaign will begin."""

    status: str
    scheduled_for: datetime | None = None


def start(engine: Engine, settings: Settings, campaign_id: str, at: datetime | None = None,
          stop_at: datetime | None = None, immediately: bool = False) -> Started:
    """Start a draft: schedule it (→ scheduled) for `at`, else for its stored `scheduled_for` when that
    lies in the future, else (or when `immediately`) begin now (→ in_progress, audience frozen).

    A stored `stop_at` is kept unless `stop_at` replaces it; a stored `scheduled_for` is never
    overwritten by an immediate start (`stats_started_at` records when sending began).
    """
    current = now()
    check_times(at, stop_at, current)
    with writing(engine, FREEZE_PRAGMAS) as conn:
        row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).first()
        if row is None:
            raise NotFound(f"campaign {campaign_id!r} not found")
        lifecycle.next_status(campaign_id, row.status, "start")
        when = at
        if when is None and not immediately and row.scheduled_for is not None and row.scheduled_for > current:
            when = row.scheduled_for
        until = stop_at if stop_at is not None else row.stop_at
        if stop_at is None and until is not None and until <= (when or current):
            raise InvalidInput(f"campaign {campaign_id!r}: its stop_at {to_json(until)} is not after the start "
                               f"({to_json(when or current)}); give --stop-at or update the campaign")
        if when is not None:
            _, status = lifecycle.transition(conn, campaign_id, "schedule", scheduled_for=when, stop_at=until)
            return Started(status, when)
        _, status = lifecycle.transition(conn, campaign_id, "start", stop_at=until)
        begin_sending(conn, settings, campaign_id, current)
    return Started(status)


def stop(engine: Engine, settings: Settings, campaign_id: str) -> None:
    """Stop a scheduled or in-progress campaign; a running sender notices within one batch."""
    with writing(engine) as conn:
        lifecycle.transition(conn, campaign_id, "stop")
        record_campaign_event(conn, settings, campaign_id, CAMPAIGN_STOPPED, now())


def resume(engine: Engine, settings: Settings, campaign_id: str) -> None:
    """Continue a stopped campaign with the targets not yet done (a stop_at already passed is cleared).

    An in_progress campaign that no live sender holds (its sender was killed or interrupted) is
    left as it is, for the sender loop to continue; one that a live sender holds is exit 5.
    """
    current = now()
    with writing(engine, FREEZE_PRAGMAS) as conn:
        status = conn.scalar(select(CAMPAIGNS.c.status).where(CAMPAIGNS.c.id == campaign_id))
        if status == lifecycle.IN_PROGRESS:
            holder = _live_lease(conn, campaign_id, current)
            if holder is not None:
                raise Conflict(busy_message(campaign_id, holder, current))
            return
        before, _ = lifecycle.transition(conn, campaign_id, "resume")
        if before.stop_at is not None and before.stop_at <= current:
            conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.pk == before.pk).values(stop_at=None))
        if before.stats_started_at is None:
            begin_sending(conn, settings, campaign_id, current)


def begin_sending(conn: Connection, settings: Settings, campaign_id: str, at: datetime) -> None:
    """Freeze the audience of a campaign that has just become in_progress, and record `campaign.started`."""
    row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).one()
    if conn.scalar(select(USERS.c.pk).where(USERS.c.id == row.sender_id)) is None:
        raise InvalidInput(f"campaign {campaign_id!r}: sender_id {row.sender_id!r} is not an existing user (deleted?)")
    targets = freeze_targets(conn, row)
    check_quota(conn, settings, targets, at)
    conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.pk == row.pk).values(
        stats_targets=targets, stats_started_at=at, stats_done=0, updated_at=at))
    record_campaign_event(conn, settings, campaign_id, CAMPAIGN_STARTED, at)


def check_quota(conn: Connection, settings: Settings, targets: int, at: datetime) -> None:
    """Refuse (exit 5) an audience larger than what is left of `quota.monthly_messages` this UTC month."""
    if settings.monthly_messages is None:
        return
    month_start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    used = conn.scalar(select(func.count()).select_from(MESSAGES).where(
        MESSAGES.c.campaign_id.is_not(None), MESSAGES.c.created_at >= month_start)) or 0
    # Targets that campaigns in progress have yet to send are spoken for.
    reserved = conn.scalar(select(func.coalesce(func.sum(claims.outstanding_targets()), 0))
                           .where(CAMPAIGNS.c.status == lifecycle.IN_PROGRESS)) or 0
    left = max(settings.monthly_messages - used - reserved, 0)
    if targets > left:
        raise Conflict(f"quota: the audience has {targets:,} targets but only {left:,} of "
                       f"{settings.monthly_messages:,} monthly messages are left this month")


def record_campaign_event(conn: Connection, settings: Settings, campaign_id: str, type_: str, at: datetime) -> None:
    """Store a campaign.* event carrying the full campaign object, and queue it for the webhook."""
    row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).one()
    data = campaign_document(conn, row)["campaign"]
    conn.execute(EVENTS.insert(), [event_row(type_, at, campaign_id, user_id=row.sender_id, payload={"campaign": data})])
    outbox = Outbox(settings, campaign_id, row.skip_webhook, row.skip_push, at)
    outbox.event(type_, lambda: {"campaign_id": campaign_id, "campaign": data, "custom": {}})
    if outbox.rows:
        conn.execute(OUTBOX.insert(), outbox.rows)


def due_campaigns(engine: Engine, settings: Settings,
                  only: list[str] | None = None) -> tuple[list[str], list[CampaignError]]:
    """Begin scheduled campaigns whose time has come (or stop those past stop_at); list campaigns ready to send.

    Ready: in_progress and, on SQLite, not leased by a live sender (on PostgreSQL senders share
    campaigns). Each scheduled campaign begins in its own
    transaction: one that cannot (sender deleted, quota) is returned as a problem and the others go on.
    """
    current = now()
    scheduled = select(CAMPAIGNS.c.id, CAMPAIGNS.c.stop_at).where(
        CAMPAIGNS.c.status == lifecycle.SCHEDULED, CAMPAIGNS.c.scheduled_for <= current).order_by(CAMPAIGNS.c.pk)
    ready = select(CAMPAIGNS.c.id).where(CAMPAIGNS.c.status == lifecycle.IN_PROGRESS).order_by(CAMPAIGNS.c.pk)
    if not claims.shared_sending(engine):
        ready = ready.where(or_(CAMPAIGNS.c.lease_owner.is_(None), CAMPAIGNS.c.lease_expires_at < current))
    if only is not None:
        scheduled = scheduled.where(CAMPAIGNS.c.id.in_(only))
        ready = ready.where(CAMPAIGNS.c.id.in_(only))
    with engine.connect() as conn:
        due = conn.execute(scheduled).all()
    problems = []
    for campaign_id, stop_at in due:
        try:
            _begin_or_stop(engine, settings, campaign_id, stop_at, current)
        except CampaignError as exc:
            problems.append(exc)
    with engine.connect() as conn:
        return list(conn.scalars(ready)), problems


def _begin_or_stop(engine: Engine, settings: Settings, campaign_id: str, stop_at: datetime | None,
                   current: datetime) -> None:
    with writing(engine, FREEZE_PRAGMAS) as conn:
        if stop_at is not None and stop_at <= current:
            lifecycle.transition(conn, campaign_id, "stop")
            record_campaign_event(conn, settings, campaign_id, CAMPAIGN_STOPPED, current)
        else:
            lifecycle.transition(conn, campaign_id, "begin")
            begin_sending(conn, settings, campaign_id, current)


def lease_holder(engine: Engine, campaign_id: str) -> Lease | None:
    """Who holds a live lease on the campaign, and until when (None when nobody)."""
    with engine.connect() as conn:
        return _live_lease(conn, campaign_id, now())


@dataclass(frozen=True)
class Lease:
    """A live sender's hold on a campaign."""

    owner: str
    expires_at: datetime

    @property
    def sender(self) -> str:
        """host:pid of the sender (the owner name ends with a random tag)."""
        return self.owner.rsplit(":", 1)[0] if self.owner.count(":") >= 2 else self.owner


def _live_lease(conn: Connection, campaign_id: str, current: datetime) -> Lease | None:
    row = conn.execute(select(CAMPAIGNS.c.lease_owner, CAMPAIGNS.c.lease_expires_at).where(
        CAMPAIGNS.c.id == campaign_id, CAMPAIGNS.c.lease_owner.is_not(None),
        CAMPAIGNS.c.lease_expires_at >= current)).first()
    return Lease(row[0], row[1]) if row else None


def busy_message(campaign_id: str, lease: Lease, current: datetime | None = None) -> str:
    """Exit 5 for a campaign a live sender holds: which sender, and how long its lease still runs."""
    left = max((lease.expires_at - (current or now())).total_seconds(), 0)
    return (f"campaign {campaign_id!r} is being sent by {lease.sender} (its lease runs {left:,.0f} s more); "
            f"'campaign stop {campaign_id}' stops it")
