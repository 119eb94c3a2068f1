"""Webhook and push delivery of a real campaign, against HTTP receivers on 127.0.0.1.

The campaign is sent with `campaign --config CONFIG start`; the config points the webhook and
the push gateway at `http_receiver.Receiver`s, which check `X-Signature` and inject failures.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter

import pytest
from http_receiver import Receiver, free_port
from send_helpers import (USERS, bulk_users, config, create_campaign, events, get, import_channels, import_users, messages,
                          segment, sql)

from campaign_cli.sending.batch import ANYONE_WITH_DEVICES
from campaign_cli.store.engine import open_engine, reading

SECRET = "s3cret"
NEWS = {"type": "messaging", "id": "news-{{ receiver.id }}"}
ALL_EVENTS = Counter({"campaign.started": 1, "channel.created": 2, "message.new": 2, "campaign.completed": 1})


@pytest.fixture
def world(cli):
    import_users(cli)
    return cli


def bodies(receiver: Receiver) -> list[dict]:
    return [json.loads(request.body) for request in receiver.requests]


def by_type(receiver: Receiver) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for body in bodies(receiver):
        found.setdefault(body["type"], []).append(body)
    return found


def test_every_event_is_posted_to_the_webhook_with_a_valid_signature(world, receivers):
    hook = receivers(secret=SECRET)
    settings = config(world, webhook={"url": hook.url, "secret": SECRET})
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=NEWS)

    world.ok("--config", str(settings), "start", "c1")

    assert Counter(body["type"] for body in bodies(hook)) == ALL_EVENTS
    assert [request.signature_ok for request in hook.requests] == [True] * 6
    for request in hook.requests:
        assert request.headers["x-signature"] == hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    posted = by_type(hook)
    started, completed = posted["campaign.started"][0]["campaign"], posted["campaign.completed"][0]["campaign"]
    assert (started["id"], started["status"], started["stats"]["stats_targets"]) == ("c1", "in_progress", 2)
    assert ([u["id"] for u in started["users"]], started["sender"]["id"]) == (["alice", "bob"], "acme")
    assert (completed["status"], completed["stats"]["stats_messages_sent"], completed["stats"]["progress"]) == (
        "completed", 2, 1.0)
    sent = messages(world, "c1")
    assert sorted((b["message"]["id"], b["message"]["text"], b["cid"], b["campaign_id"])
                  for b in posted["message.new"]) == [(m["id"], m["text"], m["cid"], "c1") for m in sent]
    assert sorted(b["cid"] for b in posted["channel.created"]) == ["messaging:news-alice", "messaging:news-bob"]
    assert sorted(m["user_id"] for m in posted["channel.created"][0]["channel"]["members"]) == sorted(
        ["acme", posted["channel.created"][0]["cid"].removeprefix("messaging:news-")])


def test_skip_webhook_keeps_only_message_new_and_channel_created_from_the_webhook(world, receivers):
    hook = receivers(secret=SECRET)
    settings = config(world, webhook={"url": hook.url, "secret": SECRET})
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=NEWS,
                    skip_webhook=True)

    world.ok("--config", str(settings), "start", "c1")

    assert sorted(body["type"] for body in bodies(hook)) == ["campaign.completed", "campaign.started"]
    assert Counter(e["type"] for e in events(world, "c1")) == ALL_EVENTS


@pytest.mark.parametrize("fault", ["refused", "500 forever", "hangs"])
def test_a_dead_webhook_never_fails_or_holds_up_the_campaign(world, receivers, fault):
    hook = receivers(secret=SECRET)
    url = hook.url
    if fault == "refused":
        url = f"http://127.0.0.1:{free_port()}/hook"
    elif fault == "500 forever":
        hook.fail_forever(500)
    else:
        hook.hang(30)
    settings = config(world, webhook={"url": url, "secret": SECRET, "timeout": 1})
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=NEWS)

    began = time.monotonic()
    run = world("--config", str(settings), "start", "c1", "--json")
    elapsed = time.monotonic() - began

    assert (run.exit_code, run.json()["campaign"]["status"], run.json()["campaign"]["stats"]["stats_messages_sent"]) == (0, "completed", 2)
    assert elapsed < 4.0, f"took {elapsed:.1f} s"
    assert len(messages(world, "c1")) == 2
    assert sql(world, "SELECT count(*) FROM outbox WHERE sink = 'webhook' AND status = 'delivered'") == [(0,)]
    assert sql(world, "SELECT count(*) FROM outbox WHERE sink = 'webhook'") == [(6,)]


def test_push_records_go_to_members_with_devices_other_than_the_sender(world, receivers):
    gateway = receivers()
    settings = config(world, push={"url": gateway.url})
    import_users(world, [{**USERS[0], "devices": [{"id": "acme-phone", "push_provider": "apn"}]}])
    import_channels(world, [{"cid": "team:lobby", "members": ["acme", "alice", "bob", "carol"]}])
    segment(world, "lobby", "channel", targets=["team:lobby"])
    create_campaign(world, "dm", user_ids=["alice", "bob"], create_channels=True, channel_template=NEWS)
    create_campaign(world, "room", segment_ids=["lobby"], message_template={"text": "Hello room"})
    create_campaign(world, "muted", segment_ids=["lobby"], message_template={"text": "Psst"}, skip_push=True)

    for campaign_id in ("dm", "room", "muted"):
        world.ok("--config", str(settings), "start", campaign_id)

    stored = sql(world, "SELECT campaign_id, user_id, device_id, push_provider FROM push_notifications ORDER BY pk")
    assert stored == [("dm", "alice", "alice-phone", "apn"),
                      ("room", "alice", "alice-phone", "apn"),
                      ("room", "carol", "carol-phone", "firebase"),
                      ("room", "carol", "carol-tab", "apn")]
    posted = sorted((b["campaign_id"], b["user_id"], b["device_id"], b["push_provider"]) for b in bodies(gateway))
    assert posted == sorted(stored)
    room = messages(world, "room")[0]
    carol_tab = next(b for b in bodies(gateway) if b["device_id"] == "carol-tab")
    assert carol_tab == {"type": "push", "message_id": room["id"], "cid": "team:lobby", "user_id": "carol",
                         "device_id": "carol-tab", "push_provider": "apn", "text": "Hello room", "sender_id": "acme",
                         "campaign_id": "room"}
    assert get(world, "muted")["stats"]["stats_messages_sent"] == 1


def test_status_counts_the_webhook_calls_of_the_campaign(world, receivers):
    hook = receivers(secret=SECRET)
    hook.fail_forever(404)  # not retried: every call fails at once
    settings = config(world, webhook={"url": hook.url, "secret": SECRET, "timeout": 1})
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=NEWS)
    world.ok("--config", str(settings), "start", "c1")

    lines = [line.rstrip() for line in world.ok("status", "c1").stdout.splitlines()]

    # campaign.started, 2 × (channel.created, message.new), campaign.completed
    assert "webhook calls  pending 0 · delivered 0 · failed 6" in lines
    assert not any(line.startswith("push calls") for line in lines)


def test_whether_anyone_has_a_device_is_answered_by_the_partial_index_without_statistics(world):
    """The sender asks it every batch: a table scan here costs a second a batch at a million users."""
    import_users(world, bulk_users(2_000))
    engine = open_engine(world.url)
    with reading(engine) as conn:
        query = ANYONE_WITH_DEVICES.compile(conn, compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        plan = " ".join(str(row) for row in conn.exec_driver_sql(explain + str(query)).all())
    engine.dispose()
    assert "ix_users_with_devices" in plan, plan
