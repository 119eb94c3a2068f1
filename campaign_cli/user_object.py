"""A user as commands print it: the rows of `users` as JSON objects."""

from __future__ import annotations

from typing import Any

from campaign_cli.timeutil import to_json


def user_json(row: Any) -> dict[str, Any]:
    """A user as JSON (fields: docs/reference.md): standard fields, then custom fields at the top level."""
    data = {
        "id": row.id, "name": row.name, "role": row.role, "teams": row.teams, "language": row.language,
        "created_at": to_json(row.created_at), "updated_at": to_json(row.updated_at),
        "last_active": to_json(row.last_active), "banned": row.banned, "devices": row.devices,
    }
    for key, value in (row.custom or {}).items():
        data.setdefault(key, value)
    return data


def user_response(row: Any) -> dict[str, Any]:
    """A user as the API's user object (in a campaign's `sender` and `users`).

    Custom fields are both at the top level, as chat servers send them, and under `custom`, as
    the API's schema has them; presence fields this tool does not track have their resting values.
    Devices (push tokens) are left out.
    """
    data = {key: value for key, value in user_json(row).items() if key != "devices" and value is not None}
    data.update({"language": row.language or "", "custom": dict(row.custom or {}), "online": False, "invisible": False, "shadow_banned": False,
                 "blocked_user_ids": []})
    return data
