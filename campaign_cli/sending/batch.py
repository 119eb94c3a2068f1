"""One batch of the sender loop: plan it (read-only, also used by `preview`), then write it.

Planning resolves every target to a channel — existing, to be created, or none (skipped with
a reason) — and renders its message. Writing puts every effect of the batch (channels,
members, messages, events, push records, outbox rows, target states, stats) into the
caller's transaction with bulk statements, so a batch happens entirely or not at all.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import Connection, String, Text, bindparam, cast, func, literal_column, select, type_coerce, update

from campaign_cli.channels import CHANNELS, MEMBERS, distinct_channel_id
from campaign_cli.errors import InvalidInput
from campaign_cli.limits import RenderLimits
from campaign_cli.sending.events import CHANNEL_CREATED, MESSAGE_NEW, Outbox
from campaign_cli.store.bulk import RawInsert, in_values, insert_ignore, row_converter
from campaign_cli.store.engine import json_text
from campaign_cli.store.models import (
    CAMPAIGN_TARGETS as TARGETS, EVENTS, MESSAGES, PUSH_NOTIFICATIONS as PUSHES, OUTBOX,
)
from campaign_cli.templates import CampaignTemplates
from campaign_cli.timeutil import to_json
from campaign_cli.user_object import user_json
from campaign_cli.users import USERS, lock_users

# A literal 0, not a parameter, so that SQLite can match the partial index ix_users_with_devices.
HAS_DEVICES = func.json_array_length(USERS.c.devices) > literal_column("0")
# Answered by that partial index. In id order, because PostgreSQL has no statistics on the
# condition, expects a third of the users to match it, and would rather scan the table for the
# first one: a whole scan per batch when nobody has a device.
ANYONE_WITH_DEVICES = select(USERS.c.id).where(HAS_DEVICES).order_by(USERS.c.id).limit(1)
DEFAULT_CHANNEL_TYPE = "messaging"

PENDING, SENDING, SENT, SKIPPED, FAILED = "pending", "sending", "sent", "skipped", "failed"


@dataclass
class NewChannel:
    """A channel the batch creates: its row, its member rows (without channel_pk) and, once written, its pk."""

    row: dict[str, Any]
    members: list[dict[str, Any]]
    vars: dict[str, Any]
    pk: int | None = None


@dataclass
class Delivery:
    """The plan for one target."""

    seq: int
    target_id: str
    kind: str
    state: str = SENT
    reason: str | None = None
    receiver: dict[str, Any] | None = None
    cid: str | None = None
    channel: dict[str, Any] | None = None
    channel_pk: int | None = None
    new_channel: NewChannel | None = None
    text: str = ""
    custom: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    # Where a remote backend delivered the message: {"backend", "room_id", "event_id"}.
    remote: dict[str, Any] | None = None

    def give_up(self, state: str, reason: str) -> None:
        self.state, self.reason = state, reason


@dataclass
class BatchResult:
    """What one written batch changed, for the stats and the progress bar."""

    done: int = 0
    messages: int = 0
    channels_created: int = 0
    users_sent: int = 0
    failed: int = 0
    skipped: Counter = field(default_factory=Counter)
    failed_reasons: Counter = field(default_factory=Counter)


class CampaignRun:
    """What stays fixed while one campaign is sent: the campaign, its compiled templates and its sender."""

    def __init__(self, conn: Connection, campaign: Any, limits: RenderLimits = RenderLimits()):
        self.campaign = campaign
        self.templates = CampaignTemplates.compile(campaign.message_template, campaign.channel_template, limits)
        sender = conn.execute(select(USERS).where(USERS.c.id == campaign.sender_id)).first()
        if sender is None:
            raise InvalidInput(f"campaign {campaign.id!r}: sender_id {campaign.sender_id!r} is not an existing user")
        self.sender = user_json(sender)
        self.sender_id: str = campaign.sender_id
        channel_template = campaign.channel_template or {}
        self.channel_type: str = channel_template.get("type") or DEFAULT_CHANNEL_TYPE
        self.team: str | None = channel_template.get("team")
        self.has_channel_id = bool(channel_template.get("id"))
        self.vars_campaign = {"id": campaign.id, "name": campaign.name}
        started = campaign.stats_started_at
        self.message_prefix = f"{campaign.id}-{int(started.timestamp() * 1_000_000):x}" if started else campaign.id

    def message_id(self, seq: int) -> str:
        """The id of the message to target `seq`: stable across restarts, so remote backends use it as idempotency key."""
        # Zero-padded so that ids grow with seq: appends to the unique index instead of random inserts.
        return f"{self.message_prefix}-{seq:010d}"

    def context(self, receiver: dict | None, channel: dict | None) -> dict[str, Any]:
        """The template variables for one target."""
        ctx: dict[str, Any] = {"sender": self.sender, "campaign": self.vars_campaign}
        if receiver is not None:
            ctx["receiver"] = receiver
        if channel is not None:
            ctx["channel"] = channel
        return ctx


# The hot path reads JSON and time columns as the driver returns them and decodes them here:
# SQLAlchemy's per-row result processing cost more than the query itself. JSON comes as text
# (psycopg would otherwise parse every document, most of them `[]` or `{}`, which `_json` skips).
_USER_COLUMNS = (USERS.c.id, USERS.c.name, USERS.c.role, cast(USERS.c.teams, Text), USERS.c.language,
                 type_coerce(USERS.c.created_at, String), type_coerce(USERS.c.updated_at, String),
                 type_coerce(USERS.c.last_active, String), USERS.c.banned, cast(USERS.c.devices, Text),
                 cast(USERS.c.custom, Text))
_CHANNEL_COLUMNS = (CHANNELS.c.pk, CHANNELS.c.cid, CHANNELS.c.type, CHANNELS.c.id, CHANNELS.c.team,
                    CHANNELS.c.created_by_id, CHANNELS.c.member_count, cast(CHANNELS.c.custom, Text))


def _json(value: Any) -> Any:
    if value == "[]":
        return []
    if value == "{}":
        return {}
    return json.loads(value) if isinstance(value, str) else value


def _time_text(value: Any) -> str | None:
    """A stored time as RFC 3339 UTC: SQLite returns its text form, PostgreSQL a naive datetime in UTC."""
    if isinstance(value, str):
        return value.replace(" ", "T") + "Z"
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.isoformat() + "Z"  # to_json's text, without its time zone arithmetic (hot: 3 per target)
    return to_json(value)


def load_user_vars(conn: Connection, user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Users by id as template variables, shaped like `user_object.user_json`."""
    users = {}
    for (user_id, name, role, teams, language, created, updated, active, banned, devices, custom) in conn.execute(
            select(*_USER_COLUMNS).where(in_values(USERS.c.id, user_ids))).all():
        data = {"id": user_id, "name": name, "role": role, "teams": _json(teams), "language": language,
                "created_at": _time_text(created), "updated_at": _time_text(updated),
                "last_active": _time_text(active), "banned": bool(banned), "devices": _json(devices)}
        for key, value in (_json(custom) or {}).items():
            data.setdefault(key, value)
        users[user_id] = data
    return users


def channel_vars(pk: int, cid: str, type_: str, id_: str, team: str | None, created_by_id: str | None,
                 member_count: int, custom: Any) -> dict[str, Any]:
    """A channel as template variables: its standard fields and custom fields."""
    data = {"cid": cid, "type": type_, "id": id_, "team": team, "created_by_id": created_by_id,
            "member_count": member_count}
    for key, value in (_json(custom) or {}).items():
        data.setdefault(key, value)
    return data


# ---------------------------------------------------------------- planning


def plan_batch(conn: Connection, run: CampaignRun, targets: list[tuple[int, str, str]]) -> list[Delivery]:
    """Resolve and render a batch of (seq, target_id, kind) without writing anything."""
    deliveries = [Delivery(seq, target_id, kind) for seq, target_id, kind in targets]
    _resolve_receivers(conn, run, deliveries)
    _resolve_distinct_channels(run, deliveries)
    _attach_channels(conn, run, deliveries)
    for d in deliveries:
        if d.state == SENT:
            _render(run, d)
    return deliveries


def _resolve_receivers(conn: Connection, run: CampaignRun, deliveries: list[Delivery]) -> None:
    user_ids = [d.target_id for d in deliveries if d.kind == "user"]
    users = load_user_vars(conn, user_ids) if user_ids else {}
    for d in deliveries:
        if d.kind == "channel":
            d.cid = d.target_id
            continue
        d.receiver = users.get(d.target_id)
        if d.receiver is None:
            d.give_up(SKIPPED, "unknown_user")
        elif d.target_id == run.sender_id:
            d.give_up(SKIPPED, "receiver_is_sender")
        elif run.has_channel_id:
            _render_channel_id(run, d)


def _render_channel_id(run: CampaignRun, d: Delivery) -> None:
    try:
        channel_id = run.templates.channel_id(run.context(d.receiver, None))
    except TemplateError as exc:
        d.give_up(FAILED, f"template_error: {exc}")
        return
    if not channel_id:
        d.give_up(SKIPPED, "empty_channel_id")
    else:
        d.cid = f"{run.channel_type}:{channel_id}"


def _resolve_distinct_channels(run: CampaignRun, deliveries: list[Delivery]) -> None:
    """Without a channel id template, a user's channel is the distinct one of exactly sender and receiver.

    A distinct channel is recognised by its id, a function of its member set (`distinct_channel_id`):
    a channel that merely has the same two members but was given an id of its own (an event
    channel, say) is never picked. Computing the cid needs no query; `_attach_channels` then
    finds the channel, if it exists, with the cids of the whole batch.
    """
    for d in deliveries:
        if d.state == SENT and d.kind == "user" and d.cid is None:
            d.cid = f"{run.channel_type}:{distinct_channel_id([run.sender_id, d.target_id])}"


def _attach_channels(conn: Connection, run: CampaignRun, deliveries: list[Delivery]) -> None:
    cids = list({d.cid for d in deliveries if d.state == SENT and d.cid})
    # .all(): iterating a result fetches row by row, which costs more than the query here.
    query = select(*_CHANNEL_COLUMNS).where(in_values(CHANNELS.c.cid, cids))
    existing = {row[1]: row for row in conn.execute(query).all()} if cids else {}
    missing = []
    for d in deliveries:
        if d.state != SENT:
            continue
        row = existing.get(d.cid)
        if row is not None:
            d.channel_pk, d.channel = row[0], channel_vars(*row)
        elif d.kind == "channel":
            d.give_up(SKIPPED, "unknown_channel")
        elif not run.campaign.create_channels:
            d.give_up(SKIPPED, "no_channel")
        else:
            missing.append(d)
    _plan_new_channels(conn, run, missing)


def _plan_new_channels(conn: Connection, run: CampaignRun, missing: list[Delivery]) -> None:
    """Plan the channels to create, once per cid; a template that fails fails its target only."""
    members = _members_by_target(conn, run, missing)
    created: dict[str, NewChannel] = {}
    for d in missing:
        if d.state != SENT:
            continue
        if d.cid not in created:
            try:
                created[d.cid] = _plan_channel(run, d, members.get(d.seq))
            except TemplateError as exc:
                d.give_up(FAILED, f"template_error: {exc}")
                continue
        d.new_channel = created[d.cid]
        d.channel = d.new_channel.vars


def _members_by_target(conn: Connection, run: CampaignRun, missing: list[Delivery]) -> dict[int, list[dict[str, Any]]]:
    """The known users among each target's rendered `members` / `members_template` (as
    `{user_id, channel_role?, custom?}`), with one query a batch."""
    listed: dict[int, list[dict[str, Any]]] = {}
    for d in missing:
        try:
            members = run.templates.members(run.context(d.receiver, None))
        except TemplateError as exc:
            d.give_up(FAILED, f"template_error: {exc}")
            continue
        if members:
            listed[d.seq] = members
    if not listed:
        return {}
    wanted = {member["user_id"] for members in listed.values() for member in members}
    known = set(conn.scalars(select(USERS.c.id).where(in_values(USERS.c.id, wanted))).all())
    return {seq: [m for m in members if m["user_id"] in known] for seq, members in listed.items()}


def _plan_channel(run: CampaignRun, d: Delivery, listed: list[dict[str, Any]] | None) -> NewChannel:
    """A channel for the receiver: the template's known members or the receiver, plus the sender
    unless `sender_mode: exclude`; the sender's membership hidden or archived per `sender_visibility`.
    A members_template entry's `channel_role` and `custom` go to that member (the sender stays owner)."""
    kind, _, channel_id = d.cid.partition(":")
    given = {m["user_id"]: m for m in listed or []}
    member_ids = [d.target_id, *given]
    if run.campaign.sender_mode != "exclude":
        member_ids.append(run.sender_id)
    else:
        member_ids = [u for u in member_ids if u != run.sender_id]
    member_ids = list(dict.fromkeys(member_ids))
    custom = run.templates.channel_custom(run.context(d.receiver, None))
    row = {"cid": d.cid, "type": kind, "id": channel_id, "team": run.team, "created_by_id": run.sender_id,
           "member_count": len(member_ids), "custom": custom}
    hidden = run.campaign.sender_visibility == "hidden"
    archived = run.campaign.sender_visibility == "archived"
    members = [
        {"user_id": uid,
         "channel_role": "owner" if uid == run.sender_id else given.get(uid, {}).get("channel_role", "channel_member"),
         "hidden": hidden and uid == run.sender_id, "archived": archived and uid == run.sender_id,
         "custom": given.get(uid, {}).get("custom")}
        for uid in member_ids
    ]
    vars_ = {"cid": d.cid, "type": kind, "id": channel_id, "team": run.team, "created_by_id": run.sender_id,
             "member_count": len(member_ids), **custom}
    return NewChannel(row, members, vars_)


def _render(run: CampaignRun, d: Delivery) -> None:
    """The message's text and custom fields; a template that fails for this target fails the target only."""
    d.context = run.context(d.receiver, d.channel)
    try:
        d.text = run.templates.text(d.context)
        d.custom = run.templates.message_custom(d.context)
    except TemplateError as exc:
        d.give_up(FAILED, f"template_error: {exc}")


# ---------------------------------------------------------------- writing

# Another sender (or command) may create one of the batch's channels between its plan and its write.
_INSERT_CHANNELS = RawInsert(CHANNELS, ["pk", "cid", "type", "id", "team", "created_by_id", "member_count", "created_at",
                                        "updated_at", "last_message_at", "custom"], ignore_conflicts=True)
_INSERT_MEMBERS = RawInsert(MEMBERS, ["channel_pk", "user_id", "channel_role", "hidden", "archived", "created_at",
                                      "last_read_at", "custom"])
_INSERT_MESSAGES = RawInsert(MESSAGES, ["id", "cid", "channel_pk", "user_id", "text", "type", "attachments", "custom",
                                        "campaign_id", "created_at", "delivery_backend", "remote_room_id",
                                        "remote_event_id"])
_INSERT_EVENTS = RawInsert(EVENTS, ["type", "campaign_id", "cid", "message_id", "user_id", "created_at", "payload"])
_INSERT_PUSHES = RawInsert(PUSHES, ["campaign_id", "message_id", "user_id", "device_id", "push_provider", "created_at"])
_INSERT_OUTBOX = RawInsert(OUTBOX, ["sink", "event_type", "campaign_id", "body", "status", "attempts",
                                    "next_attempt_at", "last_error", "created_at"])


@dataclass
class _Writer:
    """The values shared by every row of one batch, converted once for the driver."""

    conn: Connection
    run: CampaignRun
    at: datetime
    outbox: Outbox

    def __post_init__(self) -> None:
        self.time = row_converter(self.conn, CHANNELS.c.created_at)(self.at)  # a target writes about eight
        self.empty = json_text({})
        self.attachments = json_text(self.run.campaign.message_template.get("attachments") or [])


def write_batch(conn: Connection, run: CampaignRun, deliveries: list[Delivery], at: datetime, outbox: Outbox) -> BatchResult:
    """Write every effect of a planned batch into the caller's transaction."""
    w = _Writer(conn, run, at, outbox)
    result = BatchResult(done=len(deliveries))
    _check_members(w, deliveries)
    new_channels = _create_channels(w, deliveries)
    sending = [d for d in deliveries if d.state == SENT]
    for d in sending:
        if d.new_channel is not None:
            d.channel_pk = d.new_channel.pk
    others = _other_members(w, sending, new_channels)
    messages = _messages(w, sending)
    _INSERT_MESSAGES.execute(conn, [
        (m["id"], m["cid"], m["channel_pk"], m["user_id"], m["text"], "regular", w.attachments, m["custom"],
         m["campaign_id"], w.time, *_remote_columns(d.remote)) for d, m in zip(sending, messages)])
    _INSERT_EVENTS.execute(conn, _events(w, sending, messages))
    _pushes(w, sending, messages)
    _INSERT_OUTBOX.execute(conn, [
        (r["sink"], r["event_type"], r["campaign_id"], r["body"], "pending", 0, w.time, None, w.time)
        for r in outbox.rows])
    outbox.rows.clear()
    _touch_channels(w, sending)
    _record_targets(conn, run, deliveries)
    result.messages = len(messages)
    result.channels_created = len(new_channels)
    result.users_sent = sum(others.get(d.channel_pk, 0) for d in sending)
    for d in deliveries:
        if d.state == SKIPPED:
            result.skipped[d.reason or "unknown"] += 1
        elif d.state == FAILED:
            result.failed += 1
            result.failed_reasons[failure_kind(d.reason)] += 1
    return result


def failure_kind(reason: str | None) -> str:
    """The reason a failure is counted under: `template_error`, `matrix:M_FORBIDDEN`, … (without the details)."""
    return (reason or "unknown").partition(": ")[0]


def _remote_columns(remote: dict[str, Any] | None) -> tuple[Any, Any, Any]:
    if remote is None:
        return None, None, None
    return remote["backend"], remote["room_id"], remote["event_id"]


def _check_members(w: _Writer, deliveries: list[Delivery]) -> None:
    """Make sure the users the batch's new memberships name still exist, and keep them so until it commits.

    The batch was planned before its write transaction, and a user may have been deleted since:
    that target is skipped as an unknown user, as it would have been had the plan come later
    (unless a remote backend delivered its message already), and a channel loses that member.
    """
    created = _new_channels(deliveries)
    wanted = {m["user_id"] for channel in created for m in channel.members}
    if w.run.campaign.sender_mode == "include":
        wanted.add(w.run.sender_id)  # it may join existing channels
    known = lock_users(w.conn, wanted)
    if len(known) == len(wanted):
        return
    if w.run.sender_id in wanted and w.run.sender_id not in known:
        raise InvalidInput(f"campaign {w.run.campaign.id!r}: sender_id {w.run.sender_id!r} "
                           "is not an existing user (deleted?)")
    for d in deliveries:
        if not (d.state == SENT and d.new_channel is not None and d.kind == "user" and d.target_id not in known):
            continue
        if d.remote is None:
            d.give_up(SKIPPED, "unknown_user")
        elif d.receiver is not None:
            # A remote backend delivered the message already: it is recorded all the same, in a channel
            # without the user, and without a push to the devices the user had.
            d.receiver = {**d.receiver, "devices": []}
    for channel in created:
        channel.members = [m for m in channel.members if m["user_id"] in known]
        channel.row["member_count"] = channel.vars["member_count"] = len(channel.members)


def _new_channels(deliveries: list[Delivery]) -> list[NewChannel]:
    """The channels the batch's targets still being sent will create, each once (targets may share one)."""
    return list({id(d.new_channel): d.new_channel for d in deliveries
                 if d.state == SENT and d.new_channel is not None}.values())


def _create_channels(w: _Writer, deliveries: list[Delivery]) -> list[NewChannel]:
    created = _new_channels(deliveries)
    if not created:
        return []
    _assign_channel_pks(w, created)
    inserted = _INSERT_CHANNELS.execute(w.conn, [
        (c.pk, c.row["cid"], c.row["type"], c.row["id"], c.row["team"], c.row["created_by_id"], c.row["member_count"],
         w.time, w.time, w.time, json_text(c.row["custom"]) if c.row["custom"] else w.empty)
        for c in created])
    if inserted < len(created):
        created = _use_channels_created_meanwhile(w, deliveries, created)
    _INSERT_MEMBERS.execute(w.conn, [
        (channel.pk, m["user_id"], m["channel_role"], m["hidden"], m["archived"], w.time, None,
         json_text(m["custom"]) if m["custom"] else None)
        for channel in created for m in channel.members])
    return created


def _use_channels_created_meanwhile(w: _Writer, deliveries: list[Delivery], planned: list[NewChannel]) -> list[NewChannel]:
    """Channels someone else created after the plan are used as existing ones; returns those this batch created."""
    pks = dict(w.conn.execute(select(CHANNELS.c.cid, CHANNELS.c.pk)
                              .where(in_values(CHANNELS.c.cid, [c.row["cid"] for c in planned]))).all())
    for d in deliveries:
        channel = d.new_channel
        # A target given up after its channel was planned may name a channel no one creates now.
        if d.state == SENT and channel is not None and pks.get(channel.row["cid"], channel.pk) != channel.pk:
            d.new_channel, d.channel_pk = None, pks[channel.row["cid"]]
    return [c for c in planned if pks[c.row["cid"]] == c.pk]


def _assign_channel_pks(w: _Writer, created: list[NewChannel]) -> None:
    """Number new channels from the largest key: the batch holds the database's write lock (BEGIN IMMEDIATE),
    so nobody else can take these keys, and no read-back of the inserted rows is needed."""
    if w.conn.dialect.name != "sqlite":
        pks = list(w.conn.scalars(select(func.nextval("channels_pk_seq"))
                                  .select_from(func.generate_series(1, len(created)))))
    else:
        first = (w.conn.scalar(select(func.max(CHANNELS.c.pk))) or 0) + 1
        pks = range(first, first + len(created))
    for channel, pk in zip(created, pks):
        channel.pk = pk


def _other_members(w: _Writer, sending: list[Delivery], created: list[NewChannel]) -> dict[int, int]:
    """Per channel messaged: how many members other than the sender (after `sender_mode: include` joins)."""
    sender_id = w.run.sender_id
    others = {c.pk: sum(1 for m in c.members if m["user_id"] != sender_id) for c in created}
    existing = {d.channel_pk: d.channel for d in sending if d.new_channel is None}
    if not existing:
        return others
    pks = list(existing)
    with_sender = set(w.conn.scalars(select(MEMBERS.c.channel_pk).where(
        MEMBERS.c.user_id == sender_id, in_values(MEMBERS.c.channel_pk, pks))).all())
    for pk, channel in existing.items():
        others[pk] = channel["member_count"] - (1 if pk in with_sender else 0)
    if w.run.campaign.sender_mode == "include":
        _sender_joins(w, [pk for pk in pks if pk not in with_sender])
    return others


def _sender_joins(w: _Writer, pks: list[int]) -> None:
    if not pks:
        return
    rows = [{"channel_pk": pk, "user_id": w.run.sender_id, "channel_role": "channel_member", "hidden": False,
             "archived": False, "created_at": w.at, "last_read_at": None} for pk in pks]
    insert_ignore(w.conn, MEMBERS, rows)
    w.conn.execute(update(CHANNELS).where(in_values(CHANNELS.c.pk, pks)).values(member_count=CHANNELS.c.member_count + 1))


def _messages(w: _Writer, sending: list[Delivery]) -> list[dict[str, Any]]:
    run = w.run
    campaign_id = run.campaign.id
    rows = []
    for d in sending:
        custom = d.custom
        custom["campaign_id"] = campaign_id
        rows.append({"id": run.message_id(d.seq), "cid": d.cid, "channel_pk": d.channel_pk,
                     "user_id": run.sender_id, "text": d.text, "type": "regular", "attachments": w.attachments,
                     "custom": custom, "campaign_id": campaign_id, "created_at": w.time})
    for row in rows:
        row["custom"] = json_text(row["custom"])
    return rows


def _events(w: _Writer, sending: list[Delivery], messages: list[dict]) -> list[tuple]:
    run, outbox = w.run, w.outbox
    campaign_id, sender_id = run.campaign.id, run.sender_id
    events: list[tuple] = []
    announced: set[str] = set()
    webhook = outbox.wants_webhook
    for d, message in zip(sending, messages):
        if d.new_channel is not None and d.cid not in announced:
            announced.add(d.cid)
            events.append((CHANNEL_CREATED, campaign_id, d.cid, None, sender_id, w.time, w.empty))
            if webhook:
                outbox.event(CHANNEL_CREATED, lambda d=d: _channel_created_body(run, d))
        payload = json_text({"delivery": d.remote}) if d.remote else w.empty
        events.append((MESSAGE_NEW, campaign_id, d.cid, message["id"], sender_id, w.time, payload))
        if webhook:
            outbox.event(MESSAGE_NEW, lambda d=d, m=message: _message_new_body(run, d, m, w.at))
    return events


def _channel_created_body(run: CampaignRun, d: Delivery) -> dict[str, Any]:
    channel = d.new_channel
    assert channel is not None
    data = dict(channel.vars)
    data["members"] = [{"user_id": m["user_id"], "channel_role": m["channel_role"]} for m in channel.members]
    return {"cid": d.cid, "channel_type": channel.row["type"], "channel_id": channel.row["id"], "channel": data,
            "user": {"id": run.sender_id}, "campaign_id": run.campaign.id}


def _message_new_body(run: CampaignRun, d: Delivery, message: dict[str, Any], at: datetime) -> dict[str, Any]:
    kind, _, channel_id = (d.cid or "").partition(":")
    body = {"id": message["id"], "cid": d.cid, "text": message["text"], "type": "regular",
            "user": {"id": run.sender_id, "name": run.sender.get("name")},
            "attachments": run.campaign.message_template.get("attachments") or [], "created_at": to_json(at)}
    body.update(json.loads(message["custom"]))
    data = {"cid": d.cid, "channel_type": kind, "channel_id": channel_id, "message": body,
            "user": {"id": run.sender_id}, "campaign_id": run.campaign.id}
    if d.remote:
        data["delivery"] = d.remote
    return data


def _pushes(w: _Writer, sending: list[Delivery], messages: list[dict]) -> None:
    """Push records for members other than the sender who have devices (unless skip_push)."""
    run = w.run
    if run.campaign.skip_push or not sending:
        return
    devices = _member_devices(w, sending)
    rows = []
    for d, message in zip(sending, messages):
        for user_id, user_devices in devices.get(d.channel_pk, ()):
            for device in user_devices:
                rows.append((run.campaign.id, message["id"], user_id, device["id"], device.get("push_provider"),
                             w.time))
                w.outbox.push({"type": "push", "message_id": message["id"], "cid": d.cid, "user_id": user_id,
                               "device_id": device["id"], "push_provider": device.get("push_provider"),
                               "text": message["text"], "sender_id": run.sender_id, "campaign_id": run.campaign.id})
    _INSERT_PUSHES.execute(w.conn, rows)


def _member_devices(w: _Writer, sending: list[Delivery]) -> dict[int, list[tuple[str, list]]]:
    """Per channel: (user id, devices) of members other than the sender who have devices.

    A channel this batch created for just the receiver (and the sender) needs no query: the
    receiver's devices were loaded with the receiver.
    """
    sender_id = w.run.sender_id
    devices: dict[int, list[tuple[str, list]]] = {}
    if not w.conn.execute(ANYONE_WITH_DEVICES).first():
        return devices  # nobody in the directory has a device
    to_query = set()
    for d in sending:
        channel = d.new_channel
        if channel is not None and all(m["user_id"] in (sender_id, d.target_id) for m in channel.members):
            if d.receiver and d.receiver["devices"] and d.target_id != sender_id:
                devices[d.channel_pk] = [(d.target_id, d.receiver["devices"])]
        else:
            to_query.add(d.channel_pk)
    if to_query:
        query = (select(MEMBERS.c.channel_pk, USERS.c.id, type_coerce(USERS.c.devices, String))
                 .join(USERS, USERS.c.id == MEMBERS.c.user_id)
                 .where(in_values(MEMBERS.c.channel_pk, to_query), MEMBERS.c.user_id != sender_id, HAS_DEVICES))
        for channel_pk, user_id, user_devices in w.conn.execute(query).all():
            devices.setdefault(channel_pk, []).append((user_id, _json(user_devices)))
    return devices


def _touch_channels(w: _Writer, sending: list[Delivery]) -> None:
    """Existing channels get their last_message_at (new ones were written with it); show_channels unhides."""
    pks = list({d.channel_pk for d in sending if d.new_channel is None})
    if not pks:
        return
    w.conn.execute(update(CHANNELS).where(in_values(CHANNELS.c.pk, pks)).values(last_message_at=w.at, updated_at=w.at))
    if w.run.campaign.show_channels:
        w.conn.execute(update(MEMBERS).where(in_values(MEMBERS.c.channel_pk, pks), MEMBERS.c.hidden.is_(True))
                       .values(hidden=False))


def _record_targets(conn: Connection, run: CampaignRun, deliveries: list[Delivery]) -> None:
    pk = run.campaign.pk
    others = [{"seq_": d.seq, "state_": d.state, "reason_": (d.reason or "")[:500]} for d in deliveries if d.state != SENT]
    if others:
        conn.execute(
            update(TARGETS).where(TARGETS.c.campaign_pk == pk, TARGETS.c.seq == bindparam("seq_"))
            .values(state=bindparam("state_"), reason=bindparam("reason_")), others)
    lo, hi = deliveries[0].seq, deliveries[-1].seq
    conn.execute(update(TARGETS).where(TARGETS.c.campaign_pk == pk, TARGETS.c.seq.between(lo, hi),
                                       TARGETS.c.state.in_((PENDING, SENDING))).values(state=SENT))
