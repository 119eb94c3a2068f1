"""Freezing a campaign's audience: its targets at the moment sending begins.

The union of the campaign's segments (or its `user_ids`), deduplicated, numbered in target id
order (`seq`), is written into `campaign_targets` by one INSERT … SELECT, so memory does not
depend on the audience size.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, func, insert, literal, select, union_all

from campaign_cli.audience import SEGMENTS, segment_targets_select
from campaign_cli.errors import InvalidInput
from campaign_cli.store.bulk import json_array_table
from campaign_cli.store.models import CAMPAIGN_TARGETS as TARGETS



def audience_select(conn: Connection, campaign: Any) -> Select:
    """A select of (target_id, kind) for every distinct target of `campaign`, unordered."""
    if campaign.user_ids:
        ids = json_array_table(campaign.user_ids)
        return select(ids.c.value.label("target_id"), literal("user").label("kind")).distinct()
    parts = []
    for segment in _live_segments(conn, campaign):
        parts.append(segment_targets_select(segment, campaign.sender_id).add_columns(literal(segment.type).label("kind")))
    union = union_all(*parts).subquery()
    return select(union.c.target_id, union.c.kind).distinct()


def _live_segments(conn: Connection, campaign: Any) -> list[Any]:
    rows = conn.execute(select(SEGMENTS).where(SEGMENTS.c.id.in_(campaign.segment_ids))).all()
    by_id = {row.id: row for row in rows}
    for segment_id in campaign.segment_ids:
        row = by_id.get(segment_id)
        if row is None or row.deleted_at is not None:
            raise InvalidInput(f"campaign {campaign.id!r}: segment {segment_id!r} no longer exists")
    return [by_id[s] for s in campaign.segment_ids]


def freeze_targets(conn: Connection, campaign: Any) -> int:
    """Write the campaign's targets, numbered 1..N in (target_id, kind) order; returns N."""
    audience = audience_select(conn, campaign).subquery()
    numbered = select(
        literal(campaign.pk),
        func.row_number().over(order_by=(audience.c.target_id, audience.c.kind)),
        audience.c.target_id,
        audience.c.kind,
        literal("pending"),
    )
    conn.execute(
        insert(TARGETS).from_select(["campaign_pk", "seq", "target_id", "kind", "state"], numbered)
    )
    return conn.scalar(select(func.count()).select_from(TARGETS).where(TARGETS.c.campaign_pk == campaign.pk)) or 0


def first_targets(conn: Connection, campaign: Any, limit: int) -> list[tuple[int, str, str]]:
    """The first `limit` targets the campaign would have if it began now, as (seq, target_id, kind)."""
    audience = audience_select(conn, campaign).subquery()
    rows = conn.execute(
        select(audience.c.target_id, audience.c.kind).order_by(audience.c.target_id, audience.c.kind).limit(limit)
    ).all()
    return [(i, target_id, kind) for i, (target_id, kind) in enumerate(rows, 1)]
