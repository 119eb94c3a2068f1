"""The tables, as SQLAlchemy Core `Table`s: every statement is Core, so no ORM is loaded.

Big tables have integer keys (`pk`); the string ids users see are unique columns beside them.
Times are stored in UTC (see `UTCDateTime`). Python-side column defaults fill what Core inserts leave out.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, TypeDecorator, text

METADATA = MetaData()
# Users who have devices: a partial index tells the sender cheaply whether any push record can exist at all.
_HAS_DEVICES = "json_array_length(devices) > 0"


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None else None


def _pk() -> Column:
    return Column("pk", Integer, primary_key=True)


def _id(name: str = "id", length: int = 255) -> Column:
    """The string id users see: unique beside the integer key."""
    return Column(name, String(length), nullable=False, unique=True)


def _text(name: str, default: str | None = None, nullable: bool = False) -> Column:
    return Column(name, String, nullable=nullable, default=default)


def _optional_text(name: str) -> Column:
    return Column(name, String, nullable=True)


def _int(name: str, default: int | None = 0) -> Column:
    return Column(name, Integer, nullable=False, default=default)


def _flag(name: str) -> Column:
    return Column(name, Boolean, nullable=False, default=False)


def _time(name: str, nullable: bool = True) -> Column:
    return Column(name, UTCDateTime(), nullable=nullable)


def _json(name: str, default: type[list] | type[dict] | None) -> Column:
    """A JSON column; with `default` (list or dict) it is never null and Core inserts get an empty one."""
    if default is None:
        return Column(name, JSON, nullable=True)
    return Column(name, JSON, nullable=False, default=default)


def _owned_by(name: str, parent: str) -> Column:
    """A key column referring to `parent`'s pk, its rows going with the parent."""
    return Column(name, ForeignKey(f"{parent}.pk", ondelete="CASCADE"), primary_key=True)


META = Table(
    "meta", METADATA,
    Column("key", String, primary_key=True),
    _text("value"),
)
"""Key/value facts about the database itself, such as `schema_version`."""

USERS = Table(
    "users", METADATA,
    _pk(), _id(),
    _optional_text("name"),
    _text("role", "user"),
    _json("teams", list),
    _optional_text("language"),
    _time("created_at", nullable=False),
    _time("updated_at", nullable=False),
    _time("last_active"),
    _flag("banned"),
    _json("devices", list),
    _json("custom", dict),  # keys other than the standard fields
    Index("ix_users_with_devices", "id", sqlite_where=text(_HAS_DEVICES)),  # see with_postgresql_options
)
"""Chat users."""


def with_postgresql_options() -> MetaData:
    """METADATA with the options only PostgreSQL reads (the partial index's condition), for creating
    and comparing a schema. They are not declared with the tables because naming one loads SQLAlchemy's
    PostgreSQL dialect, and asyncio with it, which would slow down the start of every command."""
    (index,) = (index for index in USERS.indexes if index.name == "ix_users_with_devices")
    index.dialect_options["postgresql"]["where"] = text(_HAS_DEVICES)
    return METADATA

CHANNELS = Table(
    "channels", METADATA,
    _pk(), _id("cid", 512),  # cid = type:id
    _text("type"),
    _text("id"),
    _optional_text("team"),
    _optional_text("created_by_id"),
    _int("member_count"),
    _time("created_at", nullable=False),
    _time("updated_at", nullable=False),
    _time("last_message_at"),
    _json("custom", dict),
)
"""Chat channels, addressed by `cid` = `type:id`."""

# Memberships and messages refer to channels and users without foreign keys. On PostgreSQL a
# foreign key is checked by a trigger per row, which cost a quarter of a sending batch; the code
# that writes these rows checks (and on PostgreSQL locks) the users they name with one query per
# batch (`users.lock_users`), `users delete` removes memberships itself, and channels are never deleted.
CHANNEL_MEMBERS = Table(
    "channel_members", METADATA,
    Column("channel_pk", Integer, primary_key=True),
    Column("user_id", String(255), primary_key=True),
    _text("channel_role", "channel_member"),
    _flag("hidden"),
    _flag("archived"),
    _time("created_at", nullable=False),
    _time("last_read_at"),  # the read marker
    _json("custom", None),
    Index("ix_channel_members_user", "user_id"),
    sqlite_with_rowid=False,
)
"""Users' memberships of channels."""

MESSAGES = Table(
    "messages", METADATA,
    _pk(), _id(),
    _text("cid"),
    Column("channel_pk", Integer, nullable=False),  # no foreign key: see CHANNEL_MEMBERS
    _text("user_id"),
    _text("text"),
    _text("type", "regular"),
    _json("attachments", list),
    _json("custom", dict),
    _optional_text("campaign_id"),  # campaign messages carry it (also in `custom`)
    _time("created_at", nullable=False),
    # Where a remote backend delivered it (null for the built-in chat store).
    _optional_text("delivery_backend"),
    _optional_text("remote_room_id"),
    _optional_text("remote_event_id"),
    Index("ix_messages_campaign", "campaign_id", "pk"),
)
"""Messages in channels."""

REMOTE_ROOMS = Table(
    "remote_rooms", METADATA,
    _pk(),
    _text("backend"),
    _text("owner"),  # the account that creates and owns the room, e.g. @acme:example.org
    _text("key"),  # what the room is for: dm:@bob:example.org, alias:#launch:example.org
    _optional_text("room_id"),
    _time("created_at", nullable=False),
    Index("ux_remote_rooms_key", "backend", "owner", "key", unique=True),
)
"""Rooms on a remote chat server, recorded before they are created and completed after.

A row whose `room_id` is still null is an intent whose outcome is unknown (the sender died
around the creation call): the backend looks for the room on the server before creating another.
"""

EVENTS = Table(
    "events", METADATA,
    _pk(),  # the order events happened in
    _text("type"),
    _optional_text("campaign_id"),
    _optional_text("cid"),
    _optional_text("message_id"),
    _optional_text("user_id"),
    _time("created_at", nullable=False),
    _json("payload", dict),
    Index("ix_events_campaign", "campaign_id", "pk"),
)
"""Events a chat backend would emit, stored in order."""

PUSH_NOTIFICATIONS = Table(
    "push_notifications", METADATA,
    _pk(),
    _optional_text("campaign_id"),
    _text("message_id"),
    _text("user_id"),
    _text("device_id"),
    _optional_text("push_provider"),
    _time("created_at", nullable=False),
    Index("ix_push_campaign", "campaign_id", "pk"),
)
"""Push notifications, one per device of a member who got a `message.new`."""

OUTBOX = Table(
    "outbox", METADATA,
    _pk(),
    _text("sink"),  # webhook | push
    _text("event_type"),
    _optional_text("campaign_id"),
    _text("body"),
    _text("status", "pending"),  # pending | delivered | failed
    _int("attempts"),
    _time("next_attempt_at", nullable=False),
    _optional_text("last_error"),
    _time("created_at", nullable=False),
    Index("ix_outbox_due", "sink", "status", "next_attempt_at"),
    Index("ix_outbox_campaign", "campaign_id", "sink", "status"),
)
"""Bodies waiting to be POSTed to a sink; drained by the event sinks."""

SEGMENTS = Table(
    "segments", METADATA,
    _pk(), _id(),
    _text("type"),
    _text("name", ""),
    _text("description", ""),
    _json("filter", None),
    _flag("all_users"),
    _flag("all_sender_channels"),
    _int("size"),
    _time("created_at", nullable=False),
    _time("updated_at", nullable=False),
    _time("deleted_at"),
)
"""Who a campaign goes to: a filter, all users, the sender's channels, or targets added by hand."""

SEGMENT_TARGETS = Table(
    "segment_targets", METADATA,
    _owned_by("segment_pk", "segments"),
    Column("target_id", String(512), primary_key=True),  # a user id or a channel cid
    # Nullable only for the rows of older databases, which the upgrade stamps with its own time.
    _time("created_at"),
    sqlite_with_rowid=False,
)
"""Targets added by hand to segments."""

CAMPAIGNS = Table(
    "campaigns", METADATA,
    _pk(), _id(),
    _text("name", ""),
    _text("description", ""),
    _json("segment_ids", list),
    _json("user_ids", list),
    _text("sender_id"),
    _optional_text("sender_mode"),
    _optional_text("sender_visibility"),
    _json("message_template", dict),
    _flag("create_channels"),
    _json("channel_template", None),
    _flag("show_channels"),
    _flag("skip_push"),
    _flag("skip_webhook"),
    _time("scheduled_for"),
    _time("stop_at"),
    Column("status", String, nullable=False, default="draft", index=True),
    _time("created_at", nullable=False),
    _time("updated_at", nullable=False),
    _time("stats_started_at"),
    _time("stats_completed_at"),
    _int("stats_targets"),
    _int("stats_done"),
    _int("stats_messages_sent"),
    _int("stats_channels_created"),
    _int("stats_users_sent"),
    _json("stats_skipped", dict),
    _int("stats_failed"),
    _json("stats_failed_reasons", dict),
    # The remote device a remote backend sends from: transaction ids are only deduplicated per device.
    _optional_text("delivery_device"),
    _optional_text("lease_owner"),
    _time("lease_expires_at"),
)
"""What to send, from whom, to whom and when; with status, stats and sender lease."""

CAMPAIGN_TARGETS = Table(
    "campaign_targets", METADATA,
    _owned_by("campaign_pk", "campaigns"),
    Column("seq", Integer, primary_key=True),  # target id order
    Column("target_id", String(512), nullable=False),
    _text("kind"),  # user | channel
    _text("state", "pending"),  # pending | sending (handed to a remote backend) | sent | skipped | failed
    _optional_text("reason"),
    sqlite_with_rowid=False,
)
"""The frozen targets of campaigns, numbered in target id order (`seq`), with their state."""

CAMPAIGN_CLAIMS = Table(
    "campaign_claims", METADATA,
    _owned_by("campaign_pk", "campaigns"),
    Column("lo", Integer, primary_key=True),
    _int("hi", None),
    Column("owner", String(255), nullable=False),
    _time("lease_expires_at", nullable=False),
    _time("done_at"),
    _int("messages"),
    _int("channels_created"),
    _int("users_sent"),
    _int("failed"),
    _json("skipped", dict),
    _json("failed_reasons", dict),
    _flag("folded"),
)
"""Ranges of a campaign's targets (seq `lo`..`hi`) claimed by one sender, with their lease and, once
written, their stats. Stats live here rather than on the campaign row, so that concurrent senders never
update one hot row; they are added to the campaign's (`folded`) when it completes."""

CAMPAIGN_SENDERS = Table(
    "campaign_senders", METADATA,
    _owned_by("campaign_pk", "campaigns"),
    Column("owner", String(255), primary_key=True),
    _time("started_at", nullable=False),
    _time("last_seen", nullable=False),
    _time("lease_expires_at"),
)
"""Sender processes that worked on campaigns: when each was last seen, and until when it is live."""
