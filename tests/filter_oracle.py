"""An independent, plain-Python evaluator of query filters, for differential tests.

Written from the semantics stated in the docstring of `campaign_cli.filters` (not from its SQL):
- a bare value means `$eq`; several keys in one object are ANDed;
- comparisons are type-strict: a number never equals a string, a bool is not a number;
- `$gt/$gte/$lt/$lte` match only values of the same type (number, string, or time on time
  fields); strings compare by code point;
- a missing (or null) field matches `$ne`, `$nin` and `$exists: false`, and nothing else;
- `$in`/`$nin`: equal to one of / none of the values; `$contains`: an array holding the value;
  `$autocomplete`: a case-sensitive prefix of a string;
- `$and`, `$or`, `$nor`: all / any / none of the sub-filters.

A standard list field (a user's `teams`) is stored as a list that is empty when the user has
none: there `$exists` means "not empty", `$contains` "holds the value", `$in` "holds one of the
values" and `$nin` "holds none of them".

An object is a flat dict as `users get --json` prints it: standard fields and custom fields side
by side; time fields hold RFC 3339 strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

# The kind of each standard user field; every other field is a custom field, typed by its value.
USER_FIELDS = {
    "id": "string", "name": "string", "role": "string", "language": "string", "teams": "list",
    "banned": "bool", "created_at": "time", "updated_at": "time", "last_active": "time",
}


def matches(obj: dict[str, Any], filter_: dict[str, Any], fields: dict[str, str] = USER_FIELDS) -> bool:
    """Whether `obj` satisfies `filter_`."""
    return all(_entry(obj, key, value, fields) for key, value in filter_.items())


def _entry(obj: dict[str, Any], key: str, value: Any, fields: dict[str, str]) -> bool:
    if key == "$and":
        return all(matches(obj, sub, fields) for sub in value)
    if key == "$or":
        return any(matches(obj, sub, fields) for sub in value)
    if key == "$nor":
        return not any(matches(obj, sub, fields) for sub in value)
    conditions = value if isinstance(value, dict) else {"$eq": value}
    kind = fields.get(key, "custom")
    field_value = obj.get(key)
    if kind == "time" and field_value is not None:
        field_value = _time(field_value)
    return all(_condition(kind, field_value, op, arg) for op, arg in conditions.items())


def _condition(kind: str, value: Any, op: str, arg: Any) -> bool:
    if kind == "list":
        return _list_condition(value or [], op, arg)
    if kind == "time":
        arg = [_time(a) for a in arg] if isinstance(arg, list) else arg if isinstance(arg, bool) else _time(arg)
    if op == "$exists":
        return (value is not None) == arg
    if op == "$ne":
        return not _equal(value, arg)
    if op == "$nin":
        return not any(_equal(value, a) for a in arg)
    if op == "$eq":
        return _equal(value, arg)
    if op == "$in":
        return any(_equal(value, a) for a in arg)
    if op == "$contains":
        return _type(value) == "array" and any(_equal(item, arg) for item in value)
    if op == "$autocomplete":
        return _type(value) == "string" and value.startswith(arg)
    return _type(value) == _type(arg) and _ORDER[op](value, arg)


def _list_condition(items: list, op: str, arg: Any) -> bool:
    if op == "$exists":
        return bool(items) == arg
    if op == "$contains":
        return arg in items
    if op == "$in":
        return any(a in items for a in arg)
    if op == "$nin":
        return not any(a in items for a in arg)
    raise AssertionError(f"operator {op} on a list field")


_ORDER = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _equal(value: Any, arg: Any) -> bool:
    """Type-strict equality: both the same JSON type, then equal (1 equals 1.0; True is not 1)."""
    return value is not None and _type(value) == _type(arg) and value == arg


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "time"
    if isinstance(value, list):
        return "array"
    return "object"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
