"""The --json outputs validate against the response schemas of Stream Chat's Campaign API.

The schemas are in tests/stream_schemas.json, derived from GetStream/protocol's OpenAPI
document by tests/derive_stream_schemas.py (its source, version and the differences kept on
purpose are recorded in the file and listed in the README).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from send_helpers import config, create_campaign, import_users, rfc3339_in, segment

SCHEMAS = json.loads(Path(__file__).with_name("stream_schemas.json").read_text(encoding="utf-8"))
FORMATS = FormatChecker()
DM = {"type": "messaging"}


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    """An RFC 3339 time with an offset (the checker jsonschema ships needs an extra package)."""
    if not isinstance(value, str):
        return True
    return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def errors(document: object, schema: str) -> list[str]:
    """Every way `document` breaks the API schema `schema`, as 'path: message' lines."""
    validator = Draft202012Validator({**SCHEMAS, "$ref": f"#/$defs/{schema}"}, format_checker=FORMATS)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document))


@pytest.fixture
def world(cli):
    """Users, a manual user segment with targets, a filter segment and a channel segment."""
    import_users(cli)
    segment(cli, "picked", targets=["alice", "bob", "ghost"], name="Picked", description="By hand")
    segment(cli, "french", filter={"country": "FR"})
    segment(cli, "nowhere", "channel", filter={"team": "none"})
    return cli


def test_the_schemas_record_their_source():
    assert SCHEMAS["source"] == {
        "repository": "https://github.com/GetStream/protocol", "path": "openapi/chat-openapi.json",
        "version": "v236.0.4", "api_version": "v236.0.4", "commit": "e51a64d3f2b83dcb5926da74fc0d4e133668eaea"}


def test_a_wrong_type_or_a_missing_required_key_is_caught(world):
    """The check can fail: the same document, broken, does not validate."""
    create_campaign(world, "c1", segment_ids=["picked"], create_channels=True, channel_template=DM)
    document = world.ok("get", "c1", "--json").json()
    assert errors(document, "GetCampaignResponse") == []
    document["campaign"]["sender_mode"] = None
    del document["campaign"]["stats"]["stats_users_read"]
    assert errors(document, "GetCampaignResponse") == [
        "campaign/sender_mode: None is not of type 'string'",
        "campaign/stats: 'stats_users_read' is a required property",
    ]


def test_a_completed_campaign(world):
    create_campaign(world, "c1", segment_ids=["picked", "french"], create_channels=True, channel_template=DM,
                    message_template={"text": "Hi {{ receiver.name }}", "custom": {"release": "2.0"}})
    started = world.ok("start", "c1", "--json").json()
    got = world.ok("get", "c1", "--json", "--users-limit", "2").json()

    assert started["campaign"]["status"] == "completed"
    assert errors(started, "StartCampaignResponse") == []
    assert errors(got, "GetCampaignResponse") == []
    campaign = got["campaign"]
    assert [s["id"] for s in campaign["segments"]] == ["picked", "french"]
    assert ([u["id"] for u in campaign["users"]], sorted(got["users"])) == (["alice", "bob"], ["next"])
    assert campaign["sender"]["id"] == "acme"


def test_a_scheduled_campaign(world):
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=DM)
    scheduled = world.ok("start", "c1", "--at", rfc3339_in(3600), "--json").json()

    assert scheduled["campaign"]["status"] == "scheduled"
    assert errors(scheduled, "StartCampaignResponse") == []
    assert errors(world.ok("status", "c1", "--json").json(), "GetCampaignResponse") == []


def test_campaign_webhook_bodies(world, receivers):
    hook = receivers()
    settings = config(world, webhook={"url": hook.url})
    create_campaign(world, "c1", user_ids=["alice", "bob"], create_channels=True, channel_template=DM)
    world.ok("--config", str(settings), "start", "c1")

    bodies = {body["type"]: body for body in (json.loads(request.body) for request in hook.requests)}
    assert errors(bodies["campaign.started"], "CampaignStartedEvent") == []
    assert errors(bodies["campaign.completed"], "CampaignCompletedEvent") == []
    assert bodies["campaign.completed"]["campaign"]["status"] == "completed"


def test_create_and_update_print_a_campaign_document(world):
    created = world.ok("create", "--id", "c1", "--sender", "acme", "--user", "alice", "--text", "Hi", "--json").json()
    assert errors(created, "CreateCampaignResponse") == []
    path = world.write("u.yaml", "name: Renamed\n")
    assert errors(world.ok("update", "c1", "-f", str(path), "--json").json(), "GetCampaignResponse") == []


def test_segments(world):
    assert errors(world.ok("segment", "get", "picked", "--json").json(), "GetSegmentResponse") == []
    created = world.ok("segment", "create", "--type", "user", "--id", "all", "--all-users", "--json").json()
    assert errors(created, "CreateSegmentResponse") == []
    updated = world.ok("segment", "update", "all", "--name", "Everyone", "--json").json()
    assert errors(updated, "UpdateSegmentResponse") == []


def test_every_list(world):
    for number in range(3):
        create_campaign(world, f"c{number}", segment_ids=["picked"])
    campaigns = world.ok("list", "--json", "--limit", "2").json()
    second = world.ok("list", "--json", "--limit", "2", "--next", campaigns["next"]).json()
    segments = world.ok("segment", "list", "--json", "--limit", "2").json()
    targets = world.ok("segment", "targets", "picked", "--json", "--limit", "2").json()

    assert (len(campaigns["campaigns"]), sorted(second)) == (2, ["campaigns", "prev"])
    for document, schema in ((campaigns, "QueryCampaignsResponse"), (second, "QueryCampaignsResponse"),
                             (segments, "QuerySegmentsResponse"), (targets, "QuerySegmentTargetsResponse")):
        assert errors(document, schema) == []
    assert [t["target_id"] for t in targets["targets"]] == ["alice", "bob"]
