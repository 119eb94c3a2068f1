"""The user directory: import (streaming, all-or-nothing upsert), list with filters, get, delete."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, update

from campaign_cli.errors import CampaignError, InvalidInput, NotFound
from campaign_cli.filters import FieldSpec, FilterSchema, compile_filter
from campaign_cli.paging import Page, page_by_key
from campaign_cli.records import RecordSource
from campaign_cli.store.bulk import (CopyUpsert, Prepared, RawInsert, chunked, converter, in_values, insert_statement,
                                     row_converter)
from campaign_cli.store.engine import json_text, reading, writing
from campaign_cli.store.models import CHANNELS as _CHANNELS, CHANNEL_MEMBERS as _MEMBERS, USERS
from campaign_cli.store.statistics import Statistics
from campaign_cli.timeutil import now, parse_time
from campaign_cli.user_object import user_json

IMPORT_BATCH = 5000
MAX_ID = 255
STANDARD_FIELDS = ("id", "name", "role", "teams", "language", "created_at", "updated_at",
                   "last_active", "banned", "devices")
_STANDARD = frozenset(STANDARD_FIELDS)
_COLUMNS = (*STANDARD_FIELDS, "custom")
_CREATED_AT = _COLUMNS.index("created_at")
# Channel fields a user filter refuses as "does not exist for users". Names that users
# commonly carry as custom fields (type, team) stay usable as custom fields.
CHANNEL_ONLY_FIELDS = frozenset({"cid", "created_by_id", "member_count", "last_message_at", "members"})

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


def import_users(
    engine: Engine,
    sources: list[RecordSource],
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Upsert users from record files in one transaction: a bad record writes nothing.

    A record replaces the stored user with the same id; the stored `created_at` is kept unless
    the record gives one. Memory is bounded by the batch size, not by the files.
    """
    result = ImportResult()
    base = 0
    with writing(engine) as conn:
        users = _UserImport(conn, now(), result)
        for source in sources:
            rows = (users.row(record, source.name, line) for line, record in source.records())
            for _ in users.write_all(rows):
                if on_progress:
                    on_progress(base + source.bytes_read)
            base += source.size
    return result


class _UserImport:
    """Turns import records into `users` rows and upserts them in batches, inside one transaction.

    This is the hot path of a million-user import, so rows hold the driver's values from the
    start: each column's SQLAlchemy type converts a value (the values every row shares, such as
    the import time or an empty list, once for all), the statements are compiled once by
    SQLAlchemy for the connection's dialect, and the driver's executemany gets plain tuples. A
    stored user's `created_at` goes back as the driver returned it. Handing SQLAlchemy one dict
    per row cost ~25 µs a row, more than the rest of the import together (bench/bench_users.py).
    String columns have no bind conversion in SQLAlchemy's SQLite and PostgreSQL dialects.
    """

    def __init__(self, conn: Connection, stamp: datetime, result: ImportResult):
        self.conn, self.result = conn, result
        postgresql = conn.dialect.name == "postgresql"
        self.to_json, self.to_time = row_converter(conn, USERS.c.custom), row_converter(conn, USERS.c.created_at)
        to_bool = converter(conn, USERS.c.banned)
        self.banned, self.not_banned = to_bool(True), to_bool(False)
        # updated_at is when this tool last wrote the user: it also tells duplicates within one import,
        # by comparing it with what the driver returns for a stored user.
        self.stamp = converter(conn, USERS.c.updated_at)(stamp)
        self.stamp_cell = self.to_time(stamp)
        self.no_list, self.no_custom = self.to_json([]), self.to_json({})
        # On PostgreSQL rows go in with COPY: an INSERT per row cost most of a million-user import.
        if postgresql:
            # New users go straight into the table with COPY; stored ones through a staging table.
            self.insert = RawInsert(USERS, _COLUMNS, ignore_conflicts=True)
            self.upsert = CopyUpsert(conn, USERS, _COLUMNS, keys=["id"])
        else:
            self.insert, self.upsert = None, Prepared(conn, _upsert_statement(conn), _COLUMNS)
        self.lookups: dict[int, Prepared] = {}  # by number of ids: a full batch, and the last one of each file
        # On PostgreSQL a batch is first tried as all new users while the last one was: see `_copy_as_new`.
        self.all_new = postgresql
        self.statistics = Statistics(conn.engine, ("users",))

    def row(self, record: Any, file: str, line: int) -> list[Any]:
        """Validate one record (errors name file:line) and turn it into driver values, in `_COLUMNS` order.

        `created_at` stays None when the record has none: `write` fills it in.
        """
        if type(record) is not dict:
            raise InvalidInput(f"{file}:{line}: a user record must be an object, got {type(record).__name__}")
        get = record.get
        user_id, name, role, language = get("id"), get("name"), get("role"), get("language")
        if type(user_id) is not str or not user_id or len(user_id) > MAX_ID:
            user_id = check_id(user_id, f"{file}:{line}")
        if not (_is_text(name) and _is_text(role) and _is_text(language)):
            _check_texts(record, f"{file}:{line}")
        teams, devices, banned = get("teams"), get("devices"), get("banned")
        created_at, last_active = get("created_at"), get("last_active")
        custom = {key: value for key, value in record.items() if key not in _STANDARD}
        return [
            user_id, name, role or "user",
            self.no_list if teams is None else self.to_json(_teams(teams, f"{file}:{line}")),
            language,
            None if created_at is None else self._time(created_at, f"{file}:{line}: 'created_at'"),
            self.stamp_cell,
            None if last_active is None else self._time(last_active, f"{file}:{line}: 'last_active'"),
            self.banned if banned is True else self.not_banned if banned is None or banned is False
            else _not_a_bool(banned, f"{file}:{line}"),
            self.no_list if devices is None else self.to_json(_devices(devices, f"{file}:{line}")),
            self.to_json(custom) if custom else self.no_custom,
        ]

    def _time(self, value: Any, what: str) -> Any:
        return self.to_time(parse_time(value, what))

    def write_all(self, rows: Iterator[list[Any]]) -> Iterator[None]:
        """Write `rows` in batches, yielding after each one."""
        while True:
            if self.all_new:
                batch = self._copy_as_new(rows)
            elif batch := list(islice(rows, IMPORT_BATCH)):
                self.write(batch)
            if not batch:
                return
            yield

    def write(self, batch: list[list[Any]]) -> None:
        """Upsert one batch of rows: the last row of an id wins, a stored user keeps its `created_at`."""
        rows = {row[0]: row for row in batch}
        result = self.result
        result.records += len(batch)
        result.duplicates += len(batch) - len(rows)
        ids = list(rows)
        if self.insert is None:
            ids += [ids[0]] * (len(batch) - len(ids))  # padded: one prepared statement per batch size
        stored = self._stored(ids)
        for user_id, created_at, updated_at in stored:
            if updated_at == self.stamp:
                result.duplicates += 1  # written by an earlier batch of this import
            else:
                result.updated += 1
            row = rows[user_id]
            if row[_CREATED_AT] is None:
                row[_CREATED_AT] = created_at
        result.inserted += len(rows) - len(stored)
        for row in rows.values():
            if row[_CREATED_AT] is None:
                row[_CREATED_AT] = self.stamp_cell
        if self.insert is None:
            self.upsert.execute(self.conn, list(rows.values()))
            return
        self.all_new = not stored
        stored_ids = {user_id for user_id, _created, _updated in stored}
        new = [row for user_id, row in rows.items() if user_id not in stored_ids]
        if new and self.insert.copy(self.conn, new) is None:
            # A user that another import added since the lookup made the COPY clash: upsert them all.
            self.upsert.execute(self.conn, list(rows.values()))
        elif stored_ids:
            self.upsert.execute(self.conn, [rows[user_id] for user_id in stored_ids])
        self.statistics.grew(len(new), self.conn)  # keeps the lookup on the id index as the table grows

    def _copy_as_new(self, rows: Iterator[list[Any]]) -> list[list[Any]]:
        """The next batch of `rows`, COPYed as new users while it is read, without looking them up:
        the server stores one part while the next is parsed, and a first import looks nothing up.

        When one of them is stored already (or comes twice), nothing of the COPY stays, and the
        batch takes the lookup path of `write`, as do the next batches until one finds no stored user.
        """
        batch: list[list[Any]] = []
        undated: list[list[Any]] = []
        bad: list[CampaignError] = []

        def read() -> Iterator[list[Any]]:
            try:
                for row in islice(rows, IMPORT_BATCH):
                    if row[_CREATED_AT] is None:
                        undated.append(row)
                        row[_CREATED_AT] = self.stamp_cell
                    batch.append(row)
                    yield row
            except CampaignError as exc:
                # Raised after the COPY ends: raised inside it, the driver would also report (on stderr)
                # what the server said of the rows sent so far.
                bad.append(exc)

        reading = read()
        copied = self.insert.copy(self.conn, reading)
        if bad:
            raise bad[0]  # the import's transaction is rolled back: nothing of it stays
        if copied:
            self.result.records += copied
            self.result.inserted += copied
            self.statistics.grew(copied, self.conn)
            return batch
        for _ in reading:  # the rest of a batch whose COPY failed early
            pass
        for row in undated:
            row[_CREATED_AT] = None
        if batch:
            self.all_new = False
            self.write(batch)
        return batch

    def _stored(self, ids: list[str]) -> list[Any]:
        """(id, created_at, updated_at) of the stored users among `ids`, as the driver returns them."""
        if self.insert is not None:
            # The ids as one JSON parameter: psycopg spent more time on 5,000 placeholders than the server did looking.
            return self.conn.exec_driver_sql(_STORED_POSTGRESQL, (json_text(ids),)).all()
        lookup = self.lookups.get(len(ids))
        if lookup is None:
            names = [f"id{n}" for n in range(len(ids))]
            statement = select(USERS.c.id, USERS.c.created_at, USERS.c.updated_at).where(
                USERS.c.id.in_([bindparam(name) for name in names]))
            lookup = self.lookups[len(ids)] = Prepared(self.conn, statement, names)
        return self.conn.exec_driver_sql(lookup.sql, lookup.params([ids])[0]).all()


_STORED_POSTGRESQL = "SELECT id, created_at, updated_at FROM users WHERE id IN (SELECT json_array_elements_text(%s::json))"


def _is_text(value: Any) -> bool:
    return value is None or type(value) is str


def _check_texts(record: dict, where: str) -> None:
    for key in ("name", "role", "language"):
        if not _is_text(record.get(key)):
            raise InvalidInput(f"{where}: '{key}' must be a string, got {type(record[key]).__name__}")


def _not_a_bool(value: Any, where: str) -> Any:
    raise InvalidInput(f"{where}: 'banned' must be true or false, got {type(value).__name__}")


def _teams(teams: Any, where: str) -> list[str]:
    if type(teams) is not list or not all(type(team) is str for team in teams):
        raise InvalidInput(f"{where}: 'teams' must be a list of strings")
    return teams


def _devices(devices: Any, where: str) -> list[dict]:
    if type(devices) is not list:
        raise InvalidInput(f"{where}: 'devices' must be a list of {{id, push_provider}}")
    for device in devices:
        if type(device) is not dict or type(device.get("id")) is not str or not device["id"]:
            raise InvalidInput(f"{where}: each device must be an object with a string 'id'")
        if not _is_text(device.get("push_provider")):
            raise InvalidInput(f"{where}: a device's 'push_provider' must be a string")
    return [{"id": d["id"], "push_provider": d.get("push_provider")} for d in devices]


def _upsert_statement(conn: Connection) -> Any:
    insert = insert_statement(conn, USERS)
    return insert.on_conflict_do_update(
        index_elements=["id"], set_={name: insert.excluded[name] for name in _COLUMNS if name != "id"}
    )


def list_users(engine: Engine, filter_: dict | None, limit: int, next_: str | None, prev: str | None = None) -> Page:
    """One page of users matching `filter_`, in import order, with its cursors."""
    query = select(USERS).where(compile_filter(filter_, USER_FILTER, "--filter"))
    page = page_by_key(engine, query, USERS.c.pk, "users", limit, next_, prev)
    page.items = [user_json(r) for r in page.items]
    return page


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


def lock_users(conn: Connection, user_ids: Iterable[str], to_delete: bool = False) -> set[str]:
    """Which of `user_ids` are users, kept from being deleted (or, `to_delete`, from being named by
    any other writer) until the transaction ends.

    Memberships and messages name users without a foreign key (a trigger per row on PostgreSQL),
    so a writer checks the users its rows name with this one query. On PostgreSQL it takes the
    lock a foreign key would (FOR KEY SHARE); an SQLite writer holds the whole database.
    """
    known: set[str] = set()
    # In id order for every writer: two of them never wait for each other in a circle.
    for chunk in chunked(sorted(user_ids), 10_000):
        query = select(USERS.c.id).where(in_values(USERS.c.id, chunk)).order_by(USERS.c.id)
        known.update(conn.scalars(query.with_for_update() if to_delete else
                                  query.with_for_update(read=True, key_share=True)))
    return known


def delete_users(engine: Engine, user_ids: list[str]) -> int:
    """Delete users and their memberships (channel member counts follow); an unknown id is exit 4 and deletes nothing."""
    wanted = list(dict.fromkeys(user_ids))
    with writing(engine) as conn:
        found = lock_users(conn, wanted, to_delete=True)
        missing = [u for u in wanted if u not in found]
        if missing:
            raise NotFound(f"user {missing[0]!r} not found" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        channel_pks: set[int] = set()
        for chunk in chunked(wanted, 10_000):
            # The users are locked (above): no sender adds a membership of theirs from now on, and one
            # that was adding one when the delete came was waited for, so its rows are seen here.
            conn.execute(delete(USERS).where(USERS.c.id.in_(chunk)))
            channel_pks.update(conn.scalars(select(_MEMBERS.c.channel_pk).where(_MEMBERS.c.user_id.in_(chunk))))
            conn.execute(delete(_MEMBERS).where(_MEMBERS.c.user_id.in_(chunk)))
        for chunk in chunked(sorted(channel_pks), 10_000):
            member_count = select(func.count()).where(_MEMBERS.c.channel_pk == _CHANNELS.c.pk).scalar_subquery()
            conn.execute(update(_CHANNELS).where(_CHANNELS.c.pk.in_(chunk)).values(member_count=member_count))
    return len(wanted)
