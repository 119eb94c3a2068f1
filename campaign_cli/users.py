"""The user directory: import (streaming, all-or-nothing upsert), list with filters, get, delete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select

from campaign_cli.errors import InvalidInput, NotFound
from campaign_cli.filters import FieldSpec, FilterSchema, compile_filter
from campaign_cli.paging import check_limit, decode_cursor, encode_cursor
from campaign_cli.records import RecordSource
from campaign_cli.store.bulk import chunked, upsert
from campaign_cli.store.engine import reading, writing
from campaign_cli.store.models import User
from campaign_cli.timeutil import now, parse_time, to_json

USERS = User.__table__
IMPORT_BATCH = 5000
MAX_ID = 255
STANDARD_FIELDS = ("id", "name", "role", "teams", "language", "created_at", "updated_at",
                   "last_active", "banned", "devices")
CHANNEL_ONLY_FIELDS = frozenset({"cid", "type", "team", "created_by_id", "member_count",
                                 "last_message_at", "members"})

USER_FILTER = FilterSchema(
    name="users",
    fields={
        "id": FieldSpec(USERS.c.id, "string", nullable=False),
        "name": FieldSpec(USERS.c.name, "string"),
        "role": FieldSpec(USERS.c.role, "string", nullable=False),
        "language": FieldSpec(USERS.c.language, "string"),
        "teams": FieldSpec(USERS.c.teams, "list"),
        "banned": FieldSpec(USERS.c.banned, "bool", nullable=False),
        "created_at": FieldSpec(USERS.c.created_at, "time", nullable=False),
        "updated_at": FieldSpec(USERS.c.updated_at, "time", nullable=False),
        "last_active": FieldSpec(USERS.c.last_active, "time"),
    },
    custom_column=USERS.c.custom,
    foreign_fields=CHANNEL_ONLY_FIELDS,
)


@dataclass
class ImportResult:
    """What an import did."""

    records: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0


def check_id(value: Any, where: str, field: str = "id") -> str:
    """A non-empty string of at most 255 characters."""
    if value is None or value == "":
        raise InvalidInput(f"{where}: missing or empty '{field}'")
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: '{field}' must be a string, got {type(value).__name__}")
    if len(value) > MAX_ID:
        raise InvalidInput(f"{where}: '{field}' is longer than {MAX_ID} characters")
    return value


def _optional(record: dict, key: str, kind: type, where: str) -> Any:
    value = record.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        raise InvalidInput(f"{where}: '{key}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _time(record: dict, key: str, where: str) -> datetime | None:
    value = record.get(key)
    return None if value is None else parse_time(value, f"{where}: '{key}'")


def _teams(record: dict, where: str) -> list[str]:
    teams = record.get("teams") or []
    if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
        raise InvalidInput(f"{where}: 'teams' must be a list of strings")
    return teams


def _devices(record: dict, where: str) -> list[dict]:
    devices = record.get("devices") or []
    if not isinstance(devices, list):
        raise InvalidInput(f"{where}: 'devices' must be a list of {{id, push_provider}}")
    for device in devices:
        if not isinstance(device, dict) or not isinstance(device.get("id"), str) or not device["id"]:
            raise InvalidInput(f"{where}: each device must be an object with a string 'id'")
    return [{"id": d["id"], "push_provider": d.get("push_provider")} for d in devices]


def user_row(record: Any, where: str, stamp: datetime) -> dict[str, Any]:
    """Validate one import record and turn it into a `users` row; errors name `where` (file:line)."""
    if not isinstance(record, dict):
        raise InvalidInput(f"{where}: a user record must be an object, got {type(record).__name__}")
    return {
        "id": check_id(record.get("id"), where),
        "name": _optional(record, "name", str, where),
        "role": _optional(record, "role", str, where) or "user",
        "teams": _teams(record, where),
        "language": _optional(record, "language", str, where),
        "created_at": _time(record, "created_at", where),
        # updated_at is when this tool last wrote the user: it also tells duplicates within one import.
        "updated_at": stamp,
        "last_active": _time(record, "last_active", where),
        "banned": bool(_optional(record, "banned", bool, where)),
        "devices": _devices(record, where),
        "custom": {k: v for k, v in record.items() if k not in STANDARD_FIELDS},
    }


def import_users(
    engine: Engine,
    sources: list[RecordSource],
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Upsert users from record files in one transaction: a bad record writes nothing."""
    result = ImportResult()
    stamp = now()
    base = 0
    with writing(engine) as conn:
        for source in sources:
            records = (user_row(rec, f"{source.name}:{line}", stamp) for line, rec in source.records())
            for batch in chunked(records, IMPORT_BATCH):
                _write_batch(conn, batch, stamp, result)
                if on_progress:
                    on_progress(base + source.bytes_read)
            base += source.size
    return result


def _write_batch(conn: Any, batch: list[dict], stamp: datetime, result: ImportResult) -> None:
    rows: dict[str, dict] = {}
    for row in batch:
        rows[row["id"]] = row  # last one wins
    result.records += len(batch)
    result.duplicates += len(batch) - len(rows)
    existing = conn.execute(
        select(USERS.c.id, USERS.c.created_at, USERS.c.updated_at).where(USERS.c.id.in_(list(rows)))
    ).all()
    for user_id, created_at, updated_at in existing:
        if updated_at == stamp:
            result.duplicates += 1
        else:
            result.updated += 1
        if rows[user_id]["created_at"] is None:
            rows[user_id]["created_at"] = created_at
    result.inserted += len(rows) - len(existing)
    for row in rows.values():
        if row["created_at"] is None:
            row["created_at"] = stamp
    upsert(conn, USERS, list(rows.values()), keys=["id"])


def user_json(row: Any) -> dict[str, Any]:
    """A user as SPEC §1 JSON: standard fields, then custom fields at the top level."""
    data = {
        "id": row.id, "name": row.name, "role": row.role, "teams": row.teams, "language": row.language,
        "created_at": to_json(row.created_at), "updated_at": to_json(row.updated_at),
        "last_active": to_json(row.last_active), "banned": row.banned, "devices": row.devices,
    }
    for key, value in (row.custom or {}).items():
        data.setdefault(key, value)
    return data


def list_users(engine: Engine, filter_: dict | None, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
    """One page of users matching `filter_`, in import order; returns the page and the next cursor."""
    check_limit(limit, 1000)
    query = select(USERS).where(compile_filter(filter_, USER_FILTER, "--filter")).order_by(USERS.c.pk)
    if cursor:
        query = query.where(USERS.c.pk > decode_cursor(cursor, "users")[0])
    with reading(engine) as conn:
        rows = conn.execute(query.limit(limit + 1)).all()
    page = rows[:limit]
    nxt = encode_cursor("users", [page[-1].pk]) if len(rows) > limit else None
    return [user_json(r) for r in page], nxt


def count_users(engine: Engine, filter_: dict | None) -> int:
    """How many users match `filter_`."""
    query = select(func.count()).select_from(USERS).where(compile_filter(filter_, USER_FILTER, "--filter"))
    with reading(engine) as conn:
        return conn.scalar(query) or 0


def get_user(engine: Engine, user_id: str) -> dict[str, Any]:
    """One user by id; exit 4 when there is none."""
    with reading(engine) as conn:
        row = conn.execute(select(USERS).where(USERS.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"user {user_id!r} not found")
    return user_json(row)


def delete_users(engine: Engine, user_ids: list[str]) -> int:
    """Delete users (and their memberships); an unknown id is exit 4 and deletes nothing."""
    wanted = list(dict.fromkeys(user_ids))
    with writing(engine) as conn:
        found = set()
        for chunk in chunked(wanted, 10_000):
            found.update(conn.scalars(select(USERS.c.id).where(USERS.c.id.in_(chunk))))
        missing = [u for u in wanted if u not in found]
        if missing:
            raise NotFound(f"user {missing[0]!r} not found" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        for chunk in chunked(wanted, 10_000):
            conn.execute(delete(USERS).where(USERS.c.id.in_(chunk)))
    return len(wanted)
