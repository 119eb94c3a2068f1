"""`campaign channels …` through the real CLI: import with members, list with filters, get."""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def in_test_folder(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in the test's folder, so files are named as a user would type them."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def users(cli: Any) -> None:
    cli.write_jsonl("users.jsonl", [{"id": f"u{n}"} for n in range(1, 5)])
    cli.ok("users", "import", "users.jsonl")


def fails(run: Any, exit_code: int, message: str) -> None:
    lines = run.stderr.splitlines()
    assert (run.exit_code, lines) == (exit_code, [f"error: {message}"])
    assert run.stdout == ""


def table(cli: Any, sql: str) -> list[tuple]:
    return cli.sql(sql)


def members(channel: dict) -> list[tuple]:
    return [(m["user_id"], m["channel_role"], m["hidden"], m["archived"]) for m in channel["members"]]


def get_channel(cli, cid: str) -> dict:
    """`channels get --json` prints {"channel": {...}, "members": [...]}; both in one dict here."""
    document = cli.ok("channels", "get", cid, "--json").json()
    assert sorted(document) == ["channel", "members"]
    return {**document["channel"], "members": document["members"]}


CHANNELS = [
    {"type": "messaging", "id": "c1", "team": "red", "created_by_id": "u1", "topic": "news", "level": 3,
     "members": ["u1", {"user_id": "u2", "channel_role": "channel_moderator", "hidden": True}]},
    {"cid": "team:c2", "members": [{"user_id": "u3", "archived": True, "last_read_at": "2024-01-01T00:00:00Z"}]},
    {"type": "messaging", "id": "c3"},
]


def test_import_with_members_as_ids_and_objects_then_get(cli, users):
    cli.write_jsonl("channels.jsonl", CHANNELS)
    run = cli.ok("channels", "import", "channels.jsonl")
    assert run.stderr == "imported 3 channels: 3 inserted, 0 updated\n"
    c1 = get_channel(cli, "messaging:c1")
    stamp = c1["created_at"]
    assert c1 == {
        "cid": "messaging:c1", "type": "messaging", "id": "c1", "team": "red", "created_by_id": "u1",
        "member_count": 2, "created_at": stamp, "updated_at": stamp, "last_message_at": None,
        "topic": "news", "level": 3,
        "members": [
            {"user_id": "u1", "channel_role": "channel_member", "hidden": False, "archived": False,
             "created_at": stamp, "last_read_at": None},
            {"user_id": "u2", "channel_role": "channel_moderator", "hidden": True, "archived": False,
             "created_at": stamp, "last_read_at": None},
        ],
    }
    c2 = get_channel(cli, "team:c2")
    assert (c2["type"], c2["id"], c2["member_count"]) == ("team", "c2", 1)
    assert c2["members"][0]["archived"] is True
    assert c2["members"][0]["last_read_at"] == "2024-01-01T00:00:00Z"
    assert get_channel(cli, "messaging:c3")["members"] == []


def test_get_on_a_terminal_shows_the_members(cli, users):
    cli.write_jsonl("channels.jsonl", CHANNELS)
    cli.ok("channels", "import", "channels.jsonl")
    run = cli.ok("channels", "get", "messaging:c1")
    assert "channel_moderator" in run.stdout and "u2" in run.stdout


def test_reimport_replaces_members_and_keeps_created_at(cli, users):
    cli.write_jsonl("v1.jsonl", CHANNELS[:1])
    cli.ok("channels", "import", "v1.jsonl")
    before = get_channel(cli, "messaging:c1")
    cli.write_jsonl("v2.jsonl", [{"type": "messaging", "id": "c1", "members": ["u2", "u4"], "topic": "sport"}])
    run = cli.ok("channels", "import", "v2.jsonl", "--json")
    assert run.json() == {"records": 1, "inserted": 0, "updated": 1, "duplicates": 0, "members": 2}
    after = get_channel(cli, "messaging:c1")
    assert members(after) == [("u2", "channel_member", False, False), ("u4", "channel_member", False, False)]
    assert (after["team"], after["created_by_id"], after["topic"], after["member_count"]) == (None, None, "sport", 2)
    assert "level" not in after
    assert after["created_at"] == before["created_at"]
    assert after["members"][0]["created_at"] == before["members"][1]["created_at"]  # u2 stayed a member
    assert after["members"][1]["created_at"] == after["updated_at"]  # u4 joined now
    assert table(cli, "select count(*) from channel_members") == [(2,)]


def test_duplicate_channels_last_wins(cli, users):
    cli.write_jsonl("channels.jsonl", [{"type": "t", "id": "a", "members": ["u1"]},
                                       {"type": "t", "id": "a", "members": ["u2"]}])
    run = cli.ok("channels", "import", "channels.jsonl")
    assert run.stderr == ("imported 2 channels: 1 inserted, 0 updated; "
                          "1 duplicate id in the input (the last record of each won)\n")
    assert members(get_channel(cli, "t:a")) == [("u2", "channel_member", False, False)]


def test_unknown_member_is_exit_3_and_nothing_is_written(cli, users):
    cli.write_jsonl("a.jsonl", CHANNELS)
    cli.write_jsonl("b.jsonl", [{"type": "t", "id": "x", "members": ["u1"]},
                                {"type": "t", "id": "y", "members": ["u2", {"user_id": "ghost"}]}])
    fails(cli("channels", "import", "a.jsonl", "b.jsonl"), 3, "b.jsonl:2: member 'ghost' of t:y is not a known user")
    assert table(cli, "select count(*) from channels") == [(0,)]
    assert table(cli, "select count(*) from channel_members") == [(0,)]


def test_unknown_creator_is_exit_3(cli, users):
    cli.write_jsonl("channels.jsonl", [{"type": "t", "id": "x", "created_by_id": "ghost"}])
    fails(cli("channels", "import", "channels.jsonl"), 3, "channels.jsonl:1: created_by_id 'ghost' of t:x is not a known user")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (["t", "x"], "a channel record must be an object, got list"),
        ({"id": "x"}, "missing or empty 'type'"),
        ({"type": "t"}, "missing or empty 'id'"),
        ({"cid": "nocolon"}, "channel cid must be 'type:id', got 'nocolon'"),
        ({"type": "a:b", "id": "x"}, "'type' cannot contain ':'"),
        ({"type": "t", "id": "x" * 256}, "'id' is longer than 255 characters"),
        ({"type": "t", "id": "x", "members": "u1"}, "'members' must be a list of user ids or {user_id, channel_role}"),
        ({"type": "t", "id": "x", "members": [5]}, "each member must be a user id or an object with 'user_id'"),
        ({"type": "t", "id": "x", "members": [{"channel_role": "a"}]}, "missing or empty 'members.user_id'"),
        ({"type": "t", "id": "x", "members": [{"user_id": "u1", "channel_role": 1}]},
         "member 'u1': 'channel_role' must be a string"),
        ({"type": "t", "id": "x", "members": [{"user_id": "u1", "hidden": "no"}]}, "member 'u1': 'hidden' must be true or false"),
        ({"type": "t", "id": "x", "team": 5}, "'team' must be a string"),
        ({"type": "t", "id": "x", "created_at": "2024-01-01"}, "'created_at': time '2024-01-01' has no offset (add Z or +HH:MM)"),
    ],
)
def test_bad_channel_record_is_exit_3_naming_the_line(cli, users, record, message):
    cli.write("channels.jsonl", '{"type": "t", "id": "ok"}\n' + json.dumps(record) + "\n")
    fails(cli("channels", "import", "channels.jsonl"), 3, f"channels.jsonl:2: {message}")
    assert table(cli, "select count(*) from channels") == [(0,)]


def test_import_csv_with_members_column(cli, users):
    cli.write("channels.csv", 'type,id,members,team\nt,a,"u1,u2",red\nt,b,,\n')
    cli.ok("channels", "import", "channels.csv")
    assert [m["user_id"] for m in get_channel(cli, "t:a")["members"]] == ["u1", "u2"]
    assert get_channel(cli, "t:b")["member_count"] == 0


def test_list_filters_by_members_and_fields(cli, users):
    cli.write_jsonl("channels.jsonl", CHANNELS + [{"type": "team", "id": "c4", "members": ["u1", "u3"]}])
    cli.ok("channels", "import", "channels.jsonl")

    def cids(filter_: dict) -> list[str]:
        run = cli.ok("channels", "list", "--json", "--filter", json.dumps(filter_))
        return [c["cid"] for c in run.json()["channels"]]

    assert cids({"members": {"$in": ["u1"]}}) == ["messaging:c1", "team:c4"]
    assert cids({"members": "u3"}) == ["team:c2", "team:c4"]
    assert cids({"members": {"$contains": "u2"}}) == ["messaging:c1"]
    assert cids({"members": {"$nin": ["u1", "u3"]}}) == ["messaging:c3"]
    assert cids({"members": {"$in": []}}) == []
    assert cids({"type": "team"}) == ["team:c2", "team:c4"]
    assert cids({"member_count": {"$gte": 2}}) == ["messaging:c1", "team:c4"]
    assert cids({"team": {"$exists": False}}) == ["team:c2", "messaging:c3", "team:c4"]
    assert cids({"topic": {"$autocomplete": "ne"}}) == ["messaging:c1"]
    assert cids({"$or": [{"cid": "messaging:c3"}, {"members": "u2"}]}) == ["messaging:c1", "messaging:c3"]
    page = cli.ok("channels", "list", "--json", "--limit", "2").json()
    rest = cli.ok("channels", "list", "--json", "--limit", "2", "--next", page["next"]).json()
    assert [c["cid"] for c in page["channels"] + rest["channels"]] == ["messaging:c1", "team:c2", "messaging:c3", "team:c4"]
    assert "next" not in rest


def test_get_unknown_channel_is_exit_4(cli):
    fails(cli("channels", "get", "messaging:nope"), 4, "channel 'messaging:nope' not found")


def test_deleting_a_member_user_removes_the_membership_and_updates_the_count(cli, users):
    cli.write_jsonl("channels.jsonl", CHANNELS[:2])
    cli.ok("channels", "import", "channels.jsonl")
    cli.ok("users", "delete", "u2", "u4")
    c1 = get_channel(cli, "messaging:c1")
    assert ([m["user_id"] for m in c1["members"]], c1["member_count"]) == (["u1"], 1)
    assert get_channel(cli, "team:c2")["member_count"] == 1


def test_a_channel_without_an_id_is_the_distinct_channel_of_its_members(cli, users):
    cli.write_jsonl("channels.jsonl", [{"type": "messaging", "members": ["u2", "u1"]}])
    cli.ok("channels", "import", str(cli.cwd / "channels.jsonl"))
    data = get_channel(cli, "messaging:!members-2.u1.2.u2")
    assert (data["id"], data["member_count"]) == ("!members-2.u1.2.u2", 2)


def test_a_channel_without_an_id_or_members_is_refused(cli):
    cli.write_jsonl("channels.jsonl", [{"type": "messaging"}])
    run = cli("channels", "import", str(cli.cwd / "channels.jsonl"))
    assert run.exit_code == 3
    assert run.error_line().endswith("channels.jsonl:1: missing or empty 'id'")
