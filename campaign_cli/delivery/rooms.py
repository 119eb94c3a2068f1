"""The ledger of rooms a remote backend created: intent recorded before the creation call, room id after.

Room creation has no idempotency key on most chat servers, so the intent row is what lets the next
sender know that a room *may* exist although its id was never recorded (see `RemoteRoom`).
"""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from campaign_cli.store.bulk import in_values, insert_ignore
from campaign_cli.store.engine import reading, writing
from campaign_cli.store.models import REMOTE_ROOMS as ROOMS
from campaign_cli.timeutil import now



def known_rooms(engine: Engine, backend: str, owner: str, keys: list[str] | None = None) -> dict[str, str | None]:
    """Recorded rooms by key (all of the owner's when `keys` is None); None marks an intent of unknown outcome."""
    query = select(ROOMS.c.key, ROOMS.c.room_id).where(ROOMS.c.backend == backend, ROOMS.c.owner == owner)
    if keys is not None:
        if not keys:
            return {}
        query = query.where(in_values(ROOMS.c.key, keys))
    with reading(engine) as conn:
        return dict(conn.execute(query).all())


def record_intents(engine: Engine, backend: str, owner: str, keys: list[str]) -> None:
    """Say, before creating them, that these rooms are about to be created."""
    at = now()
    with writing(engine) as conn:
        insert_ignore(conn, ROOMS, [{"backend": backend, "owner": owner, "key": key, "room_id": None, "created_at": at}
                                    for key in keys])


def record_rooms(engine: Engine, backend: str, owner: str, rooms: dict[str, str]) -> None:
    """Record the ids of rooms created or found (completing their intents)."""
    if not rooms:
        return
    record_intents(engine, backend, owner, list(rooms))
    with writing(engine) as conn:
        for key, room_id in rooms.items():
            conn.execute(update(ROOMS).where(ROOMS.c.backend == backend, ROOMS.c.owner == owner, ROOMS.c.key == key)
                         .values(room_id=room_id))
