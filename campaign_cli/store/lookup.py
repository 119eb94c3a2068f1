"""Lookups by key on an SQLite database through the standard library's driver, without SQLAlchemy.

Shell scripts call `segment target-exists`, `users get` and `users list` in loops. Each such
call is one fixed statement, but importing SQLAlchemy to run it took most of the call: a quarter
of a second and more on a 2-core machine. So these commands ask this module first.

It answers only what it is sure of, and returns None for anything else:
- a PostgreSQL URL, or an SQLite URL with options;
- a file that is missing, is not SQLite, is not in WAL mode, or is at another schema revision;
- an unknown or deleted id, or a segment whose targets need its filter;
- any error of the driver, or a stored value it cannot read.

The command then takes its usual path through the store, which gives the same answer and the
usual errors. A database locked past the busy timeout is refused here, in the store's words (the
store would wait as long again). The tests hold both paths to the same output.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from campaign_cli.errors import DatabaseBusy
from campaign_cli.paging import MAX_LIMIT, NEXT, PREV, Page, check_limit, decode_cursor, page_of, paging_direction
from campaign_cli.store import BUSY_TIMEOUT_MS, SCHEMA_REVISION
from campaign_cli.user_object import user_json

T = TypeVar("T")

_SQLITE = "sqlite:///"
_USER_COLUMNS = "pk, id, name, role, teams, language, created_at, updated_at, last_active, banned, devices, custom"
_USER_JSON = ("teams", "devices", "custom")
_USER_TIMES = ("created_at", "updated_at", "last_active")


def target_exists(db_url: str, segment_id: str, target_id: str) -> bool | None:
    """Whether a segment with a target list, or of all users, reaches `target_id` now."""
    return _read(db_url, lambda db: _target_exists(db, segment_id, target_id.strip()))


def get_user(db_url: str, user_id: str) -> dict[str, Any] | None:
    """A user as `users get` prints it."""
    return _read(db_url, lambda db: _user(db.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))))


def list_users(db_url: str, limit: int, next_: str | None, prev: str | None) -> Page | None:
    """A page of all users in import order, with the cursors `users list` prints."""

    def page(db: sqlite3.Connection) -> Page | None:
        # Checked in the order the usual path checks them, once the database is known to be fine.
        check_limit(limit, MAX_LIMIT)
        backward, cursor = paging_direction(next_, prev)
        after = decode_cursor(cursor, "users", PREV if backward else NEXT) if cursor else []
        if cursor and (len(after) != 1 or type(after[0]) is not int):
            return None  # not a key of this listing: refused, or read, as the usual path does
        where = f"WHERE pk {'<' if backward else '>'} ?" if after else ""
        rows = db.execute(f"SELECT {_USER_COLUMNS} FROM users {where} ORDER BY pk {'DESC' if backward else 'ASC'} LIMIT ?",
                          (*after, limit + 1))
        found = page_of([_row(row) for row in rows], limit, backward, bool(cursor), "users", lambda row: [row.pk])
        found.items = [user_json(row) for row in found.items]
        return found

    return _read(db_url, page)


def _read(db_url: str, lookup: Callable[[sqlite3.Connection], T | None]) -> T | None:
    """`lookup` on a connection to the SQLite file of `db_url`, at this release's schema revision."""
    path = _sqlite_file(db_url)
    if path is None:
        return None
    try:
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)) as db:
            # The store turns every connection to WAL, a write that a read-only copy in another
            # journal mode refuses: such a database is the store's to answer for.
            if db.execute("PRAGMA journal_mode").fetchone() != ("wal",):
                return None
            if db.execute("SELECT version_num FROM alembic_version").fetchall() != [(SCHEMA_REVISION,)]:
                return None
            return lookup(db)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):  # waited once already: the store would wait again
            raise DatabaseBusy(BUSY_TIMEOUT_MS / 1000) from None
        return None
    except (sqlite3.Error, ValueError):  # ValueError: a damaged JSON or time value, whose error is the store's to give
        return None


def _sqlite_file(db_url: str) -> str | None:
    """The existing, non-empty file an `sqlite:///PATH` URL names; None for any other URL."""
    if not db_url.startswith(_SQLITE):
        return None
    path = db_url.removeprefix(_SQLITE)
    # How SQLAlchemy would read a path with URL syntax in it is its business.
    if not path or path == ":memory:" or any(mark in path for mark in "?%#"):
        return None
    try:
        # The file the store opens: `..` taken away as text, as SQLAlchemy's SQLite dialect does.
        path = os.path.abspath(path)
        return path if Path(path).is_file() and Path(path).stat().st_size > 0 else None
    except (OSError, ValueError):
        return None


def _target_exists(db: sqlite3.Connection, segment_id: str, target_id: str) -> bool | None:
    segment = db.execute("SELECT pk, type, filter, all_users, all_sender_channels, deleted_at FROM segments WHERE id = ?",
                         (segment_id,)).fetchone()
    if segment is None:
        return None
    pk, kind, filter_, all_users, all_sender_channels, deleted_at = segment
    if deleted_at is not None or _json(filter_) is not None or all_sender_channels:
        return None
    if not all_users:  # targets added by hand, whether or not they exist as users or channels
        query = "SELECT EXISTS (SELECT 1 FROM segment_targets WHERE segment_pk = ? AND target_id = ?)", (pk, target_id)
    elif kind == "user":
        query = "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)", (target_id,)
    else:
        return None
    return bool(db.execute(*query).fetchone()[0])


def _user(rows: sqlite3.Cursor) -> dict[str, Any] | None:
    row = rows.fetchone()
    return None if row is None else user_json(_row(row))


def _row(values: tuple[Any, ...]) -> SimpleNamespace:
    """A users row with the values SQLAlchemy's column types give: JSON parsed, times aware UTC, banned a bool."""
    row = SimpleNamespace(**dict(zip(_USER_COLUMNS.split(", "), values)))
    for name in _USER_JSON:
        setattr(row, name, _json(getattr(row, name)))
    for name in _USER_TIMES:
        setattr(row, name, _time(getattr(row, name)))
    row.banned = bool(row.banned)
    return row


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _time(text: str | None) -> datetime | None:
    # Stored as naive UTC text, as SQLAlchemy writes DateTime on SQLite.
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
