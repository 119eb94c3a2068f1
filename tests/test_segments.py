"""Segments: create / get / update / delete / list / refresh, the segment rules and YAML definitions.

The helpers at the top (directory import, DB snapshot) are shared with the other test_segments_* files.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

USERS = [
    {"id": "alice", "name": "Alice", "country": "FR", "role": "admin"},
    {"id": "bob", "name": "Bob", "country": "FR"},
    {"id": "carol", "name": "Carol", "country": "NL", "role": "moderator"},
    {"id": "dave", "name": "Dave", "country": "US"},
    {"id": "sender", "name": "Sender"},
]
CHANNELS = [
    {"type": "support", "id": "s1", "team": "eu", "members": ["alice", "sender"]},
    {"type": "support", "id": "s2", "team": "eu", "members": ["bob"]},
    {"type": "support", "id": "s3", "team": "us", "members": ["dave", "sender"]},
    {"type": "messaging", "id": "m1", "team": "eu", "members": ["carol"]},
]
SEGMENT_FIELDS = ["id", "type", "name", "description", "filter", "all_users", "all_sender_channels", "size",
                  "created_at", "updated_at", "deleted_at"]
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def import_directory(cli: Any) -> None:
    """Import USERS and CHANNELS through the CLI."""
    cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", USERS)))
    cli.ok("channels", "import", str(cli.write_jsonl("channels.jsonl", CHANNELS)))


def snapshot(cli: Any) -> tuple[list[tuple], list[tuple]]:
    """Every segment row and every segment target, to show that a command changed nothing."""
    if not cli.has_tables():
        return [], []
    return cli.sql("SELECT * FROM segments ORDER BY pk"), cli.sql("SELECT * FROM segment_targets ORDER BY segment_pk, target_id")


def fails(cli: Any, code: int, message: str, *args: str, input: str | None = None) -> None:
    """Run a command that must fail with `code` and the one stderr line `error: message`, changing nothing."""
    before = snapshot(cli)
    run = cli(*args, input=input)
    assert (run.exit_code, run.stderr) == (code, f"error: {message}\n")
    assert run.stdout == ""
    assert snapshot(cli) == before


def segment(cli: Any, segment_id: str) -> dict:
    """A segment's JSON, through the CLI."""
    return cli.ok("segment", "get", segment_id, "--json").json()["segment"]


@pytest.fixture
def directory(cli: Any) -> Any:
    """The CLI over a database holding USERS and CHANNELS."""
    import_directory(cli)
    return cli


# ---------------------------------------------------------------- create


def test_create_with_flags_prints_the_segment_with_the_spec_field_names(cli):
    run = cli.ok("segment", "create", "--type", "user", "--id", "vip", "--name", "VIP", "--description", "Top",
                 "--json")
    assert list(run.json()) == ["segment"]
    data = run.json()["segment"]
    assert list(data) == SEGMENT_FIELDS
    assert {k: data[k] for k in SEGMENT_FIELDS if not k.endswith("_at")} == {
        "id": "vip", "type": "user", "name": "VIP", "description": "Top", "filter": None,
        "all_users": False, "all_sender_channels": False, "size": 0,
    }
    assert TIME.match(data["created_at"]) and data["updated_at"] == data["created_at"]
    assert data["deleted_at"] is None
    assert segment(cli, "vip") == data


def test_create_generates_an_id_when_none_is_given(cli):
    data = cli.ok("segment", "create", "--type", "channel", "--json").json()["segment"]
    assert re.fullmatch(r"[0-9a-f]{32}", data["id"])
    assert segment(cli, data["id"])["type"] == "channel"


def test_create_without_json_says_what_it_did_on_stderr(cli):
    run = cli.ok("segment", "create", "--type", "user", "--id", "vip")
    assert (run.stdout, run.stderr) == ("", "created user segment vip (size 0)\n")


def test_filter_segment_size_is_computed_at_create(directory):
    data = directory.ok("segment", "create", "--type", "user", "--id", "fr", "--filter", '{"country": "FR"}',
                        "--json").json()["segment"]
    assert (data["filter"], data["size"]) == ({"country": "FR"}, 2)


def test_all_users_segment_size_is_every_user(directory):
    data = directory.ok("segment", "create", "--type", "user", "--id", "all", "--all-users", "--json").json()["segment"]
    assert (data["all_users"], data["size"]) == (True, 5)


def test_channel_filter_segment_counts_channels(directory):
    data = directory.ok("segment", "create", "--type", "channel", "--id", "eu",
                        "--filter", '{"type": "support", "team": "eu"}', "--json").json()["segment"]
    assert data["size"] == 2


def test_channel_filter_on_members_works(directory):
    data = directory.ok("segment", "create", "--type", "channel", "--id", "with-sender",
                        "--filter", '{"members": {"$in": ["sender"]}}', "--json").json()["segment"]
    assert data["size"] == 2


def test_all_sender_channels_size_is_not_computed(directory):
    data = directory.ok("segment", "create", "--type", "channel", "--id", "mine", "--all-sender-channels",
                        "--json").json()["segment"]
    assert (data["all_sender_channels"], data["size"]) == (True, 0)


def test_create_from_a_file_with_a_list_creates_all_and_prints_a_list(directory):
    path = directory.write("segs.yaml", """
segments:
  - id: fr
    type: user
    filter: {country: FR}
  - id: picked
    type: user
    targets: [alice, zed, alice]
""")
    data = directory.ok("segment", "create", "-f", str(path), "--json").json()
    assert [(s["id"], s["size"]) for s in data["segments"]] == [("fr", 2), ("picked", 2)]
    assert directory.ok("segment", "targets", "picked").stdout == "alice\nzed\n"


def test_targets_file_is_relative_to_the_yaml_file(cli):
    cli.write("defs/ids.txt", "u1\n\n  u2  \nu3\n")
    path = cli.write("defs/manual.yaml", "id: m\ntype: user\ntargets_file: ids.txt\n")
    assert cli.ok("segment", "create", "-f", str(path), "--json").json()["segment"]["size"] == 3
    assert cli.ok("segment", "targets", "m").stdout == "u1\nu2\nu3\n"


def test_yaml_numbers_in_targets_are_ids(cli):
    path = cli.write("m.yaml", "id: m\ntype: user\ntargets: [101, '102']\n")
    cli.ok("segment", "create", "-f", str(path))
    assert cli.ok("segment", "targets", "m").stdout == "101\n102\n"


# ---------------------------------------------------------------- create: bad input


def test_duplicate_id_on_create_is_a_conflict(cli):
    cli.ok("segment", "create", "--type", "user", "--id", "vip")
    fails(cli, 5, "segment 'vip' already exists", "segment", "create", "--type", "user", "--id", "vip")


def test_duplicate_id_within_one_file_creates_nothing(cli):
    path = cli.write("dup.yaml", "segments:\n  - {id: a, type: user}\n  - {id: a, type: channel}\n")
    fails(cli, 5, f"{path}: segments[1]: segment 'a' already exists", "segment", "create", "-f", str(path))
    assert cli("segment", "get", "a").exit_code == 4


def test_a_bad_segment_in_a_file_creates_none_of_them(cli):
    cli.write("ids.txt", "u1\nu 2\n")
    path = cli.write("segs.yaml", "segments:\n  - {id: ok, type: user}\n"
                                  "  - {id: bad, type: user, targets_file: ids.txt}\n")
    fails(cli, 3, f"{cli.cwd / 'ids.txt'}:2: target id 'u 2' contains white space",
          "segment", "create", "-f", str(path))
    assert cli("segment", "get", "ok").exit_code == 4


def test_all_users_on_a_channel_segment_is_refused(cli):
    fails(cli, 3, "--all-users: only a user segment can target all users",
          "segment", "create", "--type", "channel", "--all-users")
    path = cli.write("c.yaml", "type: channel\nall_users: true\n")
    fails(cli, 3, f"{path}: all_users: only a user segment can target all users", "segment", "create", "-f", str(path))


def test_all_sender_channels_on_a_user_segment_is_refused(cli):
    fails(cli, 3, "--all-sender-channels: only a channel segment can target the sender's channels",
          "segment", "create", "--type", "user", "--all-sender-channels")


def test_filter_together_with_all_users_is_refused(cli):
    fails(cli, 3, "--filter and --all-users cannot be used together",
          "segment", "create", "--type", "user", "--all-users", "--filter", '{"country": "FR"}')
    path = cli.write("both.yaml", "type: user\nfilter: {country: FR}\nall_users: true\n")
    fails(cli, 3, f"{path}: filter and all_users cannot be used together", "segment", "create", "-f", str(path))


def test_targets_with_a_filter_are_refused(cli):
    path = cli.write("mixed.yaml", "type: user\nfilter: {country: FR}\ntargets: [alice]\n")
    fails(cli, 3, f"{path}: targets: only a manual segment has targets; this one has filter",
          "segment", "create", "-f", str(path))


@pytest.mark.parametrize(("kind", "filter_", "message"), [
    ("user", '{"member_count": {"$gt": 1}}', "field 'member_count' does not exist for users"),
    ("channel", '{"role": "admin"}', "field 'role' does not exist for channels"),
    ("user", '{"country": {"$near": 1}}', "field 'country': unknown operator '$near'"),
])
def test_a_filter_field_that_does_not_exist_for_the_type_is_refused(cli, kind, filter_, message):
    fails(cli, 3, f"--filter: {message}", "segment", "create", "--type", kind, "--filter", filter_)


def test_a_bad_filter_in_yaml_names_the_file(cli):
    path = cli.write("bad.yaml", "type: channel\nfilter: {banned: true}\n")
    fails(cli, 3, f"{path}: filter: field 'banned' does not exist for channels", "segment", "create", "-f", str(path))


def test_filter_that_is_not_json_is_refused(cli):
    fails(cli, 3, "--filter: not valid JSON: Expecting value at column 1",
          "segment", "create", "--type", "user", "--filter", "country=FR")


def test_name_over_128_characters_is_refused(cli):
    fails(cli, 3, "--name: must be at most 128 characters, got 129",
          "segment", "create", "--type", "user", "--name", "n" * 129)
    path = cli.write("long.yaml", f"type: user\nname: {'n' * 129}\n")
    fails(cli, 3, f"{path}: name: must be at most 128 characters, got 129", "segment", "create", "-f", str(path))
    cli.ok("segment", "create", "--type", "user", "--name", "n" * 128)


def test_description_over_256_characters_is_refused(cli):
    fails(cli, 3, "--description: must be at most 256 characters, got 257",
          "segment", "create", "--type", "user", "--description", "d" * 257)


def test_type_is_required_and_checked(cli):
    fails(cli, 3, "--type: required: 'user' or 'channel'", "segment", "create", "--name", "x")
    fails(cli, 3, "--type: must be 'user' or 'channel', got 'team'", "segment", "create", "--type", "team")


def test_unknown_yaml_key_is_refused(cli):
    path = cli.write("k.yaml", "type: user\nnmae: typo\n")
    fails(cli, 3, f"{path}: unknown key 'nmae'", "segment", "create", "-f", str(path))
    path = cli.write("kl.yaml", "segments:\n  - {type: user, size: 3}\n")
    fails(cli, 3, f"{path}: segments[0]: unknown key 'size'", "segment", "create", "-f", str(path))


def test_yaml_that_is_not_a_mapping_is_refused(cli):
    path = cli.write("list.yaml", "- type: user\n")
    fails(cli, 3, f"{path}: a definition file must hold a mapping, got list", "segment", "create", "-f", str(path))
    path = cli.write("items.yaml", "segments:\n  - just-a-string\n")
    fails(cli, 3, f"{path}: segments[0]: must be a mapping", "segment", "create", "-f", str(path))


@pytest.mark.parametrize(("yaml", "message"), [
    ("type: user\nall_users: 'yes'\n", "all_users: must be true or false"),
    ("type: user\nfilter: [country]\n", "filter: a filter must be an object"),
    ("type: user\nid: 12\n", "id: must be a string, got int"),
    ("type: user\ntargets: alice\n", "targets: must be a list of ids"),
    ("type: user\ntargets: [{id: alice}]\n", "targets[0]: a target id must be a string"),
    ("type: user\ntargets_file: missing.txt\n", None),
])
def test_bad_yaml_values_name_the_file_and_key(cli, yaml, message):
    path = cli.write("v.yaml", yaml)
    expected = f"{path}: {message}" if message else f"{cli.cwd / 'missing.txt'}: file not found"
    fails(cli, 3, expected, "segment", "create", "-f", str(path))


def test_file_and_flags_together_are_a_usage_error(cli):
    path = cli.write("s.yaml", "type: user\n")
    fails(cli, 2, "give either -f FILE or flags, not both (got -f and --name)",
          "segment", "create", "-f", str(path), "--name", "x")


# ---------------------------------------------------------------- get, update, delete, refresh


@pytest.mark.parametrize("args", [
    ["get", "nope"], ["update", "nope", "--name", "x"], ["delete", "nope"], ["refresh", "nope"],
    ["add-targets", "nope", "a"], ["remove-targets", "nope", "a"], ["targets", "nope"],
    ["target-exists", "nope", "a"], ["sync", "nope", "--file", "ids.txt"],
])
def test_an_unknown_segment_is_not_found(cli, args):
    path = cli.write("ids.txt", "a\n")
    fails(cli, 4, "segment 'nope' not found", "segment", *[str(path) if a == "ids.txt" else a for a in args])


def test_update_with_flags_changes_only_what_is_given(directory):
    directory.ok("segment", "create", "--type", "user", "--id", "fr", "--name", "France", "--description", "d",
                 "--filter", '{"country": "FR"}')
    before = segment(directory, "fr")
    data = directory.ok("segment", "update", "fr", "--name", "Dutch", "--filter", '{"country": "NL"}',
                        "--json").json()["segment"]
    assert (data["name"], data["description"], data["filter"], data["size"]) == ("Dutch", "d", {"country": "NL"}, 1)
    assert data["created_at"] == before["created_at"] and data["updated_at"] > before["updated_at"]


def test_update_can_change_the_kind_of_a_segment(directory):
    directory.ok("segment", "create", "--type", "user", "--id", "s", "--filter", '{"country": "FR"}')
    data = directory.ok("segment", "update", "s", "--all-users", "--json").json()["segment"]
    assert (data["filter"], data["all_users"], data["size"]) == (None, True, 5)
    data = directory.ok("segment", "update", "s", "--no-all-users", "--json").json()["segment"]
    assert (data["filter"], data["all_users"], data["size"]) == (None, False, 0)


def test_update_from_a_file_updates_each_segment_by_its_id(directory):
    directory.ok("segment", "create", "--type", "user", "--id", "a")
    directory.ok("segment", "create", "--type", "user", "--id", "b")
    directory.ok("segment", "add-targets", "b", "a-target")
    path = directory.write("u.yaml", "segments:\n  - {id: a, name: A, filter: {role: admin}}\n"
                                      "  - {id: b, targets: [x, y]}\n")
    data = directory.ok("segment", "update", "-f", str(path), "--json").json()
    assert [(s["id"], s["name"], s["size"]) for s in data["segments"]] == [("a", "A", 1), ("b", "", 2)]
    assert directory.ok("segment", "targets", "b").stdout == "x\ny\n"


def test_update_from_a_file_with_an_id_argument(cli):
    cli.ok("segment", "create", "--type", "user", "--id", "a")
    path = cli.write("u.yaml", "name: Renamed\n")
    assert cli.ok("segment", "update", "a", "-f", str(path), "--json").json()["segment"]["name"] == "Renamed"


def test_update_bad_input_changes_nothing(directory):
    directory.ok("segment", "create", "--type", "user", "--id", "m")
    directory.ok("segment", "add-targets", "m", "alice")
    directory.ok("segment", "create", "--type", "channel", "--id", "c")
    fails(directory, 3, "segment 'm' has targets added by hand; remove them before giving it a filter, "
                        "all_users or all_sender_channels", "segment", "update", "m", "--all-users")
    fails(directory, 3, "--type: a user segment cannot become a channel segment",
          "segment", "update", "m", "--type", "channel")
    fails(directory, 3, "--all-users: only a user segment can target all users",
          "segment", "update", "c", "--all-users")
    fails(directory, 3, "--name: must be at most 128 characters, got 129",
          "segment", "update", "m", "--name", "x" * 129)
    path = directory.write("u.yaml", "id: other\nname: x\n")
    fails(directory, 3, f"{path}: id: 'other' is not the segment being updated ('m')",
          "segment", "update", "m", "-f", str(path))
    path = directory.write("noid.yaml", "name: x\n")
    fails(directory, 3, f"{path}: id: required to say which segment to update", "segment", "update", "-f", str(path))
    fails(directory, 2, "give ID and the flags to change, or -f FILE", "segment", "update", "m")


def test_delete_is_soft(cli):
    cli.ok("segment", "create", "--type", "user", "--id", "gone")
    data = cli.ok("segment", "delete", "gone", "--json").json()["segment"]
    assert TIME.match(data["deleted_at"])
    assert segment(cli, "gone") == data
    assert cli.ok("segment", "list", "--json").json() == {"segments": []}
    fails(cli, 4, "segment 'gone' not found (it was deleted)", "segment", "add-targets", "gone", "t2")
    fails(cli, 4, "segment 'gone' not found (it was deleted)", "segment", "delete", "gone")
    fails(cli, 5, "segment 'gone' already exists (deleted, but its id stays taken)",
          "segment", "create", "--type", "user", "--id", "gone")


def test_refresh_recomputes_the_size_of_a_filter_segment(directory):
    directory.ok("segment", "create", "--type", "user", "--id", "fr", "--filter", '{"country": "FR"}')
    directory.ok("users", "import", str(directory.write_jsonl("more.jsonl", [{"id": "eve", "country": "FR"}])))
    assert segment(directory, "fr")["size"] == 2
    run = directory.ok("segment", "refresh", "fr")
    assert run.stderr == "segment fr: size 3\n"
    assert directory.ok("segment", "refresh", "fr", "--json").json()["segment"]["size"] == 3


# ---------------------------------------------------------------- list


def _create_many(cli: Any) -> None:
    for i, (name, kind) in enumerate([("b", "user"), ("a", "channel"), ("c", "user"), ("a", "user")]):
        cli.ok("segment", "create", "--type", kind, "--id", f"s{i}", "--name", name)


def _all_pages(cli: Any, *args: str) -> list[str]:
    ids: list[str] = []
    cursor: list[str] = []
    while True:
        page = cli.ok("segment", "list", *args, *cursor, "--json").json()
        ids += [s["id"] for s in page["segments"]]
        if "next" not in page:
            return ids
        cursor = ["--next", page["next"]]


def test_list_pages_in_creation_order_by_default(cli):
    _create_many(cli)
    assert _all_pages(cli, "--limit", "3") == ["s0", "s1", "s2", "s3"]


def test_list_sorts_by_several_fields(cli):
    _create_many(cli)
    assert _all_pages(cli, "--sort", "name", "--sort", "-type", "--limit", "1") == ["s3", "s1", "s0", "s2"]
    assert _all_pages(cli, "--sort", "-name", "--limit", "2") == ["s2", "s0", "s1", "s3"]


def test_list_pages_over_a_bool_sort_key(cli):
    _create_many(cli)
    cli.ok("segment", "create", "--type", "user", "--id", "everyone", "--all-users")
    assert _all_pages(cli, "--sort", "-all_users", "--sort", "-id", "--limit", "2") == [
        "everyone", "s3", "s2", "s1", "s0"]


def test_list_filters(cli):
    _create_many(cli)
    cli.ok("segment", "create", "--type", "user", "--id", "everyone", "--all-users")
    assert _all_pages(cli, "--filter", '{"type": "user", "name": {"$in": ["a", "b"]}}') == ["s0", "s3"]
    assert _all_pages(cli, "--filter", '{"all_users": true}') == ["everyone"]
    assert _all_pages(cli, "--filter", '{"created_at": {"$lt": "2000-01-01T00:00:00Z"}}') == []


def test_list_refuses_fields_it_does_not_know(cli):
    fails(cli, 3, "--filter: field 'size' does not exist for segments", "segment", "list", "--filter", '{"size": 1}')
    fails(cli, 3, "--sort: cannot sort segments by 'size' (use one of id, name, type, all_users, created_at, "
                  "updated_at)", "segment", "list", "--sort", "size")


def test_list_limit_is_at_most_100(cli):
    fails(cli, 3, "--limit: must be between 1 and 100, got 101", "segment", "list", "--limit", "101")


def test_list_refuses_a_forged_cursor_and_one_from_another_sort(cli):
    _create_many(cli)
    fails(cli, 3, "--next: not a cursor produced by campaign", "segment", "list", "--next", "bm90LWEtY3Vyc29y")
    cursor = cli.ok("segment", "list", "--limit", "1", "--json").json()["next"]
    fails(cli, 3, "--next: this cursor belongs to another listing or sort order",
          "segment", "list", "--sort", "-name", "--next", cursor)
