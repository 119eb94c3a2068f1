"""`campaign preview`: the next targets as the sender would handle them, writing nothing."""

from __future__ import annotations

import pytest
from send_helpers import channels, create_campaign, import_channels, import_users, messages, segment, sql

DM = {"type": "messaging"}


@pytest.fixture
def world(cli):
    """acme (the sender), alice and carol (FR), bob (GB), dave (DE)."""
    import_users(cli)
    return cli


def preview(cli, campaign_id: str, *args: str) -> list[dict]:
    return cli.ok("preview", campaign_id, "--json", *args).json()["targets"]


def test_preview_renders_the_first_targets_and_says_what_would_happen(world):
    import_users(world, [{"id": "erin", "name": "Erin"}])  # no country
    import_channels(world, [{"cid": "messaging:hello-bob", "members": ["acme", "bob"]}])
    segment(world, "mixed", targets=["alice", "bob", "erin", "ghost"])
    create_campaign(world, "c1", segment_ids=["mixed"], create_channels=True,
                    channel_template={"type": "messaging", "id": "hello-{{ receiver.id }}"},
                    message_template={"text": "Hi {{ receiver.name }} ({{ receiver.country }})"})
    before = (channels(world), sql(world, "SELECT count(*) FROM campaign_targets"), sql(world, "SELECT count(*) FROM events"))

    items = preview(world, "c1")

    assert [(i["target_id"], i["cid"], i["action"], i["text"], i["missing_fields"]) for i in items] == [
        ("alice", "messaging:hello-alice", "create channel", "Hi Alice (FR)", []),
        ("bob", "messaging:hello-bob", "existing channel", "Hi Bob (GB)", []),
        ("erin", "messaging:hello-erin", "create channel", "Hi Erin ()", ["receiver.country"]),
        ("ghost", None, "skipped: unknown_user", None, []),
    ]
    after = (channels(world), sql(world, "SELECT count(*) FROM campaign_targets"), sql(world, "SELECT count(*) FROM events"))
    assert after == before
    assert messages(world) == []
    assert world.ok("get", "c1", "--json").json()["campaign"]["status"] == "draft"


def test_preview_limit_and_skips_without_channel_creation(world):
    create_campaign(world, "c1", user_ids=["dave", "carol", "bob", "alice"], channel_template=DM)

    items = preview(world, "c1", "--limit", "2")

    assert [(i["target_id"], i["action"]) for i in items] == [("alice", "skipped: no_channel"), ("bob", "skipped: no_channel")]


def test_preview_of_a_channel_campaign_renders_the_channel(world):
    import_channels(world, [{"cid": "support:eu", "team": "eu", "members": ["acme", "alice"]}])
    segment(world, "support", "channel", filter={"type": "support"})
    create_campaign(world, "c1", segment_ids=["support"], message_template={"text": "News for {{ channel.team }}"})

    assert preview(world, "c1") == [{"target_id": "support:eu", "kind": "channel", "cid": "support:eu",
                                     "action": "existing channel", "text": "News for eu", "missing_fields": []}]


def test_preview_of_a_started_campaign_shows_the_targets_not_done_yet(world):
    create_campaign(world, "c1", user_ids=["alice", "bob", "carol"], create_channels=True, channel_template=DM)
    world.ok("start", "c1", "--detach")

    assert [i["target_id"] for i in preview(world, "c1")] == ["alice", "bob", "carol"]
    world.ok("run", "c1")
    assert preview(world, "c1") == []


@pytest.mark.parametrize("limit", ["0", "1001"])
def test_preview_limit_out_of_range_is_exit_3(world, limit):
    create_campaign(world, "c1", user_ids=["alice"], channel_template=DM)

    run = world("preview", "c1", "--limit", limit)

    assert (run.exit_code, run.stderr) == (3, f"error: --limit: must be between 1 and 1000, got {limit}\n")


def test_preview_of_an_unknown_campaign_is_exit_4(world):
    run = world("preview", "nope")
    assert (run.exit_code, run.stderr) == (4, "error: campaign 'nope' not found\n")
