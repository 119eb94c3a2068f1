"""The campaign lifecycle as one state machine: every status change goes through here.

    draft ──start──► in_progress ──complete──► completed
    draft ──schedule──► scheduled ──begin (T reached)──► in_progress
    scheduled | in_progress ──stop──► stopped ──resume──► in_progress
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from campaign_cli.errors import Conflict, NotFound
from campaign_cli.store.models import CAMPAIGNS
from campaign_cli.timeutil import now


DRAFT, SCHEDULED, IN_PROGRESS, STOPPED, COMPLETED = "draft", "scheduled", "in_progress", "stopped", "completed"
STATUSES = (DRAFT, SCHEDULED, IN_PROGRESS, STOPPED, COMPLETED)

TRANSITIONS: dict[str, dict[str, str]] = {
    "start": {DRAFT: IN_PROGRESS},
    "schedule": {DRAFT: SCHEDULED},
    "begin": {SCHEDULED: IN_PROGRESS},
    "stop": {SCHEDULED: STOPPED, IN_PROGRESS: STOPPED},
    "resume": {STOPPED: IN_PROGRESS},
    "complete": {IN_PROGRESS: COMPLETED},
}

# Why each action is refused, in the user's words.
_REFUSALS = {
    "start": "only a draft campaign can be started",
    "schedule": "only a draft campaign can be scheduled",
    "begin": "only a scheduled campaign can begin",
    "stop": "only a scheduled or in-progress campaign can be stopped",
    "resume": "only a stopped campaign, or an in-progress one whose sender died, can be resumed",
    "complete": "only an in-progress campaign can complete",
}

UPDATABLE = frozenset({DRAFT, SCHEDULED})
DELETABLE = frozenset({DRAFT, SCHEDULED, STOPPED, COMPLETED})


def next_status(campaign_id: str, status: str, action: str) -> str:
    """The status `action` leads to from `status`; an illegal transition is exit 5."""
    target = TRANSITIONS[action].get(status)
    if target is None:
        raise Conflict(f"campaign {campaign_id!r} is {status}: {_REFUSALS[action]}")
    return target


def check_updatable(campaign_id: str, status: str) -> None:
    """`update` is allowed in draft and scheduled only."""
    if status not in UPDATABLE:
        raise Conflict(f"campaign {campaign_id!r} is {status}: only draft or scheduled campaigns can be updated")


def check_deletable(campaign_id: str, status: str) -> None:
    """`delete` is allowed in every status but in_progress."""
    if status not in DELETABLE:
        raise Conflict(f"campaign {campaign_id!r} is {status}: stop it before deleting it")


def transition(conn: Connection, campaign_id: str, action: str, **fields: Any) -> tuple[Any, str]:
    """Apply `action` to a campaign inside the caller's transaction; returns (row before, new status).

    The UPDATE is guarded by the status read, so two processes racing for the same
    transition cannot both win: the loser gets exit 5.
    """
    row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).first()
    if row is None:
        raise NotFound(f"campaign {campaign_id!r} not found")
    status = next_status(campaign_id, row.status, action)
    result = conn.execute(
        update(CAMPAIGNS)
        .where(CAMPAIGNS.c.pk == row.pk, CAMPAIGNS.c.status == row.status)
        .values(status=status, updated_at=now(), **fields)
    )
    if result.rowcount != 1:
        raise Conflict(f"campaign {campaign_id!r} changed while this command ran; try again")
    return row, status
