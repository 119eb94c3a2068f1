"""Delivery into a Matrix homeserver through its client-server API.

Mapping:
- a user's Matrix id is its `matrix_id` field, else `@{id}:{server name}` (the server name of
  the sender's token);
- a 1-to-1 target (no `channel_template.id`) goes to the direct-message room of the sender and
  the receiver: the one recorded here, else one listed in the sender's `m.direct` account data,
  else a new room (`is_direct`, the receiver invited, `trusted_private_chat`), added to `m.direct`;
- a target with a `channel_template.id` goes to the room with alias `#{channel id}:{server name}`,
  created (members invited) when the campaign creates channels;
- a channel target goes to the room in its channel record's `matrix_room_id` field.

Exactly once:
- messages are sent with `PUT /rooms/{room}/send/m.room.message/{txnId}` where the transaction id
  is the message id (a function of the campaign and the target). Synapse deduplicates a
  transaction id per (user, device, room) for 24 hours, so the tool records the device of the
  token on the campaign and refuses to resume in-flight targets from another device;
- room creation has no transaction id: an intent is recorded before `createRoom` and the room id
  after (`rooms.py`). Intents left without a room id by a dead sender are reconciled when the next
  sender begins, and again before creating a room for a receiver whose intent is open (a claim
  taken over from a dead sender): a room the sender is joined to where the receiver is invited or
  joined with `is_direct` is adopted instead of creating another.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from datetime import datetime, timezone

from sqlalchemy import Engine, String, bindparam, exists, or_, select, type_coerce, update

from campaign_cli.delivery import rooms
from campaign_cli.delivery.matrix_http import MatrixError, MatrixHttp, path_part
from campaign_cli.errors import CampaignError, InvalidInput
from campaign_cli.sending.batch import FAILED, SENDING, SENT, SKIPPED
from campaign_cli.settings import MatrixSettings
from campaign_cli.store.bulk import in_values
from campaign_cli.store.engine import reading, writing
from campaign_cli.store.models import (
    CAMPAIGNS, CAMPAIGN_TARGETS as TARGETS, CHANNEL_MEMBERS as MEMBERS, MESSAGES, USERS,
)

if TYPE_CHECKING:
    from campaign_cli.sending.batch import CampaignRun, Delivery

BACKEND = "matrix"
# The key under which a message's content carries the campaign id, the message id and the custom fields.
CONTENT_KEY = "org.campaign_cli.campaign"
T = TypeVar("T")


class MatrixBackend:
    """Sends a campaign's messages as one Matrix account (the campaign's sender)."""

    name = BACKEND
    remote = True

    def __init__(self, settings: MatrixSettings, engine: Engine):
        assert settings.homeserver and settings.access_token
        self.settings = settings
        self.engine = engine
        self.http = MatrixHttp(settings.homeserver, settings.access_token, concurrency=settings.concurrency,
                               timeout=settings.timeout, max_attempts=settings.max_attempts)
        self.pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="matrix")
        self.me = ""
        self.server_name = ""
        self.direct: dict[str, list[str]] = {}
        self.joined: set[str] = set()
        # Members (invited or joined) of shared rooms, as far as this sender knows.
        self.members: dict[str, set[str]] = {}

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.http.close()

    # ---------------------------------------------------------------- begin

    @contextmanager
    def _refusals_end_the_run(self) -> Iterator[None]:
        """A refused call that is not about one target (whoami, m.direct, …) ends the run with one line."""
        try:
            yield
        except MatrixError as exc:
            raise CampaignError(f"homeserver {self.settings.homeserver} refused a request: {exc}") from None

    def begin(self, run: "CampaignRun") -> None:
        """Check the token is the sender's and keep its device; reconcile rooms a dead sender may have created."""
        with self._refusals_end_the_run():
            self._begin(run)

    def _begin(self, run: "CampaignRun") -> None:
        device = self.check_sender(run)
        self._keep_device(run, device)
        self.direct = self._account_data("m.direct")
        self.joined = set(self.http.call("GET", "/joined_rooms").get("joined_rooms", []))
        self._reconcile_direct_rooms()

    def check_sender(self, run: "CampaignRun") -> str:
        """The token must be the campaign sender's (exit 3 naming whose it is); returns its device id."""
        with self._refusals_end_the_run():
            device = self.whoami()
        expected = self.matrix_id(run.sender)
        if self.me != expected:
            raise InvalidInput(f"delivery.matrix.access_token belongs to {self.me}, not to the campaign's sender "
                               f"{run.sender_id!r} ({expected})")
        return device

    def whoami(self) -> str:
        """Ask whose token this is; sets `me` and `server_name`, returns the device id."""
        who = self.http.call("GET", "/account/whoami")
        self.me = who["user_id"]
        self.server_name = self.me.split(":", 1)[1]
        device = who.get("device_id")
        if not device:
            raise InvalidInput("delivery.matrix.access_token has no device: transaction ids could not be "
                               "deduplicated; use a token from a login")
        return device

    def matrix_id(self, user: dict[str, Any]) -> str:
        """A user's Matrix id: its `matrix_id` field, else @{id}:{server name}."""
        return user.get("matrix_id") or f"@{user['id']}:{self.server_name}"

    def _keep_device(self, run: "CampaignRun", device: str) -> None:
        """Record the device the campaign sends from; a message in flight from another device could be sent twice."""
        pk = run.campaign.pk
        with writing(self.engine) as conn:
            kept = conn.scalar(select(CAMPAIGNS.c.delivery_device).where(CAMPAIGNS.c.pk == pk))
            if kept == device:
                return
            in_flight = conn.scalar(select(exists().where(TARGETS.c.campaign_pk == pk, TARGETS.c.state == SENDING)))
            if kept is not None and in_flight:
                raise InvalidInput(f"campaign {run.campaign.id!r} has messages in flight from Matrix device {kept}; "
                                   f"this token is for device {device}: log in with device_id {kept} to resume it")
            conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.pk == pk).values(delivery_device=device))

    def _account_data(self, kind: str) -> dict:
        try:
            return self.http.call("GET", f"/user/{path_part(self.me)}/account_data/{kind}")
        except MatrixError as exc:
            if exc.status == 404:
                return {}
            raise

    def _reconcile_direct_rooms(self) -> None:
        """Complete DM intents a dead sender left open, and put recorded DM rooms missing from m.direct back in."""
        recorded = rooms.known_rooms(self.engine, BACKEND, self.me)
        dms = {key[3:]: room for key, room in recorded.items() if key.startswith("dm:")}
        open_intents = {user for user, room in dms.items() if room is None}
        if open_intents:
            dms.update(self._adopt(open_intents, recorded))
        missing = {user: room for user, room in dms.items() if room and room not in self.direct.get(user, [])}
        if missing:
            self._add_direct(missing)

    def _adopt(self, users: set[str], recorded: dict[str, str | None]) -> dict[str, str]:
        """Rooms a dead sender created for these open intents without recording them: found and recorded."""
        known = {room for room in recorded.values() if room} | {r for rs in self.direct.values() for r in rs}
        found = self._find_direct_rooms(users, self.joined - known)
        rooms.record_rooms(self.engine, BACKEND, self.me, {f"dm:{user}": room for user, room in found.items()})
        return found

    def _find_direct_rooms(self, users: set[str], candidates: Iterable[str]) -> dict[str, str]:
        """Among rooms the sender is in, those it created as a DM with one of `users`."""
        found: dict[str, str] = {}
        candidates = sorted(candidates)
        for room_id, state in zip(candidates, self._map(self._room_state, candidates)):
            if isinstance(state, MatrixError):
                continue
            creator = next((e["sender"] for e in state if e["type"] == "m.room.create"), None)
            if creator != self.me:
                continue
            for event in state:
                content = event.get("content") or {}
                if (event["type"] == "m.room.member" and event.get("state_key") in users
                        and content.get("is_direct") and content.get("membership") in ("invite", "join")):
                    found.setdefault(event["state_key"], room_id)
        return found

    def _room_state(self, room_id: str) -> list[dict]:
        return self.http.call("GET", f"/rooms/{path_part(room_id)}/state")

    def _add_direct(self, new: dict[str, str]) -> None:
        """Add DM rooms to the sender's m.direct account data (one read-modify-write for all of them)."""
        for user, room in new.items():
            listed = self.direct.setdefault(user, [])
            if room not in listed:
                listed.append(room)
        self.http.call("PUT", f"/user/{path_part(self.me)}/account_data/m.direct", json=self.direct)

    # ---------------------------------------------------------------- deliver

    def deliver(self, run: "CampaignRun", deliveries: list["Delivery"]) -> None:
        """Find or create each target's room, then send the messages, `concurrency` requests at a time."""
        with self._refusals_end_the_run():
            self._deliver(run, deliveries)

    def _deliver(self, run: "CampaignRun", deliveries: list["Delivery"]) -> None:
        todo = [d for d in deliveries if d.state == SENT]
        rooms_of = self._rooms(run, todo)
        sending = []
        for d in todo:
            room = rooms_of.get(d.seq)
            if isinstance(room, MatrixError):
                d.give_up(FAILED, room.reason)
            elif room is None:
                d.give_up(SKIPPED, "no_matrix_room_id")
            else:
                sending.append((d, room))
        results = self._map(lambda item: self._send(run, *item), sending)
        for (d, room), result in zip(sending, results):
            if isinstance(result, MatrixError):
                d.give_up(FAILED, result.reason)
                continue
            d.remote = {"backend": BACKEND, "room_id": room, "event_id": result}
            if d.new_channel is not None:
                d.new_channel.row["custom"]["matrix_room_id"] = room

    def _send(self, run: "CampaignRun", d: "Delivery", room: str) -> str:
        message_id = run.message_id(d.seq)
        content = {"msgtype": "m.text", "body": d.text,
                   CONTENT_KEY: {"campaign_id": run.campaign.id, "message_id": message_id, "custom": d.custom}}
        reply = self.http.call("PUT", f"/rooms/{path_part(room)}/send/m.room.message/{path_part(message_id)}",
                               json=content)
        return reply["event_id"]

    def _rooms(self, run: "CampaignRun", todo: list["Delivery"]) -> dict[int, str | MatrixError | None]:
        """Each target's room id (None: a channel without a Matrix room), or why there is none."""
        found: dict[int, str | MatrixError | None] = {}
        direct, aliased = [], []
        for d in todo:
            if d.kind == "channel":
                found[d.seq] = (d.channel or {}).get("matrix_room_id")
            elif run.has_channel_id:
                aliased.append(d)
            else:
                direct.append(d)
        found.update(self._direct_rooms(direct))
        found.update(self._alias_rooms(aliased))
        return found

    def _direct_rooms(self, todo: list["Delivery"]) -> dict[int, str | MatrixError]:
        """The DM room of each receiver: recorded, listed in m.direct, or created now."""
        receivers = {self.matrix_id(d.receiver or {"id": d.target_id}): d for d in todo}
        recorded = rooms.known_rooms(self.engine, BACKEND, self.me, [f"dm:{user}" for user in receivers])
        room_of: dict[str, str | MatrixError] = {}
        for user in receivers:
            room = recorded.get(f"dm:{user}") or next((r for r in self.direct.get(user, []) if r in self.joined), None)
            if room:
                room_of[user] = room
        to_create = [user for user in receivers if user not in room_of]
        open_intents = {user for user in to_create if f"dm:{user}" in recorded}
        if open_intents:
            # Another sender died between creating these rooms and recording them (its claim came to us).
            self.joined = set(self.http.call("GET", "/joined_rooms").get("joined_rooms", []))
            adopted = self._adopt(open_intents, rooms.known_rooms(self.engine, BACKEND, self.me))
            room_of.update(adopted)
            to_create = [user for user in to_create if user not in adopted]
        if to_create:
            room_of.update(self._create_direct_rooms(to_create))
        return {receivers[user].seq: room for user, room in room_of.items()}

    def _create_direct_rooms(self, users: list[str]) -> dict[str, str | MatrixError]:
        """Create DM rooms with an intent recorded first, for receivers the homeserver knows."""
        result: dict[str, str | MatrixError] = {}
        known = []
        for user, profile in zip(users, self._map(self._profile, users)):
            if isinstance(profile, MatrixError):
                # Synapse answers an unknown user's profile with 404 and an errcode that varies by version.
                result[user] = MatrixError(404, "M_NOT_FOUND", f"no such user {user}") if profile.status == 404 else profile
            else:
                known.append(user)
        if not known:
            return result
        rooms.record_intents(self.engine, BACKEND, self.me, [f"dm:{user}" for user in known])
        created = dict(zip(known, self._map(self._create_direct_room, known)))
        made = {user: room for user, room in created.items() if isinstance(room, str)}
        rooms.record_rooms(self.engine, BACKEND, self.me, {f"dm:{user}": room for user, room in made.items()})
        self.joined.update(made.values())
        if made:
            self._add_direct(made)
        result.update(created)
        return result

    def _profile(self, user: str) -> dict:
        return self.http.call("GET", f"/profile/{path_part(user)}")

    def _create_direct_room(self, user: str) -> str:
        reply = self.http.call("POST", "/createRoom", json={"is_direct": True, "invite": [user],
                                                             "preset": "trusted_private_chat"})
        return reply["room_id"]

    def _alias_rooms(self, todo: list["Delivery"]) -> dict[int, str | MatrixError | None]:
        """The room of each channel id: the channel's recorded room, the alias's room, or a new room with that alias."""
        result: dict[int, str | MatrixError | None] = {}
        by_alias: dict[str, list["Delivery"]] = {}
        for d in todo:
            room = (d.channel or {}).get("matrix_room_id")
            if room:
                result[d.seq] = room
            else:
                by_alias.setdefault(f"#{(d.cid or '').partition(':')[2]}:{self.server_name}", []).append(d)
        recorded = rooms.known_rooms(self.engine, BACKEND, self.me, [f"alias:{a}" for a in by_alias])
        pending = [alias for alias in by_alias if not recorded.get(f"alias:{alias}")]
        resolved = dict(zip(pending, self._map(lambda alias: self._alias_room(alias, by_alias[alias][0]), pending)))
        rooms.record_rooms(self.engine, BACKEND, self.me,
                           {f"alias:{a}": room for a, room in resolved.items() if isinstance(room, str)})
        for alias, deliveries in by_alias.items():
            room = recorded.get(f"alias:{alias}") or resolved.get(alias)
            for d in deliveries:
                result[d.seq] = room
        by_room: dict[str, list["Delivery"]] = {}
        for d in todo:
            if isinstance(result.get(d.seq), str):
                by_room.setdefault(result[d.seq], []).append(d)
        for room, refused in zip(by_room, self._map(lambda room: self._invite_receivers(room, by_room[room]), list(by_room))):
            if isinstance(refused, MatrixError):
                for d in by_room[room]:
                    result[d.seq] = refused
        return result

    def _invite_receivers(self, room: str, deliveries: list["Delivery"]) -> None:
        """A message to a receiver in a shared room only reaches them once they are in it: invite who is not."""
        if room not in self.members:
            chunk = self.http.call("GET", f"/rooms/{path_part(room)}/members")["chunk"]
            self.members[room] = {e["state_key"] for e in chunk if e["content"].get("membership") in ("invite", "join")}
        present = self.members[room]
        for d in deliveries:
            user = self.matrix_id(d.receiver or {"id": d.target_id})
            if user not in present:
                self.http.call("POST", f"/rooms/{path_part(room)}/invite", json={"user_id": user})
                present.add(user)

    def _alias_room(self, alias: str, d: "Delivery") -> str:
        """Resolve the alias; when it does not exist and the campaign creates the channel, create the room."""
        try:
            return self.http.call("GET", f"/directory/room/{path_part(alias)}")["room_id"]
        except MatrixError as exc:
            if exc.status != 404 or d.new_channel is None:
                raise
        invite = [u for u in self._matrix_ids([m["user_id"] for m in d.new_channel.members]) if u != self.me]
        body = {"room_alias_name": alias[1:].rsplit(":", 1)[0], "invite": invite, "preset": "private_chat"}
        try:
            return self.http.call("POST", "/createRoom", json=body)["room_id"]
        except MatrixError as exc:
            if exc.errcode != "M_ROOM_IN_USE":
                raise
        # Created meanwhile (by this campaign before a crash): the alias makes creation idempotent.
        return self.http.call("GET", f"/directory/room/{path_part(alias)}")["room_id"]

    def _matrix_ids(self, user_ids: list[str]) -> list[str]:
        """Matrix ids of local users (their `matrix_id` field, else the default mapping)."""
        field = type_coerce(USERS.c.custom, String)
        with reading(self.engine) as conn:
            customs = dict(conn.execute(select(USERS.c.id, field).where(in_values(USERS.c.id, user_ids))).all())
        ids = []
        for user_id in user_ids:
            custom = json.loads(customs.get(user_id) or "{}")
            ids.append(self.matrix_id({"id": user_id, **custom}))
        return ids

    # ---------------------------------------------------------------- read receipts

    def refresh_reads(self, run: "CampaignRun") -> int:
        """Set the local read markers of the campaign's receivers from their `m.read` receipts; returns how many moved."""
        with self._refusals_end_the_run():
            return self._refresh_reads(run)

    def _refresh_reads(self, run: "CampaignRun") -> int:
        self.check_sender(run)
        with reading(self.engine) as conn:
            sent = conn.execute(select(MESSAGES.c.channel_pk, MESSAGES.c.remote_room_id, MESSAGES.c.remote_event_id,
                                       MESSAGES.c.created_at)
                                .where(MESSAGES.c.campaign_id == run.campaign.id,
                                       MESSAGES.c.delivery_backend == BACKEND)).all()
            pks = list({row[0] for row in sent})
            members = conn.execute(select(MEMBERS.c.channel_pk, MEMBERS.c.user_id).where(
                in_values(MEMBERS.c.channel_pk, pks), MEMBERS.c.user_id != run.sender_id)).all() if pks else []
        if not sent:
            return 0
        user_ids = sorted({user for _, user in members})
        matrix_ids = dict(zip(user_ids, self._matrix_ids(user_ids)))
        receipts = self._read_receipts()
        by_channel: dict[int, list[str]] = {}
        for pk, user in members:
            by_channel.setdefault(pk, []).append(user)
        updates = []
        for pk, room, event_id, created_at in sent:
            for user in by_channel.get(pk, []):
                receipt = receipts.get(room, {}).get(matrix_ids[user])
                if receipt is None:
                    continue
                read_event, read_at = receipt
                if read_event == event_id or read_at >= created_at:
                    updates.append({"pk_": pk, "user_": user, "at_": max(read_at, created_at)})
        return self._move_read_markers(updates)

    def _read_receipts(self) -> dict[str, dict[str, tuple[str, datetime]]]:
        """Room -> user -> (event id, time) of each user's latest `m.read` receipt, from one sync of the sender."""
        nothing = {"types": []}
        sync_filter = {"presence": nothing, "account_data": nothing,
                       "room": {"timeline": {"limit": 0}, "state": nothing, "account_data": nothing,
                                "ephemeral": {"types": ["m.receipt"]}}}
        sync = self.http.call("GET", "/sync", params={"timeout": "0", "filter": json.dumps(sync_filter)})
        receipts: dict[str, dict[str, tuple[str, datetime]]] = {}
        for room, data in (sync.get("rooms", {}).get("join") or {}).items():
            latest = receipts.setdefault(room, {})
            for event in (data.get("ephemeral") or {}).get("events", []):
                if event.get("type") != "m.receipt":
                    continue
                for event_id, kinds in (event.get("content") or {}).items():
                    for user, receipt in (kinds.get("m.read") or {}).items():
                        at = datetime.fromtimestamp(receipt.get("ts", 0) / 1000, timezone.utc)
                        if user not in latest or latest[user][1] < at:
                            latest[user] = (event_id, at)
        return receipts

    def _move_read_markers(self, updates: list[dict[str, Any]]) -> int:
        if not updates:
            return 0
        statement = (update(MEMBERS).where(MEMBERS.c.channel_pk == bindparam("pk_"), MEMBERS.c.user_id == bindparam("user_"),
                                           or_(MEMBERS.c.last_read_at.is_(None), MEMBERS.c.last_read_at < bindparam("at_")))
                     .values(last_read_at=bindparam("at_")))
        with writing(self.engine) as conn:
            return max(conn.execute(statement, updates).rowcount, 0)

    # ---------------------------------------------------------------- helpers

    def _map(self, fn: Callable[[Any], T], items: list[Any]) -> list[T | MatrixError]:
        """`fn` over `items` with `concurrency` calls in flight; a MatrixError is returned in place, other errors raise."""
        def call(item: Any) -> T | MatrixError:
            try:
                return fn(item)
            except MatrixError as exc:
                return exc
        if len(items) <= 1:
            return [call(item) for item in items]
        return list(self.pool.map(call, items))
