"""SQLModel table models. Hot paths use their `__table__` with SQLAlchemy Core bulk statements.

Big tables have integer keys (`pk`); the string ids users see are unique columns beside them.
Times are stored in UTC (see `UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, String, TypeDecorator, text
from sqlmodel import Field, SQLModel

# The Alembic revision of these models (migrations/versions/): a model change comes with a new
# revision chained on this one, and moves this to it.
SCHEMA_REVISION = "0003"
# What `meta.schema_version` holds: the release before migrations knows only 1 and refuses more.
SCHEMA_VERSION = 2


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


def _time(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json(default: Any) -> Any:
    # The Column default matters for Core inserts, which do not see the model's default_factory.
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False, default=lambda: default()))


def _json_nullable() -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=True))


class Meta(SQLModel, table=True):
    """Key/value facts about the database itself, such as `schema_version`."""

    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class User(SQLModel, table=True):
    """A chat user; keys other than the standard fields live in `custom`."""

    __tablename__ = "users"
    # Users who have devices: tells the sender cheaply whether any push record can exist at all.
    __table_args__ = (Index("ix_users_with_devices", "id", sqlite_where=text("json_array_length(devices) > 0"),
                            postgresql_where=text("json_array_length(devices) > 0")),)
    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(sa_column=Column(String(255), nullable=False, unique=True))
    name: str | None = None
    role: str = "user"
    teams: list = _json(list)
    language: str | None = None
    created_at: datetime | None = _time(nullable=False)
    updated_at: datetime | None = _time(nullable=False)
    last_active: datetime | None = _time()
    banned: bool = False
    devices: list = _json(list)
    custom: dict = _json(dict)


class Channel(SQLModel, table=True):
    """A chat channel, addressed by `cid` = `type:id`."""

    __tablename__ = "channels"
    pk: int | None = Field(default=None, primary_key=True)
    cid: str = Field(sa_column=Column(String(512), nullable=False, unique=True))
    type: str
    id: str
    team: str | None = None
    created_by_id: str | None = None
    member_count: int = 0
    created_at: datetime | None = _time(nullable=False)
    updated_at: datetime | None = _time(nullable=False)
    last_message_at: datetime | None = _time()
    custom: dict = _json(dict)


class ChannelMember(SQLModel, table=True):
    """A user's membership of a channel; `last_read_at` is the read marker."""

    __tablename__ = "channel_members"
    __table_args__ = (Index("ix_channel_members_user", "user_id"), {"sqlite_with_rowid": False})
    channel_pk: int = Field(
        sa_column=Column(ForeignKey("channels.pk", ondelete="CASCADE"), primary_key=True)
    )
    user_id: str = Field(
        sa_column=Column(String(255), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    )
    channel_role: str = "channel_member"
    hidden: bool = False
    archived: bool = False
    created_at: datetime | None = _time(nullable=False)
    last_read_at: datetime | None = _time()
    custom: dict | None = _json_nullable()


class Message(SQLModel, table=True):
    """A message in a channel. Campaign messages carry `campaign_id` (also in `custom`)."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_campaign", "campaign_id", "pk"),)
    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(sa_column=Column(String(255), nullable=False, unique=True))
    cid: str
    channel_pk: int = Field(sa_column=Column(ForeignKey("channels.pk", ondelete="CASCADE"), nullable=False))
    user_id: str
    text: str
    type: str = "regular"
    attachments: list = _json(list)
    custom: dict = _json(dict)
    campaign_id: str | None = None
    created_at: datetime | None = _time(nullable=False)
    # Where a remote backend delivered it (null for the built-in chat store).
    delivery_backend: str | None = None
    remote_room_id: str | None = None
    remote_event_id: str | None = None


class RemoteRoom(SQLModel, table=True):
    """A room on a remote chat server, recorded before it is created and completed after.

    A row whose `room_id` is still null is an intent whose outcome is unknown (the sender died
    around the creation call): the backend looks for the room on the server before creating another.
    """

    __tablename__ = "remote_rooms"
    __table_args__ = (Index("ux_remote_rooms_key", "backend", "owner", "key", unique=True),)
    pk: int | None = Field(default=None, primary_key=True)
    backend: str
    owner: str  # the account that creates and owns the room, e.g. @acme:example.org
    key: str  # what the room is for: dm:@bob:example.org, alias:#launch:example.org
    room_id: str | None = None
    created_at: datetime | None = _time(nullable=False)


class Event(SQLModel, table=True):
    """An event a chat backend would emit, stored in order (`pk`)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_campaign", "campaign_id", "pk"),)
    pk: int | None = Field(default=None, primary_key=True)
    type: str
    campaign_id: str | None = None
    cid: str | None = None
    message_id: str | None = None
    user_id: str | None = None
    created_at: datetime | None = _time(nullable=False)
    payload: dict = _json(dict)


class PushNotification(SQLModel, table=True):
    """A push notification for one device of a member who got a `message.new`."""

    __tablename__ = "push_notifications"
    __table_args__ = (Index("ix_push_campaign", "campaign_id", "pk"),)
    pk: int | None = Field(default=None, primary_key=True)
    campaign_id: str | None = None
    message_id: str
    user_id: str
    device_id: str
    push_provider: str | None = None
    created_at: datetime | None = _time(nullable=False)


class Outbox(SQLModel, table=True):
    """A body waiting to be POSTed to a sink (`webhook` or `push`); drained by the event sinks."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "sink", "status", "next_attempt_at"),
                      Index("ix_outbox_campaign", "campaign_id", "sink", "status"))
    pk: int | None = Field(default=None, primary_key=True)
    sink: str
    event_type: str
    campaign_id: str | None = None
    body: str
    status: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime | None = _time(nullable=False)
    last_error: str | None = None
    created_at: datetime | None = _time(nullable=False)


class Segment(SQLModel, table=True):
    """Who a campaign goes to: a filter, all users, the sender's channels, or targets added by hand."""

    __tablename__ = "segments"
    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(sa_column=Column(String(255), nullable=False, unique=True))
    type: str
    name: str = ""
    description: str = ""
    filter: dict | None = _json_nullable()
    all_users: bool = False
    all_sender_channels: bool = False
    size: int = 0
    created_at: datetime | None = _time(nullable=False)
    updated_at: datetime | None = _time(nullable=False)
    deleted_at: datetime | None = _time()


class SegmentTarget(SQLModel, table=True):
    """A target added by hand to a segment: a user id or a channel cid."""

    __tablename__ = "segment_targets"
    __table_args__ = {"sqlite_with_rowid": False}
    segment_pk: int = Field(sa_column=Column(ForeignKey("segments.pk", ondelete="CASCADE"), primary_key=True))
    target_id: str = Field(sa_column=Column(String(512), primary_key=True))
    # Nullable only for the rows of older databases, which the upgrade stamps with its own time.
    created_at: datetime | None = _time()


class Campaign(SQLModel, table=True):
    """What to send, from whom, to whom and when; with its status, stats and sender lease."""

    __tablename__ = "campaigns"
    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(sa_column=Column(String(255), nullable=False, unique=True))
    name: str = ""
    description: str = ""
    segment_ids: list = _json(list)
    user_ids: list = _json(list)
    sender_id: str
    sender_mode: str | None = None
    sender_visibility: str | None = None
    message_template: dict = _json(dict)
    create_channels: bool = False
    channel_template: dict | None = _json_nullable()
    show_channels: bool = False
    skip_push: bool = False
    skip_webhook: bool = False
    scheduled_for: datetime | None = _time()
    stop_at: datetime | None = _time()
    status: str = Field(default="draft", index=True)
    created_at: datetime | None = _time(nullable=False)
    updated_at: datetime | None = _time(nullable=False)
    stats_started_at: datetime | None = _time()
    stats_completed_at: datetime | None = _time()
    stats_targets: int = 0
    stats_done: int = 0
    stats_messages_sent: int = 0
    stats_channels_created: int = 0
    stats_users_sent: int = 0
    stats_skipped: dict = _json(dict)
    stats_failed: int = 0
    stats_failed_reasons: dict = _json(dict)
    # The remote device a remote backend sends from: transaction ids are only deduplicated per device.
    delivery_device: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = _time()


class CampaignTarget(SQLModel, table=True):
    """One frozen target of a campaign, numbered in target id order (`seq`), with its state."""

    __tablename__ = "campaign_targets"
    __table_args__ = {"sqlite_with_rowid": False}
    campaign_pk: int = Field(sa_column=Column(ForeignKey("campaigns.pk", ondelete="CASCADE"), primary_key=True))
    seq: int = Field(primary_key=True)
    target_id: str = Field(sa_column=Column(String(512), nullable=False))
    kind: str  # user | channel
    state: str = "pending"  # pending | sending (handed to a remote backend) | sent | skipped | failed
    reason: str | None = None


class CampaignClaim(SQLModel, table=True):
    """A range of a campaign's targets (seq `lo`..`hi`) claimed by one sender, with its lease and, once
    written, its stats. Stats live here rather than on the campaign row, so that concurrent senders never
    update one hot row; they are added to the campaign's (`folded`) when it completes."""

    __tablename__ = "campaign_claims"
    campaign_pk: int = Field(sa_column=Column(ForeignKey("campaigns.pk", ondelete="CASCADE"), primary_key=True))
    lo: int = Field(primary_key=True)
    hi: int
    owner: str = Field(sa_column=Column(String(255), nullable=False))
    lease_expires_at: datetime | None = _time(nullable=False)
    done_at: datetime | None = _time()
    messages: int = 0
    channels_created: int = 0
    users_sent: int = 0
    failed: int = 0
    skipped: dict = _json(dict)
    failed_reasons: dict = _json(dict)
    folded: bool = False


class CampaignSender(SQLModel, table=True):
    """A sender process that worked on a campaign: when it was last seen, and until when it is live."""

    __tablename__ = "campaign_senders"
    campaign_pk: int = Field(sa_column=Column(ForeignKey("campaigns.pk", ondelete="CASCADE"), primary_key=True))
    owner: str = Field(sa_column=Column(String(255), primary_key=True))
    started_at: datetime | None = _time(nullable=False)
    last_seen: datetime | None = _time(nullable=False)
    lease_expires_at: datetime | None = _time()
