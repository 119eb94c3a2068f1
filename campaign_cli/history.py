"""What the campaigns did: messages and events, listed in order with keyset paging."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from campaign_cli.errors import NotFound
from campaign_cli.paging import Page, page_by_key
from campaign_cli.sending.events import event_json
from campaign_cli.store.models import CAMPAIGNS, EVENTS, MESSAGES
from campaign_cli.timeutil import to_json



def message_json(row: Any) -> dict[str, Any]:
    """A message as JSON, custom fields at the top level; `delivery` says where a remote backend put it."""
    data = {"id": row.id, "cid": row.cid, "user_id": row.user_id, "text": row.text, "type": row.type,
            "attachments": row.attachments, "created_at": to_json(row.created_at)}
    if row.delivery_backend:
        data["delivery"] = {"backend": row.delivery_backend, "room_id": row.remote_room_id,
                            "event_id": row.remote_event_id}
    for key, value in (row.custom or {}).items():
        data.setdefault(key, value)
    return data


def list_messages(engine: Engine, campaign_id: str | None, limit: int, next_: str | None,
                  prev: str | None = None) -> Page:
    """Messages (of one campaign, or all), oldest first."""
    scope = f"messages:{campaign_id or ''}"
    query = select(MESSAGES)
    if campaign_id:
        _check_campaign(engine, campaign_id, MESSAGES)
        query = query.where(MESSAGES.c.campaign_id == campaign_id)
    page = page_by_key(engine, query, MESSAGES.c.pk, scope, limit, next_, prev)
    page.items = [message_json(r) for r in page.items]
    return page


def list_events(engine: Engine, campaign_id: str | None, type_: str | None, limit: int,
                next_: str | None, prev: str | None = None) -> Page:
    """Events (of one campaign and/or one type), in the order they were emitted."""
    scope = f"events:{campaign_id or ''}:{type_ or ''}"
    query = select(EVENTS)
    if campaign_id:
        _check_campaign(engine, campaign_id, EVENTS)
        query = query.where(EVENTS.c.campaign_id == campaign_id)
    if type_:
        query = query.where(EVENTS.c.type == type_)
    page = page_by_key(engine, query, EVENTS.c.pk, scope, limit, next_, prev)
    page.items = [event_json(r) for r in page.items]
    return page


def _check_campaign(engine: Engine, campaign_id: str, table: Any) -> None:
    """`--campaign` names a campaign, or one deleted since whose rows remain: otherwise exit 4, not an empty list."""
    with engine.connect() as conn:
        known = (conn.scalar(select(CAMPAIGNS.c.pk).where(CAMPAIGNS.c.id == campaign_id)) is not None
                 or conn.scalar(select(table.c.pk).where(table.c.campaign_id == campaign_id).limit(1)) is not None)
    if not known:
        raise NotFound(f"campaign {campaign_id!r} not found")
