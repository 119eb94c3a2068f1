"""Opaque, tamper-evident `--next` / `--prev` cursors for keyset paging, and the paging itself.

A cursor carries the sort key of a row printed (the last one for `next`, the first one for
`prev`), its direction and what it was produced for (the list and its sort); it is signed so
that a cursor not produced by this tool is refused (exit 3), and a cursor of another listing,
sort order or direction is refused too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from campaign_cli.errors import InvalidInput
from campaign_cli.timeutil import parse_time, to_json

if TYPE_CHECKING:  # the keyset queries load SQLAlchemy when they run: `store.lookup` pages without it
    from sqlalchemy import ColumnElement, Connection, Engine, Select

# Not a secret: the signature only tells our cursors from hand-made or damaged ones.
_KEY = b"campaign-cursor-v1"
NEXT, PREV = "next", "prev"
# The largest --limit of most listings.
MAX_LIMIT = 1000


@dataclass
class Page:
    """One page of a listing and the cursors around it (None at either end)."""

    items: list[Any]
    next: str | None = None
    prev: str | None = None

    def envelope(self, key: str) -> dict[str, Any]:
        """`{key: [...], "next": …, "prev": …}`, the cursors only when there is such a page."""
        data: dict[str, Any] = {key: self.items}
        data.update(self.cursors())
        return data

    def cursors(self) -> dict[str, str]:
        """The cursors that exist, as `{"next": …, "prev": …}`."""
        return {name: value for name, value in ((NEXT, self.next), (PREV, self.prev)) if value}


def encode_cursor(scope: str, key: list[Any], direction: str = NEXT) -> str:
    """Make a cursor for `scope` (e.g. 'users' or 'segment-targets:ID:-target_id') at `key`."""
    body = json.dumps({"s": scope, "k": key, "d": direction}, separators=(",", ":"), default=str).encode()
    mac = hmac.new(_KEY, body, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str, direction: str = NEXT, option_prefix: str = "--") -> list[Any]:
    """Read a cursor made by `encode_cursor` for the same scope and direction; anything else is exit 3
    (naming the option `option_prefix` + direction)."""
    option = option_prefix + direction
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        mac, body = raw[:12], raw[12:]
        valid = hmac.compare_digest(mac, hmac.new(_KEY, body, hashlib.sha256).digest()[:12])
        data = json.loads(body) if valid else None
    except (ValueError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("k"), list) or not all(map(_storable, data["k"])):
        raise InvalidInput(f"{option}: not a cursor produced by campaign")
    if data.get("s") != scope:
        raise InvalidInput(f"{option}: this cursor belongs to another listing or sort order")
    if data.get("d", NEXT) != direction:
        raise InvalidInput(f"{option}: this is a {option_prefix}{data.get('d', NEXT)} cursor")
    return data["k"]


def _storable(value: Any) -> bool:
    """A key value the drivers can bind: the stores' integers are 64-bit."""
    return not isinstance(value, int) or -2**63 <= value < 2**63


def check_limit(limit: int, maximum: int, option: str = "--limit") -> int:
    """`limit` must be between 1 and `maximum`."""
    if limit < 1 or limit > maximum:
        raise InvalidInput(f"{option}: must be between 1 and {maximum}, got {limit}")
    return limit


def _key_value(value: Any) -> Any:
    return to_json(value) if isinstance(value, datetime) else value


def _is_time(column: Any) -> bool:
    from sqlalchemy import DateTime

    return isinstance(column.type, DateTime) or isinstance(getattr(column.type, "impl", None), DateTime)


def _beyond(keys: Sequence[tuple[Any, bool]], values: list[Any], backward: bool) -> ColumnElement[bool]:
    """Rows strictly after `values` in the order `keys` (column, descending), or before them if `backward`."""
    from sqlalchemy import and_, literal, or_

    # Bound as literals of the column's type: SQLAlchemy refuses `column > False` with a bare bool.
    bound = [literal(value, column.type) for (column, _), value in zip(keys, values)]
    clauses = []
    for i, (column, descending) in enumerate(keys):
        equal = [col == value for (col, _), value in zip(keys[:i], bound[:i])]
        clauses.append(and_(*equal, column < bound[i] if descending != backward else column > bound[i]))
    return or_(*clauses)


def keyset_page(conn: Connection, query: Select, keys: Sequence[tuple[Any, bool]], scope: str, limit: int,
                next_: str | None = None, prev: str | None = None, option_prefix: str = "--") -> Page:
    """One page of `query` in the order `keys` (column, descending; the last key unique), after `next_`
    or before `prev`, with the cursors of the pages around it.

    Keyset paging: a cursor holds the key of a row printed, so every page costs the same. Rows
    hold the key columns under their names (`column.key`).
    """
    backward, cursor = paging_direction(next_, prev, option_prefix)
    if cursor:
        option = option_prefix + (PREV if backward else NEXT)
        values = decode_cursor(cursor, scope, PREV if backward else NEXT, option_prefix)
        if len(values) != len(keys):
            raise InvalidInput(f"{option}: not a cursor produced by campaign")
        values = [parse_time(v, option) if _is_time(col) and v is not None else v
                  for (col, _), v in zip(keys, values)]
        query = query.where(_beyond(keys, values, backward))
    order = [col.desc() if descending != backward else col.asc() for col, descending in keys]
    rows = conn.execute(query.order_by(*order).limit(limit + 1)).all()
    return page_of(rows, limit, backward, bool(cursor), scope,
                   lambda row: [_key_value(row._mapping[col.key]) for col, _ in keys])


def paging_direction(next_: str | None, prev: str | None, option_prefix: str = "--") -> tuple[bool, str | None]:
    """Whether a page is read backward (`prev`), and the cursor it starts from; both given is exit 3."""
    if next_ and prev:
        raise InvalidInput(f"{option_prefix}next, {option_prefix}prev: give one of them, not both")
    return prev is not None, prev or next_


def page_of(rows: list[Any], limit: int, backward: bool, from_cursor: bool, scope: str,
            key_of: Callable[[Any], list[Any]]) -> Page:
    """The page of up to `limit` rows, from `rows` read one beyond the limit in the direction of
    reading, with the cursors of the pages on either side (`key_of` gives a row's sort key)."""
    more = len(rows) > limit
    rows = rows[:limit]
    if backward:
        rows.reverse()
    if not rows:
        return Page([])
    after, before = (from_cursor, more) if backward else (more, from_cursor)
    return Page(rows, encode_cursor(scope, key_of(rows[-1]), NEXT) if after else None,
                encode_cursor(scope, key_of(rows[0]), PREV) if before else None)


def page_by_key(engine: Engine, query: Select, key: Any, scope: str, limit: int, next_: str | None,
                prev: str | None = None, maximum: int = MAX_LIMIT) -> Page:
    """One page of `query` in ascending `key` order (an integer key such as `pk`) and its cursors."""
    check_limit(limit, maximum)
    with engine.connect() as conn:
        return keyset_page(conn, query, [(key, False)], scope, limit, next_, prev)
