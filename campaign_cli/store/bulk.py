"""Bulk statements for SQLite and PostgreSQL: upsert, insert-or-ignore, raw inserts, JSON-parameter IN,
and COPY upserts on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from sqlalchemy import JSON, Connection, String, Table, bindparam, cast, literal_column, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from campaign_cli.store.engine import json_text
from campaign_cli.store.models import UTCDateTime


def insert_statement(conn: Connection, table: Table) -> Any:
    """An INSERT into `table` in the connection's dialect, for ON CONFLICT clauses."""
    # Each dialect is imported when used: the PostgreSQL one costs every SQLite command 30 ms.
    dialect = conn.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    raise NotImplementedError(f"database {dialect} is not supported")


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, replacing every other column of a row whose `keys` already exist."""
    if not rows:
        return
    stmt = insert_statement(conn, table)
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates), rows)


def insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert rows, skipping those that clash with an existing key; returns how many were inserted."""
    if not rows:
        return 0
    result = conn.execute(insert_statement(conn, table).on_conflict_do_nothing(), rows)
    return max(result.rowcount, 0)


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Split an iterable into lists of at most `size` items."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class Prepared:
    """A statement compiled once by SQLAlchemy for a connection's dialect, executed with driver values.

    In hot paths SQLAlchemy's per-row parameter handling (type processing, JSON serialisation)
    cost more than the database work; rows given here already hold what the driver takes (see
    `converter`) and go straight to the driver's executemany, as lists in `names` order.
    """

    def __init__(self, conn: Connection, statement: Any, names: Sequence[str]):
        compiled = statement.compile(dialect=conn.dialect, column_keys=list(names))
        self.sql = compiled.string
        self.names = list(names)
        self.order = None
        if compiled.positional and list(compiled.positiontup) != self.names:
            self.order = [self.names.index(name) for name in compiled.positiontup]
        self.named = not compiled.positional

    def params(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """Rows as the driver wants them: tuples in placeholder order, or dicts for named placeholders."""
        if self.named:
            return [dict(zip(self.names, row)) for row in rows]
        if self.order is not None:
            return [tuple([row[i] for i in self.order]) for row in rows]
        return [tuple(row) for row in rows]

    def execute(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> Any:
        """Run the statement once per row."""
        return conn.exec_driver_sql(self.sql, self.params(rows))


# From this many rows an insert on PostgreSQL goes through COPY.
COPY_FROM = 50


class RawInsert:
    """An INSERT of `columns` into `table`, prepared once per dialect (see `Prepared`).

    With `ignore_conflicts`, rows that clash with an existing key are skipped (ON CONFLICT DO NOTHING).
    """

    def __init__(self, table: Table, columns: Sequence[str], *, ignore_conflicts: bool = False):
        self.table = table
        self.columns = list(columns)
        self.ignore_conflicts = ignore_conflicts
        self._prepared: dict[str, Prepared] = {}

    def execute(self, conn: Connection, rows: list[tuple]) -> int:
        """Insert `rows`: tuples of driver values in the order of `columns`; returns how many were inserted."""
        if not rows:
            return 0
        if conn.dialect.name == "postgresql" and len(rows) >= COPY_FROM:
            copied = self.copy(conn, rows)
            if copied is not None:
                return copied
        return self._insert(conn, rows)

    def _insert(self, conn: Connection, rows: list[tuple]) -> int:
        name = conn.dialect.name
        if name not in self._prepared:
            self._prepared[name] = Prepared(conn, self._statement(conn), self.columns)
        return self._prepared[name].execute(conn, rows).rowcount

    def copy(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> int | None:
        """PostgreSQL's COPY: several times cheaper per row than even pipelined INSERTs, on both sides.
        Returns how many rows went in; `rows` may be an iterator, read as the rows are sent.

        COPY knows no ON CONFLICT: with `ignore_conflicts` it runs in a savepoint, and a clash
        (rare: another sender created the same row meanwhile) returns None for the INSERT path.
        """
        from psycopg.errors import UniqueViolation

        sql = f"COPY {self.table.name} ({', '.join(self.columns)}) FROM STDIN"
        savepoint = conn.begin_nested() if self.ignore_conflicts else None
        try:
            count = 0
            with conn.connection.dbapi_connection.cursor() as cursor, cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        except UniqueViolation:
            if savepoint is None:
                raise
            savepoint.rollback()
            return None
        if savepoint is not None:
            savepoint.commit()
        return count

    def _statement(self, conn: Connection) -> Any:
        values = {c: bindparam(c) for c in self.columns}
        if self.ignore_conflicts:
            return insert_statement(conn, self.table).values(values).on_conflict_do_nothing()
        return self.table.insert().values(values)


def converter(conn: Connection, column: Any) -> Callable[[Any], Any]:
    """The bind conversion of `column`'s type for this connection's dialect (a time, a JSON document…)."""
    dialect = conn.dialect
    return column.type.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)


def row_converter(conn: Connection, column: Any) -> Callable[[Any], Any]:
    """How `column`'s values go into the driver rows of `Prepared`, `RawInsert` and `CopyUpsert`: as
    `converter`, except that on PostgreSQL times and JSON documents go as the text COPY reads (psycopg's
    dumpers took 2 µs a datetime, most of a row's cost; the server casts such text in an INSERT too)."""
    convert = converter(conn, column)
    if conn.dialect.name != "postgresql":
        return convert
    if isinstance(column.type, JSON):
        return lambda value: None if value is None else json_text(value)
    if isinstance(column.type, UTCDateTime):
        return lambda value: None if value is None else convert(value).isoformat(sep=" ")
    return convert


class _json_array_rows(FunctionElement):
    """The elements of a JSON array parameter as rows of one column, `value` (a table-valued function)."""

    inherit_cache = True


@compiles(_json_array_rows, "sqlite")
def _json_array_rows_sqlite(element: _json_array_rows, compiler: Any, **kw: Any) -> str:
    return f"json_each({compiler.process(element.clauses, **kw)})"


@compiles(_json_array_rows, "postgresql")
def _json_array_rows_postgresql(element: _json_array_rows, compiler: Any, **kw: Any) -> str:
    return f"json_array_elements_text(CAST({compiler.process(element.clauses, **kw)} AS json))"


def json_array_table(values: Iterable[Any]) -> Any:
    """`values` as a table with one column, `value`, sent as a single JSON array parameter.

    One statement instead of an executemany or an IN list of thousands of parameters: building
    SQLAlchemy parameters value by value costs more than the database work itself.
    """
    return _json_array_rows(bindparam(None, json.dumps(list(values)), type_=String())).table_valued("value")


def in_values(column: Any, values: Iterable[Any]) -> Any:
    """`column IN (values…)` with the values sent as one JSON parameter.

    An ordinary IN list of thousands of values is re-rendered by SQLAlchemy on every execution,
    which in the sender's hot path cost more than the lookups themselves. The values come as a
    subquery (not a boolean function, which SQLite would get as `… = 1` and answer with a full
    scan), so SQLite still probes `column`'s index once per value.
    """
    rows = json_array_table(values)
    value = rows.c.value if isinstance(column.type, String) else cast(rows.c.value, column.type)
    return column.in_(select(value))


class CopyUpsert:
    """An upsert of many rows on PostgreSQL through COPY, its fast bulk path.

    Rows are copied into a temporary staging table (one COPY stream instead of an INSERT per
    row), then one INSERT … SELECT … ON CONFLICT moves them into `table`. Rows hold driver values
    (see `Prepared`), as lists in `columns` order; `keys` is the unique key an existing row is found by.
    """

    def __init__(self, conn: Connection, table: Table, columns: Sequence[str], keys: Sequence[str]):
        self.staging = f"staging_{table.name}"
        self.columns = ", ".join(f'"{name}"' for name in columns)
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.staging} ON COMMIT DROP AS "
                             f"SELECT {self.columns} FROM {table.name} WITH NO DATA")
        staged = select(*(literal_column(f'"{name}"') for name in columns)).select_from(text(self.staging))
        insert = insert_statement(conn, table).from_select(list(columns), staged)
        upsert = insert.on_conflict_do_update(
            index_elements=list(keys), set_={name: insert.excluded[name] for name in columns if name not in keys})
        self.move = upsert.compile(dialect=conn.dialect).string

    def execute(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> None:
        """Upsert `rows` (no two with the same key: ON CONFLICT cannot touch one row twice)."""
        cursor = conn.connection.dbapi_connection.cursor()
        with cursor.copy(f"COPY {self.staging} ({self.columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.exec_driver_sql(self.move)
        conn.exec_driver_sql(f"TRUNCATE {self.staging}")
