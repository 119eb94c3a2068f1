"""Who a segment reaches: one SQL select of target ids per segment kind.

Used to compute segment sizes and to freeze a campaign's audience, so both agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from campaign_cli.channels import CHANNEL_FILTER, CHANNELS, MEMBERS
from campaign_cli.filters import compile_filter
from campaign_cli.store.models import SEGMENTS, SEGMENT_TARGETS
from campaign_cli.users import USER_FILTER, USERS



def is_manual(segment: Any) -> bool:
    """A segment with no filter, not all_users and not all_sender_channels: its targets were added by hand."""
    return segment.filter is None and not segment.all_users and not segment.all_sender_channels


def segment_targets_select(segment: Any, sender_id: str | None = None) -> Select:
    """A select of `target_id` (the user ids or channel cids `segment` reaches now) and `created_at`.

    Manual targets are returned as stored, whether or not the user or channel exists yet, with
    the time they were added; the sender skips unknown ones. Other targets carry the user's or
    channel's own `created_at`. `all_sender_channels` needs the campaign's sender.
    """
    if is_manual(segment):
        return select(SEGMENT_TARGETS.c.target_id.label("target_id"), SEGMENT_TARGETS.c.created_at).where(
            SEGMENT_TARGETS.c.segment_pk == segment.pk
        )
    if segment.type == "user":
        where = compile_filter(segment.filter, USER_FILTER, f"segment {segment.id}: filter")
        return select(USERS.c.id.label("target_id"), USERS.c.created_at).where(where)
    if segment.all_sender_channels:
        return (
            select(CHANNELS.c.cid.label("target_id"), CHANNELS.c.created_at)
            .join(MEMBERS, MEMBERS.c.channel_pk == CHANNELS.c.pk)
            .where(MEMBERS.c.user_id == sender_id)
        )
    where = compile_filter(segment.filter or {}, CHANNEL_FILTER, f"segment {segment.id}: filter")
    return select(CHANNELS.c.cid.label("target_id"), CHANNELS.c.created_at).where(where)
