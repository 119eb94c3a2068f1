"""The users a campaign goes to, page by page: the `users` of a campaign object.

Once sending has begun they are the frozen user targets, in target order; before that, the
users its `user_ids` or its live user segments reach now, in user id order. Channel targets
are not users and are not listed; ids of users that do not exist are left out.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, exists, select, union

from campaign_cli.audience import SEGMENTS, segment_targets_select
from campaign_cli.paging import Page, check_limit, keyset_page
from campaign_cli.store.bulk import json_array_table
from campaign_cli.store.models import CAMPAIGN_TARGETS as TARGETS
from campaign_cli.user_object import user_response
from campaign_cli.users import USERS

DEFAULT_USERS_LIMIT = 25
MAX_USERS_LIMIT = 1000


def target_users_page(conn: Connection, campaign: Any, limit: int = DEFAULT_USERS_LIMIT,
                      next_: str | None = None, prev: str | None = None) -> Page:
    """One page of the campaign's target users as user objects, with its `--users-next` / `--users-prev` cursors."""
    check_limit(limit, MAX_USERS_LIMIT, "--users-limit")
    frozen = conn.scalar(select(exists().where(TARGETS.c.campaign_pk == campaign.pk)))
    if frozen:
        query = (select(USERS, TARGETS.c.seq)
                 .join(TARGETS, TARGETS.c.target_id == USERS.c.id)
                 .where(TARGETS.c.campaign_pk == campaign.pk, TARGETS.c.kind == "user"))
        keys = [(TARGETS.c.seq, False)]
    else:
        ids = _planned_user_ids(conn, campaign)
        if ids is None:
            return Page([])
        query = select(USERS).where(USERS.c.id.in_(ids))
        keys = [(USERS.c.id, False)]
    scope = f"campaign-users:{campaign.id}:{'frozen' if frozen else 'planned'}"
    page = keyset_page(conn, query, keys, scope, limit, next_, prev, option_prefix="--users-")
    page.items = [user_response(row) for row in page.items]
    return page


def _planned_user_ids(conn: Connection, campaign: Any) -> Any:
    """A select of the user ids the campaign would go to if it began now (None: no user can be a target)."""
    if campaign.user_ids:
        return select(json_array_table(campaign.user_ids).c.value)
    segments = conn.execute(select(SEGMENTS).where(
        SEGMENTS.c.id.in_(campaign.segment_ids), SEGMENTS.c.deleted_at.is_(None), SEGMENTS.c.type == "user")).all()
    if not segments:
        return None
    parts = [_ids_only(segment_targets_select(segment, campaign.sender_id)) for segment in segments]
    return parts[0] if len(parts) == 1 else union(*parts)


def _ids_only(targets: Select) -> Select:
    return targets.with_only_columns(targets.selected_columns.target_id)
