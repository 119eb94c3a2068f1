"""The sender loop through the real CLI: audience, channels, messages, events, commands, limits.

Every test seeds users, channels and segments with the CLI, sends with `campaign start` / `run` /
`send`, and reads back with `get`, `messages list`, `events list` and `channels get`.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from send_helpers import (
    bulk_users,
    channel,
    channels,
    config,
    create_campaign,
    delete_after_planning,
    done,
    events,
    finish,
    get,
    import_channels,
    import_users,
    members,
    messages,
    rfc3339_in,
    segment,
    spawn,
    sql,
    stats,
    stop_process,
    wait_until,
    write_yaml,
)

from campaign_cli.channels import distinct_channel_id
from campaign_cli.sending import loop
from campaign_cli.timeutil import parse_time

DM = {"type": "messaging"}
NEWS = {"type": "messaging", "id": "news-{{ receiver.id }}"}


@pytest.fixture
def world(cli):
    """acme (the sender), alice and carol (FR, with devices), bob (GB), dave (DE)."""
    import_users(cli)
    return cli


def texts(items: list[dict]) -> list[str]:
    return [m["text"] for m in items]


def receivers(cli, campaign_id: str) -> list[str]:
    """The receiver of each message of a campaign, in order (campaigns here put `to` in message custom)."""
    return [m["to"] for m in messages(cli, campaign_id)]


def event_types(cli, campaign_id: str) -> list[str]:
    return [e["type"] for e in events(cli, campaign_id)]


def many_users(cli, count: int) -> list[str]:
    """Import `count` more users u00000… and return their ids."""
    users = bulk_users(count)
    import_users(cli, users)
    return [u["id"] for u in users[1:]]


def to_field(**fields) -> dict:
    """A message template that records the receiver in message custom `to`."""
    return {"text": "Hi {{ receiver.name }}", "custom": {"to": "{{ receiver.id }}"}, **fields}


# ---------------------------------------------------------------- audience


def test_audience_is_the_union_of_segments_deduplicated_in_id_order(world):
    segment(world, "fr", filter={"country": "FR"})
    segment(world, "picked", targets=["carol", "bob", "alice"])
    create_campaign(world, "c1", segment_ids=["fr", "picked"], create_channels=True, channel_template=DM,
                    message_template=to_field())

    started = world.ok("start", "c1", "--json").json()["campaign"]

    assert started["status"] == "completed"
    assert started["stats"]["stats_targets"] == 3
    assert started["stats"]["stats_messages_sent"] == 3
    assert started["stats"]["stats_skipped"] == {}
    assert receivers(world, "c1") == ["alice", "bob", "carol"]
    assert texts(messages(world, "c1")) == ["Hi Alice", "Hi Bob", "Hi Carol"]


def test_user_ids_campaign_dedupes_and_sends_in_id_order(world):
    create_campaign(world, "c1", user_ids=["dave", "bob", "dave"], create_channels=True, channel_template=DM,
                    message_template=to_field())

    world.ok("start", "c1")

    assert stats(world, "c1")["stats_targets"] == 2
    assert receivers(world, "c1") == ["bob", "dave"]


def test_mixed_user_and_channel_segments_in_one_campaign(world):
    import_channels(world, [{"cid": "team:lobby", "name": "Lobby", "members": ["acme", "bob", "carol"]}])
    segment(world, "people", targets=["alice"])
    segment(world, "rooms", "channel", targets=["team:lobby", "team:nowhere"])
    text = "{% if receiver %}Hi {{ receiver.name }}{% else %}Hello {{ channel.name }}{% endif %}"
    create_campaign(world, "c1", segment_ids=["people", "rooms"], create_channels=True, channel_template=DM,
                    message_template={"text": text})

    world.ok("start", "c1")

    sent = messages(world, "c1")
    assert texts(sent) == ["Hi Alice", "Hello Lobby"]
    assert sent[1]["cid"] == "team:lobby"
    assert sorted(members(world, sent[0]["cid"])) == ["acme", "alice"]
    s = stats(world, "c1")
    assert (s["stats_targets"], s["stats_messages_sent"], s["stats_channels_created"]) == (3, 2, 1)
    assert s["stats_skipped"] == {"unknown_channel": 1}
    assert s["stats_users_sent"] == 3  # alice, and bob and carol in the lobby


def test_segments_changed_after_start_do_not_change_the_audience(world):
    segment(world, "picked", targets=["bob"])
    segment(world, "fr", filter={"country": "FR"})
    create_campaign(world, "c1", segment_ids=["picked", "fr"], create_channels=True, channel_template=DM,
                    message_template=to_field())
    world.ok("start", "c1", "--detach")

    world.ok("segment", "add-targets", "picked", "dave")
    world.ok("segment", "remove-targets", "picked", "bob")
    import_users(world, [{"id": "dave", "name": "Dave", "country": "FR"},
                         {"id": "alice", "name": "Alice", "country": "GB"}])
    world.ok("run", "c1")

    assert stats(world, "c1")["stats_targets"] == 3
    assert receivers(world, "c1") == ["alice", "bob", "carol"]


def test_segment_emptied_before_start_completes_with_zero_targets(world):
    segment(world, "picked", targets=["bob", "carol"])
    create_campaign(world, "c1", segment_ids=["picked"], create_channels=True, channel_template=DM)
    world.ok("segment", "remove-targets", "picked", "bob", "carol")

    started = world.ok("start", "c1", "--json").json()["campaign"]

    assert started["status"] == "completed"
    assert {k: started["stats"][k] for k in ("progress", "stats_targets", "stats_messages_sent", "stats_skipped")} == {
        "progress": 1.0, "stats_targets": 0, "stats_messages_sent": 0, "stats_skipped": {}}
    assert messages(world, "c1") == []
    assert event_types(world, "c1") == ["campaign.started", "campaign.completed"]


def test_targets_that_are_no_known_user_are_skipped_and_counted_by_reason(world):
    segment(world, "picked", targets=["bob", "ghost", "zed", "acme"])
    create_campaign(world, "c1", segment_ids=["picked"], create_channels=True, channel_template=DM)

    world.ok("start", "c1")

    s = stats(world, "c1")
    assert (s["stats_targets"], s["stats_messages_sent"], s["progress"]) == (4, 1, 1.0)
    assert s["stats_skipped"] == {"unknown_user": 2, "receiver_is_sender": 1}
    assert texts(messages(world, "c1")) == ["Hi Bob"]


# ---------------------------------------------------------------- channels


def test_distinct_channel_is_created_once_and_reused_by_the_next_campaign(world):
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=DM)
    world.ok("start", "c1")
    first = messages(world, "c1")
    cids = [m["cid"] for m in first]

    created = events(world, "c1", "channel.created")
    assert [e["cid"] for e in created] == cids
    for cid, receiver in zip(cids, ["alice", "bob"]):
        data = channel(world, cid)
        assert cid.startswith("messaging:")
        assert (data["type"], data["created_by_id"], data["member_count"]) == ("messaging", "acme", 2)
        roles = {user_id: m["channel_role"] for user_id, m in members(world, cid).items()}
        assert roles == {"acme": "owner", receiver: "channel_member"}
    assert stats(world, "c1")["stats_channels_created"] == 2

    create_campaign(world, "c2", user_ids=["bob", "alice"], create_channels=True, channel_template=DM)
    world.ok("start", "c2")

    assert [m["cid"] for m in messages(world, "c2")] == cids
    assert stats(world, "c2")["stats_channels_created"] == 0
    assert events(world, "c2", "channel.created") == []
    assert sorted(c["cid"] for c in channels(world)) == sorted(cids)


@pytest.mark.parametrize("create", [True, False])
def test_a_channel_with_an_id_of_its_own_is_never_taken_for_the_distinct_one(world, create):
    # An event channel with exactly the sender and the receiver as members, created with an explicit id.
    import_channels(world, [{"cid": "messaging:paris-meetup-2030-alice", "members": ["alice", "acme"]}])
    create_campaign(world, "c1", user_ids=["alice"], create_channels=create, channel_template=DM)

    world.ok("start", "c1")

    s = stats(world, "c1")
    if create:
        assert [m["cid"] for m in messages(world, "c1")] == ["messaging:!members-4.acme.5.alice"]
        assert s["stats_channels_created"] == 1
    else:
        assert messages(world, "c1") == []
        assert s["stats_skipped"] == {"no_channel": 1}
    assert [m["cid"] for m in messages(world)] == [m["cid"] for m in messages(world, "c1")]


def test_a_channel_imported_without_an_id_is_the_distinct_channel_of_its_members(world):
    import_channels(world, [{"type": "messaging", "members": ["bob", "acme"]}])
    assert [c["cid"] for c in channels(world)] == ["messaging:!members-4.acme.3.bob"]
    create_campaign(world, "c1", user_ids=["bob"], channel_template=DM)

    world.ok("start", "c1")

    assert [m["cid"] for m in messages(world, "c1")] == ["messaging:!members-4.acme.3.bob"]
    assert stats(world, "c1")["stats_channels_created"] == 0


def test_channel_id_is_rendered_from_the_channel_template(world):
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True,
                    channel_template={"type": "news", "id": "news-{{ receiver.id }}"})

    world.ok("start", "c1")

    assert [m["cid"] for m in messages(world, "c1")] == ["news:news-alice", "news:news-bob"]
    assert sorted(members(world, "news:news-bob")) == ["acme", "bob"]


def test_without_create_channels_existing_channels_are_used_and_the_rest_skipped(world):
    import_channels(world, [
        {"cid": "messaging:news-bob", "members": ["acme", "bob"]},
        {"type": "messaging", "members": ["carol", "acme"]},  # no id: the distinct channel of carol and acme
    ])
    create_campaign(world, "by-id", user_ids=["alice", "bob"], channel_template=NEWS)
    create_campaign(world, "distinct", user_ids=["alice", "carol"], channel_template=DM)

    world.ok("start", "by-id")
    world.ok("start", "distinct")

    assert [(m["cid"], m["text"]) for m in messages(world, "by-id")] == [("messaging:news-bob", "Hi Bob")]
    assert [(m["cid"], m["text"]) for m in messages(world, "distinct")] == [("messaging:!members-4.acme.5.carol", "Hi Carol")]
    for campaign_id in ("by-id", "distinct"):
        s = stats(world, campaign_id)
        assert (s["stats_messages_sent"], s["stats_channels_created"], s["stats_skipped"]) == (1, 0, {"no_channel": 1})
    assert len(channels(world)) == 2


@pytest.mark.parametrize(("mode", "created", "existing"), [
    (None, ["acme", "alice"], ["bob"]),
    ("include", ["acme", "alice"], ["acme", "bob"]),
    ("exclude", ["alice"], ["bob"]),
])
def test_sender_mode_decides_where_the_sender_is_a_member(world, mode, created, existing):
    import_channels(world, [{"cid": "messaging:news-bob", "members": ["bob"]}])
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=NEWS,
                    sender_mode=mode)

    world.ok("start", "c1")

    assert sorted(members(world, "messaging:news-alice")) == created
    assert sorted(members(world, "messaging:news-bob")) == existing
    assert [channel(world, cid)["member_count"] for cid in ("messaging:news-alice", "messaging:news-bob")] == [
        len(created), len(existing)]
    assert [(m["cid"], m["user_id"]) for m in messages(world, "c1")] == [
        ("messaging:news-alice", "acme"), ("messaging:news-bob", "acme")]
    assert stats(world, "c1")["stats_users_sent"] == 2


@pytest.mark.parametrize("visibility", ["hidden", "archived"])
def test_sender_visibility_applies_to_the_channels_the_campaign_creates(world, visibility):
    import_channels(world, [{"cid": "messaging:news-bob", "members": ["acme", "bob"]}])
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=NEWS,
                    sender_visibility=visibility)

    world.ok("start", "c1")

    flags = {uid: (m["hidden"], m["archived"]) for uid, m in members(world, "messaging:news-alice").items()}
    assert flags == {"acme": (visibility == "hidden", visibility == "archived"), "alice": (False, False)}
    flags = {uid: (m["hidden"], m["archived"]) for uid, m in members(world, "messaging:news-bob").items()}
    assert flags == {"acme": (False, False), "bob": (False, False)}


def test_show_channels_unhides_hidden_members_when_the_message_lands(world):
    import_channels(world, [
        {"cid": "messaging:news-bob", "members": ["acme", {"user_id": "bob", "hidden": True}]},
        {"cid": "messaging:news-carol", "members": ["acme", {"user_id": "carol", "hidden": True}]},
    ])
    create_campaign(world, "shown", user_ids=["bob"], channel_template=NEWS, show_channels=True)
    create_campaign(world, "quiet", user_ids=["carol"], channel_template=NEWS)

    world.ok("start", "shown")
    world.ok("start", "quiet")

    assert members(world, "messaging:news-bob")["bob"]["hidden"] is False
    assert members(world, "messaging:news-carol")["carol"]["hidden"] is True


def test_team_custom_and_members_template_of_created_channels(world):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template={
        "type": "team", "id": "t-{{ receiver.id }}", "team": "blue",
        "custom": {"topic": "News for {{ receiver.name }}", "priority": 3},
        "members_template": ["{{ receiver.id }}", "carol"]})

    world.ok("start", "c1")

    data = channel(world, "team:t-alice")
    assert {k: data[k] for k in ("type", "id", "team", "created_by_id", "member_count", "topic", "priority")} == {
        "type": "team", "id": "t-alice", "team": "blue", "created_by_id": "acme", "member_count": 3,
        "topic": "News for Alice", "priority": 3}
    assert sorted(members(world, "team:t-alice")) == ["acme", "alice", "carol"]
    assert stats(world, "c1")["stats_users_sent"] == 2


def test_a_campaign_of_10_000_user_ids(world):
    ids = [f"x{i:05}" for i in range(9_998)] + ["alice", "bob"]
    create_campaign(world, "c1", user_ids=ids, create_channels=True, channel_template=DM)

    world.ok("start", "c1")

    got = stats(world, "c1")
    assert (got["stats_targets"], got["stats_messages_sent"], got["stats_skipped"]) == (10_000, 2, {"unknown_user": 9_998})
    assert texts(messages(world, "c1")) == ["Hi Alice", "Hi Bob"]


def test_members_template_objects_give_their_member_a_role_and_custom_fields(world):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template={
        "type": "team", "id": "t-{{ receiver.id }}",
        "members_template": [{"user_id": "{{ receiver.id }}", "channel_role": "channel_moderator", "custom": {"vip": True}},
                             "carol", {"user_id": "acme", "channel_role": "channel_member"}]})

    world.ok("start", "c1")

    got = {user_id: (m["channel_role"], m.get("custom")) for user_id, m in members(world, "team:t-alice").items()}
    assert got == {"alice": ("channel_moderator", {"vip": True}), "carol": ("channel_member", None), "acme": ("owner", None)}


# ---------------------------------------------------------------- messages


def test_messages_are_rendered_with_attachments_custom_and_campaign_id(world):
    attachments = [{"type": "image", "image_url": "https://example.com/spring.png"}]
    create_campaign(world, "c1", name="Spring", user_ids=["alice", "bob"], create_channels=True, channel_template=NEWS,
                    message_template={"text": "Hi {{ receiver.name }} from {{ sender.name }} ({{ campaign.name }})",
                                      "attachments": attachments,
                                      "custom": {"greeting": "Bonjour {{ receiver.country }}", "count": 2,
                                                 "tags": ["a"]}})

    world.ok("start", "c1")

    sent = messages(world, "c1")
    assert [{k: v for k, v in m.items() if k not in ("id", "created_at")} for m in sent] == [
        {"cid": "messaging:news-alice", "user_id": "acme", "text": "Hi Alice from Acme Team (Spring)",
         "type": "regular", "attachments": attachments, "greeting": "Bonjour FR", "count": 2, "tags": ["a"],
         "campaign_id": "c1"},
        {"cid": "messaging:news-bob", "user_id": "acme", "text": "Hi Bob from Acme Team (Spring)",
         "type": "regular", "attachments": attachments, "greeting": "Bonjour GB", "count": 2, "tags": ["a"],
         "campaign_id": "c1"},
    ]
    assert len({m["id"] for m in sent}) == 2
    new = events(world, "c1", "message.new")
    assert [(e["message_id"], e["cid"], e["user_id"]) for e in new] == [(m["id"], m["cid"], "acme") for m in sent]
    for m in sent:
        assert channel(world, m["cid"])["last_message_at"] == m["created_at"]


def test_a_custom_field_that_fails_to_render_fails_that_target_only(world):
    import_users(world, [{"id": "yan", "name": "Yan", "age": 3}, {"id": "zed", "name": "Zed", "age": "old"}])
    create_campaign(world, "c1", user_ids=["yan", "zed"], create_channels=True, channel_template=DM,
                    message_template={"text": "Hi {{ receiver.name }}",
                                      "custom": {"next_age": "{{ receiver.age + 1 }}"}})

    run = world("start", "c1")

    assert (run.exit_code, run.stderr) == (0, "")
    s = stats(world, "c1")
    assert (s["stats_messages_sent"], s["stats_failed"]) == (1, 1)
    assert [(m["text"], m["next_age"]) for m in messages(world, "c1")] == [("Hi Yan", "4")]


def test_messages_list_pages_with_a_cursor(world):
    create_campaign(world, "c1", user_ids=["alice", "bob", "carol", "dave"], create_channels=True,
                    channel_template=DM, message_template=to_field())
    create_campaign(world, "c2", user_ids=["bob"], create_channels=True, channel_template=DM)
    world.ok("start", "c1")
    world.ok("start", "c2")

    pages = []
    cursor: list[str] = []
    while True:
        page = world.ok("messages", "list", "--campaign", "c1", "--limit", "3", "--json", *cursor).json()
        pages.append([m["to"] for m in page["messages"]])
        if "next" not in page:
            break
        cursor = ["--next", page["next"]]

    assert pages == [["alice", "bob", "carol"], ["dave"]]
    assert len(world.ok("messages", "list", "--json").json()["messages"]) == 5


# ---------------------------------------------------------------- events


def test_events_are_recorded_in_order_with_the_campaign_in_started_and_completed(world):
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=NEWS)

    world.ok("start", "c1")

    listed = events(world, "c1")
    assert [(e["type"], e.get("cid")) for e in listed] == [
        ("campaign.started", None),
        ("channel.created", "messaging:news-alice"), ("message.new", "messaging:news-alice"),
        ("channel.created", "messaging:news-bob"), ("message.new", "messaging:news-bob"),
        ("campaign.completed", None)]
    started, completed = listed[0]["campaign"], listed[-1]["campaign"]
    assert (started["id"], started["status"]) == ("c1", "in_progress")
    assert {k: started["stats"][k] for k in ("progress", "stats_targets", "stats_messages_sent")} == {
        "progress": 0.0, "stats_targets": 2, "stats_messages_sent": 0}
    assert (completed["id"], completed["status"]) == ("c1", "completed")
    assert {k: completed["stats"][k] for k in ("progress", "stats_targets", "stats_messages_sent",
                                               "stats_channels_created", "stats_users_sent")} == {
        "progress": 1.0, "stats_targets": 2, "stats_messages_sent": 2, "stats_channels_created": 2,
        "stats_users_sent": 2}
    assert completed["stats"]["stats_completed_at"] is not None
    assert [e["type"] for e in world.ok("events", "list", "--campaign", "c1", "--type", "campaign.completed",
                                        "--json").json()["events"]] == ["campaign.completed"]


# ---------------------------------------------------------------- commands


def test_start_detach_only_freezes_and_run_sends(world):
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=DM)

    detached = world.ok("start", "c1", "--detach", "--json").json()["campaign"]

    assert (detached["status"], detached["stats"]["stats_targets"], detached["stats"]["stats_messages_sent"]) == (
        "in_progress", 2, 0)
    assert messages(world, "c1") == []
    assert world.ok("run", "c1", "--json").json()["campaign"]["status"] == "completed"
    assert texts(messages(world, "c1")) == ["Hi Alice", "Hi Bob"]


def test_run_without_ids_sends_every_due_campaign(world):
    for campaign_id, user in (("c1", "alice"), ("c2", "bob"), ("draft", "carol")):
        create_campaign(world, campaign_id, user_ids=[user], create_channels=True, channel_template=DM)
    world.ok("start", "c1", "--detach")
    world.ok("start", "c2", "--detach")

    world.ok("run")

    assert [get(world, c)["status"] for c in ("c1", "c2", "draft")] == ["completed", "completed", "draft"]
    assert texts(messages(world)) == ["Hi Alice", "Hi Bob"]


def test_scheduled_campaign_is_sent_by_run_once_its_time_has_come(world):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template=DM)
    at = rfc3339_in(1.0)

    scheduled = world.ok("start", "c1", "--at", at, "--json").json()["campaign"]
    assert (scheduled["status"], parse_time(scheduled["scheduled_for"], "t")) == ("scheduled", parse_time(at, "t"))

    world.ok("run")
    assert get(world, "c1")["status"] == "scheduled"
    assert (messages(world), events(world, "c1")) == ([], [])

    wait_until(lambda: time.time() > parse_time(at, "t").timestamp() + 0.05, timeout=5)
    world.ok("run")
    assert get(world, "c1")["status"] == "completed"
    assert texts(messages(world)) == ["Hi Alice"]


def test_stop_at_stops_the_campaign_and_resume_finishes_it_without_duplicates(world):
    ids = many_users(world, 60)
    create_campaign(world, "c1", user_ids=ids, create_channels=True, channel_template=DM, message_template=to_field())

    run = world("start", "c1", "--rate", "20", "--batch-size", "5", "--stop-at", rfc3339_in(0.8), "--json")

    stopped = run.json()["campaign"]
    assert stopped["status"] == "stopped"
    sent = stopped["stats"]["stats_messages_sent"]
    assert 0 < sent < 60 and sent % 5 == 0
    assert (run.exit_code, run.stderr) == (
        6, f"error: campaign c1 stopped at {sent} of 60 targets; 'campaign resume c1' continues\n")
    assert len(messages(world, "c1")) == sent
    assert event_types(world, "c1")[-1] == "campaign.stopped"

    assert world.ok("resume", "c1", "--json").json()["campaign"]["status"] == "completed"
    assert receivers(world, "c1") == ids
    assert stats(world, "c1")["stats_messages_sent"] == 60


def test_stop_from_another_process_is_honoured_within_a_batch_and_resume_continues(world):
    ids = many_users(world, 100)
    create_campaign(world, "c1", user_ids=ids, create_channels=True, channel_template=DM, message_template=to_field())
    sender = spawn(world, "start", "c1", "--rate", "20", "--batch-size", "5")
    try:
        wait_until(lambda: done(world, "c1") >= 5)
        status = world.ok("status", "c1", "--json").json()["campaign"]
        assert status["status"] == "in_progress"
        assert 0 < status["stats"]["progress"] < 1

        world.ok("stop", "c1")
        at_stop = stats(world, "c1")["stats_messages_sent"]
        stopped_at = time.monotonic()
        code, _, err = finish(sender)
        assert time.monotonic() - stopped_at < 2.0, "the sender did not stop within a batch"
    finally:
        stop_process(sender)

    assert (code, err) == (6, f"error: campaign c1 stopped at {at_stop} of 100 targets; 'campaign resume c1' continues\n")
    assert get(world, "c1")["status"] == "stopped"
    assert 0 < at_stop < 100
    assert len(messages(world, "c1")) == at_stop == stats(world, "c1")["stats_messages_sent"]

    world.ok("resume", "c1")
    assert get(world, "c1")["status"] == "completed"
    assert receivers(world, "c1") == ids
    lifecycle = [e for e in events(world, "c1") if e["type"].startswith("campaign.")]
    assert [(e["type"], e["campaign"]["status"]) for e in lifecycle] == [
        ("campaign.started", "in_progress"), ("campaign.stopped", "stopped"), ("campaign.completed", "completed")]
    assert lifecycle[1]["campaign"]["stats"]["stats_messages_sent"] == at_stop


def test_a_campaign_half_sent_by_an_earlier_release_goes_on_after_what_it_sent(world):
    """Before claims, a sender counted its progress on the campaign row alone (`stats_done`, targets in order)."""
    ids = many_users(world, 10)
    create_campaign(world, "c1", user_ids=ids, create_channels=True, channel_template=DM, message_template=to_field())
    world.ok("start", "c1", "--detach")
    sql(world, "UPDATE campaigns SET stats_done = 4, stats_messages_sent = 4 WHERE id = 'c1'")
    sql(world, "UPDATE campaign_targets SET state = 'sent' WHERE seq <= 4")

    world.ok("run", "c1")

    assert receivers(world, "c1") == ids[4:]
    s = stats(world, "c1")
    assert (s["stats_messages_sent"], s["stats_channels_created"], s["progress"]) == (10, 6, 1.0)


def test_send_file_creates_starts_and_runs_and_a_rerun_sends_nothing(world):
    path = write_yaml(world, "send.yaml", {"sender_id": "acme", "user_ids": ["alice", "bob"], "create_channels": True,
                                           "channel_template": DM,
                                           "message_template": {"text": "Hi {{ receiver.name }}"}})

    first = world.ok("send", "-f", str(path), "--json").json()["campaign"]
    again = world("send", "-f", str(path), "--json")

    assert first["status"] == "completed"
    assert first["stats"]["stats_messages_sent"] == 2
    assert again.exit_code == 0
    assert again.json()["campaign"]["id"] == first["id"]
    assert again.stderr == f"campaign {first['id']} already completed; nothing to send\n"
    assert texts(messages(world)) == ["Hi Alice", "Hi Bob"]
    assert [c["id"] for c in world.ok("list", "--json").json()["campaigns"]] == [first["id"]]


@pytest.mark.parametrize(("setup", "command", "message"), [
    (["start"], ["start"], "error: campaign 'c1' is completed: only a draft campaign can be started\n"),
    ([], ["stop"], "error: campaign 'c1' is draft: only a scheduled or in-progress campaign can be stopped\n"),
    (["start"], ["resume"], "error: campaign 'c1' is completed: only a stopped campaign, or an in-progress one "
                            "whose sender died, can be resumed\n"),
    (["start", "--detach"], ["start"], "error: campaign 'c1' is in_progress: only a draft campaign can be started\n"),
    ([], ["resume"], "error: campaign 'c1' is draft: only a stopped campaign, or an in-progress one "
                     "whose sender died, can be resumed\n"),
], ids=["start-completed", "stop-draft", "resume-completed", "start-in-progress", "resume-draft"])
def test_illegal_transitions_exit_5_and_change_nothing(world, setup, command, message):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template=DM)
    if setup:
        world.ok(setup[0], "c1", *setup[1:])
    before = (get(world, "c1"), events(world, "c1"), messages(world), channels(world))

    run = world(command[0], "c1")

    assert (run.exit_code, run.stderr) == (5, message)
    assert (get(world, "c1"), events(world, "c1"), messages(world), channels(world)) == before


def test_start_refuses_when_the_sender_was_deleted_and_the_campaign_stays_draft(world):
    create_campaign(world, "c1", user_ids=["alice"], create_channels=True, channel_template=DM)
    world.ok("users", "delete", "acme")

    run = world("start", "c1")

    assert (run.exit_code, run.stderr) == (
        3, "error: campaign 'c1': sender_id 'acme' is not an existing user (deleted?)\n")
    data = get(world, "c1")
    assert (data["status"], data["stats"]["stats_targets"], data["stats"]["stats_started_at"]) == ("draft", 0, None)
    assert events(world, "c1") == []


def test_run_sends_the_other_due_campaigns_when_one_scheduled_campaign_cannot_begin(world):
    import_users(world, [{"id": "other", "name": "Other"}])
    create_campaign(world, "broken", sender_id="other", user_ids=["bob"], create_channels=True, channel_template=DM)
    create_campaign(world, "fine", user_ids=["alice"], create_channels=True, channel_template=DM)
    at = rfc3339_in(0.8)
    world.ok("start", "broken", "--at", at)
    world.ok("start", "fine", "--detach")
    world.ok("users", "delete", "other")
    wait_until(lambda: time.time() > parse_time(at, "t").timestamp() + 0.05, timeout=5)

    run = world("run")

    assert get(world, "fine")["status"] == "completed"
    assert texts(messages(world)) == ["Hi Alice"]
    assert run.exit_code == 3
    assert "error: campaign 'broken': sender_id 'other' is not an existing user (deleted?)\n" in run.stderr


# ---------------------------------------------------------------- limits


def test_rate_spreads_the_batches_over_time(world):
    ids = many_users(world, 40)
    create_campaign(world, "c1", user_ids=ids, create_channels=True, channel_template=DM)

    began = time.monotonic()
    world.ok("start", "c1", "--rate", "20")
    elapsed = time.monotonic() - began

    # A token bucket of 20/s (burst 20) needs at least (40 - 20) / 20 = 1 s for 40 targets.
    assert elapsed >= 1.0
    stamps = sorted({parse_time(m["created_at"], "t") for m in messages(world, "c1")})
    assert len(stamps) == 2
    # The bucket paces the starts of batches exactly one second apart (test_the_token_bucket_…). A
    # message is stamped when its batch is written, after the batch's own work, which is longer for
    # the first batch (a cold start, on a machine running other tests): the stamps are a little closer.
    assert stamps[1] - stamps[0] >= timedelta(seconds=0.75)


def test_the_token_bucket_paces_takes_at_the_rate_after_a_first_burst(monkeypatch):
    clock = [100.0]
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(round(seconds, 9))
        clock[0] += seconds

    monkeypatch.setattr(loop.time, "monotonic", lambda: clock[0])
    bucket = loop.TokenBucket(rate=20, capacity=20, wait=wait)
    bucket.take(20)  # the first burst goes at once
    clock[0] += 0.3  # the batch's own work
    bucket.take(20)  # waits the rest of the second since the first take
    bucket.take(5)
    assert waits == [0.7, 0.25]
    clock[0] += 60  # a long pause fills the bucket only up to its capacity
    bucket.take(20)
    bucket.take(1)
    assert waits == [0.7, 0.25, 0.05]


def test_a_rate_limited_campaign_completes_right_after_its_last_batch(world):
    ids = many_users(world, 20)
    create_campaign(world, "c1", user_ids=ids, create_channels=True, channel_template=DM)

    world.ok("start", "c1", "--rate", "20")

    last_message = parse_time(messages(world, "c1")[-1]["created_at"], "t")
    completed = parse_time(stats(world, "c1")["stats_completed_at"], "t")
    assert completed - last_message < timedelta(seconds=0.5)


def test_quota_refuses_an_audience_larger_than_what_is_left_this_month(world):
    quota = config(world, quota={"monthly_messages": 4})
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=DM)
    create_campaign(world, "c2", user_ids=["alice", "bob", "carol"], create_channels=True, channel_template=DM)
    world.ok("--config", str(quota), "start", "c1")
    before = (get(world, "c2"), channels(world))

    run = world("--config", str(quota), "start", "c2")

    assert (run.exit_code, run.stderr) == (
        5, "error: quota: the audience has 3 targets but only 2 of 4 monthly messages are left this month\n")
    assert (get(world, "c2"), channels(world)) == before
    assert get(world, "c2")["status"] == "draft"
    assert events(world, "c2") == []
    frozen = sql(world, "SELECT count(*) FROM campaign_targets JOIN campaigns ON pk = campaign_pk WHERE id = 'c2'")
    assert frozen == [(0,)]


def test_quota_counts_the_targets_of_campaigns_still_in_progress(world):
    quota = config(world, quota={"monthly_messages": 4})
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=DM)
    create_campaign(world, "c2", user_ids=["bob", "carol", "dave"], create_channels=True, channel_template=DM)
    world.ok("--config", str(quota), "start", "c1", "--detach")

    run = world("--config", str(quota), "start", "c2", "--detach")
    world.ok("--config", str(quota), "run")

    assert run.exit_code == 5
    assert run.stderr.startswith("error: quota: the audience has 3 targets but only 2 of 4 monthly messages")
    assert get(world, "c2")["status"] == "draft"
    assert len(messages(world)) == 2


# ---------------------------------------------------------------- reads


def test_users_read_counts_read_markers_at_or_after_the_message(world):
    create_campaign(world, "c1", user_ids=["alice", "bob", "carol"], create_channels=True, channel_template=NEWS)
    world.ok("start", "c1")
    sent_at = parse_time(messages(world, "c1")[0]["created_at"], "t")
    later = (sent_at + timedelta(seconds=5)).isoformat()
    earlier = (sent_at - timedelta(days=1)).isoformat()
    assert stats(world, "c1")["stats_users_read"] == 0

    import_channels(world, [
        {"cid": "messaging:news-alice", "members": ["acme", {"user_id": "alice", "last_read_at": later}]},
        {"cid": "messaging:news-bob", "members": ["acme", {"user_id": "bob", "last_read_at": earlier}]},
        {"cid": "messaging:news-carol", "members": [{"user_id": "acme", "last_read_at": later}, "carol"]},
    ])

    assert stats(world, "c1")["stats_users_read"] == 1



def test_a_receiver_deleted_between_plan_and_write_is_skipped_and_left_no_membership(world, monkeypatch):
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=DM)
    delete_after_planning(world, monkeypatch, "bob")

    world.ok("start", "c1")

    assert texts(messages(world)) == ["Hi Alice"]
    s = stats(world, "c1")
    assert (s["stats_messages_sent"], s["stats_skipped"]) == (1, {"unknown_user": 1})
    assert sql(world, "select user_id from channel_members where user_id not in (select id from users)") == []
    assert [c["member_count"] for c in channels(world)] == [2]


def test_a_receiver_deleted_while_another_targets_channel_is_created_meanwhile(world, monkeypatch):
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=DM)
    alice_dm = {"type": "messaging", "id": distinct_channel_id(["acme", "alice"]), "members": ["acme", "alice"]}
    delete_after_planning(world, monkeypatch, "bob", and_then=lambda: import_channels(world, [alice_dm]))

    world.ok("start", "c1")

    assert texts(messages(world)) == ["Hi Alice"]
    assert stats(world, "c1")["stats_skipped"] == {"unknown_user": 1}
    assert [(c["cid"], c["member_count"]) for c in channels(world)] == [(f"messaging:{alice_dm['id']}", 2)]


def test_a_sender_deleted_between_plan_and_write_stops_the_run_with_nothing_written(world, monkeypatch):
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=DM)
    delete_after_planning(world, monkeypatch, "acme")

    run = world("start", "c1")

    assert (run.exit_code, run.stderr) == (3, "error: campaign 'c1': sender_id 'acme' is not an existing user (deleted?)\n")
    assert (messages(world), channels(world), sql(world, "select count(*) from channel_members")) == ([], [], [(0,)])
