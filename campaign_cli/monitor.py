"""Live figures of a campaign for `status` and `status --watch`: rate over the last minute, ETA, elapsed time, senders.

Everything is read from what the senders record (messages, the campaign row and its lease),
so any process can watch a campaign that another process, or machine, is sending.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from campaign_cli import lifecycle
from campaign_cli.campaigns import campaign_json, get_campaign_row, users_read
from campaign_cli.store.engine import reading
from campaign_cli.store.models import Message
from campaign_cli.timeutil import now, to_json

MESSAGES = Message.__table__
RATE_WINDOW = timedelta(minutes=1)
ENDED = (lifecycle.COMPLETED, lifecycle.STOPPED)


def campaign_status(engine: Engine, campaign_id: str) -> dict[str, Any]:
    """The campaign object with `rate` (messages a second over the last minute), `eta_seconds`,
    `elapsed_seconds` and `senders` (`[{owner, lease_expires_at, live}]`); exit 4 when it does not exist."""
    with reading(engine) as conn:
        row = get_campaign_row(conn, campaign_id)
        campaign = campaign_json(row, users_read(conn, row))
        at = now()
        rate = _recent_rate(conn, row, at) if row.status == lifecycle.IN_PROGRESS else None
    left = row.stats_targets - row.stats_done
    campaign.update(
        rate=rate,
        eta_seconds=round(left / rate, 1) if rate and row.status == lifecycle.IN_PROGRESS else None,
        elapsed_seconds=_elapsed(row, at),
        senders=_lease_holders(row, at),
    )
    return campaign


def _recent_rate(conn: Connection, row: Any, at: datetime) -> float:
    """Messages a second over the last minute (or since the campaign started, when that is sooner).

    Messages are appended in key order, so the window is the keys after the newest message older
    than it: the index on (campaign_id, pk) is walked backwards over the last minute only.
    """
    since = max(at - RATE_WINDOW, row.stats_started_at) if row.stats_started_at else at - RATE_WINDOW
    seconds = (at - since).total_seconds()
    if seconds <= 0:
        return 0.0
    older = conn.scalar(select(MESSAGES.c.pk).where(MESSAGES.c.campaign_id == row.id, MESSAGES.c.created_at < since)
                        .order_by(MESSAGES.c.pk.desc()).limit(1))
    recent = select(func.count()).select_from(MESSAGES).where(MESSAGES.c.campaign_id == row.id)
    if older is not None:
        recent = recent.where(MESSAGES.c.pk > older)
    return round(conn.scalar(recent) / seconds, 1)


def _elapsed(row: Any, at: datetime) -> float | None:
    if row.stats_started_at is None:
        return None
    end = row.stats_completed_at or (at if row.status == lifecycle.IN_PROGRESS else row.updated_at)
    return round(max((end - row.stats_started_at).total_seconds(), 0.0), 1)


def _lease_holders(row: Any, at: datetime) -> list[dict[str, Any]]:
    """The sender holding the campaign's lease, if any: live while the lease has not expired."""
    if row.lease_owner is None:
        return []
    live = row.lease_expires_at is not None and row.lease_expires_at > at
    return [{"owner": row.lease_owner, "lease_expires_at": to_json(row.lease_expires_at), "live": live}]


def sender_died(campaign: dict[str, Any]) -> bool:
    """In progress, and its senders' leases have all expired: they were killed or their machines lost."""
    senders = campaign["senders"]
    return campaign["status"] == lifecycle.IN_PROGRESS and bool(senders) and not any(s["live"] for s in senders)


def has_ended(campaign: dict[str, Any]) -> bool:
    """Completed or stopped: nothing more will happen to it."""
    return campaign["status"] in ENDED
