"""Delivery into a real Synapse homeserver: DM rooms, aliases, exactly once, failures, limits.

Every test registers its own accounts (a unique prefix) on the session's Synapse, imports them as
local users and points `delivery:` at the server; assertions read what arrived through the
receivers' own accounts.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


from campaign_cli.delivery.rooms import record_intents
from campaign_cli.store.engine import open_engine
from http_receiver import free_port
from send_helpers import (config, create_campaign, delete_after_planning, done, events, finish, get, messages, segment,
                          spawn, sql, stop_process, wait_until)
from synapse_server import Account, Synapse

CONTENT_KEY = "org.campaign_cli.campaign"
_prefixes = itertools.count()


class World:
    """One test's accounts on the homeserver, mirrored as local users, and a config that delivers as the sender."""

    def __init__(self, cli, synapse: Synapse, receivers: int, *, limited: bool = False, **matrix):
        self.cli, self.synapse = cli, synapse
        prefix = f"t{next(_prefixes)}{secrets.token_hex(2)}"
        self.sender = synapse.register(f"{prefix}-acme", limited=limited)
        self.receivers = [synapse.register(f"{prefix}-r{i:03}") for i in range(receivers)]
        users = [{"id": self.sender.localpart, "name": "Acme"}]
        users += [{"id": r.localpart, "name": f"Receiver {i}"} for i, r in enumerate(self.receivers)]
        cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", users)))
        self.config = self.write_config(**matrix)

    def write_config(self, name: str = "config.yaml", **matrix) -> str:
        section = {"homeserver": self.synapse.url, "access_token": self.sender.access_token, "concurrency": 4,
                   **matrix}
        return str(config(self.cli, name, delivery={"backend": "matrix", "matrix": section},
                          sending={"lease_seconds": 2}))

    def campaign(self, campaign_id: str = "c1", **fields) -> None:
        fields.setdefault("user_ids", [r.localpart for r in self.receivers])
        fields.setdefault("create_channels", True)
        fields.setdefault("channel_template", {"type": "messaging"})
        fields = {key: value for key, value in fields.items() if value not in (None, [])}
        fields.setdefault("message_template", {"text": "Hi {{ receiver.name }}", "custom": {"to": "{{ receiver.id }}"}})
        create_campaign(self.cli, campaign_id, sender_id=self.sender.localpart, **fields)

    def run(self, *args: str):
        return self.cli("--config", self.config, *args)

    def dm_rooms(self, receiver: Account) -> list[str]:
        """Rooms the receiver is invited to or in, with the sender as a member."""
        reader = self.synapse.client(receiver)
        return sorted(room for room in reader.invited_and_joined_rooms() if self._sender_in(receiver, room))

    def _sender_in(self, receiver: Account, room: str) -> bool:
        members = self.synapse.client(self.sender).members(room)
        return members.get(self.sender.user_id) == "join" and receiver.user_id in members

    def campaign_messages(self, room: str, campaign_id: str = "c1") -> list[dict]:
        """The campaign's messages in a room, as the receiver sees them after joining."""
        return [e for e in self.synapse.client(self.sender).messages(room)
                if e["content"].get(CONTENT_KEY, {}).get("campaign_id") == campaign_id]

    def assert_each_receiver_got_one_dm(self, receivers: list[Account] | None = None) -> dict[str, str]:
        """Exactly one DM room per receiver, holding exactly one campaign message with the rendered text."""
        rooms = {}
        names = {r.localpart: f"Receiver {i}" for i, r in enumerate(self.receivers)}
        for receiver in receivers or self.receivers:
            found = self.dm_rooms(receiver)
            assert len(found) == 1, (receiver.user_id, found)
            sent = self.campaign_messages(found[0])
            assert [(e["sender"], e["content"]["body"]) for e in sent] == [
                (self.sender.user_id, f"Hi {names[receiver.localpart]}")], receiver.user_id
            rooms[receiver.localpart] = found[0]
        return rooms


def test_a_campaign_reaches_each_receiver_in_one_direct_room(cli, synapse):
    world = World(cli, synapse, 3)
    world.campaign()

    run = world.run("start", "c1")

    assert run.exit_code == 0, run.stderr
    rooms = world.assert_each_receiver_got_one_dm()
    first = world.receivers[0]
    invite = synapse.client(world.sender).get(f"/rooms/{rooms[first.localpart]}/state/m.room.member/{first.user_id}")
    assert (invite["membership"], invite["is_direct"]) == ("invite", True)
    direct = synapse.client(world.sender).account_data("m.direct")
    assert direct == {r.user_id: [rooms[r.localpart]] for r in world.receivers}
    event = world.campaign_messages(rooms[first.localpart])[0]
    listed = {m["to"]: m for m in messages(cli, "c1")}
    assert event["content"][CONTENT_KEY] == {"campaign_id": "c1", "message_id": listed[first.localpart]["id"],
                                             "custom": {"to": first.localpart}}
    assert listed[first.localpart]["delivery"] == {"backend": "matrix", "room_id": rooms[first.localpart],
                                                   "event_id": event["event_id"]}
    news = events(cli, "c1", "message.new")
    assert sorted(e["delivery"]["room_id"] for e in news) == sorted(rooms.values())
    stats = get(cli, "c1")["stats"]
    assert (stats["stats_messages_sent"], stats["stats_failed"], stats["progress"]) == (3, 0, 1.0)


def test_an_existing_direct_room_is_reused(cli, synapse):
    world = World(cli, synapse, 2)
    sender = synapse.client(world.sender)
    first = world.receivers[0]
    room = sender.call("POST", "/createRoom", json={"is_direct": True, "invite": [first.user_id],
                                                    "preset": "trusted_private_chat"}).json()["room_id"]
    sender.call("PUT", f"/user/{world.sender.user_id}/account_data/m.direct",
                json={first.user_id: [room]}).raise_for_status()
    world.campaign()

    assert world.run("start", "c1").exit_code == 0

    rooms = world.assert_each_receiver_got_one_dm()
    assert rooms[first.localpart] == room


def test_a_receiver_without_a_matrix_account_fails_alone(cli, synapse):
    world = World(cli, synapse, 2)
    cli.ok("users", "import", str(cli.write_jsonl("ghost.jsonl", [{"id": "ghost-nobody", "name": "Ghost"}])))
    world.campaign(user_ids=[r.localpart for r in world.receivers] + ["ghost-nobody"])

    run = world.run("start", "c1", "--json")

    assert run.exit_code == 0, run.stderr
    world.assert_each_receiver_got_one_dm()
    stats = run.json()["campaign"]["stats"]
    assert (stats["stats_messages_sent"], stats["stats_failed"], stats["stats_failed_reasons"]) == (
        2, 1, {"matrix:M_NOT_FOUND": 1})
    status = world.run("status", "c1")
    assert "matrix:M_NOT_FOUND 1" in status.stdout


def test_a_token_of_another_user_is_refused_naming_its_owner(cli, synapse):
    world = World(cli, synapse, 1)
    other = world.receivers[0]
    world.config = world.write_config(access_token=other.access_token)
    world.campaign()

    run = world.run("start", "c1")

    assert run.exit_code == 3
    assert run.error_line() == (f"error: delivery.matrix.access_token belongs to {other.user_id}, not to the "
                                f"campaign's sender {world.sender.localpart!r} ({world.sender.user_id})")
    assert world.dm_rooms(other) == []
    assert get(cli, "c1")["status"] == "draft"


def test_an_invalid_token_exits_3(cli, synapse):
    world = World(cli, synapse, 1)
    world.config = world.write_config(access_token="syt_not_a_token")
    world.campaign()

    run = world.run("start", "c1")

    assert run.exit_code == 3
    assert run.error_line() == (f"error: delivery.matrix.access_token: the homeserver {synapse.url} rejected it "
                                "(M_UNKNOWN_TOKEN: Invalid access token passed.)")
    assert get(cli, "c1")["status"] == "draft"


def test_an_unreachable_homeserver_exits_1_and_the_campaign_resumes(cli, synapse):
    world = World(cli, synapse, 2)
    good = world.config
    world.config = world.write_config("down.yaml", homeserver=f"http://127.0.0.1:{free_port()}", max_attempts=2)
    world.campaign()
    cli.ok("start", "c1", "--detach")

    run = world.run("run", "c1")

    assert run.exit_code == 1
    line = run.error_line()
    assert line.startswith("error: homeserver http://127.0.0.1:") and "unreachable after 2 attempts" in line
    assert get(cli, "c1")["status"] == "in_progress"
    world.config = good
    assert world.run("run", "c1").exit_code == 0
    world.assert_each_receiver_got_one_dm()


def test_a_homeserver_down_mid_campaign_stops_the_sender_and_run_finishes_it(cli, synapse):
    world = World(cli, synapse, 10, max_attempts=3)
    world.campaign()
    cli.ok("start", "c1", "--detach")
    sender = spawn(cli, "run", "c1", "--batch-size", "2", config_path=world.config)
    try:
        wait_until(lambda: done(cli, "c1") >= 2 or sender.poll() is not None, timeout=60)
        synapse.stop()
        code, _, err = finish(sender, timeout=60)
    finally:
        stop_process(sender)
        synapse.start()

    assert code == 1, err
    assert err.startswith(f"error: homeserver {synapse.url} unreachable after 3 attempts") and err.count("\n") == 1
    assert 2 <= done(cli, "c1") < 10
    time.sleep(2.1)  # the lease of the sender that gave up
    assert world.run("run", "c1").exit_code == 0
    world.assert_each_receiver_got_one_dm()
    assert sorted(Counter(m["to"] for m in messages(cli, "c1")).values()) == [1] * 10


def test_a_channel_id_maps_to_a_room_alias(cli, synapse):
    world = World(cli, synapse, 3)
    alias_name = f"launch-{secrets.token_hex(3)}"
    world.campaign(channel_template={"type": "team", "id": alias_name})

    assert world.run("start", "c1").exit_code == 0

    sender = synapse.client(world.sender)
    room = sender.get(f"/directory/room/%23{alias_name}:{synapse.server_name}")["room_id"]
    assert sorted(sender.members(room).items()) == sorted(
        [(world.sender.user_id, "join")] + [(r.user_id, "invite") for r in world.receivers])
    bodies = sorted(e["content"]["body"] for e in world.campaign_messages(room))
    assert bodies == ["Hi Receiver 0", "Hi Receiver 1", "Hi Receiver 2"]
    assert {m["delivery"]["room_id"] for m in messages(cli, "c1")} == {room}


def test_an_alias_whose_room_the_sender_is_not_in_fails_the_target(cli, synapse):
    world = World(cli, synapse, 1)
    stranger = world.receivers[0]
    alias_name = f"taken-{secrets.token_hex(3)}"
    synapse.client(stranger).call("POST", "/createRoom", json={"room_alias_name": alias_name,
                                                               "preset": "private_chat"}).raise_for_status()
    world.campaign(channel_template={"type": "team", "id": alias_name})

    run = world.run("start", "c1", "--json")

    assert run.exit_code == 0, run.stderr
    stats = run.json()["campaign"]["stats"]
    assert (stats["stats_messages_sent"], stats["stats_failed_reasons"]) == (0, {"matrix:M_FORBIDDEN": 1})


def test_rate_limited_sends_wait_and_arrive_once(cli, synapse):
    world = World(cli, synapse, 8, limited=True)
    world.campaign()

    run = world.run("start", "c1")

    assert run.exit_code == 0, run.stderr
    world.assert_each_receiver_got_one_dm()
    assert get(cli, "c1")["stats"]["stats_messages_sent"] == 8


def test_killed_senders_never_duplicate_a_room_or_a_message(cli, synapse):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    world = World(cli, synapse, 24)
    world.campaign()
    cli.ok("start", "c1", "--detach")

    kills = 0
    for _ in range(4):
        before = done(cli, "c1")
        if before == len(world.receivers):
            break
        sender = spawn(cli, "run", "c1", "--batch-size", "4", config_path=world.config)
        try:
            # Let it get into the homeserver calls, then kill it at a random moment.
            time.sleep(rng.uniform(0.8, 2.5))
            sender.send_signal(signal.SIGKILL)
            code, _, err = finish(sender)
        finally:
            stop_process(sender)
        kills += code == -signal.SIGKILL
        time.sleep(2.1)  # the lease of the killed sender

    run = world.run("run", "c1")

    assert run.exit_code == 0, f"seed {seed}: {run.stderr}"
    assert kills >= 2, f"seed {seed}: only {kills} senders were killed mid-campaign"
    world.assert_each_receiver_got_one_dm()
    sent = messages(cli, "c1")
    assert sorted(Counter(m["to"] for m in sent).items()) == [(r.localpart, 1) for r in world.receivers]
    assert get(cli, "c1")["status"] == "completed"


def test_read_receipts_count_as_users_read(cli, synapse):
    world = World(cli, synapse, 3)
    world.campaign()
    assert world.run("start", "c1").exit_code == 0
    rooms = world.assert_each_receiver_got_one_dm()
    for receiver in world.receivers[:2]:
        reader = synapse.client(receiver)
        room = rooms[receiver.localpart]
        reader.join(room)
        reader.read_receipt(room, world.campaign_messages(room)[0]["event_id"])
    assert get(cli, "c1")["stats"]["stats_users_read"] == 0

    run = world.run("status", "c1", "--refresh-reads", "--json")

    assert run.exit_code == 0, run.stderr
    assert run.json()["campaign"]["stats"]["stats_users_read"] == 2
    assert world.run("status", "c1", "--refresh-reads", "--json").json()["campaign"]["stats"]["stats_users_read"] == 2


def test_users_import_from_matrix_upserts_active_accounts(cli, synapse):
    prefix = f"dir{secrets.token_hex(2)}"
    alice = synapse.register(f"{prefix}-alice", displayname="Alice A")
    gone = synapse.register(f"{prefix}-gone")
    synapse.deactivate(gone.user_id)
    path = config(cli, delivery={"matrix": {"homeserver": synapse.url, "admin_token": synapse.admin.access_token}})

    run = cli("--config", str(path), "users", "import", "--from-matrix", "--json")

    assert run.exit_code == 0, run.stderr
    listed = {u["id"]: u for u in cli.ok("users", "list", "--limit", "1000", "--json").json()["users"]}
    assert (listed[alice.localpart]["name"], listed[alice.localpart]["matrix_id"]) == ("Alice A", alice.user_id)
    assert gone.localpart not in listed
    assert run.json()["records"] == len(listed)


def test_users_import_from_matrix_needs_an_admin_token(cli, synapse):
    path = config(cli, delivery={"matrix": {"homeserver": synapse.url}})

    run = cli("--config", str(path), "users", "import", "--from-matrix")

    assert run.exit_code == 3
    assert run.error_line() == ("error: --from-matrix: needs delivery.matrix.homeserver and "
                                "delivery.matrix.admin_token in the config file")


def test_a_429_pauses_every_worker_for_retry_after(synapse):
    from campaign_cli.delivery.matrix_http import MatrixHttp

    class CountingHttp(MatrixHttp):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.pauses: list[float] = []

        def pause(self, seconds: float) -> None:
            self.pauses.append(seconds)
            super().pause(seconds)

    limited = synapse.register(f"lim{secrets.token_hex(2)}", limited=True)
    http = CountingHttp(synapse.url, limited.access_token, concurrency=4, timeout=10, max_attempts=3)
    room = http.call("POST", "/createRoom", json={"preset": "private_chat"})["room_id"]
    with ThreadPoolExecutor(4) as pool:
        events = list(pool.map(lambda i: http.call("PUT", f"/rooms/{room}/send/m.room.message/t{i}",
                                                   json={"msgtype": "m.text", "body": str(i)})["event_id"], range(12)))
    http.close()

    assert len(set(events)) == 12
    assert http.pauses and all(0 < p < 5 for p in http.pauses)
    bodies = [e["content"]["body"] for e in synapse.client(limited).messages(room)]
    assert sorted(bodies, key=int) == [str(i) for i in range(12)]


def test_the_readme_walk_through_runs(tmp_path, synapse):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("**A walk-through**", 1)[1].split("```\n", 2)[1]
    acme = synapse.register("acme")
    alice = synapse.register("alice", displayname="Alice")
    script = (block.replace("http://127.0.0.1:8008", synapse.url)
              .replace("ADMIN_TOKEN", synapse.admin.access_token).replace("ACME_TOKEN", acme.access_token))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"

    done_ = subprocess.run(["bash", "-euc", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    assert done_.returncode == 0, done_.stderr
    # `start` prints the campaign's status, then `messages list --json` one JSON document.
    listed = json.loads(done_.stdout[done_.stdout.index("{\n"):])["messages"]
    assert [(m["text"], m["delivery"]["backend"]) for m in listed] == [("Hi Alice", "matrix")]
    reader = synapse.client(alice)
    (room,) = [r for r, membership in reader.invited_and_joined_rooms().items() if membership == "invite"]
    reader.join(room)
    assert [e["content"]["body"] for e in reader.messages(room)] == ["Hi Alice"]


def test_a_room_created_just_before_a_crash_is_adopted_not_created_again(cli, synapse):
    world = World(cli, synapse, 2)
    first = world.receivers[0]
    # What a sender killed between `createRoom` and recording its answer leaves behind:
    # an intent without a room id, and a room that is in no m.direct.
    room = synapse.client(world.sender).call("POST", "/createRoom", json={
        "is_direct": True, "invite": [first.user_id], "preset": "trusted_private_chat"}).json()["room_id"]
    engine = open_engine(cli.url)
    record_intents(engine, "matrix", world.sender.user_id, [f"dm:{first.user_id}"])
    engine.dispose()
    world.campaign()

    assert world.run("start", "c1").exit_code == 0

    rooms = world.assert_each_receiver_got_one_dm()
    assert rooms[first.localpart] == room
    assert synapse.client(world.sender).account_data("m.direct")[first.user_id] == [room]


def test_channel_targets_go_to_the_room_of_their_matrix_room_id(cli, synapse):
    world = World(cli, synapse, 1)
    receiver = world.receivers[0]
    room = synapse.client(world.sender).call("POST", "/createRoom", json={
        "invite": [receiver.user_id], "preset": "private_chat"}).json()["room_id"]
    members = [world.sender.localpart, receiver.localpart]
    cli.ok("channels", "import", str(cli.write_jsonl("channels.jsonl", [
        {"cid": "team:ops", "members": members, "matrix_room_id": room},
        {"cid": "team:offline", "members": members}])))
    segment(cli, "rooms", "channel", targets=["team:ops", "team:offline"])
    world.campaign(user_ids=[], segment_ids=["rooms"], create_channels=False, channel_template=None,
                   message_template={"text": "Hello {{ channel.id }}"})

    run = world.run("start", "c1", "--json")

    assert run.exit_code == 0, run.stderr
    stats = run.json()["campaign"]["stats"]
    assert (stats["stats_messages_sent"], stats["stats_skipped"]) == (1, {"no_matrix_room_id": 1})
    assert [e["content"]["body"] for e in world.campaign_messages(room)] == ["Hello ops"]


def test_a_receiver_deleted_locally_while_its_message_is_delivered_is_recorded_as_sent(cli, synapse, monkeypatch):
    """The directory loses a user between the plan and the write of a batch whose messages the
    homeserver already has: they are recorded as sent, and no membership names the deleted user."""
    world = World(cli, synapse, 2)
    world.campaign()
    gone = world.receivers[0].localpart
    delete_after_planning(cli, monkeypatch, gone)

    run = world.run("start", "c1")

    assert run.exit_code == 0, run.stderr
    world.assert_each_receiver_got_one_dm()
    assert sorted(m["to"] for m in messages(cli, "c1")) == sorted(r.localpart for r in world.receivers)
    assert get(cli, "c1")["stats"]["stats_messages_sent"] == 2
    assert sql(cli, f"select count(*) from channel_members where user_id = '{gone}'") == [(0,)]
