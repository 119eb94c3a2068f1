"""Bulk statements for SQLite and PostgreSQL: upsert, insert-or-ignore, raw inserts and JSON-parameter IN."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from sqlalchemy import Connection, String, Table, TypeDecorator, bindparam, cast, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: Connection, table: Table) -> Any:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"database {dialect} is not supported")


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, replacing every other column of a row whose `keys` already exist."""
    if not rows:
        return
    stmt = _insert(conn, table)
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates), rows)


def insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert rows, skipping those that clash with an existing key; returns how many were inserted."""
    if not rows:
        return 0
    result = conn.execute(_insert(conn, table).on_conflict_do_nothing(), rows)
    return max(result.rowcount, 0)


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Split an iterable into lists of at most `size` items."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class RawInsert:
    """An INSERT compiled once per dialect and executed with DB-ready tuples.

    SQLAlchemy's per-row parameter processing (type processors, JSON serialisation) costs more
    than SQLite's own insert in the sender's hot path; the values given here are already what
    the driver takes (see `db_value`), so the rows go straight to the driver's executemany.
    Rows are tuples in the order of `columns`, which must follow the table's column order.
    """

    def __init__(self, table: Table, columns: Sequence[str]):
        in_table_order = [c.name for c in table.columns if c.name in columns]
        if in_table_order != list(columns):
            raise ValueError(f"RawInsert({table.name}): list columns in table order: {in_table_order}")
        self.table = table
        self.columns = list(columns)
        self._compiled: dict[str, tuple[str, bool]] = {}

    def execute(self, conn: Connection, rows: list[tuple]) -> None:
        """Insert `rows` (tuples of DB-ready values, in the order of `columns`)."""
        if not rows:
            return
        sql, positional = self._statement(conn)
        conn.exec_driver_sql(sql, rows if positional else [dict(zip(self.columns, row)) for row in rows])

    def _statement(self, conn: Connection) -> tuple[str, bool]:
        name = conn.dialect.name
        if name not in self._compiled:
            stmt = self.table.insert().values({c: bindparam(c) for c in self.columns})
            compiled = stmt.compile(dialect=conn.dialect)
            if compiled.positional and list(compiled.positiontup) != self.columns:
                raise ValueError(f"RawInsert({self.table.name}): unexpected parameter order {compiled.positiontup}")
            self._compiled[name] = (str(compiled), compiled.positional)
        return self._compiled[name]


def db_value(conn: Connection, column: Any, value: Any) -> Any:
    """`value` as the driver takes it for `column` (e.g. a time or a JSON document), processed once."""
    processor = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    if isinstance(column.type, TypeDecorator):
        value = column.type.process_bind_param(value, conn.dialect)
    return processor(value) if processor else value


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
