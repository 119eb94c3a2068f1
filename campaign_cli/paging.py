"""Opaque, tamper-evident `--next` cursors for keyset paging.

A cursor carries the sort key of the last row printed and what it was produced for (the list
and its sort); it is signed so that a cursor not produced by this tool is refused (exit 3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from sqlalchemy import Engine, Select

from campaign_cli.errors import InvalidInput

# Not a secret: the signature only tells our cursors from hand-made or damaged ones.
_KEY = b"campaign-cursor-v1"


def encode_cursor(scope: str, last: list[Any]) -> str:
    """Make a cursor for `scope` (e.g. 'users' or 'segment-targets:ID:-target_id') after `last`."""
    body = json.dumps({"s": scope, "k": last}, separators=(",", ":"), default=str).encode()
    mac = hmac.new(_KEY, body, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str) -> list[Any]:
    """Read a cursor made by `encode_cursor` for the same scope; anything else is exit 3."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        mac, body = raw[:12], raw[12:]
        valid = hmac.compare_digest(mac, hmac.new(_KEY, body, hashlib.sha256).digest()[:12])
        data = json.loads(body) if valid else None
    except (ValueError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("k"), list):
        raise InvalidInput("--next: not a cursor produced by campaign")
    if data.get("s") != scope:
        raise InvalidInput("--next: this cursor belongs to another listing or sort order")
    return data["k"]


def check_limit(limit: int, maximum: int) -> int:
    """`--limit` must be between 1 and `maximum`."""
    if limit < 1 or limit > maximum:
        raise InvalidInput(f"--limit: must be between 1 and {maximum}, got {limit}")
    return limit


def page_by_key(engine: Engine, query: Select, key: Any, scope: str, limit: int, cursor: str | None,
                maximum: int = 1000) -> tuple[list[Any], str | None]:
    """One page of `query` in ascending `key` order (an integer key such as `pk`), and the cursor of the next.

    Keyset paging: the cursor holds the last key printed, so every page costs the same.
    """
    check_limit(limit, maximum)
    if cursor:
        query = query.where(key > decode_cursor(cursor, scope)[0])
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(key).limit(limit + 1)).all()
    nxt = encode_cursor(scope, [getattr(rows[limit - 1], key.key)]) if len(rows) > limit else None
    return rows[:limit], nxt
