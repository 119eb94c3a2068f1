"""Malformed and abusive input: one `error:` line naming the file, line or field, the right exit
code, bounded time and memory, and a database left exactly as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from send_helpers import create_campaign, import_users, segment, write_yaml

DM = {"type": "messaging"}


def state(cli) -> list[str]:
    """Everything a user can see of the database, to compare before and after a refused command."""
    return [cli.ok(*command, "--json").stdout for command in (
        ("users", "list", "--limit", "1000"), ("channels", "list", "--limit", "1000"),
        ("segment", "list"), ("list",))]


@pytest.fixture
def world(cli):
    """acme (the sender), alice, bob, carol, dave; a channel; a segment; a draft campaign."""
    import_users(cli)
    cli.ok("channels", "import", str(cli.write_jsonl("channels.jsonl", [{"type": "team", "id": "t1", "members": ["acme"]}])))
    segment(cli, "fr", filter={"country": "FR"})
    create_campaign(cli, "c1", segment_ids=["fr"], create_channels=True, channel_template=DM)
    return cli


def refused(cli, args: tuple[str, ...], exit_code: int, message: str, input: str | None = None) -> None:
    """Run a command that must fail with one exact line and leave the database unchanged."""
    before = state(cli)
    run = cli(*args, input=input)
    assert (run.exit_code, run.error_line()) == (exit_code, f"error: {message}")
    assert state(cli) == before


def refused_import(cli, kind: str, name: str, content: str | bytes, message: str) -> None:
    path = cli.cwd / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    refused(cli, (kind, "import", str(path)), 3, message.replace("{path}", str(path)))


# 1. Non-finite numbers -------------------------------------------------------------------------

@pytest.mark.parametrize("name, content, message", [
    ("u.jsonl", '{"id": "x1", "score": NaN}\n', "{path}:1: field 'score': NaN is not a number JSON can hold"),
    ("u.jsonl", '{"id": "x1"}\n{"id": "x2", "score": -Infinity}\n', "{path}:2: field 'score': -Infinity is not a number JSON can hold"),
    ("u.json", '[{"id": "x1"},\n {"id": "x2", "s": [Infinity]}]', "{path}:2: field 's[0]': Infinity is not a number JSON can hold"),
    ("u.jsonl", '{"id": "x1", "a": {"b": 1e999}}\n', "{path}:1: field 'a.b': Infinity is not a number JSON can hold"),
    ("u.json", '[{"id": "x1", "a": -1e999}]', "{path}:1: field 'a': -Infinity is not a number JSON can hold"),
    ("u.jsonl", '{"id": "x1", "n": 9223372036854775808}\n', "{path}:1: field 'n': integer 9223372036854775808 does not fit in 64 bits"),
])
def test_non_finite_numbers_are_refused(world, name, content, message):
    refused_import(world, "users", name, content, message)


def test_csv_cells_that_are_not_strict_json_stay_text_and_json_output_stays_strict(world):
    world.ok("users", "import", str(world.write("u.csv", "id,score\nx1,NaN\nx2,-Infinity\nx3,1e999\nx4,99999999999999999999\nx5,-7\n")))
    users = {u["id"]: u for u in world.ok("users", "list", "--json", "--filter", '{"score": {"$exists": true}}').json()["users"]}
    assert {k: u["score"] for k, u in users.items()} == {
        "x1": "NaN", "x2": "-Infinity", "x3": "1e999", "x4": "99999999999999999999", "x5": -7}
    got = world.ok("users", "get", "x2", "--json").stdout
    assert json.loads(got, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))["score"] == "-Infinity"


# 2. CSV strictness ---------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    ("id,id\nx1,x2\n", "{path}:1: CSV column 'id' appears twice in the header"),
    ("id,name,name\nx1,a,b\n", "{path}:1: CSV column 'name' appears twice in the header"),
    ('id,name\nx1,"Ann\n', "{path}:2: bad CSV: a quoted cell is still open at the end of the file"),
    ("id,name\nx1,Ann\nx2,Bob,extra\n", "{path}:3: more cells than columns in the header"),
    ('id,name\nx1,"Ann"x\n', "{path}:2: bad CSV: ',' expected after '\"'"),
])
def test_malformed_csv_is_refused(world, content, message):
    refused_import(world, "users", "u.csv", content, message)


# 3. Characters the stores cannot hold ---------------------------------------------------------

@pytest.mark.parametrize("name, content, message", [
    ("u.jsonl", '{"id": "x\\u0000y"}\n', "{path}:1: field 'id': text holds a NUL character (\\u0000), which cannot be stored"),
    ("u.jsonl", '{"id": "x1", "bio": {"lines": ["ok", "a\\u0000"]}}\n',
     "{path}:1: field 'bio.lines[1]': text holds a NUL character (\\u0000), which cannot be stored"),
    ("u.csv", 'id,name\nx1,"a\x00b"\n', "{path}:2: field 'name': text holds a NUL character (\\u0000), which cannot be stored"),
    ("u.json", '[{"id": "x1", "k\\udc00": 1}]', "{path}:1: key 'k\\udc00' holds a lone surrogate (like \\ud800), not valid Unicode"),
    ("u.jsonl", '{"id": "x1", "name": "\\ud83d"}\n', "{path}:1: field 'name': text holds a lone surrogate (like \\ud800), not valid Unicode"),
])
def test_nul_and_lone_surrogates_are_refused_in_users(world, name, content, message):
    refused_import(world, "users", name, content, message)


def test_nul_is_refused_in_channels_and_members(world):
    refused_import(world, "channels", "c.jsonl", '{"type": "team", "id": "t2", "members": ["acme\\u0000"]}\n',
                   "{path}:1: field 'members[0]': text holds a NUL character (\\u0000), which cannot be stored")


def test_nul_is_refused_in_segment_targets(world):
    segment(world, "manual")
    path = world.write("targets.txt", "alice\nbo\x00b\n")
    refused(world, ("segment", "add-targets", "manual", "--file", str(path)), 3,
            f"{path}:2: target id holds a NUL character (\\u0000), which cannot be stored")
    refused(world, ("segment", "add-targets", "manual", "team:a\x00"), 3,
            "arguments[0]: target id holds a NUL character (\\u0000), which cannot be stored")


def test_nul_is_refused_in_filters(world):
    refused(world, ("users", "list", "--filter", '{"name": "a\\u0000"}'), 3,
            "--filter: field 'name': text holds a NUL character (\\u0000), which cannot be stored")


@pytest.mark.parametrize("args", [
    ("users", "get", "al\udcffice"),
    ("segment", "target-exists", "fr", "\udcff"),
    ("segment", "create", "--type", "user", "--id", "s\udcff\udcfe"),
    ("get", "c\udcff1"),
])
def test_arguments_that_are_not_utf8_are_refused_naming_the_bytes(world, args):
    """Python reads an argument's bytes that are not UTF-8 as lone surrogates (`$'\\xff'` in bash)."""
    bad = next(arg for arg in args if "\udcff" in arg)
    shown = repr(bad.encode("utf-8", "surrogateescape"))[1:]
    refused(world, args, 3, f"not valid UTF-8: {shown} (ids, names and other values must be UTF-8 text)")


# 4. Depth and size ---------------------------------------------------------------------------

def test_deep_nesting_in_an_import_is_refused_before_python_gives_up(world):
    deep = '{"id": "x1", "a": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    refused_import(world, "users", "u.jsonl", deep, "{path}:1: nested deeper than 64 levels")
    refused_import(world, "users", "u.json", "[" + deep.strip() + "]", "{path}:1: nested deeper than 64 levels")
    just_too_deep = '{"id": "x1", "a": ' + "[" * 64 + "]" * 64 + "}\n"
    refused_import(world, "users", "u2.jsonl", just_too_deep,
                   "{path}:1: field 'a[0][0][0][0][0][0][0][0][0]…][0][0][0][0][0][0][0][0][0]': nested deeper than 64 levels")


def test_nesting_up_to_the_limit_is_accepted(world):
    world.ok("users", "import", str(world.write("u.jsonl", '{"id": "x1", "a": ' + "[" * 63 + "]" * 63 + "}\n")))
    assert world.ok("users", "get", "x1", "--json").json()["a"] == json.loads("[" * 63 + "]" * 63)


def test_deep_filters_are_refused(world):
    deep = '{"$and": [' * 5000 + '{"country": "FR"}' + "]}" * 5000
    refused(world, ("users", "list", "--filter", deep), 3, "--filter: nested deeper than 64 levels")
    shallow_enough_for_json = '{"$and": [' * 40 + '{"country": "FR"}' + "]}" * 40
    refused(world, ("users", "list", "--filter", shallow_enough_for_json), 3,
            "--filter: field '$and[0].$and[0].$and[0].$and…d[0].$and[0].$and[0].$and[0]': nested deeper than 64 levels")
    refused(world, ("users", "list", "--filter", '{"$or": ' * 50_000 + "}" * 50_000), 3,
            "--filter: nested deeper than 64 levels")


def test_filter_integers_beyond_64_bits_are_refused(world):
    refused(world, ("users", "list", "--filter", '{"age": 99999999999999999999999}'), 3,
            "--filter: field 'age': integer 99999999999999999999999 does not fit in 64 bits")
    refused(world, ("users", "list", "--filter", '{"age": {"$gt": NaN}}'), 3, "--filter: field 'age.$gt': NaN is not a number JSON can hold")
    refused(world, ("users", "list", "--filter", '{"age": {"$in": [1, -9223372036854775809]}}'), 3,
            "--filter: field 'age.$in[1]': integer -9223372036854775809 does not fit in 64 bits")


def test_a_record_over_16_mb_is_refused_as_too_large(world):
    big = '{"id": "x1", "blob": "' + "a" * (16 << 20) + '"}'
    refused_import(world, "users", "u.jsonl", big + "\n", "{path}:1: a record larger than 16 MB")
    refused_import(world, "users", "u.json", "[\n" + big + "]", "{path}:2: a record larger than 16 MB")


def test_in_lists_beyond_the_limit_are_refused(world):
    values = json.dumps({"country": {"$in": [f"c{n}" for n in range(100_001)]}})
    refused(world, ("users", "list", "--filter", values), 3, "--filter: field 'country': $in takes at most 100,000 values, got 100,001")
    times = json.dumps({"created_at": {"$nin": ["2024-01-01T00:00:00Z"] * 1001}})
    refused(world, ("users", "list", "--filter", times), 3, "--filter: field 'created_at': $nin takes at most 1,000 values, got 1,001")


# 5. Large $in / $nin lists work ---------------------------------------------------------------

def test_large_in_and_nin_lists_on_custom_and_standard_fields(cli):
    cli.ok("users", "import", str(cli.write_jsonl("u.jsonl", [
        {"id": f"u{n}", "n": n, "code": f"k{n}", "teams": [f"t{n % 7}"], "flag": n % 2 == 0} for n in range(300)])))
    evens = list(range(0, 100_000, 2))

    def ids(filter_: dict) -> list[str]:
        return sorted(u["id"] for u in cli.ok("users", "list", "--limit", "1000", "--json", "--filter", json.dumps(filter_)).json()["users"])

    assert ids({"n": {"$in": evens}}) == sorted(f"u{n}" for n in range(0, 300, 2))
    assert ids({"n": {"$in": [float(n) for n in range(5000)] + ["7", True]}}) == sorted(f"u{n}" for n in range(300))
    assert ids({"code": {"$nin": [f"k{n}" for n in range(1, 100_000)]}}) == ["u0"]
    assert ids({"id": {"$in": [f"u{n}" for n in range(299, 50_000)]}}) == ["u299"]
    assert ids({"teams": {"$in": [f"t{n}" for n in range(6, 20_000)]}}) == sorted(f"u{n}" for n in range(6, 300, 7))
    assert ids({"flag": {"$in": [True] * 3000}, "n": {"$lt": 5}}) == ["u0", "u2", "u4"]
    assert ids({"n": {"$in": []}}) == []


def test_large_in_lists_in_channel_member_filters(cli):
    import_users(cli)
    cli.ok("channels", "import", str(cli.write_jsonl("c.jsonl", [
        {"type": "team", "id": "a", "members": ["alice"]}, {"type": "team", "id": "b", "members": ["bob"]}])))
    listed = cli.ok("channels", "list", "--json", "--filter",
                    json.dumps({"members": {"$in": [f"nobody{n}" for n in range(5000)] + ["bob"]}})).json()["channels"]
    assert [c["cid"] for c in listed] == ["team:b"]


# 6. Dates out of range -----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"])
def test_times_out_of_range_are_refused_naming_the_field(world, value):
    refused_import(world, "users", "u.jsonl", json.dumps({"id": "x1", "created_at": value}) + "\n",
                   f"{{path}}:1: 'created_at': time {value!r} is out of range (years 0001 to 9999 in UTC)")
    refused(world, ("users", "list", "--filter", json.dumps({"last_active": {"$gt": value}})), 3,
            f"--filter: field 'last_active': time {value!r} is out of range (years 0001 to 9999 in UTC)")
    refused(world, ("start", "c1", "--at", value), 3, f"--at: time {value!r} is out of range (years 0001 to 9999 in UTC)")


def test_stop_at_out_of_range_is_refused(world):
    refused(world, ("start", "c1", "--stop-at", "9999-12-31T23:59:59-14:00"), 3,
            "--stop-at: time '9999-12-31T23:59:59-14:00' is out of range (years 0001 to 9999 in UTC)")


# 7. YAML abuse -------------------------------------------------------------------------------

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9))


@pytest.mark.parametrize("text, message", [
    ("id: s1\ntype: user\nid: s2\nall_users: true\n", "{path}:3: bad YAML: key 'id' appears twice in one mapping"),
    ("segments:\n  - id: s1\n    type: user\n    type: channel\n", "{path}:4: bad YAML: key 'type' appears twice in one mapping"),
    (BILLION_LAUGHS, "{path}:7: bad YAML: more than 100,000 values once aliases are expanded"),
    ("id: s1\ntype: user\nfilter: &f {$or: [{a: 1}, *f]}\n", "{path}:3: bad YAML: alias *f refers to a value that holds it"),
    ("id: s1\ntype: user\nall_users: true\n---\nid: s2\n", "{path}:4: bad YAML: more than one document ('---') in the file"),
    ("id: s1\n\ttype: user\n", "{path}:2: bad YAML: found character '\\t' that cannot start any token"),
    ("id: s1\nfilter: " + "[" * 200 + "]" * 200 + "\n", "{path}:2: bad YAML: nested deeper than 64 levels"),
    ("id: s1\ntype: user\nfilter: {score: .nan}\n", "{path}: field 'filter.score': NaN is not a number JSON can hold"),
])
def test_yaml_abuse_in_definitions_is_refused(world, text, message):
    path = world.write("segment.yaml", text)
    refused(world, ("segment", "create", "-f", str(path)), 3, message.replace("{path}", str(path)))


def test_a_definition_file_over_1_mb_is_refused_unread(world):
    path = world.write("campaign.yaml", "id: c2\ndescription: '" + "x" * (1 << 20) + "'\n")
    refused(world, ("create", "-f", str(path)), 3, f"{path}: file larger than 1 MB")
    refused(world, ("validate", str(path)), 3, f"{path}: file larger than 1 MB")


def test_yaml_abuse_in_the_config_file_is_refused(world):
    path = world.write("config.yaml", "sending: {batch_size: 10}\nsending: {batch_size: 20}\n")
    refused(world, ("--config", str(path), "list"), 3, f"{path}:2: bad YAML: key 'sending' appears twice in one mapping")
    path = world.write("config.yaml", BILLION_LAUGHS)
    refused(world, ("--config", str(path), "list"), 3, f"{path}:7: bad YAML: more than 100,000 values once aliases are expanded")


def test_aliases_within_the_budget_are_expanded(world):
    path = world.write("segments.yaml", "segments:\n  - {id: s1, type: user, filter: &fr {country: FR}}\n"
                                        "  - {id: s2, type: user, filter: *fr}\n")
    world.ok("segment", "create", "-f", str(path))
    got = world.ok("segment", "get", "s2", "--json").json()["segment"]
    assert (got["filter"], got["size"]) == ({"country": "FR"}, 2)
    path = world.write("config.yaml", "sending: {batch_size: &n 3}\nwebhook: {max_attempts: *n}\n")
    world.ok("--config", str(path), "list")


# 8. Template resource bombs ------------------------------------------------------------------

@pytest.mark.parametrize("text, problem", [
    ("{{ lipsum(5) }}", "line 1: unknown variable 'lipsum' (use sender, receiver, channel or campaign)"),
    ("{% for i in range(2000000) %}x{% endfor %}", "line 1: over the render budget: argument 2000000 is larger than 100,000"),
    ("Hi\n{{ 'ha' * 1000000000 }}", "line 2: over the render budget: a value longer than 100,000"),
    ("{{ receiver.name|center(500000) }}", "line 1: over the render budget: argument 500000 is larger than 100,000"),
    ("{{ 9 ** 99999 }}", "line 1: over the render budget: a number larger than 10,000 bits"),
])
def test_validate_and_create_refuse_templates_that_plainly_blow_the_budget(world, text, problem):
    spec = {"id": "bomb", "sender_id": "acme", "segment_ids": ["fr"], "message_template": {"text": text}}
    path = write_yaml(world, "bomb.yaml", spec)
    refused(world, ("validate", str(path)), 3, f"{path}: message_template.text: {problem}")
    refused(world, ("create", "-f", str(path)), 3, f"{path}: message_template.text: {problem}")


def preview_actions(cli, campaign_id: str, *config: str) -> list[str]:
    return [t["action"] for t in cli.ok(*config, "preview", campaign_id, "--json").json()["targets"]]


@pytest.mark.parametrize("text, fields, harmless, reason", [
    ("{{ receiver.name * receiver.n }}", {"n": 3000}, {"n": 1},
     "rendered text longer than 5,000 characters (templates.max_text_length)"),
    ("{{ 'x' * 10 ** receiver.n }}", {"n": 9}, {"n": 1}, "cannot render: over the render budget: a value longer than 100,000"),
    ("{% for i in range(receiver.n) %}{% for j in range(receiver.n) %}{% endfor %}{% endfor %}", {"n": 10_000}, {"n": 1},
     "cannot render: over the render budget: more than 10,000 steps (loop iterations and calls) in one render"),
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(receiver.n) }}", {"n": 60}, {"n": 1},
     "cannot render: over the render budget: more than 10,000 steps (loop iterations and calls) in one render"),
    ("{{ (receiver.s * 30000).replace('a', receiver.s * 30000) }}", {"s": "abc"}, {"s": ""},
     "cannot render: over the render budget: a value longer than 100,000"),
    ("{{ receiver.f % receiver.name }}", {"f": "%999999999s"}, {"f": "%s"},
     "cannot render: over the render budget: a format width of 999999999 is larger than 100,000"),
    ("{{ receiver.s|indent(receiver.s) }}", {"s": "\n" * 50_000}, {"s": ""},
     "cannot render: over the render budget: a value longer than 100,000"),
])
def test_a_template_over_the_budget_fails_only_that_target(world, text, fields, harmless, reason):
    world.ok("users", "import", str(world.write_jsonl("more.jsonl", [
        {"id": "ann", "name": "Ann", **fields}, {"id": "zoe", "name": "Zoe", **harmless}])))
    create_campaign(world, "c2", user_ids=["ann", "zoe"], create_channels=True, channel_template=DM,
                    message_template={"text": text})

    assert preview_actions(world, "c2") == [f"failed: template_error: message_template.text: {reason}", "create channel"]
    run = world("start", "c2")

    assert (run.exit_code, run.stderr) == (0, "")
    stats = world.ok("get", "c2", "--json").json()["campaign"]["stats"]
    assert (stats["stats_messages_sent"], stats["stats_failed"]) == (1, 1)


def test_the_text_limit_is_configurable(world):
    create_campaign(world, "c2", user_ids=["alice"], create_channels=True, channel_template=DM,
                    message_template={"text": "{{ 'ab' * 3000 }}"})
    assert preview_actions(world, "c2") == [
        "failed: template_error: message_template.text: rendered text longer than 5,000 characters (templates.max_text_length)"]
    config = write_yaml(world, "config.yaml", {"templates": {"max_text_length": 6000}})
    assert preview_actions(world, "c2", "--config", str(config)) == ["create channel"]
    config = write_yaml(world, "config.yaml", {"templates": {"max_text_length": 10}})
    assert preview_actions(world, "c2", "--config", str(config)) == [
        "failed: template_error: message_template.text: rendered text longer than 10 characters (templates.max_text_length)"]


# 9. Contradictions ---------------------------------------------------------------------------

@pytest.mark.parametrize("record, message", [
    ({"cid": "team:a", "type": "team", "id": "b"}, "{path}:1: 'cid' 'team:a' disagrees with 'id' 'b'"),
    ({"cid": "team:a", "type": "messaging"}, "{path}:1: 'cid' 'team:a' disagrees with 'type' 'messaging'"),
    ({"cid": "team", "id": "team"}, "{path}:1: channel cid must be 'type:id', got 'team'"),
    ({"type": "a:b", "id": "c"}, "{path}:1: 'type' cannot contain ':'"),
])
def test_channel_records_that_contradict_themselves_are_refused(world, record, message):
    refused_import(world, "channels", "c.jsonl", json.dumps(record) + "\n", message)


def test_a_channel_template_type_with_a_colon_is_refused(world):
    spec = {"id": "c2", "sender_id": "acme", "segment_ids": ["fr"], "message_template": {"text": "Hi"},
            "create_channels": True, "channel_template": {"type": "team:x"}}
    path = write_yaml(world, "c2.yaml", spec)
    refused(world, ("create", "-f", str(path)), 3, f"{path}: channel_template.type: cannot contain ':' (a cid is type:id)")


@pytest.mark.parametrize("sections, message", [
    ({"sending": {"batch_size": -5}}, "config key 'sending.batch_size' must be between 1 and 100000, got -5"),
    ({"sending": {"batch_size": 1_000_000}}, "config key 'sending.batch_size' must be between 1 and 100000, got 1000000"),
    ({"sending": {"rate": 0}}, "config key 'sending.rate' must be greater than 0, got 0"),
    ({"sending": {"lease_seconds": -1}}, "config key 'sending.lease_seconds' must be greater than 0 and at most 86400, got -1"),
    ({"webhook": {"url": "http://127.0.0.1:9/", "timeout": -2.5}}, "config key 'webhook.timeout' must be greater than 0 and at most 86400, got -2.5"),
    ({"push": {"max_attempts": 0}}, "config key 'push.max_attempts' must be between 1 and 100, got 0"),
    ({"quota": {"monthly_messages": -1}}, "config key 'quota.monthly_messages' must be at least 0, got -1"),
    ({"templates": {"max_text_length": 0}}, "config key 'templates.max_text_length' must be between 1 and 1000000, got 0"),
    ({"templates": {"max_text_length": "long"}}, "config key 'templates.max_text_length' has the wrong type"),
    ({"delivery": {"matrix": {"concurrency": 0}}}, "config key 'delivery.matrix.concurrency' must be between 1 and 256, got 0"),
])
def test_config_values_out_of_range_are_refused(world, sections, message):
    path = write_yaml(world, "config.yaml", sections)
    refused(world, ("--config", str(path), "list"), 3, f"{path}: {message}")


# 10. Files -----------------------------------------------------------------------------------

def test_a_folder_given_as_a_file_is_refused(world):
    folder = world.cwd / "folder.jsonl"
    folder.mkdir()
    refused(world, ("users", "import", str(folder)), 3, f"{folder}: is a folder, not a file")
    refused(world, ("create", "-f", str(folder)), 3, f"{folder}: is a folder, not a file")
    refused(world, ("--config", str(folder), "list"), 3, f"{folder}: is a folder, not a config file")
    segment(world, "manual")
    refused(world, ("segment", "add-targets", "manual", "--file", str(folder)), 3, f"{folder}: is a folder, not a file")


def _without_read_permission() -> list[str] | None:
    """A command prefix under which a mode-000 file cannot be read: none for an ordinary user; for
    root (who reads anything), setpriv dropping the capabilities that bypass file permissions."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("args, message", [
    (("users", "import", "{file}"), "{file}: cannot read the file: permission denied"),
    (("create", "-f", "{file}"), "{file}: cannot read the file: permission denied"),
    (("validate", "{file}"), "{file}: cannot read the file: permission denied"),
    (("segment", "create", "-f", "{file}"), "{file}: cannot read the file: permission denied"),
    (("--config", "{file}", "list"), "{file}: cannot read the config file: permission denied"),
])
def test_an_unreadable_file_is_exit_3_naming_it(world, args, message):
    prefix = _without_read_permission()
    if prefix is None:
        pytest.skip("running as root without setpriv: no way to make a file unreadable")
    locked = world.write("locked.yaml", "id: x\n")
    locked.chmod(0)
    before = state(world)
    command = [*prefix, sys.executable, "-m", "campaign_cli", "--db", str(world.db), *(a.replace("{file}", str(locked)) for a in args)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=world.cwd)
    assert (run.returncode, run.stderr) == (3, f"error: {message.replace('{file}', str(locked))}\n")
    assert state(world) == before


def test_a_garbled_schema_version_is_one_line(tmp_path):
    db = tmp_path / "garbled.db"
    from conftest import Cli

    cli = Cli(db, tmp_path)
    cli.ok("users", "import", str(cli.write_jsonl("u.jsonl", [{"id": "a"}])))
    with sqlite3.connect(db) as conn:  # as a release before migrations left it, but garbled
        conn.execute("DROP TABLE alembic_version")
        conn.execute("UPDATE meta SET value = 'x7!' WHERE key = 'schema_version'")
    run = cli("users", "list")
    assert (run.exit_code, run.error_line()) == (
        3, f"error: --db: database sqlite:///{db} has a garbled schema version 'x7!'; it was not written by campaign or is damaged")


# 11. Usage errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (("frobnicate",), "campaign: No such command 'frobnicate'."),
    (("segment", "get"), "campaign segment get: Missing argument 'ID'."),
    (("users", "list", "--limit", "ten"), "campaign users list: Invalid value for '--limit': 'ten' is not a valid int."),
    (("users", "list", "--bogus"), "campaign users list: No such option: --bogus"),
    (("start", "c1", "--batch-size", "0"), "campaign start: Invalid value for '--batch-size': 0 is not in the range 1<=x<=100000."),
])
def test_usage_errors_are_one_line_and_exit_2(world, args, message):
    refused(world, args, 2, message)


def test_help_is_unchanged_by_the_one_line_usage_errors(cli):
    run = cli("users", "import", "--help")
    assert run.exit_code == 0
    assert run.stdout.startswith("Usage: campaign users import [OPTIONS]")
    assert run.stderr == ""


def test_usage_errors_from_the_console_script_are_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "campaign_cli", "--db", str(tmp_path / "x.db"), "users", "get"],
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr) == (2, "error: campaign users get: Missing argument 'ID'.\n")
    assert not (tmp_path / "x.db").exists()
