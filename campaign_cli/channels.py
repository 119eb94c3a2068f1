"""The channel directory: import channels with their members, list with filters, get by cid."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from campaign_cli.errors import InvalidInput, NotFound
from campaign_cli.filters import FieldSpec, FilterSchema, compile_filter, member_exists
from campaign_cli.paging import Page, page_by_key
from campaign_cli.records import RecordSource
from campaign_cli.store.bulk import CopyUpsert, RawInsert, chunked, in_values, row_converter, upsert
from campaign_cli.store.engine import reading, writing
from campaign_cli.store.models import CHANNELS, CHANNEL_MEMBERS as MEMBERS
from campaign_cli.timeutil import now, parse_time, to_json
from campaign_cli.users import check_id, lock_users

IMPORT_BATCH = 2000
STANDARD_FIELDS = ("cid", "type", "id", "team", "created_by_id", "members", "member_count",
                   "created_at", "updated_at", "last_message_at")
# User fields a channel filter refuses as "does not exist for channels". Names that channels
# commonly carry as custom fields (name, language) stay usable as custom fields.
USER_ONLY_FIELDS = frozenset({"role", "teams", "last_active", "banned", "devices"})

CHANNEL_FILTER = FilterSchema(
    name="channels",
    fields={
        "cid": FieldSpec(CHANNELS.c.cid, "string", nullable=False),
        "type": FieldSpec(CHANNELS.c.type, "string", nullable=False),
        "id": FieldSpec(CHANNELS.c.id, "string", nullable=False),
        "team": FieldSpec(CHANNELS.c.team, "string"),
        "created_by_id": FieldSpec(CHANNELS.c.created_by_id, "string"),
        "member_count": FieldSpec(CHANNELS.c.member_count, "number", nullable=False),
        "created_at": FieldSpec(CHANNELS.c.created_at, "time", nullable=False),
        "updated_at": FieldSpec(CHANNELS.c.updated_at, "time", nullable=False),
        "last_message_at": FieldSpec(CHANNELS.c.last_message_at, "time"),
        "members": FieldSpec(None, "members"),
    },
    custom_column=CHANNELS.c.custom,
    foreign_fields=USER_ONLY_FIELDS,
    member_match=member_exists(MEMBERS, CHANNELS.c.pk),
)


@dataclass
class ChannelImportResult:
    """What a channel import did."""

    records: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    members: int = 0


def distinct_channel_id(user_ids: list[str]) -> str:
    """The id of the distinct channel of exactly these members: a function of the member set only.

    A channel created without an id (by a campaign whose channel_template has none, or by an
    import record without `id`) gets this id, and that is what makes it the distinct channel of
    its members. Readable and length-prefixed (`!members-5.alice.3.bob`, unambiguous whatever
    the ids hold) while short; a hash beyond that. With one sender and receivers taken in id
    order, these ids grow with the receiver, so creating a million channels appends to the cid
    index instead of inserting at random places (a hash for every id made creation markedly slower).
    """
    members = sorted(set(user_ids))
    readable = ".".join(f"{len(m)}.{m}" for m in members)
    if len(readable) <= 200:
        return f"!members-{readable}"
    return f"!members-sha256-{hashlib.sha256(chr(0).join(members).encode()).hexdigest()}"


def split_cid(cid: str, where: str = "cid") -> tuple[str, str]:
    """`type:id` → (type, id)."""
    kind, sep, channel_id = cid.partition(":")
    if not sep or not kind or not channel_id:
        raise InvalidInput(f"{where}: channel cid must be 'type:id', got {cid!r}")
    return kind, channel_id


def _members(record: dict, where: str) -> list[dict]:
    raw = record.get("members")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidInput(f"{where}: 'members' must be a list of user ids or {{user_id, channel_role}}")
    members: dict[str, dict] = {}
    for item in raw:
        if isinstance(item, str):
            item = {"user_id": item}
        if not isinstance(item, dict):
            raise InvalidInput(f"{where}: each member must be a user id or an object with 'user_id'")
        user_id = check_id(item.get("user_id"), where, "members.user_id")
        role = item.get("channel_role")
        if role is not None and not isinstance(role, str):
            raise InvalidInput(f"{where}: member {user_id!r}: 'channel_role' must be a string")
        for flag in ("hidden", "archived"):
            if not isinstance(item.get(flag, False), bool):
                raise InvalidInput(f"{where}: member {user_id!r}: '{flag}' must be true or false")
        read = item.get("last_read_at")
        members[user_id] = {
            "user_id": user_id,
            "channel_role": role or "channel_member",
            "hidden": item.get("hidden", False),
            "archived": item.get("archived", False),
            "last_read_at": parse_time(read, f"{where}: 'last_read_at'") if read is not None else None,
        }
    return list(members.values())


def _with_cid_parts(record: dict, where: str) -> dict:
    """A record's `cid` split into `type` and `id`; a `type` or `id` given beside it must agree with it."""
    cid = check_id(record["cid"], where, "cid")
    parts = dict(zip(("type", "id"), split_cid(cid, where)))
    for key, value in parts.items():
        if record.get(key) is not None and record[key] != value:
            raise InvalidInput(f"{where}: 'cid' {cid!r} disagrees with '{key}' {record[key]!r}")
    return {**record, **parts}


def channel_row(record: Any, where: str, stamp: datetime) -> tuple[dict[str, Any], list[dict]]:
    """Validate one channel record: the `channels` row and its members.

    `created_at` stays None when the record has none: the import keeps the stored one, or uses `stamp`.
    """
    if not isinstance(record, dict):
        raise InvalidInput(f"{where}: a channel record must be an object, got {type(record).__name__}")
    if record.get("cid") is not None:
        record = _with_cid_parts(record, where)
    kind = check_id(record.get("type"), where, "type")
    if ":" in kind:
        raise InvalidInput(f"{where}: 'type' cannot contain ':'")
    members = _members(record, where)
    if record.get("id") is None and members:
        # No id: the distinct channel of exactly these members.
        record = {**record, "id": distinct_channel_id([m["user_id"] for m in members])}
    channel_id = check_id(record.get("id"), where, "id")
    for key in ("team", "created_by_id"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise InvalidInput(f"{where}: '{key}' must be a string")
    created = record.get("created_at")
    last = record.get("last_message_at")
    row = {
        "cid": f"{kind}:{channel_id}", "type": kind, "id": channel_id,
        "team": record.get("team"), "created_by_id": record.get("created_by_id"),
        "member_count": len(members),
        "created_at": parse_time(created, f"{where}: 'created_at'") if created else None,
        "updated_at": stamp,
        "last_message_at": parse_time(last, f"{where}: 'last_message_at'") if last else None,
        "custom": {k: v for k, v in record.items() if k not in STANDARD_FIELDS},
    }
    return row, members


def import_channels(
    engine: Engine, sources: list[RecordSource], on_progress: Callable[[int], None] | None = None
) -> ChannelImportResult:
    """Upsert channels and replace their member lists, in one transaction: a bad record writes nothing.

    A channel or member already stored keeps its `created_at` unless the record gives one.
    """
    result = ChannelImportResult()
    stamp = now()
    base = 0
    with writing(engine) as conn:
        for source in sources:
            parsed = ((f"{source.name}:{line}", rec) for line, rec in source.records())
            for batch in chunked(parsed, IMPORT_BATCH):
                rows = [(where, *channel_row(rec, where, stamp)) for where, rec in batch]
                _write_batch(conn, rows, stamp, result)
                if on_progress:
                    on_progress(base + source.bytes_read)
            base += source.size
    return result


def _write_batch(conn: Connection, batch: list[tuple[str, dict, list[dict]]], stamp: datetime,
                 result: ChannelImportResult) -> None:
    _check_users_exist(conn, batch)
    latest = {row["cid"]: (row, members) for _, row, members in batch}  # the last record of a cid wins
    result.records += len(batch)
    result.duplicates += len(batch) - len(latest)
    stored = conn.execute(
        select(CHANNELS.c.cid, CHANNELS.c.pk, CHANNELS.c.created_at, CHANNELS.c.updated_at)
        .where(in_values(CHANNELS.c.cid, latest))
    ).all()
    for cid, _pk, created_at, updated_at in stored:
        if updated_at == stamp:
            result.duplicates += 1  # written earlier in this same import
        else:
            result.updated += 1
        row = latest[cid][0]
        row["created_at"] = row["created_at"] or created_at
    result.inserted += len(latest) - len(stored)
    for row, _ in latest.values():
        row["created_at"] = row["created_at"] or stamp
    joined = _member_since(conn, [pk for _, pk, _, _ in stored])
    _upsert_channels(conn, [row for row, _ in latest.values()])
    pks = dict(conn.execute(select(CHANNELS.c.cid, CHANNELS.c.pk).where(in_values(CHANNELS.c.cid, latest))).all())
    conn.execute(delete(MEMBERS).where(in_values(MEMBERS.c.channel_pk, pks.values())))
    to_time = row_converter(conn, MEMBERS.c.created_at)
    member_rows = [
        (pks[cid], m["user_id"], m["channel_role"], m["hidden"], m["archived"],
         to_time(joined.get((pks[cid], m["user_id"]), stamp)), to_time(m["last_read_at"]))
        for cid, (row, members) in latest.items() for m in members
    ]
    _INSERT_MEMBERS.execute(conn, member_rows)
    result.members += len(member_rows)


# On PostgreSQL both go in with COPY, its bulk path (see store/bulk.py).
_CHANNEL_COLUMNS = [column.name for column in CHANNELS.c if column.name != "pk"]
_INSERT_MEMBERS = RawInsert(MEMBERS, ["channel_pk", "user_id", "channel_role", "hidden", "archived", "created_at",
                                      "last_read_at"])


def _upsert_channels(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name != "postgresql":
        upsert(conn, CHANNELS, rows, keys=["cid"])
        return
    converters = [(name, row_converter(conn, CHANNELS.c[name])) for name in _CHANNEL_COLUMNS]
    values = [[convert(row[name]) for name, convert in converters] for row in rows]
    CopyUpsert(conn, CHANNELS, _CHANNEL_COLUMNS, keys=["cid"]).execute(conn, values)


def _member_since(conn: Connection, channel_pks: list[int]) -> dict[tuple[int, str], datetime]:
    """When each current member of these channels joined, to keep it across a re-import."""
    if not channel_pks:
        return {}
    rows = conn.execute(
        select(MEMBERS.c.channel_pk, MEMBERS.c.user_id, MEMBERS.c.created_at).where(in_values(MEMBERS.c.channel_pk, channel_pks))
    ).all()
    return {(pk, user_id): created_at for pk, user_id, created_at in rows}


def _check_users_exist(conn: Connection, batch: list[tuple[str, dict, list[dict]]]) -> None:
    wanted = {m["user_id"] for _, _, members in batch for m in members}
    wanted |= {row["created_by_id"] for _, row, _ in batch if row["created_by_id"]}
    known = lock_users(conn, wanted)
    for where, row, members in batch:
        for member in members:
            if member["user_id"] not in known:
                raise InvalidInput(f"{where}: member {member['user_id']!r} of {row['cid']} is not a known user")
        if row["created_by_id"] and row["created_by_id"] not in known:
            raise InvalidInput(f"{where}: created_by_id {row['created_by_id']!r} of {row['cid']} is not a known user")


def member_json(row: Any) -> dict[str, Any]:
    """A membership as JSON; `custom` only when a campaign's members_template gave the member one."""
    data = {
        "user_id": row.user_id, "channel_role": row.channel_role, "hidden": row.hidden,
        "archived": row.archived, "created_at": to_json(row.created_at), "last_read_at": to_json(row.last_read_at),
    }
    if row.custom:
        data["custom"] = row.custom
    return data


def channel_json(row: Any, members: list[Any] | None = None) -> dict[str, Any]:
    """A channel as JSON (fields: docs/reference.md), with its members when given."""
    data = {
        "cid": row.cid, "type": row.type, "id": row.id, "team": row.team, "created_by_id": row.created_by_id,
        "member_count": row.member_count, "created_at": to_json(row.created_at),
        "updated_at": to_json(row.updated_at), "last_message_at": to_json(row.last_message_at),
    }
    for key, value in (row.custom or {}).items():
        data.setdefault(key, value)
    if members is not None:
        data["members"] = [member_json(m) for m in members]
    return data


def list_channels(engine: Engine, filter_: dict | None, limit: int, next_: str | None, prev: str | None = None) -> Page:
    """One page of channels matching `filter_`, in creation order, with its cursors."""
    query = select(CHANNELS).where(compile_filter(filter_, CHANNEL_FILTER, "--filter"))
    page = page_by_key(engine, query, CHANNELS.c.pk, "channels", limit, next_, prev)
    page.items = [channel_json(r) for r in page.items]
    return page


def get_channel(engine: Engine, cid: str) -> dict[str, Any]:
    """One channel with its members; exit 4 when there is none."""
    with reading(engine) as conn:
        row = conn.execute(select(CHANNELS).where(CHANNELS.c.cid == cid)).first()
        if row is None:
            raise NotFound(f"channel {cid!r} not found")
        members = conn.execute(select(MEMBERS).where(MEMBERS.c.channel_pk == row.pk).order_by(MEMBERS.c.user_id)).all()
    return channel_json(row, members)
