"""`campaign users …` through the real CLI: import (formats, upsert, all-or-nothing, bad input), list, get, delete."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from send_helpers import finish, spawn
from sqlalchemy import insert, select

from campaign_cli.store.engine import open_engine, writing
from campaign_cli.store.models import CHANNEL_MEMBERS, CHANNELS
from campaign_cli.timeutil import now
from campaign_cli.users import delete_users, lock_users


@pytest.fixture(autouse=True)
def in_test_folder(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in the test's folder, so files are named as a user would type them."""
    monkeypatch.chdir(tmp_path)


def fails(run: Any, exit_code: int, message: str) -> None:
    assert (run.exit_code, run.error_line()) == (exit_code, f"error: {message}")
    assert run.stdout == ""


def table(cli: Any, sql: str) -> list[tuple]:
    """Rows straight from the database file, not through the CLI."""
    return cli.sql(sql)


def user(cli: Any, user_id: str) -> dict:
    return cli.ok("users", "get", user_id, "--json").json()


def summary(run: Any) -> str:
    return run.stderr.strip()


# --- import: formats ------------------------------------------------------------------------


def test_import_jsonl_with_custom_fields_and_devices(cli):
    cli.write_jsonl("users.jsonl", [
        {"id": "u1", "name": "Ann", "role": "admin", "teams": ["red", "blue"], "language": "fr", "banned": True,
         "last_active": "2024-05-01T10:00:00+02:00", "created_at": "2024-01-02T03:04:05Z",
         "devices": [{"id": "d1", "push_provider": "apn"}, {"id": "d2"}],
         "country": "FR", "age": 31, "score": 2.5, "vip": False, "tags": ["a", 1], "meta": {"k": "é"}},
        {"id": "u2"},
    ])
    run = cli.ok("users", "import", "users.jsonl")
    assert summary(run) == "imported 2 users: 2 inserted, 0 updated"
    u1 = user(cli, "u1")
    assert u1 == {
        "id": "u1", "name": "Ann", "role": "admin", "teams": ["red", "blue"], "language": "fr",
        "created_at": "2024-01-02T03:04:05Z", "updated_at": u1["updated_at"], "last_active": "2024-05-01T08:00:00Z",
        "banned": True, "devices": [{"id": "d1", "push_provider": "apn"}, {"id": "d2", "push_provider": None}],
        "country": "FR", "age": 31, "score": 2.5, "vip": False, "tags": ["a", 1], "meta": {"k": "é"},
    }
    u2 = user(cli, "u2")
    assert u2 == {
        "id": "u2", "name": None, "role": "user", "teams": [], "language": None, "created_at": u2["updated_at"],
        "updated_at": u2["updated_at"], "last_active": None, "banned": False, "devices": [],
    }
    assert table(cli, "select custom from users where id = 'u2'") == [("{}",)]


def test_import_json_array_file(cli):
    cli.write("users.json", '[\n  {"id": "u1", "name": "Ann"},\n  {"id": "u2", "teams": ["x"]}\n]\n')
    assert summary(cli.ok("users", "import", "users.json")) == "imported 2 users: 2 inserted, 0 updated"
    assert user(cli, "u1")["name"] == "Ann"
    assert user(cli, "u2")["teams"] == ["x"]


def test_import_csv_file_with_typed_cells(cli):
    cli.write("users.csv", 'id,name,teams,banned,age,vip,zip\nu1,Ann,"red,blue",true,31,false,01234\nu2,,,,,,\n')
    assert summary(cli.ok("users", "import", "users.csv")) == "imported 2 users: 2 inserted, 0 updated"
    u1 = user(cli, "u1")
    assert (u1["name"], u1["teams"], u1["banned"], u1["age"], u1["vip"], u1["zip"]) == (
        "Ann", ["red", "blue"], True, 31, False, "01234")
    u2 = user(cli, "u2")
    assert (u2["name"], u2["teams"], u2["banned"]) == (None, [], False)
    assert "age" not in u2


def test_import_from_stdin_detects_jsonl_and_json_array(cli):
    run = cli.ok("users", "import", "-", input='{"id": "u1"}\n{"id": "u2"}\n')
    assert summary(run) == "imported 2 users: 2 inserted, 0 updated"
    run = cli.ok("users", "import", "-", input=' [{"id": "u3"}, {"id": "u1", "name": "Ann"}]')
    assert summary(run) == "imported 2 users: 1 inserted, 1 updated"
    assert user(cli, "u1")["name"] == "Ann"


def test_format_flag_beats_the_extension_and_reads_stdin(cli):
    cli.write("users.txt", "id,name\nu1,Ann\n")
    assert summary(cli.ok("users", "import", "--format", "csv", "users.txt")) == "imported 1 user: 1 inserted, 0 updated"
    run = cli.ok("users", "import", "--format", "csv", "-", input="id,name\nu2,Bob\n")
    assert summary(run) == "imported 1 user: 1 inserted, 0 updated"
    assert [user(cli, u)["name"] for u in ("u1", "u2")] == ["Ann", "Bob"]
    cli.write("more.data", '{"id": "u3"}\n')
    assert summary(cli.ok("users", "import", "more.data")) == "imported 1 user: 1 inserted, 0 updated"


def test_bad_format_flag_is_exit_3(cli):
    cli.write("users.jsonl", '{"id": "u1"}\n')
    fails(cli("users", "import", "--format", "xml", "users.jsonl"), 3, "--format: must be one of jsonl, json, csv, got 'xml'")


def test_utf8_byte_order_mark_is_skipped(cli):
    (cli.cwd / "users.csv").write_bytes(b"\xef\xbb\xbfid,name\nu1,Ann\n")
    (cli.cwd / "users.jsonl").write_bytes(b'\xef\xbb\xbf{"id": "u2"}\n')
    (cli.cwd / "users.json").write_bytes(b'\xef\xbb\xbf[{"id": "u3"}]')
    run = cli.ok("users", "import", "users.csv", "users.jsonl", "users.json")
    assert summary(run) == "imported 3 users: 3 inserted, 0 updated"


def test_import_json_summary(cli):
    cli.write_jsonl("users.jsonl", [{"id": "u1"}, {"id": "u1"}, {"id": "u2"}])
    run = cli.ok("users", "import", "users.jsonl", "--json")
    assert run.json() == {"records": 3, "inserted": 2, "updated": 0, "duplicates": 1}


# --- import: upsert -------------------------------------------------------------------------


def test_batches_of_new_stored_and_repeated_users_are_counted_and_keep_created_at(cli, monkeypatch):
    """Batches of two: all new, then one new beside one of the first batch, then stored users again
    (on PostgreSQL a batch is first tried as all new: a clash sends it, and the next, to the lookup)."""
    cli.write_jsonl("old.jsonl", [{"id": "old", "name": "Old", "created_at": "2020-01-01T00:00:00Z"}])
    cli.ok("users", "import", "old.jsonl")
    monkeypatch.setattr("campaign_cli.users.IMPORT_BATCH", 2)
    cli.write_jsonl("users.jsonl", [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "a", "name": "A"},
                                    {"id": "old", "name": "Older"}, {"id": "d"}, {"id": "e"}, {"id": "f"}])

    run = cli.ok("users", "import", "users.jsonl")

    assert summary(run) == ("imported 8 users: 6 inserted, 1 updated; "
                            "1 duplicate id in the input (the last record of each won)")
    assert cli.ok("users", "import", "users.jsonl", "--json").json() == {
        "records": 8, "inserted": 0, "updated": 7, "duplicates": 1}
    assert (user(cli, "old")["name"], user(cli, "old")["created_at"]) == ("Older", "2020-01-01T00:00:00Z")
    assert user(cli, "a")["name"] == "A"
    assert table(cli, "select count(*) from users") == [(7,)]


def test_a_bad_record_after_a_stored_user_in_one_batch_is_one_line_and_writes_nothing(cli):
    """On PostgreSQL the records of a batch stream into a COPY as they are read: the bad record's
    error, not what the server said of the stored user sent before it, is what the user sees."""
    cli.write_jsonl("old.jsonl", [{"id": "old"}])
    cli.ok("users", "import", "old.jsonl")
    new = ({"id": f"new-user-{i:05d}", "name": f"New user {i}"} for i in range(2_000))  # enough to be sent before the bad one
    cli.write_jsonl("users.jsonl", [{"id": "old", "name": "Again"}, *new, {"id": 5}])

    # As a process: the driver's complaint would go to the real stderr through logging.
    run = finish(spawn(cli, "users", "import", "users.jsonl"))

    assert run == (3, "", "error: users.jsonl:2002: 'id' must be a string, got int\n")
    assert table(cli, "select id, name from users") == [("old", None)]


def test_reimport_replaces_the_user_and_keeps_created_at(cli):
    cli.write_jsonl("v1.jsonl", [{"id": "u1", "name": "Ann", "teams": ["red"], "country": "FR", "plan": "pro",
                                  "devices": [{"id": "d1"}]}])
    cli.ok("users", "import", "v1.jsonl")
    before = user(cli, "u1")
    cli.write_jsonl("v2.jsonl", [{"id": "u1", "country": "US", "age": 40}, {"id": "u2"}])
    run = cli.ok("users", "import", "v2.jsonl")
    assert summary(run) == "imported 2 users: 1 inserted, 1 updated"
    after = user(cli, "u1")
    assert after == {
        "id": "u1", "name": None, "role": "user", "teams": [], "language": None,
        "created_at": before["created_at"], "updated_at": after["updated_at"], "last_active": None,
        "banned": False, "devices": [], "country": "US", "age": 40,
    }
    assert after["updated_at"] > before["updated_at"]
    assert table(cli, "select count(*) from users") == [(2,)]


def test_created_at_in_the_record_wins_over_the_stored_one(cli):
    cli.write_jsonl("v1.jsonl", [{"id": "u1"}])
    cli.ok("users", "import", "v1.jsonl")
    cli.write_jsonl("v2.jsonl", [{"id": "u1", "created_at": "2020-02-02T02:02:02Z"}])
    cli.ok("users", "import", "v2.jsonl")
    assert user(cli, "u1")["created_at"] == "2020-02-02T02:02:02Z"


def test_duplicate_ids_last_wins_and_the_summary_says_so(cli):
    cli.write_jsonl("a.jsonl", [{"id": "u1", "name": "first"}, {"id": "u2"}, {"id": "u1", "name": "second"}])
    cli.write_jsonl("b.jsonl", [{"id": "u1", "name": "third"}])
    run = cli.ok("users", "import", "a.jsonl", "b.jsonl")
    assert summary(run) == ("imported 4 users: 2 inserted, 0 updated; "
                            "2 duplicate ids in the input (the last record of each won)")
    assert user(cli, "u1")["name"] == "third"
    assert table(cli, "select count(*) from users") == [(2,)]


def test_duplicates_across_batches_are_counted_once_per_extra_record(cli):
    records = [{"id": f"u{n % 7000}", "n": n} for n in range(12_000)]
    cli.write_jsonl("users.jsonl", records)
    run = cli.ok("users", "import", "users.jsonl", "--json")
    assert run.json() == {"records": 12_000, "inserted": 7_000, "updated": 0, "duplicates": 5_000}
    assert user(cli, "u0")["n"] == 7000
    assert user(cli, "u6999")["n"] == 6999


# --- import: all-or-nothing and bad input ---------------------------------------------------


def test_bad_record_in_the_second_file_writes_nothing(cli):
    cli.write_jsonl("old.jsonl", [{"id": "u0", "name": "kept"}])
    cli.ok("users", "import", "old.jsonl")
    before = table(cli, "select * from users")
    cli.write_jsonl("a.jsonl", [{"id": f"a{n}"} for n in range(6000)] + [{"id": "u0", "name": "changed"}])
    cli.write("b.jsonl", '{"id": "b1"}\n{"id": "b2"}\n\n{"id": "b3", "banned": "yes"}\n{"id": "b4"}\n')
    run = cli("users", "import", "a.jsonl", "b.jsonl")
    fails(run, 3, "b.jsonl:4: 'banned' must be true or false, got str")
    assert table(cli, "select * from users") == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": "u1"}\n[1, 2]\n', "users.jsonl:2: a user record must be an object, got list"),
        ('{"id": "u1"}\n"u2"\n', "users.jsonl:2: a user record must be an object, got str"),
        ('{"name": "x"}\n', "users.jsonl:1: missing or empty 'id'"),
        ('{"id": ""}\n', "users.jsonl:1: missing or empty 'id'"),
        ('{"id": null}\n', "users.jsonl:1: missing or empty 'id'"),
        ('{"id": 7}\n', "users.jsonl:1: 'id' must be a string, got int"),
        ('{"id": "u1", "name": 5}\n', "users.jsonl:1: 'name' must be a string, got int"),
        ('{"id": "u1", "role": ["a"]}\n', "users.jsonl:1: 'role' must be a string, got list"),
        ('{"id": "u1", "language": false}\n', "users.jsonl:1: 'language' must be a string, got bool"),
        ('{"id": "u1", "teams": "red"}\n', "users.jsonl:1: 'teams' must be a list of strings"),
        ('{"id": "u1", "teams": [1]}\n', "users.jsonl:1: 'teams' must be a list of strings"),
        ('{"id": "u1", "banned": 1}\n', "users.jsonl:1: 'banned' must be true or false, got int"),
        ('{"id": "u1", "devices": {"id": "d"}}\n', "users.jsonl:1: 'devices' must be a list of {id, push_provider}"),
        ('{"id": "u1", "devices": [{"push_provider": "apn"}]}\n',
         "users.jsonl:1: each device must be an object with a string 'id'"),
        ('{"id": "u1", "devices": [{"id": "d", "push_provider": 3}]}\n',
         "users.jsonl:1: a device's 'push_provider' must be a string"),
        ('{"id": "u1", "created_at": "2024-01-01T00:00:00"}\n',
         "users.jsonl:1: 'created_at': time '2024-01-01T00:00:00' has no offset (add Z or +HH:MM)"),
        ('{"id": "u1", "last_active": "soon"}\n', "users.jsonl:1: 'last_active': not an RFC 3339 time: 'soon'"),
        ('{"id": "u1"}\n{"id": "u2",\n', "users.jsonl:2: bad JSON: Expecting property name enclosed in double quotes at column 13"),
        ('{"id": "u1"}\n{"id": "u2"} x\n', "users.jsonl:2: bad JSON: Extra data at column 14"),
        ('{"id": "u1", "x": "\\ud800"}\n', "users.jsonl:1: field 'x': text holds a lone surrogate (like \\ud800), not valid Unicode"),
    ],
)
def test_bad_jsonl_record_is_exit_3_naming_file_and_line(cli, text, message):
    cli.write("users.jsonl", text)
    fails(cli("users", "import", "users.jsonl"), 3, message)
    assert table(cli, "select count(*) from users") == [(0,)]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("users.json", '{"id": "u1"}', "users.json:1: bad JSON: expected a JSON array of records ('[' at the start)"),
        ("users.json", '[{"id": "u1"},\n {"id": "u2"}\n {"id": "u3"}]', "users.json:3: bad JSON: expected ',' or ']' but found '{'"),
        ("users.json", '[{"id": "u1"},\n 5]', "users.json:2: a user record must be an object, got int"),
        ("users.json", '[{"id": "u1"},\n {"id": ', "users.json:2: bad JSON: Expecting value"),
        ("users.json", '[{"id": "u1"}] []', "users.json:1: bad JSON: unexpected data after the closing ']'"),
        ("users.csv", "id,name\nu1,Ann\n,Bob\n", "users.csv:3: missing or empty 'id'"),
        ("users.csv", "id,name\nu1,Ann,extra\n", "users.csv:2: more cells than columns in the header"),
        ("users.csv", 'id,created_at\nu1,"2024-01-01"\n', "users.csv:2: 'created_at': time '2024-01-01' has no offset (add Z or +HH:MM)"),
    ],
)
def test_bad_json_array_or_csv_record_is_exit_3(cli, name, text, message):
    cli.write(name, text)
    fails(cli("users", "import", name), 3, message)
    assert table(cli, "select count(*) from users") == [(0,)]


def test_missing_file_is_exit_3_and_nothing_is_imported(cli, tmp_path):
    cli.write_jsonl("users.jsonl", [{"id": "u1"}])
    fresh = tmp_path / "fresh.db"
    fails(cli("--db", str(fresh), "users", "import", "users.jsonl", "nope.jsonl"), 3, "nope.jsonl: file not found")
    fails(cli("--db", str(fresh), "users", "import", "."), 3, ".: is a folder, not a file")
    assert not fresh.exists()  # the files are checked before the database is even opened


@pytest.mark.parametrize(("name", "text"), [("e.jsonl", ""), ("e.jsonl", "\n \n"), ("e.json", ""), ("e.json", " [ ] "),
                                            ("e.csv", ""), ("e.csv", "id,name\n")])
def test_empty_file_imports_nothing_and_succeeds(cli, name, text):
    cli.write(name, text)
    run = cli.ok("users", "import", name)
    assert summary(run) == "imported 0 users: 0 inserted, 0 updated"
    assert table(cli, "select count(*) from users") == [(0,)]


def test_csv_without_id_column_is_exit_3(cli):
    cli.write("users.csv", "name,country\nAnn,FR\n")
    fails(cli("users", "import", "users.csv"), 3, "users.csv:1: CSV has no 'id' column")


def test_id_longer_than_255_is_exit_3_and_255_is_fine(cli):
    cli.write_jsonl("ok.jsonl", [{"id": "x" * 255}])
    cli.ok("users", "import", "ok.jsonl")
    cli.write_jsonl("long.jsonl", [{"id": "u1"}, {"id": "y" * 256}])
    fails(cli("users", "import", "long.jsonl"), 3, "long.jsonl:2: 'id' is longer than 255 characters")
    assert table(cli, "select id from users") == [("x" * 255,)]


@pytest.mark.parametrize(
    ("name", "data", "line"),
    [
        ("users.jsonl", b'{"id": "u1"}\n{"id": "u2"}\n{"id": "\xff"}\n', 3),
        ("users.csv", b"id,name\nu1,Ann\nu2,\xc3\n", 3),
        ("users.json", b'[{"id": "u1"},\n{"id": "u2"},\n\n{"id": "\xe9"}]', 4),
    ],
)
def test_non_utf8_bytes_are_exit_3_naming_the_line(cli, name, data, line):
    (cli.cwd / name).write_bytes(data)
    fails(cli("users", "import", name), 3, f"{name}:{line}: not valid UTF-8")
    assert table(cli, "select count(*) from users") == [(0,)]


def test_non_utf8_far_into_a_json_array_names_its_line(cli):
    text = "[\n" + ",\n".join(json.dumps({"id": f"u{n}", "pad": "é" * 50}) for n in range(30_000)) + ",\n"
    (cli.cwd / "users.json").write_bytes(text.encode() + b'{"id": "\xff"}]')
    fails(cli("users", "import", "users.json"), 3, "users.json:30002: not valid UTF-8")


# --- list, get, delete ----------------------------------------------------------------------


def test_list_pages_through_every_user_once(cli):
    cli.write_jsonl("users.jsonl", [{"id": f"u{n:02d}", "even": n % 2 == 0} for n in range(25)])
    cli.ok("users", "import", "users.jsonl")
    seen, cursor, pages = [], None, []
    while True:
        args = ["users", "list", "--json", "--limit", "10"] + (["--next", cursor] if cursor else [])
        page = cli.ok(*args).json()
        pages.append(len(page["users"]))
        seen += [u["id"] for u in page["users"]]
        cursor = page.get("next")
        if cursor is None:
            break
    assert pages == [10, 10, 5]
    assert seen == [f"u{n:02d}" for n in range(25)]


def test_list_pages_a_filter(cli):
    cli.write_jsonl("users.jsonl", [{"id": f"u{n:02d}", "even": n % 2 == 0} for n in range(25)])
    cli.ok("users", "import", "users.jsonl")
    first = cli.ok("users", "list", "--json", "--limit", "5", "--filter", '{"even": true}').json()
    second = cli.ok("users", "list", "--json", "--limit", "10", "--filter", '{"even": true}', "--next", first["next"]).json()
    assert [u["id"] for u in first["users"] + second["users"]] == [f"u{n:02d}" for n in range(0, 25, 2)]
    assert "next" not in second


def test_list_on_a_terminal_prints_a_table_and_the_cursor(cli):
    cli.write_jsonl("users.jsonl", [{"id": "u1", "name": "Ann"}, {"id": "u2"}])
    cli.ok("users", "import", "users.jsonl")
    run = cli.ok("users", "list", "--limit", "1")
    assert "u1" in run.stdout and "Ann" in run.stdout and "u2" not in run.stdout
    assert run.stderr.startswith("next: ")
    cursor = run.stderr.split()[1]
    assert [u["id"] for u in cli.ok("users", "list", "--json", "--next", cursor).json()["users"]] == ["u2"]


def test_forged_or_foreign_cursor_is_exit_3(cli):
    cli.write_jsonl("users.jsonl", [{"id": "u1"}, {"id": "u2"}])
    cli.ok("users", "import", "users.jsonl")
    cli.write_jsonl("channels.jsonl", [{"type": "t", "id": "a"}, {"type": "t", "id": "b"}])
    cli.ok("channels", "import", "channels.jsonl")
    real = cli.ok("users", "list", "--json", "--limit", "1").json()["next"]
    fails(cli("users", "list", "--next", "garbage"), 3, "--next: not a cursor produced by campaign")
    fails(cli("users", "list", "--next", real[:-2] + ("AA" if real[-2:] != "AA" else "BB")), 3,
          "--next: not a cursor produced by campaign")
    channel_cursor = cli.ok("channels", "list", "--json", "--limit", "1").json()["next"]
    fails(cli("users", "list", "--next", channel_cursor), 3, "--next: this cursor belongs to another listing or sort order")


@pytest.mark.parametrize("limit", ["0", "1001", "-5"])
def test_limit_out_of_range_is_exit_3(cli, limit):
    fails(cli("users", "list", "--limit", limit), 3, f"--limit: must be between 1 and 1000, got {limit}")


def test_limit_not_a_number_is_a_usage_error(cli):
    run = cli("users", "list", "--limit", "ten")
    assert run.exit_code == 2
    assert "Traceback" not in run.stderr


def test_count(cli):
    cli.write_jsonl("users.jsonl", [{"id": f"u{n}", "country": "US" if n < 3 else "FR"} for n in range(5)])
    cli.ok("users", "import", "users.jsonl")
    assert cli.ok("users", "list", "--count").stdout == "5\n"
    assert cli.ok("users", "list", "--count", "--filter", '{"country": "US"}').stdout == "3\n"
    assert cli.ok("users", "list", "--count", "--json", "--filter", '{"country": "DE"}').json() == {"count": 0}


def test_get_unknown_user_is_exit_4(cli):
    fails(cli("users", "get", "nobody"), 4, "user 'nobody' not found")


def test_delete_users_and_their_memberships(cli):
    cli.write_jsonl("users.jsonl", [{"id": "u1"}, {"id": "u2"}, {"id": "u3"}])
    cli.ok("users", "import", "users.jsonl")
    cli.write_jsonl("channels.jsonl", [{"type": "team", "id": "a", "members": ["u1", "u2"]}])
    cli.ok("channels", "import", "channels.jsonl")
    run = cli.ok("users", "delete", "u1", "u3", "u1")
    assert summary(run) == "deleted 2 users"
    assert table(cli, "select id from users") == [("u2",)]
    assert table(cli, "select user_id from channel_members") == [("u2",)]
    fails(cli("users", "get", "u1"), 4, "user 'u1' not found")


def test_a_user_named_by_a_writer_is_deleted_after_it_commits_with_the_membership_it_wrote(cli):
    """What a foreign key did, without one: a writer that checked a user keeps it until it commits."""
    cli.write_jsonl("users.jsonl", [{"id": "u1"}, {"id": "u2"}])
    cli.ok("users", "import", "users.jsonl")
    cli.write_jsonl("channels.jsonl", [{"type": "team", "id": "a", "members": ["u2"]}])
    cli.ok("channels", "import", "channels.jsonl")
    writer, deleter = open_engine(cli.url), open_engine(cli.url)
    deleting = threading.Thread(target=delete_users, args=(deleter, ["u1"]))
    with writing(writer) as conn:
        assert lock_users(conn, ["u1", "ghost"]) == {"u1"}
        deleting.start()
        time.sleep(0.5)
        assert deleting.is_alive(), "the delete did not wait for the writer"
        pk = conn.scalar(select(CHANNELS.c.pk).where(CHANNELS.c.cid == "team:a"))
        conn.execute(insert(CHANNEL_MEMBERS).values(channel_pk=pk, user_id="u1", channel_role="channel_member",
                                                    hidden=False, archived=False, created_at=now()))
    deleting.join(15)
    writer.dispose()
    deleter.dispose()
    assert not deleting.is_alive()
    assert table(cli, "select id from users") == [("u2",)]
    assert table(cli, "select user_id from channel_members") == [("u2",)]


def test_delete_with_an_unknown_id_deletes_nothing(cli):
    cli.write_jsonl("users.jsonl", [{"id": "u1"}, {"id": "u2"}])
    cli.ok("users", "import", "users.jsonl")
    fails(cli("users", "delete", "u1", "ghost", "ghost2"), 4, "user 'ghost' not found (and 1 more)")
    assert table(cli, "select id from users order by id") == [("u1",), ("u2",)]
    assert cli.ok("users", "delete", "u2", "--json").json() == {"deleted": 1}
