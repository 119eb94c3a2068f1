"""Live figures of a campaign for `status` and `status --watch`: rate over the last minute, ETA, elapsed time, senders.

Everything is read from what the senders record (messages, the campaign row, claims and senders),
so any process can watch a campaign that another process, or machine, is sending.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from campaign_cli import lifecycle
from campaign_cli.campaigns import campaign_document, get_campaign_row, live_campaign_row
from campaign_cli.sending.claims import senders_json
from campaign_cli.store.engine import reading
from campaign_cli.store.models import MESSAGES
from campaign_cli.timeutil import now

RATE_WINDOW = timedelta(minutes=1)
ENDED = (lifecycle.COMPLETED, lifecycle.STOPPED)


def campaign_status(engine: Engine, campaign_id: str) -> dict[str, Any]:
    """The campaign document (`{"campaign", "users"}`, as `get` prints it) with the live figures beside
    the campaign: `rate` (messages a second over the last minute), `eta_seconds`, `elapsed_seconds` and
    `senders` (see `claims.senders_json`); exit 4 when it does not exist."""
    with reading(engine) as conn:
        document = campaign_document(conn, get_campaign_row(conn, campaign_id))
        row = live_campaign_row(conn, campaign_id)
        at = now()
        rate = _recent_rate(conn, row, at) if row.status == lifecycle.IN_PROGRESS else None
        senders = senders_json(conn, campaign_id)
    left = row.stats_targets - row.stats_done
    document.update(
        rate=rate,
        eta_seconds=round(left / rate, 1) if rate and row.status == lifecycle.IN_PROGRESS else None,
        elapsed_seconds=_elapsed(row, at),
        senders=senders,
    )
    return document


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


def sender_died(document: dict[str, Any]) -> bool:
    """In progress, no sender is live, and one's lease expired: it was killed or its machine lost."""
    senders = document["senders"]
    return (document["campaign"]["status"] == lifecycle.IN_PROGRESS and not any(s["live"] for s in senders)
            and any(s["lease_expires_at"] for s in senders))


def has_ended(document: dict[str, Any]) -> bool:
    """Completed or stopped: nothing more will happen to it."""
    return document["campaign"]["status"] in ENDED
