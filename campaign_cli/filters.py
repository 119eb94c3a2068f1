"""Query filters: filter JSON → one SQLAlchemy boolean expression.

Semantics, shared by every object type (and mirrored by the plain-Python oracle in the tests):
- a bare value means `$eq`; several keys in one object are ANDed;
- comparisons are type-strict: a number never equals a string, a bool is not a number;
- `$gt/$gte/$lt/$lte` take a number or a string (a time on time fields) and match only
  values of the same type; strings compare by code point;
- a missing (or null) field matches `$ne`, `$nin` and `$exists: false`, and nothing else;
- `$in`/`$nin` take a list of scalars; `$contains` matches an array field holding the value;
  `$autocomplete` is a case-sensitive prefix match on a string;
- `$and`, `$or`, `$nor` take a non-empty list of filters.
- a custom field name may not be empty or hold a double quote, a backslash or a control character.
Every leaf expression is two-valued (never SQL NULL) so that NOT and NOR behave as in Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, false, func, literal, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean, Float, String

from campaign_cli.errors import InvalidInput
from campaign_cli.limits import MAX_IN, MAX_TIME_IN, check_value, loads
from campaign_cli.store.bulk import in_values, json_array_table
from campaign_cli.timeutil import parse_time

SCALAR_OPS = {"$eq", "$ne", "$in", "$nin", "$exists"}
ORDER_OPS = {"$gt", "$gte", "$lt", "$lte"}
ALL_OPS = SCALAR_OPS | ORDER_OPS | {"$contains", "$autocomplete"}
LOGICAL_OPS = {"$and", "$or", "$nor"}

OPS_BY_KIND: dict[str, set[str]] = {
    "string": SCALAR_OPS | ORDER_OPS | {"$autocomplete"},
    "number": SCALAR_OPS | ORDER_OPS,
    "bool": SCALAR_OPS,
    "time": SCALAR_OPS | ORDER_OPS,
    "list": {"$contains", "$in", "$nin", "$exists"},
    "members": {"$eq", "$in", "$nin", "$contains"},
    "custom": ALL_OPS,
}


@dataclass(frozen=True)
class FieldSpec:
    """A standard field: how to reach it in SQL, its kind, and (optionally) a narrower operator set."""

    column: Any
    kind: str
    ops: frozenset[str] | None = None
    nullable: bool = True

    def allowed(self) -> set[str]:
        return set(self.ops) if self.ops is not None else OPS_BY_KIND[self.kind]


@dataclass(frozen=True)
class FilterSchema:
    """The fields a filter may use for one object type."""

    name: str
    fields: dict[str, FieldSpec]
    custom_column: Any = None
    foreign_fields: frozenset[str] = frozenset()
    member_match: Callable[[ColumnElement], ColumnElement] | None = field(default=None)


def parse_filter_text(text: str | None, what: str = "--filter") -> dict | None:
    """Parse a filter given on the command line; not-JSON or not-an-object is exit 3."""
    if text is None or text == "":
        return None
    value = loads(text, what)
    if not isinstance(value, dict):
        raise InvalidInput(f"{what}: a filter must be a JSON object")
    return value


def compile_filter(filter_: dict | None, schema: FilterSchema, what: str = "filter") -> ColumnElement[bool]:
    """Compile a filter object into one SQL boolean expression over `schema`'s table.

    The filter is checked against the limits (depth, 64-bit integers, NaN, NUL) before any work.
    """
    if filter_ is None:
        return true()
    if not isinstance(filter_, dict):
        raise InvalidInput(f"{what}: a filter must be a JSON object")
    check_value(filter_, what)
    return _Compiler(schema, what).node(filter_)


class _Compiler:
    def __init__(self, schema: FilterSchema, what: str):
        self.schema = schema
        self.what = what

    def fail(self, message: str) -> InvalidInput:
        return InvalidInput(f"{self.what}: {message}")

    def node(self, filter_: dict) -> ColumnElement[bool]:
        parts = [self.logical(key, value) if key.startswith("$") else self.field(key, value)
                 for key, value in filter_.items()]
        if not parts:
            return true()
        return parts[0] if len(parts) == 1 else and_(*parts)

    def logical(self, op: str, value: Any) -> ColumnElement[bool]:
        if op not in LOGICAL_OPS:
            raise self.fail(f"unknown operator {op!r} at the top level (use $and, $or, $nor or a field name)")
        if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
            raise self.fail(f"{op} takes a non-empty list of filter objects")
        parts = [self.node(v) for v in value]
        if op == "$and":
            return and_(*parts)
        if op == "$or":
            return or_(*parts)
        return not_(or_(*parts))

    def field(self, name: str, condition: Any) -> ColumnElement[bool]:
        spec = self.schema.fields.get(name)
        if spec is None:
            if name in self.schema.foreign_fields or self.schema.custom_column is None:
                raise self.fail(f"field {name!r} does not exist for {self.schema.name}")
            if not name or any(c == '"' or c == "\\" or c < " " for c in name):
                raise self.fail(f"field {name!r}: a custom field name cannot be empty or contain "
                                "a double quote, a backslash or a control character")
            spec = FieldSpec(column=None, kind="custom")
        if isinstance(condition, dict) and any(k.startswith("$") for k in condition):
            if not all(k.startswith("$") for k in condition):
                raise self.fail(f"field {name!r}: cannot mix operators and plain keys")
            parts = [self.operator(name, spec, op, value) for op, value in condition.items()]
            return parts[0] if len(parts) == 1 else and_(*parts)
        return self.operator(name, spec, "$eq", condition)

    def operator(self, name: str, spec: FieldSpec, op: str, value: Any) -> ColumnElement[bool]:
        if op not in ALL_OPS:
            raise self.fail(f"field {name!r}: unknown operator {op!r}")
        if op not in spec.allowed():
            raise self.fail(f"field {name!r}: operator {op} is not allowed on a {spec.kind} field")
        value = self.check_value(name, spec, op, value)
        if spec.kind == "custom":
            return _custom(self.schema.custom_column, name, op, value)
        if spec.kind == "members":
            return _members(self.schema.member_match, op, value)
        if spec.kind == "list":
            return _list(spec.column, op, value)
        return _column(spec.column, op, value, spec.nullable)

    def check_value(self, name: str, spec: FieldSpec, op: str, value: Any) -> Any:
        bad = self.fail
        if op == "$exists":
            if not isinstance(value, bool):
                raise bad(f"field {name!r}: $exists takes true or false")
            return value
        if op in ("$in", "$nin"):
            if not isinstance(value, list):
                raise bad(f"field {name!r}: {op} takes a list, got {_short(value)}")
            limit = MAX_TIME_IN if spec.kind == "time" else MAX_IN
            if len(value) > limit:
                raise bad(f"field {name!r}: {op} takes at most {limit:,} values, got {len(value):,}")
            return [self.scalar(name, spec, op, v) for v in value]
        if op == "$autocomplete":
            if not isinstance(value, str):
                raise bad(f"field {name!r}: $autocomplete takes a string")
            return value
        scalar = self.scalar(name, spec, op, value)
        if op in ORDER_OPS and isinstance(scalar, bool):
            raise bad(f"field {name!r}: {op} takes a number or a string")
        return scalar

    def scalar(self, name: str, spec: FieldSpec, op: str, value: Any) -> Any:
        if value is None or isinstance(value, (dict, list)):
            raise self.fail(f"field {name!r}: {op} takes a scalar (string, number or bool), got {_short(value)}")
        expected = {"string": str, "time": str, "members": str, "list": str}.get(spec.kind)
        if spec.kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise self.fail(f"field {name!r}: {op} takes a number")
        if spec.kind == "bool" and not isinstance(value, bool):
            raise self.fail(f"field {name!r}: {op} takes true or false")
        if expected is not None and not isinstance(value, expected):
            raise self.fail(f"field {name!r}: {op} takes a string")
        if spec.kind == "time":
            return parse_time(value, f"{self.what}: field {name!r}")
        return value


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _column(col: Any, op: str, value: Any, nullable: bool) -> ColumnElement[bool]:
    present = col.is_not(None) if nullable else true()
    if op == "$exists":
        return present if value else not_(present)
    if op == "$ne":
        return not_(_column(col, "$eq", value, nullable))
    if op == "$nin":
        return not_(_column(col, "$in", value, nullable))
    if op == "$autocomplete":
        return and_(present, func.substr(col, 1, len(value)) == value)
    if op == "$in":
        return and_(present, _column_in(col, value))
    compare = {"$eq": col.__eq__, "$gt": col.__gt__, "$gte": col.__ge__, "$lt": col.__lt__, "$lte": col.__le__}[op]
    return and_(present, compare(value))


def _column_in(col: Any, values: list[Any]) -> ColumnElement[bool]:
    """`col IN values`; strings and numbers are sent as one JSON parameter, whatever their count."""
    if not values:
        return false()
    if isinstance(values[0], (datetime, bool)):
        return col.in_(list(dict.fromkeys(values)))  # true and false, or at most MAX_TIME_IN times
    listed = json_array_table(values).c.value
    return col.in_(select(listed if isinstance(values[0], str) else json_number(listed)))


def _custom(doc: Any, key: str, op: str, value: Any) -> ColumnElement[bool]:
    if op == "$exists":
        present = json_kind(doc, key).not_in(["missing", "null"])  # a null field counts as missing
        return present if value else not_(present)
    if op == "$ne":
        return not_(_custom(doc, key, "$eq", value))
    if op == "$nin":
        return not_(_custom(doc, key, "$in", value))
    if op == "$contains":
        return json_array_contains(doc, key, value)
    if op == "$autocomplete":
        text = json_scalar(doc, key, "string")
        return and_(func.substr(text, 1, len(value)) == value, json_is(doc, key, "string"))
    if op == "$in":
        return _custom_in(doc, key, value)
    kind = _kind_of(value)
    scalar = json_scalar(doc, key, kind)
    compare = {"$eq": scalar.__eq__, "$gt": scalar.__gt__, "$gte": scalar.__ge__,
               "$lt": scalar.__lt__, "$lte": scalar.__le__}[op]
    # The comparison first: on SQLite it rules out most rows before the type is looked at.
    return and_(compare(value), json_is(doc, key, kind))


def _custom_in(doc: Any, key: str, values: list[Any]) -> ColumnElement[bool]:
    """`doc[key]` equals one of `values`: numbers and strings each sent as one JSON parameter."""
    parts = []
    for kind in ("number", "string"):
        of_kind = [v for v in values if _kind_of(v) == kind]
        if of_kind:
            scalar = json_scalar(doc, key, kind)
            listed = json_array_table(of_kind).c.value
            parts.append(and_(scalar.in_(select(json_number(listed) if kind == "number" else listed)),
                              json_is(doc, key, kind)))
    parts.extend(_custom(doc, key, "$eq", flag) for flag in (True, False) if any(v is flag for v in values))
    return or_(*parts) if parts else false()


def _list(col: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "$exists":
        present = func.coalesce(func.json_array_length(col), 0) > 0
        return present if value else not_(present)
    if op in ("$contains", "$eq"):  # a list "equals" a value it holds, as in the API's segments filter
        return json_array_contains(col, None, value)
    if op == "$nin":
        return not_(_list(col, "$in", value))
    return json_array_overlaps(col, value) if value else false()


def _members(match: Callable[[Any], ColumnElement] | None, op: str, value: Any) -> ColumnElement[bool]:
    assert match is not None
    if op == "$nin":
        return not_(_members(match, "$in", value))
    ids = value if isinstance(value, list) else [value]
    return match(ids) if ids else false()


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, datetime):
        return "time"
    return "string"


# The SQL constructs below are cached by SQLAlchemy by their structure: everything a compile
# function reads is either one of the construct's clauses (so its value is bound per execution)
# or listed in `_traverse_internals` (so it is part of the cache key).


class json_kind(FunctionElement):
    """The JSON type of `doc[key]` as one of number, string, bool, array, object, null, missing."""

    inherit_cache = True
    type = String()

    def __init__(self, doc: Any, key: str):
        super().__init__(doc, literal(_json_path(key)), literal(key))


@compiles(json_kind, "sqlite")
def _json_kind_sqlite(element: json_kind, compiler: Any, **kw: Any) -> str:
    doc, path, _key = (compiler.process(c, **kw) for c in element.clauses)
    kind = f"COALESCE(json_type({doc}, {path}), 'missing')"
    return (f"CASE {kind} WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' WHEN 'text' THEN 'string' "
            f"WHEN 'true' THEN 'bool' WHEN 'false' THEN 'bool' ELSE {kind} END")


@compiles(json_kind, "postgresql")
def _json_kind_postgresql(element: json_kind, compiler: Any, **kw: Any) -> str:
    doc, _path, key = (compiler.process(c, **kw) for c in element.clauses)
    kind = f"COALESCE(json_typeof({doc} -> {key}), 'missing')"
    return f"CASE {kind} WHEN 'boolean' THEN 'bool' ELSE {kind} END"


_JSON_TYPES = {
    "sqlite": {"number": ("integer", "real"), "string": ("text",), "bool": ("true", "false")},
    "postgresql": {"number": ("number",), "string": ("string",), "bool": ("boolean",)},
}
_SQL_TYPES = {"number": Float(), "string": String(), "bool": Boolean()}


def _sqlite_types(kind: str) -> str:
    """SQLite's json_type names of a kind, as an SQL list: ('integer', 'real')."""
    return "(" + ", ".join(f"'{name}'" for name in _JSON_TYPES["sqlite"][kind]) + ")"


class json_is(FunctionElement):
    """True when `doc[key]` is a JSON value of `kind` (number, string or bool); false, never NULL, otherwise."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [*FunctionElement._traverse_internals, ("kind", InternalTraversal.dp_string)]

    def __init__(self, doc: Any, key: str, kind: str):
        self.kind = kind
        super().__init__(doc, literal(_json_path(key)), literal(key))


@compiles(json_is, "sqlite")
def _json_is_sqlite(element: json_is, compiler: Any, **kw: Any) -> str:
    doc, path, _key = (compiler.process(c, **kw) for c in element.clauses)
    return f"(COALESCE(json_type({doc}, {path}), '') IN {_sqlite_types(element.kind)})"


@compiles(json_is, "postgresql")
def _json_is_postgresql(element: json_is, compiler: Any, **kw: Any) -> str:
    doc, _path, key = (compiler.process(c, **kw) for c in element.clauses)
    return f"(COALESCE(json_typeof({doc} -> {key}), '') = '{_JSON_TYPES['postgresql'][element.kind][0]}')"


class json_scalar(FunctionElement):
    """The value at `doc[key]` as an SQL value, to compare with a value of `kind`; only meaningful
    together with `json_is(doc, key, kind)`, which rules out the other JSON types (and NULL)."""

    inherit_cache = True
    _traverse_internals = [*FunctionElement._traverse_internals, ("kind", InternalTraversal.dp_string)]

    def __init__(self, doc: Any, key: str, kind: str):
        self.kind = kind
        self.type = _SQL_TYPES[kind]
        super().__init__(doc, literal(_json_path(key)), literal(key))


@compiles(json_scalar, "sqlite")
def _json_scalar_sqlite(element: json_scalar, compiler: Any, **kw: Any) -> str:
    # json_extract gives SQL integers, reals and text as they are (true and false as 1 and 0).
    doc, path, _key = (compiler.process(c, **kw) for c in element.clauses)
    return f"json_extract({doc}, {path})"


@compiles(json_scalar, "postgresql")
def _json_scalar_postgresql(element: json_scalar, compiler: Any, **kw: Any) -> str:
    # Cast only a value of the right JSON type: PostgreSQL may evaluate either side of an AND
    # first, and casting the text 'abc' to a number is an error there, not false.
    doc, _path, key = (compiler.process(c, **kw) for c in element.clauses)
    json_type = _JSON_TYPES["postgresql"][element.kind][0]
    sql_type = {"number": "double precision", "string": "text", "bool": "boolean"}[element.kind]
    return f"(CASE WHEN json_typeof({doc} -> {key}) = '{json_type}' THEN CAST({doc} ->> {key} AS {sql_type}) END)"


class json_array_contains(FunctionElement):
    """True when the JSON array at `doc[key]` (or `doc` itself when key is None) holds `value`."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [*FunctionElement._traverse_internals, ("kind", InternalTraversal.dp_string)]

    def __init__(self, doc: Any, key: str | None, value: Any):
        self.kind = _kind_of(value)
        keys = (literal(_json_path(key)), literal(key)) if key is not None else (literal("$"),)
        super().__init__(doc, literal(value), *keys)


@compiles(json_array_contains, "sqlite")
def _contains_sqlite(element: json_array_contains, compiler: Any, **kw: Any) -> str:
    doc, value, path, *_key = (compiler.process(c, **kw) for c in element.clauses)
    return (f"(COALESCE(json_type({doc}, {path}), '') = 'array' "
            f"AND EXISTS (SELECT 1 FROM json_each({doc}, {path}) AS je "
            f"WHERE je.type IN {_sqlite_types(element.kind)} AND je.value = {value}))")


@compiles(json_array_contains, "postgresql")
def _contains_postgresql(element: json_array_contains, compiler: Any, **kw: Any) -> str:
    doc, value, _path, *key = (compiler.process(c, **kw) for c in element.clauses)
    target = f"({doc} -> {key[0]})" if key else doc
    return (f"(COALESCE(json_typeof({target}), '') = 'array' "
            f"AND COALESCE({target}::jsonb @> jsonb_build_array({value}), false))")


class json_array_overlaps(FunctionElement):
    """True when the JSON array `doc` (of strings, like `teams`) holds any of `values`, sent as one JSON parameter."""

    inherit_cache = True
    type = Boolean()

    def __init__(self, doc: Any, values: list[str]):
        super().__init__(doc, bindparam(None, json.dumps(values), type_=String()))


@compiles(json_array_overlaps, "sqlite")
def _overlaps_sqlite(element: json_array_overlaps, compiler: Any, **kw: Any) -> str:
    doc, values = (compiler.process(c, **kw) for c in element.clauses)
    return (f"(COALESCE(json_type({doc}), '') = 'array' AND EXISTS (SELECT 1 FROM json_each({doc}) AS je "
            f"WHERE je.type = 'text' AND je.value IN (SELECT value FROM json_each({values}))))")


@compiles(json_array_overlaps, "postgresql")
def _overlaps_postgresql(element: json_array_overlaps, compiler: Any, **kw: Any) -> str:
    doc, values = (compiler.process(c, **kw) for c in element.clauses)
    return (f"(COALESCE(json_typeof({doc}), '') = 'array' AND COALESCE({doc}::jsonb ?| "
            f"ARRAY(SELECT json_array_elements_text(CAST({values} AS json))), false))")


class json_number(FunctionElement):
    """A number taken from a JSON array table's `value` column (text on PostgreSQL, a number on SQLite)."""

    inherit_cache = True
    type = Float()


@compiles(json_number, "sqlite")
def _json_number_sqlite(element: json_number, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(json_number, "postgresql")
def _json_number_postgresql(element: json_number, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS double precision)"


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def member_exists(member_table: Any, channel_key: Any) -> Callable[[list[str]], ColumnElement[bool]]:
    """Build the `members` matcher for channel filters: the channel has any of the given users."""

    def match(ids: list[str]) -> ColumnElement[bool]:
        return exists(
            select(literal(1)).where(member_table.c.channel_pk == channel_key, in_values(member_table.c.user_id, ids))
        )

    return match
