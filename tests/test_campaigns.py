"""Campaign definitions through the real CLI: create, validate, update, delete, get, status."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from campaign_cli.records import RecordSource
from campaign_cli.store.engine import open_engine, writing
from campaign_cli.store.models import SEGMENTS
from campaign_cli.timeutil import to_local
from campaign_cli.users import import_users

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

BASE = {
    "id": "spring",
    "name": "Spring release",
    "sender_id": "acme",
    "segment_ids": ["beta-testers"],
    "message_template": {"text": "Hi {{ receiver.name }}"},
}


def add_segments(engine: Engine, segments: list[tuple[str, str]], deleted: bool = False) -> None:
    """Insert (id, type) segments directly: the segment commands are another module's."""
    stamp = datetime.now(timezone.utc)
    with writing(engine) as conn:
        conn.execute(SEGMENTS.insert(), [
            {"id": segment_id, "type": kind, "name": "", "description": "", "filter": None, "all_users": False,
             "all_sender_channels": False, "size": 0, "created_at": stamp, "updated_at": stamp,
             "deleted_at": stamp if deleted else None}
            for segment_id, kind in segments
        ])


def sql(cli, statement: str, *params) -> list[tuple]:
    return cli.sql(statement, *params)


def campaigns_table(cli) -> list[tuple]:
    """Every stored campaign row: to prove a command changed nothing."""
    return sql(cli, "SELECT * FROM campaigns ORDER BY pk")


@pytest.fixture
def seeded(cli):
    """Users from examples/users.jsonl and the segments the examples and tests reference."""
    engine = open_engine(cli.url)
    import_users(engine, [RecordSource(str(EXAMPLES / "users.jsonl"))])
    add_segments(engine, [("beta-testers", "user"), ("users-in-france", "user"), ("eu-support-channels", "channel"),
                          ("vip-channels", "channel")] + [(f"s{i:02}", "user") for i in range(1, 27)])
    add_segments(engine, [("old-segment", "user")], deleted=True)
    engine.dispose()
    return cli


def definition(**changes) -> dict:
    spec = {**BASE, **changes}
    return {k: v for k, v in spec.items() if v is not None}


def write_yaml(cli, name: str, data) -> Path:
    return cli.write(name, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def create(cli, **changes) -> dict:
    """The campaign object `create --json` prints under `campaign`."""
    path = write_yaml(cli, "create.yaml", definition(**changes))
    return cli.ok("create", "-f", str(path), "--json").json()["campaign"]


def get(cli, campaign_id: str) -> dict:
    """The campaign object `get` prints under `campaign`."""
    return cli.ok("get", campaign_id).json()["campaign"]


# ---------------------------------------------------------------- bad input: every rule, at create, validate and update

BAD = [
    ("both targets", {"user_ids": ["alice"]}, "segment_ids, user_ids: give exactly one of them, not both"),
    ("no targets", {"segment_ids": [], "user_ids": []}, "segment_ids, user_ids: give one of them (the campaign has no targets)"),
    ("26 segments", {"segment_ids": [f"s{i:02}" for i in range(1, 27)]}, "segment_ids: at most 25 segments, got 26"),
    ("10001 user ids", {"segment_ids": [], "user_ids": [f"u{i}" for i in range(10_001)]},
     "user_ids: at most 10,000 user ids, got 10,001"),
    ("unknown sender", {"sender_id": "ghost"}, "sender_id: user 'ghost' not found"),
    ("no sender", {"sender_id": None}, "sender_id: required"),
    ("deleted segment", {"segment_ids": ["beta-testers", "old-segment"]}, "segment_ids: segment 'old-segment' is deleted"),
    ("unknown segment", {"segment_ids": ["nope"]}, "segment_ids: segment 'nope' not found"),
    ("unclosed", {"message_template": {"text": "Hi {{ receiver.name"}},
     "message_template.text: line 1: unexpected end of template, expected 'end of print statement'."),
    ("receiver for channels", {"segment_ids": ["eu-support-channels", "vip-channels"]},
     "message_template.text: line 1: 'receiver' is not available: the campaign targets only channels"),
    ("for garbage", {"message_template": {"text": "Hi\n{% for %}"}},
     "message_template.text: line 2: Expected an expression, got 'end of statement block'"),
    ("unknown variable", {"message_template": {"text": "{{ user.name }}"}},
     "message_template.text: line 1: unknown variable 'user' (use sender, receiver, channel or campaign)"),
    ("no text", {"message_template": {"custom": {"a": 1}}}, "message_template.text: required"),
    ("no message_template", {"message_template": None}, "message_template: required"),
    ("31 attachments", {"message_template": {"text": "Hi", "attachments": [{"type": "file"}] * 31}},
     "message_template.attachments: at most 30 attachments, got 31"),
    ("create_channels without channel_template", {"create_channels": True},
     "channel_template: required when create_channels is true and the campaign targets users"),
    ("channel_template without type", {"channel_template": {"id": "x"}}, "channel_template.type: required"),
    ("members and members_template", {"channel_template": {"type": "messaging", "members": ["alice"],
                                                           "members_template": ["{{ sender.id }}"]}},
     "channel_template: members and members_template are exclusive; give one of them"),
    ("1001 members", {"channel_template": {"type": "messaging", "members": [f"u{i}" for i in range(1001)]}},
     "channel_template.members: at most 1,000 members, got 1,001"),
    ("members_template object without user_id", {"channel_template": {"type": "messaging", "members_template": [
        "{{ receiver.id }}", {"channel_role": "channel_moderator"}]}},
     "channel_template.members_template[1].user_id: required"),
    ("members_template object with an unknown key", {"channel_template": {"type": "messaging", "members_template": [
        {"user_id": "acme", "role": "admin"}]}},
     "channel_template.members_template[0]: unknown key 'role'"),
    ("members_template custom not a mapping", {"channel_template": {"type": "messaging", "members_template": [
        {"user_id": "acme", "custom": "vip"}]}},
     "channel_template.members_template[0].custom: must be a mapping"),
    ("searchable not a bool", {"message_template": {"text": "Hi", "searchable": "no"}},
     "message_template.searchable: must be true or false, got 'no'"),
    ("channel in channel_template", {"channel_template": {"type": "messaging", "id": "{{ channel.id }}"}},
     "channel_template.id: line 1: 'channel' is not available in channel_template: the channel does not exist yet"),
    ("sender_mode everyone", {"sender_mode": "everyone"}, "sender_mode: must be include, exclude or null, got 'everyone'"),
    ("sender_visibility", {"sender_visibility": "gone"}, "sender_visibility: must be hidden, archived or null, got 'gone'"),
    ("time without offset", {"scheduled_for": "2026-12-01 09:00"},
     "scheduled_for: time '2026-12-01 09:00' has no offset (add Z or +HH:MM)"),
    ("not a time", {"stop_at": "next monday"}, "stop_at: not an RFC 3339 time: 'next monday'"),
    ("stop_at before scheduled_for", {"scheduled_for": "2030-01-02T00:00:00Z", "stop_at": "2030-01-01T00:00:00Z"},
     "stop_at: must be after scheduled_for"),
    ("unknown key", {"audience": "everyone"}, "unknown key 'audience'"),
    ("status", {"status": "completed"},
     "status: a definition cannot set the status (a new campaign is a draft; use start/stop)"),
    ("stats", {"stats": {}}, "stats: set by campaign, not by a definition"),
    ("flag type", {"skip_push": "yes"}, "skip_push: must be true or false, got 'yes'"),
    ("unknown message key", {"message_template": {"text": "Hi", "html": "<b>"}}, "message_template: unknown key 'html'"),
    ("campaign_id custom", {"message_template": {"text": "Hi", "custom": {"campaign_id": "x"}}},
     "message_template.custom.campaign_id: set by campaign on every message"),
]


# An update file holds only the fields to change, so a field cannot be removed by leaving it out.
NOT_BY_UPDATE = {"no sender", "no message_template"}


@pytest.mark.parametrize(("case", "changes", "problem"), BAD, ids=[case[0] for case in BAD])
def test_bad_definition_is_rejected_by_validate_create_and_update_changing_nothing(seeded, case, changes, problem):
    create(seeded)
    before = campaigns_table(seeded)
    path = write_yaml(seeded, "bad.yaml", definition(id=None, **changes))
    commands = [("validate", str(path)), ("create", "-f", str(path))]
    if case not in NOT_BY_UPDATE:
        commands.append(("update", "spring", "-f", str(path)))
    for command in commands:
        run = seeded(*command)
        assert (command[0], run.exit_code, run.stderr) == (command[0], 3, f"error: {path}: {problem}\n")
        assert campaigns_table(seeded) == before


def test_unquoted_time_without_offset_in_yaml_is_rejected(seeded):
    path = seeded.write("c.yaml", "id: x\nsender_id: acme\nuser_ids: [alice]\nmessage_template: {text: Hi}\n"
                                  "scheduled_for: 2026-12-01 09:00\n")
    run = seeded("create", "-f", str(path))
    assert (run.exit_code, run.stderr) == (
        3, f"error: {path}: scheduled_for: time '2026-12-01 09:00' has no offset (add Z or +HH:MM)\n")
    assert campaigns_table(seeded) == []


def test_every_problem_of_every_definition_is_listed_and_nothing_is_created(seeded):
    path = write_yaml(seeded, "many.yaml", {"campaigns": [
        definition(id="good"),
        definition(id="bad-1", sender_id="ghost", sender_mode="all"),
        definition(id="bad-2", segment_ids=["eu-support-channels"], create_channels=True),
    ]})
    run = seeded("create", "-f", str(path))
    assert run.exit_code == 3
    assert run.stderr.splitlines() == [
        f"error: {path}: campaigns[1]: sender_mode: must be include, exclude or null, got 'all'",
        f"error: {path}: campaigns[1]: sender_id: user 'ghost' not found",
        f"error: {path}: campaigns[2]: message_template.text: line 1: 'receiver' is not available: "
        "the campaign targets only channels",
    ]
    assert campaigns_table(seeded) == []


def test_create_a_list_of_campaigns_in_one_file(seeded):
    path = write_yaml(seeded, "two.yaml", {"campaigns": [definition(id="one"), definition(id="two", segment_ids=[],
                                                                                         user_ids=["alice"])]})
    created = seeded.ok("create", "-f", str(path), "--json").json()
    assert [(c["id"], c["status"]) for c in created["campaigns"]] == [("one", "draft"), ("two", "draft")]
    path = write_yaml(seeded, "three.yaml", {"campaigns": [definition(id="three")]})
    run = seeded.ok("create", "-f", str(path))
    assert (run.stdout, run.stderr) == ("three\n", "created campaign 'three' (Spring release) as a draft\n")


def test_create_channels_needs_no_channel_template_for_channel_targets(seeded):
    campaign = create(seeded, segment_ids=["eu-support-channels"], create_channels=True,
                      message_template={"text": "Hello {{ channel.id }}"})
    assert (campaign["create_channels"], "channel_template" in campaign) == (True, False)


def test_duplicate_id_is_a_conflict(seeded):
    create(seeded)
    before = campaigns_table(seeded)
    path = write_yaml(seeded, "again.yaml", definition(name="Another"))
    run = seeded("create", "-f", str(path))
    assert (run.exit_code, run.stderr) == (5, f"error: {path}: id: campaign 'spring' already exists\n")
    assert campaigns_table(seeded) == before


def test_duplicate_id_within_one_file_is_a_conflict(seeded):
    path = write_yaml(seeded, "twice.yaml", {"campaigns": [definition(), definition(name="Again")]})
    run = seeded("create", "-f", str(path))
    assert (run.exit_code, run.stderr) == (
        5, f"error: {path}: campaigns[1]: id: campaign 'spring' is defined twice (first at {path}: campaigns[0])\n")
    assert campaigns_table(seeded) == []


def test_bad_yaml_and_missing_file(seeded):
    path = seeded.write("broken.yaml", "id: x\nmessage_template: {text: [\n")
    run = seeded("create", "-f", str(path))
    assert run.exit_code == 3
    assert run.stderr.startswith(f"error: {path}:3: bad YAML: ")
    run = seeded("create", "-f", str(seeded.cwd / "nope.yaml"))
    assert (run.exit_code, run.stderr) == (3, f"error: {seeded.cwd / 'nope.yaml'}: file not found\n")
    empty = seeded.write("empty.yaml", "campaigns: []\n")
    run = seeded("create", "-f", str(empty))
    assert (run.exit_code, run.stderr) == (3, f"error: {empty}: holds no campaign definitions\n")


# ---------------------------------------------------------------- create and the JSON shape


def test_create_from_file_stores_the_definition_as_a_draft(seeded):
    campaign = create(seeded, description="All beta testers", sender_mode="include", sender_visibility="hidden",
                      create_channels=True, show_channels=True, skip_push=True,
                      channel_template={"type": "messaging", "members_template": ["{{ receiver.id }}"]},
                      message_template={"text": "Hi {{ receiver.name }}", "attachments": [{"type": "image"}],
                                        "custom": {"release": "2.0"}},
                      scheduled_for="2030-05-13T09:00:00+02:00", stop_at="2030-05-13T21:00:00+02:00")
    created_at = campaign.pop("created_at")
    assert campaign.pop("updated_at") == created_at
    assert datetime.fromisoformat(created_at.replace("Z", "+00:00")) > datetime.now(timezone.utc) - timedelta(minutes=1)
    segment = seeded.ok("segment", "get", "beta-testers", "--json").json()["segment"]
    acme = seeded.ok("users", "get", "acme", "--json").json()
    assert campaign == {
        "id": "spring", "name": "Spring release", "description": "All beta testers",
        "segment_ids": ["beta-testers"], "user_ids": [], "sender_id": "acme",
        "segments": [{k: v for k, v in segment.items() if k not in ("description", "filter", "deleted_at")}],
        "users": [],
        "sender": {"id": "acme", "name": "Acme Team", "role": "admin", "teams": [], "language": "", "created_at": acme["created_at"],
                   "updated_at": acme["updated_at"], "banned": False, "custom": {}, "online": False, "invisible": False,
                   "shadow_banned": False, "blocked_user_ids": []},
        "sender_mode": "include", "sender_visibility": "hidden",
        "message_template": {"text": "Hi {{ receiver.name }}", "attachments": [{"type": "image"}],
                             "custom": {"release": "2.0"}},
        "create_channels": True,
        "channel_template": {"type": "messaging", "members_template": ["{{ receiver.id }}"]},
        "show_channels": True, "skip_push": True, "skip_webhook": False,
        "scheduled_for": "2030-05-13T07:00:00Z", "stop_at": "2030-05-13T19:00:00Z",
        "status": "draft",
        "stats": {"progress": 0.0, "stats_started_at": None, "stats_completed_at": None, "stats_messages_sent": 0,
                  "stats_channels_created": 0, "stats_users_sent": 0, "stats_users_read": 0, "stats_targets": 0,
                  "stats_skipped": {}, "stats_failed": 0, "stats_failed_reasons": {}},
    }
    assert seeded.ok("get", "spring", "--json").json() == {
        "campaign": {**campaign, "created_at": created_at, "updated_at": created_at}, "users": {}}


def test_searchable_is_kept_in_the_message_template(seeded):
    campaign = create(seeded, message_template={"text": "Hi", "searchable": False})
    assert campaign["message_template"] == {"text": "Hi", "searchable": False}
    assert get(seeded, "spring")["message_template"] == {"text": "Hi", "searchable": False}


def test_create_from_flags(seeded):
    run = seeded.ok("create", "--id", "pilot", "--name", "Pilot", "--sender", "acme", "--user", "alice", "--user", "bob",
                    "--text", "Hi {{ receiver.name }}", "--create-channels", "--channel-type", "messaging")
    assert run.stdout == "pilot\n"
    assert run.stderr == "created campaign 'pilot' (Pilot) as a draft\n"
    campaign = get(seeded, "pilot")
    assert (campaign["user_ids"], campaign["segment_ids"], campaign["create_channels"], campaign["channel_template"],
            campaign["message_template"]) == (["alice", "bob"], [], True, {"type": "messaging"},
                                              {"text": "Hi {{ receiver.name }}"})
    assert [u["id"] for u in campaign["users"]] == ["alice", "bob"]


def test_create_from_flags_generates_an_id_and_takes_segments(seeded):
    run = seeded.ok("create", "--sender", "acme", "--segment", "eu-support-channels", "--segment", "vip-channels",
                    "--text", "Hello {{ channel.id }}", "--json")
    campaign = run.json()["campaign"]
    assert len(campaign["id"]) == 36
    assert campaign["segment_ids"] == ["eu-support-channels", "vip-channels"]


def test_create_from_flags_is_validated(seeded):
    run = seeded("create", "--sender", "acme", "--segment", "eu-support-channels", "--text", "Hi {{ receiver.name }}")
    assert (run.exit_code, run.stderr) == (
        3, "error: command line: message_template.text: line 1: 'receiver' is not available: "
           "the campaign targets only channels\n")
    assert campaigns_table(seeded) == []


def test_create_needs_a_file_or_flags_but_not_both(seeded):
    path = write_yaml(seeded, "c.yaml", definition())
    run = seeded("create", "-f", str(path), "--text", "Hi")
    assert (run.exit_code, run.stderr) == (2, "error: give either -f FILE or field flags (--sender, --text, …), not both\n")
    run = seeded("create")
    assert (run.exit_code, run.stderr) == (2, "error: give -f FILE or field flags (--sender, --text, --segment or --user, …)\n")
    assert campaigns_table(seeded) == []


# ---------------------------------------------------------------- update and delete


def test_update_replaces_the_given_fields_and_keeps_the_rest(seeded):
    before = create(seeded, skip_push=True)
    path = write_yaml(seeded, "u.yaml", {"name": "Spring 2", "segment_ids": [], "user_ids": ["alice"],
                                         "message_template": {"text": "Yo {{ receiver.name }}"}})
    document = seeded.ok("update", "spring", "-f", str(path), "--json").json()
    updated = document["campaign"]
    assert (updated["name"], updated["segment_ids"], updated["user_ids"], updated["message_template"]["text"],
            updated["skip_push"], updated["created_at"]) == (
        "Spring 2", [], ["alice"], "Yo {{ receiver.name }}", True, before["created_at"])
    assert updated["updated_at"] > before["updated_at"]
    assert seeded.ok("get", "spring").json() == document


def test_update_a_scheduled_campaign(seeded):
    create(seeded, scheduled_for="2030-01-01T00:00:00Z")
    sql(seeded, "UPDATE campaigns SET status = 'scheduled'")
    path = write_yaml(seeded, "u.yaml", {"stop_at": "2030-01-02T00:00:00Z"})
    assert seeded.ok("update", "spring", "-f", str(path), "--json").json()["campaign"]["stop_at"] == "2030-01-02T00:00:00Z"
    before = campaigns_table(seeded)
    path = write_yaml(seeded, "u.yaml", {"scheduled_for": None})
    run = seeded("update", "spring", "-f", str(path))
    assert (run.exit_code, run.stderr) == (
        3, f"error: {path}: scheduled_for: a scheduled campaign needs a time (stop it to unschedule)\n")
    assert campaigns_table(seeded) == before


@pytest.mark.parametrize("status", ["in_progress", "stopped", "completed"])
def test_update_outside_draft_and_scheduled_is_a_conflict(seeded, status):
    create(seeded)
    sql(seeded, "UPDATE campaigns SET status = ?", status)
    before = campaigns_table(seeded)
    path = write_yaml(seeded, "u.yaml", {"name": "Too late"})
    run = seeded("update", "spring", "-f", str(path))
    assert (run.exit_code, run.stderr) == (
        5, f"error: campaign 'spring' is {status}: only draft or scheduled campaigns can be updated\n")
    assert campaigns_table(seeded) == before


def test_update_cannot_change_the_id_or_take_several_definitions(seeded):
    create(seeded)
    before = campaigns_table(seeded)
    path = write_yaml(seeded, "u.yaml", {"id": "autumn"})
    run = seeded("update", "spring", "-f", str(path))
    assert (run.exit_code, run.stderr) == (
        3, f"error: {path}: id: cannot change a campaign's id ('autumn' is not 'spring')\n")
    path = write_yaml(seeded, "u.yaml", {"campaigns": [{"name": "a"}, {"name": "b"}]})
    run = seeded("update", "spring", "-f", str(path))
    assert (run.exit_code, run.stderr) == (
        3, f"error: {path}: update takes one campaign definition, the file holds 2\n")
    path = write_yaml(seeded, "u.yaml", {"name": "Autumn"})
    run = seeded("update", "autumn", "-f", str(path))
    assert (run.exit_code, run.stderr) == (4, "error: campaign 'autumn' not found\n")
    assert campaigns_table(seeded) == before


def test_delete_a_draft_and_its_frozen_targets(seeded):
    create(seeded)
    pk = sql(seeded, "SELECT pk FROM campaigns")[0][0]
    sql(seeded, "INSERT INTO campaign_targets (campaign_pk, seq, target_id, kind, state) VALUES (?, 1, 'alice', 'user', 'pending')", pk)
    run = seeded.ok("delete", "spring")
    assert run.stderr == "deleted campaign 'spring'\n"
    assert (campaigns_table(seeded), sql(seeded, "SELECT * FROM campaign_targets")) == ([], [])
    run = seeded("get", "spring")
    assert (run.exit_code, run.stderr) == (4, "error: campaign 'spring' not found\n")
    run = seeded("delete", "spring")
    assert (run.exit_code, run.stderr) == (4, "error: campaign 'spring' not found\n")


@pytest.mark.parametrize("status", ["scheduled", "stopped", "completed"])
def test_delete_in_other_statuses(seeded, status):
    create(seeded)
    sql(seeded, "UPDATE campaigns SET status = ?", status)
    assert seeded.ok("delete", "spring", "--json").json() == {"deleted": "spring"}
    assert campaigns_table(seeded) == []


def test_delete_while_in_progress_is_a_conflict(seeded):
    create(seeded)
    sql(seeded, "UPDATE campaigns SET status = 'in_progress'")
    before = campaigns_table(seeded)
    run = seeded("delete", "spring")
    assert (run.exit_code, run.stderr) == (5, "error: campaign 'spring' is in_progress: stop it before deleting it\n")
    assert campaigns_table(seeded) == before


# ---------------------------------------------------------------- get, status, stats


def set_stats(cli, **values) -> None:
    assignments = ", ".join(f"{k} = ?" for k in values)
    sql(cli, f"UPDATE campaigns SET {assignments}", *values.values())


def test_status_shows_a_compact_view(seeded):
    create(seeded)
    set_stats(seeded, status="in_progress", stats_targets=10, stats_done=5, stats_messages_sent=4,
              stats_skipped='{"no_channel": 1}', stats_failed=0, stats_started_at="2030-01-01 10:00:00.000000")
    run = seeded.ok("status", "spring")
    lines = [line.rstrip() for line in run.stdout.splitlines()]
    assert lines[0] == "campaign       spring  Spring release"
    assert lines[1] == "status         in_progress"
    assert lines[2].startswith("progress       ━━━━━━━━━━━━━━━━━━━━") and lines[2].endswith(" 50% (5/10)")
    assert lines[3] == "counts         targets 10 · sent 4 · skipped 1 · failed 0 · read 0"
    started = to_local(datetime(2030, 1, 1, 10, tzinfo=timezone.utc))
    assert lines[4:6] == ["channels       created 0 · users sent 0", "skipped        no_channel 1"]
    # started in the future (set by hand): no rate yet, no time elapsed, and no sender has it yet
    assert lines[6:9] == ["rate           0.0 messages/s over the last minute · ETA -", "elapsed        0.0s",
                          "note           no sender is working on it: `campaign run spring` sends it"]
    assert lines[9:12] == ["scheduled for  -", "stop at        -", f"started        {started}"]
    assert lines[12] == "completed      -"


def test_status_json_is_the_campaign_document_with_live_figures(seeded):
    create(seeded)
    figures = {"rate": None, "eta_seconds": None, "elapsed_seconds": None, "senders": []}
    assert seeded.ok("status", "spring", "--json").json() == {**seeded.ok("get", "spring", "--json").json(), **figures}
    run = seeded("status", "nope")
    assert (run.exit_code, run.stderr) == (4, "error: campaign 'nope' not found\n")


def test_stats_progress_and_users_read(seeded):
    create(seeded)
    set_stats(seeded, status="completed", stats_targets=3, stats_done=3, stats_messages_sent=2, stats_users_sent=2,
              stats_channels_created=1, stats_skipped='{"unknown_user": 1}', stats_failed=0,
              stats_started_at="2030-01-01 10:00:00.000000", stats_completed_at="2030-01-01 10:05:00.000000")
    seeded.ok("channels", "import", str(seeded.write_jsonl("ch.jsonl", [
        {"cid": "messaging:a", "members": [{"user_id": "acme", "last_read_at": "2030-01-01T11:00:00Z"},
                                            {"user_id": "alice", "last_read_at": "2030-01-01T11:00:00Z"},
                                            {"user_id": "bob", "last_read_at": "2030-01-01T09:00:00Z"}]},
        {"cid": "messaging:b", "members": [{"user_id": "acme"}, {"user_id": "carol", "last_read_at": "2030-01-01T10:01:00Z"}]},
    ])))
    for message_id, cid, created in (("m1", "messaging:a", "2030-01-01 10:00:00"), ("m2", "messaging:b", "2030-01-01 10:01:00"),
                                      ("m3", "messaging:b", "2030-01-01 10:02:00")):
        sql(seeded, "INSERT INTO messages (id, cid, channel_pk, user_id, text, type, attachments, custom, campaign_id, created_at) "
                    "SELECT ?, cid, pk, 'acme', 'Hi', 'regular', '[]', '{}', ?, ? FROM channels WHERE cid = ?",
            message_id, "spring" if message_id != "m3" else "other", created, cid)
    stats = get(seeded, "spring")["stats"]
    assert stats == {"progress": 1.0, "stats_started_at": "2030-01-01T10:00:00Z",
                     "stats_completed_at": "2030-01-01T10:05:00Z", "stats_messages_sent": 2,
                     "stats_channels_created": 1, "stats_users_sent": 2, "stats_users_read": 2, "stats_targets": 3,
                     "stats_skipped": {"unknown_user": 1}, "stats_failed": 0, "stats_failed_reasons": {}}


def test_progress_is_done_over_targets_while_sending(seeded):
    create(seeded)
    set_stats(seeded, status="stopped", stats_targets=8, stats_done=2)
    assert get(seeded, "spring")["stats"]["progress"] == 0.25


# ---------------------------------------------------------------- validate and the examples


def test_validate_writes_nothing_and_reports_every_file(seeded):
    good = write_yaml(seeded, "good.yaml", definition())
    assert seeded.ok("validate", str(good)).stderr == "ok: 1 campaign definition in 1 file is valid\n"
    bad = write_yaml(seeded, "bad.yaml", definition(id="spring", sender_id="ghost"))
    broken = seeded.write("broken.yaml", "- just\n- a list\n")
    run = seeded("validate", str(good), str(bad), str(broken))
    assert run.exit_code == 3
    assert run.stderr.splitlines() == [
        f"error: {broken}: a definition file must hold a mapping, got list",
        f"error: {bad}: sender_id: user 'ghost' not found",
        f"error: {bad}: id: campaign 'spring' is defined twice (first at {good})",
    ]
    assert campaigns_table(seeded) == []


def test_every_example_validates_and_creates(cli):
    """Over examples/users.jsonl and the segments of examples/segments/, made with the real commands."""
    cli.ok("users", "import", str(EXAMPLES / "users.jsonl"))
    for segment_file in sorted((EXAMPLES / "segments").glob("*.yaml")):
        cli.ok("segment", "create", "-f", str(segment_file))
    files = sorted(str(p) for p in (EXAMPLES / "campaigns").glob("*.yaml"))
    assert len(files) == 4
    assert cli.ok("validate", *files).stderr == "ok: 5 campaign definitions in 4 files are valid\n"
    for path in files:
        cli.ok("create", "-f", path)
    campaigns = {c["id"]: c for c in cli.ok("list", "--json").json()["campaigns"]}
    assert sorted(campaigns) == ["maintenance-window", "meetup-reminder-day-before", "meetup-reminder-hour-before",
                                 "release-2-0", "welcome-pilot"]
    release = campaigns["release-2-0"]
    assert (release["segment_ids"], release["create_channels"], release["channel_template"]["type"],
            "id" in release["channel_template"]) == (["beta-testers"], True, "messaging", False)
    assert campaigns["maintenance-window"]["segment_ids"] == ["eu-support-channels"]
    assert campaigns["welcome-pilot"]["user_ids"] == ["alice", "bob", "carol"]
    reminder = campaigns["meetup-reminder-day-before"]
    assert (reminder["scheduled_for"], reminder["stop_at"]) == ("2030-05-13T07:00:00Z", "2030-05-13T19:00:00Z")


def test_examples_need_their_references(cli, tmp_path):
    """Without the users and segments they name, the examples are rejected: validate checks references."""
    example = tmp_path / "channel-announcement.yaml"
    shutil.copy(EXAMPLES / "campaigns" / "channel-announcement.yaml", example)
    cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", [{"id": "someone"}])))
    run = cli("validate", str(example))
    assert run.exit_code == 3
    assert run.stderr.splitlines() == [f"error: {example}: segment_ids: segment 'eu-support-channels' not found",
                                       f"error: {example}: sender_id: user 'acme' not found"]
